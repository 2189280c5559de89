"""A PNG contact sheet: per category, normal test images, then defective ones with their mask outlined."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import binary_dilation

from datasets.common import SampleDataset


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 [H,W,3] with the mask tinted red and outlined (the outline sits just outside the mask)."""
    out = image.astype(np.float32)
    m = mask > 0
    out[m] = 0.65 * out[m] + 0.35 * np.array([255, 0, 0])
    ring = binary_dilation(m, iterations=1) & ~m
    out[ring] = [255, 40, 40]
    return out.clip(0, 255).astype(np.uint8)


def _tile(item: dict, scale: int, with_mask: bool) -> np.ndarray:
    image = (item["image"].numpy().transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    if with_mask:
        image = overlay(image, item["mask"].numpy())
    return np.kron(image, np.ones((scale, scale, 1), dtype=np.uint8)) if scale > 1 else image


def preview_grid(datasets: dict[str, SampleDataset], out: str | Path, n_normal: int = 3, n_defect: int = 6, scale: int = 2) -> Path:
    """One row per dataset (category): n_normal good images, then n_defect defective ones spread over the
    defect types, each shown raw and with the mask overlay; captions name the defect."""
    rows, captions = [], []
    for name, ds in datasets.items():
        good = [i for i, s in enumerate(ds.samples) if s.label == 0][:n_normal]
        by_type: dict[str, list[int]] = {}
        for i, s in enumerate(ds.samples):
            if s.label == 1:
                by_type.setdefault(s.defect, []).append(i)
        picked: list[int] = []
        while len(picked) < n_defect and any(by_type.values()):
            for kind in sorted(by_type):
                if by_type[kind] and len(picked) < n_defect:
                    picked.append(by_type[kind].pop(0))
        tiles, labels = [], []
        for i in good:
            tiles.append(_tile(ds[i], scale, False))
            labels.append(f"{name}: good")
        for i in picked:
            item = ds[i]
            tiles.append(_tile(item, scale, False))
            labels.append(item["defect"])
            tiles.append(_tile(item, scale, True))
            labels.append(f"{item['defect']} + mask")
        rows.append(tiles)
        captions.append(labels)
    side = rows[0][0].shape[0]
    gap, caption_h = 4, 14
    n_cols = max(len(r) for r in rows)
    sheet = Image.new("RGB", (n_cols * (side + gap) + gap, len(rows) * (side + caption_h + gap) + gap), (30, 30, 30))
    draw = ImageDraw.Draw(sheet)
    for r, (tiles, labels) in enumerate(zip(rows, captions)):
        y = gap + r * (side + caption_h + gap)
        for c, (tile, label) in enumerate(zip(tiles, labels)):
            x = gap + c * (side + gap)
            draw.text((x + 2, y), label, fill=(230, 230, 230))
            sheet.paste(Image.fromarray(tile), (x, y + caption_h))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
