"""The model protocol: what every method's model class declares, so a tab or a script can use a kind it has never seen.

A method's model class inherits ``StudioModel`` (next to ``nn.Module``) and declares three things:

* **Tasks.** ``task_specs(config)`` (a classmethod: it needs the config only, so the app can list a checkpoint's
  tasks from its config.json without loading weights) returns one ``TaskSpec`` per task it offers: which of
  ``TASKS`` it is, its parameters with their defaults, the inputs it needs, and what it records.
  ``model.tasks()`` is the same for a loaded model (its checkpoint may refine the defaults).
* **An image-space energy** where one exists: ``image_energy(x [B, C, H, W] in [-1, 1]) -> [B]``, lower = more
  probable, differentiable in ``x``; ``image_energy_spec(config)`` says whether this checkpoint has one, which
  images it scores and how to describe it (``None``: no such energy, e.g. a toy or an untrained direction).
* **One way to run a task.** ``model.run(task, image=None, mask=None, *, seeds, record_every, progress, callback,
  **params) -> SampleOutput``.

What is unified (and what stayed as it was):

* **One result type.** ``run`` always returns a ``SampleOutput(images, trace, extras, notes)``. It unpacks and indexes
  like the ``(images, Trace)`` pair the samplers returned before (``x, trace = out``; ``out[0]``), so the pixel
  samplers (``CDRL.generate/inpaint/compose``, ``CFEBM.generate/inpaint/translate/denoise``, ``EGC.generate``) return
  it too without breaking a caller. Method-specific results keep their own types (``LETIT.translate`` ->
  ``TranslationResult``, ``CoopFlow.sample`` -> ``CoopFlowSamples``, ``NeRFLEBM.prior_trajectory`` -> a 3-tuple);
  their ``run`` wraps them, with what is extra in ``extras`` (reconstructions, flow proposals, latents).
* **One meaning per parameter name** in ``run`` and in every ``TaskSpec``:

  - ``seeds``: an EDM-style spec (``"0-3,7"``, an int or a list); one chain per seed, sample i depends on seed i
    only. With input images: one seed per image, a single seed for several images means seeds s, s+1, ...,
    and one image with several seeds gives one chain per seed (``seeds_for_images``).
  - ``steps``: sampler updates per chain (per noise level for CDRL, per scale for multi-scale CF-EBM, DDIM steps
    for EGC).
  - ``step_size``: the engine's ``step_size``, the factor on grad E in ``x <- x - step_size grad E + noise``.
  - ``noise``: the injected noise as a fraction of what the sampler's stochastic process calls for:
    1 = proper Langevin for the step size used (``noise_std = sqrt(2 step_size)``; for DDIM, the ancestral
    DDPM noise), 0 = none (deterministic descent). Booleans are 0 and 1.
  - ``record_every``: a Trace frame every n steps (0 = none); ``progress``: a tqdm bar; ``callback``: called with
    the engine's per-step dict ``{step, x, energy, grad_norm, step_size, noise_std}`` after every step of every
    chain the call runs (``studio.langevin.step_callback``).

  Where a paper parameterises differently (CoopFlow's delta, CDRL's s^2/2, CF-EBM's eta0, LETIT's raw noise std,
  EGC's DDIM eta), the method's ``run`` converts from the shared name and its docstring says how. The methods'
  own samplers keep their paper's keywords (nothing a caller passed before changes meaning).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

from torch import Tensor

from . import checks
from .errors import SamplingError
from .langevin import MAX_SEED, Trace, step_callback

# The task families a model may offer.
TASKS = ("generate", "inpaint", "translate", "compose", "render", "denoise")
# Keywords every task takes (besides its own ``TaskSpec.params``).
COMMON = ("seeds", "record_every", "progress", "callback")


@dataclass(frozen=True)
class TaskSpec:
    """One task a model offers.

    * ``name``: unique per model, what ``run`` and a picker's value take (``"translate g2t"``);
    * ``task``: its family, one of ``TASKS``;
    * ``params``: the task's own keywords with their defaults (besides ``COMMON``), in the shared meanings;
    * ``inputs``: what ``run`` needs besides the parameters: ``"image"``, ``"mask"`` (1 = known pixel) or
      ``"concepts"``;
    * ``label``: what a picker shows (defaults to ``name``); ``domains``: (source, target) of a translation;
    * ``chain``: the call records its steps in the Trace (a trajectory to show);
    * ``saliency``: the output has a per-pixel generative saliency (``SampleOutput.saliency``);
    * ``levels``: chains run one after another per sample (CDRL's noise levels), so ``steps`` count per level;
    * ``describe``: what the chain is, in a phrase for notes ("the chain starts at uniform noise").
    """

    name: str
    task: str
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: frozenset = frozenset()
    label: str = ""
    domains: tuple[str, str] | None = None
    chain: bool = True
    saliency: bool = False
    levels: int = 1
    describe: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"Task family {self.task!r} is not one of {TASKS}.")
        if not self.label:
            object.__setattr__(self, "label", self.name)


@dataclass(frozen=True)
class EnergySpec:
    """How a checkpoint's ``image_energy`` reads: ``source``, the domain of the images it scores (an emoji style),
    or None for the model's own data; ``describe``, a phrase that follows "the energy under NAME"."""

    source: str | None = None
    describe: str = ""


@dataclass
class SampleOutput:
    """What one task produced.

    * ``images``: [N, C, H, W] in [-1, 1], one per seed;
    * ``trace``: the chain's ``Trace``; its frames are images whenever frames were recorded (latent-space methods
      decode or render theirs; the latent chain itself is then ``extras["latent_trace"]``);
    * ``extras``: what a method returns besides, by name: ``reconstructions``, ``proposals``, ``latents``,
      ``latent_shift``, ``saliency`` (a per-pixel map [N, H, W] when the chain did not move pixels), ...;
    * ``notes``: what the method did, in sentences for people (sampler constants, frame counts).

    It unpacks and indexes like ``(images, trace)``, the pair samplers returned before it.
    """

    images: Tensor
    trace: Trace
    extras: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator:
        return iter((self.images, self.trace))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index):
        return (self.images, self.trace)[index]

    def saliency(self) -> Tensor:
        """Per-pixel generative saliency [N, H, W] in [0, 1]: the method's own map where it gave one (a latent
        chain's decoded difference), else ``trace.saliency()`` (the summed energy gradients)."""
        own = self.extras.get("saliency")
        return own if own is not None else self.trace.saliency()


def as_output(result) -> SampleOutput:
    """A ``SampleOutput`` from what a sampler returned: itself, or an ``(images, Trace)`` pair."""
    if isinstance(result, SampleOutput):
        return result
    images, trace = result
    return SampleOutput(images, trace)


def seeds_for_images(seeds: Sequence[int], n_images: int) -> list[int]:
    """The shared pairing of seeds and input images: one seed per image; one seed for several images means
    consecutive seeds s, s+1, ...; one image with several seeds is one chain per seed (the caller repeats it)."""
    seeds = list(seeds)
    if len(seeds) == 1 and n_images > 1:
        first = seeds[0]
        if first + n_images - 1 > MAX_SEED:
            raise SamplingError(f"Seeds {first}..{first + n_images - 1} go past the largest seed 2**63 - 1; "
                                "choose a smaller seed.")
        return list(range(first, first + n_images))
    if n_images not in (1, len(seeds)):
        raise SamplingError(f"Got {n_images} images for {len(seeds)} seeds; give one seed per image (or one image).")
    return seeds


def relative_noise(noise, what: str = "noise", hi: float = 1.0) -> float:
    """The shared ``noise`` as a number in [0, hi] (booleans are 0 and 1)."""
    return float(noise) if isinstance(noise, bool) else checks.number(what, noise, 0, hi)


class StudioModel:
    """The protocol a method's model class implements (mixed in next to ``nn.Module``); see the module docstring.

    A new kind implements ``task_specs`` and the samplers it names (``generate(seeds=..., record_every=...,
    progress=...)``, ``inpaint(image, mask, ...)``, ``translate(image, ...)``, ``denoise(image, ...)``,
    ``compose(concepts, ...)``), returning ``(images, Trace)`` or a ``SampleOutput``, and, where it has one,
    ``image_energy``. ``run`` checks the arguments and calls them; a method whose samplers use other keywords
    overrides ``_run`` to convert.
    """

    title: ClassVar[str] = ""  # how people name the method ("CF-EBM"); the kind when empty
    image_energy: ClassVar[Callable[..., Tensor] | None] = None  # overridden by a method where it has one

    @classmethod
    def task_specs(cls, config) -> list[TaskSpec]:
        """The tasks a checkpoint with this config offers, in display order."""
        return []

    @classmethod
    def image_energy_spec(cls, config) -> EnergySpec | None:
        """How this checkpoint's ``image_energy`` reads, or None when it has none."""
        return EnergySpec() if cls.image_energy is not None else None

    @classmethod
    def display_name(cls) -> str:
        return cls.title or getattr(cls, "kind", cls.__name__)

    def tasks(self) -> dict[str, TaskSpec]:
        """This model's tasks by name."""
        return {spec.name: spec for spec in self.task_specs(self.config)}

    def task(self, name: str) -> TaskSpec:
        tasks = self.tasks()
        if not isinstance(name, str) or name not in tasks:
            raise SamplingError(f"{self.display_name()} offers {', '.join(tasks) or 'no tasks'}, not {name!r}.")
        return tasks[name]

    def run(self, task: str, image: Tensor | None = None, mask: Tensor | None = None, *, seeds=None,
            record_every: int = 0, progress: bool = False, callback: Callable[[dict], None] | None = None,
            **params) -> SampleOutput:
        """Run one of ``tasks()`` in the shared parameter meanings (module docstring) and return a ``SampleOutput``.

        ``image`` is the input of inpaint / translate / denoise (one image or one per seed), ``mask`` inpainting's
        known pixels (1 = keep). ``seeds`` None takes the sampler's default. ``params`` are the task's own
        (``tasks()[task].params``); anything else is refused by name."""
        spec = self.task(task)
        unknown = sorted(set(params) - set(spec.params))
        if unknown:
            raise SamplingError(f"{spec.name} takes {', '.join(sorted(spec.params)) or 'no parameters'} "
                                f"(and {', '.join(COMMON)}); got {', '.join(unknown)}.")
        if "image" in spec.inputs and image is None:
            raise SamplingError(f"{spec.name} needs an input image.")
        if "mask" in spec.inputs and mask is None:
            raise SamplingError(f"{spec.name} needs a mask (1 = known pixel).")
        if callback is not None and not callable(callback):
            raise SamplingError(f"callback must be callable; got {type(callback).__name__}.")
        common = {"record_every": record_every, "progress": progress, **({} if seeds is None else {"seeds": seeds})}
        with step_callback(callback):
            return as_output(self._run(spec, image, mask, **common, **params))

    def _run(self, spec: TaskSpec, image: Tensor | None, mask: Tensor | None, **kwargs):
        """Call the sampler of ``spec.task`` with the checked arguments (overridden where keywords are converted)."""
        sampler = getattr(self, spec.task)
        if spec.task == "inpaint":
            return sampler(image, mask, **kwargs)
        if spec.task in ("translate", "denoise"):
            return sampler(image, **kwargs)
        if spec.task == "compose":
            return sampler(kwargs.pop("concepts", spec.params.get("concepts")), **kwargs)
        return sampler(**kwargs)


def offers(cls: type, config) -> tuple[list[TaskSpec], EnergySpec | None]:
    """(tasks, image-energy spec) of a checkpoint of class ``cls`` with ``config``; a class outside the protocol
    (toys, evaluators) offers nothing."""
    if not (isinstance(cls, type) and issubclass(cls, StudioModel)):
        return [], None
    return list(cls.task_specs(config)), cls.image_energy_spec(config)
