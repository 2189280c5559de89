"""The report layer: figures, report.html, report.md and the CSV, rendered from a run's stored results.

Nothing here imports torch or the models: a report is re-rendered from RUN/results.json alone."""
from reports.render import render_report

__all__ = ["render_report"]
