"""A stand-in accelerator for machines without one: tensors that live on "another device" while their data
stays on the CPU, built from PyTorch's Python extension points.

Why this and not the alternatives (see ``tests/test_device.py``):

* Running on the CPU proves nothing: a sampler that forgets ``device=`` or moves a tensor with
  ``.to("cpu")`` works there, and fails only on a GPU.
* The ``meta`` device alone has no data, so a Langevin chain cannot run on it (its finite checks,
  ``.item()`` and data-dependent indexing need values).
* A ``TorchFunctionMode`` that refuses any tensor created off the model's device would also refuse
  what a GPU accepts: noise drawn on the host and moved before use (the studio's seeding policy),
  CPU index tensors, CPU scalars.

So a tensor on the stand-in device is a wrapper subclass (``torch.Tensor._make_wrapper_subclass``)
that reports ``device == meta`` and holds a real CPU tensor inside, and a ``TorchDispatchMode``
runs every aten op on the inner tensors while enforcing the rules a CUDA device enforces:

* an op may not mix tensors of the stand-in device with host tensors of one or more dimensions
  (0-dim host tensors are scalars, and index tensors may stay on the host, as on CUDA);
* a factory call with ``device=`` the stand-in and a host ``generator`` is refused, as on CUDA;
* ``.numpy()`` refuses (a GPU tensor must come to the host first); ``.tolist()``, ``.item()`` and
  ``bool()`` read through, counted as reads.

Every device-to-host copy is recorded (``FakeAccelerator.host_copies``), so a test can also check
that results come back once per chain or request rather than once per step. Autograd works unchanged
(it runs above the dispatch mode), so samplers take input gradients on the stand-in device.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
DEVICE = torch.device("meta")  # what tensors on the stand-in report; their data stays on the CPU
HOST = torch.device("cpu")
# Ops whose index arguments CUDA accepts on the host.
INDEX_OPS = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}


class DeviceLeak(RuntimeError):
    """A host tensor met tensors of the model's device inside one op (a GPU would refuse it too)."""


class OnDevice(torch.Tensor):
    """A tensor on the stand-in device: reports ``DEVICE``, computes with the CPU tensor ``inner``."""

    inner: torch.Tensor
    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(cls, inner: torch.Tensor):
        out = torch.Tensor._make_wrapper_subclass(cls, inner.shape, strides=inner.stride(), storage_offset=inner.storage_offset(),
                                                  dtype=inner.dtype, device=DEVICE, requires_grad=inner.requires_grad)
        out.inner = inner
        return out

    def __repr__(self) -> str:
        return f"OnDevice({tuple(self.shape)}, {self.dtype})"

    def tolist(self):
        _active().reads.append(("tolist", tuple(self.shape)))
        return self.inner.tolist()

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        # Reached only when no FakeAccelerator is active (e.g. a tensor kept after the test's block).
        raise DeviceLeak(f"{func} on a stand-in device tensor outside FakeAccelerator")


def _is_dev(t) -> bool:
    return isinstance(t, OnDevice)


def _target(device) -> torch.device | None:
    return None if device is None else torch.device(device)


@dataclass
class FakeAccelerator(TorchDispatchMode):
    """``with FakeAccelerator() as acc:``: move models with ``acc.to_device(model)``; every op in the block
    follows a GPU's device rules (see the module docstring)."""

    host_copies: list[tuple[int, ...]] = field(default_factory=list)  # shapes copied device -> host
    reads: list[tuple] = field(default_factory=list)  # scalar reads (.item(), bool(), .tolist())

    def __post_init__(self):
        super().__init__()

    # -- what tests use -------------------------------------------------------------------------

    def to_device(self, module: nn.Module) -> nn.Module:
        """Move every parameter and buffer of ``module`` to the stand-in device (inside this mode).
        Plain tensor attributes stay on the host, exactly as ``module.to("cuda")`` leaves them."""
        with self:
            return module._apply(lambda t: t if _is_dev(t) else OnDevice(t.detach().clone()))

    # -- the dispatch rules ---------------------------------------------------------------------

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        on_dev = any(_is_dev(a) for a in _tensors((args, kwargs)))
        if func is aten._to_copy.default:  # what .to(), .cpu() and .cuda() become
            return self._copy(args[0], kwargs)
        if func is aten.copy_.default:
            dst, src = args[0], args[1]
            if _is_dev(src) and not _is_dev(dst):
                self.host_copies.append(tuple(src.shape))
            _unwrap(dst).copy_(_unwrap(src), **kwargs)
            return dst
        if func is aten._local_scalar_dense.default:
            self.reads.append(("item", tuple(args[0].shape)))
            return func(_unwrap(args[0]))
        device = _target(kwargs.get("device"))
        if device is not None and device.type == DEVICE.type:
            gen = kwargs.get("generator")
            if gen is not None and gen.device.type != DEVICE.type:
                raise DeviceLeak(f"{func}: a {gen.device.type} generator for a tensor on the model's device "
                                 "(CUDA refuses this too: draw on the host and move, or use a device generator)")
            out = func(*_unwrap_all(args), **{**_unwrap_all(kwargs), "device": HOST})
            return _map(OnDevice, out)
        if on_dev:
            self._check_mixing(func, args, kwargs)
        _refuse_dataless(func, (args, kwargs))
        out = func(*_unwrap_all(args), **_unwrap_all(kwargs))
        if not on_dev:
            return out
        if func._schema.is_mutable and args and _is_dev(args[0]):
            return args[0]  # in-place: the same tensor object, as torch returns it
        return _map(OnDevice, out)

    def _copy(self, src, kwargs):
        device = _target(kwargs.get("device"))
        want_dev = src.device.type == DEVICE.type if device is None else device.type == DEVICE.type
        kw = {k: v for k, v in kwargs.items() if k not in ("device", "pin_memory", "non_blocking")}
        out = aten._to_copy.default(_unwrap(src), **kw)
        if want_dev:
            return OnDevice(out)
        if _is_dev(src):
            self.host_copies.append(tuple(src.shape))
        return out

    def _check_mixing(self, func, args, kwargs) -> None:
        index_args = set()
        if func in INDEX_OPS and len(args) > 1:
            index_args = {id(t) for t in args[1] if isinstance(t, torch.Tensor)}
        for a in _tensors((args, kwargs)):
            if not _is_dev(a) and a.dim() > 0 and id(a) not in index_args:
                raise DeviceLeak(f"{func}: a host tensor of shape {tuple(a.shape)} meets tensors on the model's device "
                                 "(on a GPU: 'Expected all tensors to be on the same device')")


def _refuse_dataless(func, tree) -> None:
    """A plain ``meta`` tensor here was made on the stand-in device below the dispatcher and has no data:
    computing with it would read garbage (and once crashed the suite), so stop with the op's name."""
    for t in _tensors(tree):
        if not _is_dev(t) and t.device.type == DEVICE.type:
            raise DeviceLeak(f"{func}: a {DEVICE.type} tensor without data of shape {tuple(t.shape)} (made below the "
                             "dispatcher, e.g. from Python data); route its creation through the host")


def _unwrap(t):
    return t.inner if _is_dev(t) else t


def _unwrap_all(tree):
    return _map(_unwrap, tree)


def _map(fn, x):
    """``fn`` applied to every tensor in the (list / tuple / dict) structure of aten arguments or results."""
    if isinstance(x, torch.Tensor):
        return fn(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_map(fn, v) for v in x)
    if isinstance(x, dict):
        return {k: _map(fn, v) for k, v in x.items()}
    return x


def _tensors(x):
    """Every tensor in a (list / tuple / dict) structure."""
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _tensors(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _tensors(v)


class _HostDataFirst(TorchFunctionMode):
    """``torch.tensor(data, device=...)`` and ``torch.as_tensor`` build on the host and copy below the
    dispatcher, out of the dispatch mode's sight: route them through a visible host-to-device copy.

    Indexing with Python lists (``x[..., [0, 2]]``) does the same inside C++: the list becomes a tensor
    made directly on the stand-in device, i.e. a real ``meta`` tensor without data, whose values the
    CPU op then reads as garbage. Such lists become host index tensors first, which CUDA accepts too."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        device = _target(kwargs.get("device"))
        if func in (torch.tensor, torch.as_tensor) and device is not None and device.type == DEVICE.type:
            return func(*args, **{**kwargs, "device": HOST}).to(DEVICE)
        if func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__) and _is_dev(args[0]):
            args = (args[0], _host_list_indices(args[1]), *args[2:])
        return func(*args, **kwargs)


def _host_list_indices(index):
    """An index with every Python list replaced by a host index tensor (a top-level list, or lists in a tuple)."""
    if isinstance(index, list):
        return torch.tensor(index, device=HOST)
    if isinstance(index, tuple):
        return tuple(torch.tensor(i, device=HOST) if isinstance(i, list) else i for i in index)
    return index


_CURRENT: list[FakeAccelerator] = []


def _active() -> FakeAccelerator:
    if not _CURRENT:
        raise DeviceLeak("a stand-in device tensor was used outside FakeAccelerator")
    return _CURRENT[-1]


@contextlib.contextmanager
def fake_accelerator():
    """``with fake_accelerator() as acc:`` (the mode, registered so ``.tolist()`` can count its reads)."""
    acc = FakeAccelerator()
    _CURRENT.append(acc)
    try:
        with acc, _HostDataFirst():
            yield acc
    finally:
        _CURRENT.pop()


def device_tensors(tree) -> list[str]:
    """Where in ``tree`` (outputs of a handler) tensors of the stand-in device are: they must be on the host."""
    found = []

    def walk(x, path):
        if _is_dev(x):
            found.append(path or "<result>")
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{path}[{k!r}]")
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")
        elif hasattr(x, "__dataclass_fields__"):
            for k in x.__dataclass_fields__:
                walk(getattr(x, k), f"{path}.{k}")

    walk(tree, "")
    return found
