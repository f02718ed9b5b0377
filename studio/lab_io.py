"""Writing an Energy-lab run to disk as a studio checkpoint (I/O kept out of ``studio.lab``)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .hub import ModelCard, save_checkpoint
from .lab import OBJECTIVES, LabError, LabUpdate


def export_checkpoint(update: LabUpdate, directory: str | Path) -> Path:
    """Write the trained energy of a finished run as a studio checkpoint (``studio.load(directory)`` reads it)."""
    if update is None or update.model is None:
        raise LabError("There is no trained energy to export yet: train one first.")
    model, cfg = update.model, update.config
    extra = {"lab": {"config": dataclasses.asdict(cfg) if cfg else None, "steps_trained": update.step,
                     "data_points": len(update.data), "final_loss": update.losses[-1] if update.losses else None}}
    objective = OBJECTIVES.get(cfg.objective, cfg.objective) if cfg else "unknown"
    card = ModelCard(summary=f"A 2-D energy trained in the EBM Studio energy lab ({objective}, {update.step} steps, "
                             f"{len(update.data)} points).",
                     body="Load it with `studio.load(path)`; sample it with `.sample()` (Langevin) or `.sample_hmc()`.",
                     tags=["energy-lab", "2d"])
    return save_checkpoint(directory, model.kind, model.config, model.state_dict(), card, extra=extra)
