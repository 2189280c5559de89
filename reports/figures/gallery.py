"""The seed's Fig. 1 and 4 view: per category a few test images, their ground truth and each model's anomaly
map with its score (torch-fp32, the first seed: the model as trained)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from reports.figures.common import FigureResult, new_figure, wrap_label
from reports.run_data import RunView, is_present, number

MAX_GALLERY_ROWS = 24
MAP_PERCENTILES = (1.0, 99.5)


def map_colour_range(maps: np.ndarray) -> tuple[float, float]:
    """The colour scale of one model's maps over a category: the 1st to the 99.5th percentile of their values.
    Segmenters' maps are logits, where one image can reach hundreds while the rest stay near zero; a min-max
    scale would draw every other map black. Defects cover a few percent of the pixels, so they stay at the top."""
    values = maps[np.isfinite(maps)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, MAP_PERCENTILES))
    return low, high if high > low else low + 1.0


def load_gallery(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def pick_images(labels: np.ndarray, count: int) -> list[int]:
    """A few test images: one normal one first (the reference), then defective ones, in file order;
    a single image is a defective one."""
    normal = [i for i, label in enumerate(labels) if int(label) == 0]
    defective = [i for i, label in enumerate(labels) if int(label) != 0]
    reference = normal[:1] if count >= 2 else []
    picked = reference + defective[: count - len(reference)]
    if len(picked) < count:
        picked += [i for i in range(len(labels)) if i not in picked][: count - len(picked)]
    return picked


def gallery_figure(run: RunView, images_per_category: int = 3) -> FigureResult:
    title = "Heat-map gallery: test image, ground truth and each model's anomaly map with its score"
    result = FigureResult("gallery", title, None)
    blocks = []  # (dataset, category, reference arrays, [(model, arrays | None)], picked indices)
    for dataset, category in run.categories():
        entries = []
        for model in run.models:
            record = next((r for r in run.category_rows(model, dataset, category) if r.get("gallery_file")), None)
            if record is None or not record.get("gallery_file"):
                continue
            path = run.run_dir / record["gallery_file"]
            if not path.is_file():
                result.notes.append(f"{model} / {category}: gallery file {record['gallery_file']} not found, left out.")
                continue
            try:
                entries.append((model, load_gallery(path)))
            except (OSError, ValueError) as error:
                result.notes.append(f"{model} / {category}: gallery file unreadable ({error}), left out.")
        if not entries:
            continue
        # The image and ground-truth columns come from the sharpest gallery (models run at different sizes;
        # all galleries hold the same test images).
        reference = max((arrays for _, arrays in entries), key=lambda a: a["images"].shape[1])
        labels = reference.get("labels", np.zeros(len(reference["images"]), dtype=np.int8))
        blocks.append((dataset, category, reference, entries, pick_images(labels, images_per_category)))
    if not blocks:
        result.notes.append("No gallery files in this run (no successful accuracy job kept one): figure skipped.")
        return result
    # Keep the figure a size a browser shows: at most about MAX_GALLERY_ROWS image rows in all.
    per_category = max(1, min(images_per_category, MAX_GALLERY_ROWS // len(blocks)))
    if per_category < images_per_category:
        result.notes.append(f"{len(blocks)} categories: {per_category} test image(s) per category shown.")
        blocks = [(d, c, ref, entries, pick_images(ref.get("labels", np.zeros(len(ref["images"]), dtype=np.int8)), per_category))
                  for d, c, ref, entries, _ in blocks]
    models = [m for m in run.models if any(m == e[0] for b in blocks for e in b[3])]
    failed = {(r.get("model"), r.get("dataset", ""), r.get("category")) for r in run.failed if r.get("suite") == "accuracy"}
    several_datasets = len({b[0] for b in blocks}) > 1
    n_rows = sum(len(b[4]) for b in blocks)
    n_cols = 2 + len(models)
    cell = 1.45
    fig = new_figure(1.0 + cell * n_cols, 0.95 + (cell + 0.28) * n_rows, title, run.subtitle()
                     + "\nmaps: each model scaled to the 1st-99.5th percentile of its values over the category's test images;"
                     " cyan: ground-truth outline")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    row = 0
    for dataset, category, reference, entries, picked in blocks:
        by_model = dict(entries)
        # one colour range per model and category, not per row: the percentiles sort every map of the category
        ranges = {model: map_colour_range(arrays["maps"].astype(np.float32)) for model, arrays in entries if "maps" in arrays}
        ref_paths = [str(p) for p in reference.get("paths", [])]
        for index in picked:
            image = reference["images"][index]
            mask = reference["masks"][index] if "masks" in reference else np.zeros(image.shape[:2], dtype=np.uint8)
            label = int(reference.get("labels", np.zeros(len(reference["images"])))[index])
            height, width = image.shape[:2]
            extent = (0, width, height, 0)
            name = Path(ref_paths[index]).name if ref_paths else f"#{index}"
            head = f"{dataset}/{category}" if several_datasets else category
            ax = axes[row, 0]
            ax.imshow(image, extent=extent)
            ax.set_ylabel(f"{head}\n{'good' if label == 0 else 'defective'} {name}", fontsize=8)
            ax = axes[row, 1]
            ax.imshow(mask, cmap="gray", vmin=0, vmax=1, extent=extent)
            for col, model in enumerate(models, start=2):
                ax = axes[row, col]
                arrays = by_model.get(model)
                if arrays is None:
                    ax.imshow(np.full((height, width, 3), 0.97), extent=extent)  # keeps the cell the same shape as its row
                    if (model, dataset, category) in failed:
                        ax.text(0.5, 0.5, "job failed", ha="center", va="center", transform=ax.transAxes, color="#C44E52", fontweight="bold")
                    else:
                        ax.text(0.5, 0.5, "no gallery", ha="center", va="center", transform=ax.transAxes, color="#888888")
                    continue
                position = index
                paths = [str(p) for p in arrays.get("paths", [])]
                if ref_paths and paths and ref_paths[index] in paths:
                    position = paths.index(ref_paths[index])  # same image even if a model stored them in another order
                score = number(arrays["scores"][position]) if "scores" in arrays and position < len(arrays["scores"]) else math.nan
                score_text = f"score {score:.3g}" if is_present(score) else "no score"
                if "maps" in arrays and position < len(arrays["maps"]):
                    low, high = ranges[model]
                    ax.imshow(arrays["maps"][position].astype(np.float32), cmap="inferno", vmin=low, vmax=high, extent=extent)
                    if mask.any():
                        ax.contour(np.arange(width) + 0.5, np.arange(height) + 0.5, mask, levels=[0.5], colors="cyan", linewidths=0.8)
                else:
                    ax.imshow(image.mean(axis=2), cmap="gray", vmin=0, vmax=255, alpha=0.35, extent=extent)
                    ax.text(0.5, 0.5, "image-level\nonly", ha="center", va="center", transform=ax.transAxes, fontsize=8)
                ax.set_xlabel(score_text, fontsize=8, labelpad=2)
            row += 1
    for col, heading in enumerate(["image", "ground truth"] + [wrap_label(m, 14) for m in models]):
        axes[0, col].set_title(heading, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    result.figure = fig
    return result
