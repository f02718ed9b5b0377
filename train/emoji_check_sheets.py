"""Write the held-out emoji pairs that the default test run checks `letit-emoji` on (issue 21: 64 pairs).

    python -m train.emoji_check_sheets          # needs the emoji data (bash train/get_data.sh)

Every 8th pair of the emoji *test* split (indices 0, 8, ..., 504), composited on white at 64x64, goes into two
8x8 sheets, ``assets/examples/emoji-check/test-every8-{twitter,google}.png`` (tile k, row-major, is pair 8k).
The 20 gallery examples under assets/examples/emoji stay as they are; CI has no emoji data, so the shipped-model
check reads these sheets (``read_sheet``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

SHEET_DIR = Path(__file__).resolve().parents[1] / "assets" / "examples" / "emoji-check"
EVERY, TILE, COLUMNS = 8, 64, 8


def sheet_path(style: str) -> Path:
    return SHEET_DIR / f"test-every{EVERY}-{style}.png"


def write_sheet(images: torch.Tensor, path: Path) -> None:
    """[N, 3, 64, 64] images in [-1, 1] -> one PNG of N / COLUMNS rows."""
    arr = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    rows = len(arr) // COLUMNS
    grid = arr.reshape(rows, COLUMNS, TILE, TILE, 3).transpose(0, 2, 1, 3, 4).reshape(rows * TILE, COLUMNS * TILE, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path, optimize=True)


def read_sheet(path: Path) -> torch.Tensor:
    """The inverse of ``write_sheet``: [N, 3, 64, 64] in [-1, 1], tiles in row-major order."""
    grid = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    rows, cols = grid.shape[0] // TILE, grid.shape[1] // TILE
    tiles = grid.reshape(rows, TILE, cols, TILE, 3).transpose(0, 2, 1, 3, 4).reshape(rows * cols, TILE, TILE, 3)
    return torch.from_numpy(np.ascontiguousarray(tiles)).permute(0, 3, 1, 2) / 127.5 - 1


def main() -> None:
    from studio.data.emoji import load_emoji_pairs

    pairs = load_emoji_pairs("test", size=TILE)
    for style in ("twitter", "google"):
        write_sheet(pairs.style(style)[::EVERY], sheet_path(style))
        print(f"wrote {sheet_path(style)}")


if __name__ == "__main__":
    main()
