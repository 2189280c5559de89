"""The report's figures, drawn from a loaded run with matplotlib's Agg canvas (no pyplot, no global state).

Each builder returns a `FigureResult`: the figure (None when the run holds no data for it) and notes that the
report prints beside it (what was left out and why). One module per figure.
"""
from reports.figures.common import DPI, STYLE, FigureResult, place_labels
from reports.figures.critical_difference import critical_difference_figure
from reports.figures.e2e_stages import e2e_stages_figure
from reports.figures.frontier import frontier_figure
from reports.figures.gallery import gallery_figure
from reports.figures.latency import latency_figure
from reports.figures.operating_points import operating_points_figure
from reports.figures.pareto import pareto_figure, pareto_front
from reports.figures.per_category import per_category_figure
from reports.figures.sizes import sizes_figure
from reports.figures.sweep import sweep_figure
from reports.figures.variants import variants_figure

BUILDERS = {
    "latency": latency_figure,
    "variants": variants_figure,
    "sweep": sweep_figure,
    "sizes": sizes_figure,
    "pareto": pareto_figure,
    "e2e_stages": e2e_stages_figure,
    "frontier": frontier_figure,
    "per_category": per_category_figure,
    "operating_points": operating_points_figure,
    "critical_difference": critical_difference_figure,
    "gallery": gallery_figure,
}
FIGURE_NAMES = tuple(BUILDERS)
HEADINGS = {
    "latency": "Latency, PyTorch vs ONNX Runtime (the seed's Fig. 5 view)",
    "variants": "Deployment variants: latency and accuracy cost",
    "sweep": "Batch sweep: throughput and peak memory",
    "sizes": "Sizes and memory (the seed's Fig. 6 view)",
    "pareto": "Accuracy against latency",
    "e2e_stages": "End to end on a line: where the time goes",
    "frontier": "The deployer's frontier: accuracy at the operating point against the sustainable camera rate",
    "per_category": "Accuracy per category, with intervals",
    "operating_points": "Misses against false alarms at the validation thresholds",
    "critical_difference": "Which model to pick: critical-difference diagram",
    "gallery": "Heat-map gallery (the seed's Fig. 1 and 4 view)",
}

__all__ = ["BUILDERS", "DPI", "FIGURE_NAMES", "HEADINGS", "STYLE", "FigureResult", "pareto_front", "place_labels"]
