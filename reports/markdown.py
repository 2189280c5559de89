"""report.md: a short report for a pull-request comment (summary tables, failed jobs, links to the PNGs)."""
from __future__ import annotations

from pathlib import Path

from reports.deployment import DEPLOYMENT_NOTE, deployment_columns, deployment_rows, has_operating_points
from reports.figures import FigureResult
from reports.ranking import ranking_markdown
from reports.run_data import MEAN_CATEGORY, RunView
from reports.tables import (
    ACCURACY_COLUMNS, ACCURACY_SUMMARY_HEADERS, INTERVAL_NOTE, PROFILE_COLUMNS, VARIANT_ACCURACY_COLUMNS, VARIANT_COLUMNS,
    VARIANT_SUMMARY_HEADERS, Column, Footnotes, accuracy_rows, columns_by_header, profile_rows, summary_columns,
    summary_rows, variant_rows,
)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(records: list[dict], columns: list[Column]) -> list[str]:
    """A pipe table; an undefined metric is an empty cell with a footnote mark, the footnotes below."""
    footnotes = Footnotes()
    lines = ["| " + " | ".join(c.header for c in columns) + " |",
             "|" + "|".join("---" if not c.numeric else "---:" for c in columns) + "|"]
    for record in records:
        texts = []
        for column in columns:
            rendered = column.render(record)
            texts.append(footnotes.mark(rendered.note, column.header) if rendered.note else cell(rendered.text))
        if record.get("status") in ("failed", "skipped") and not any(c.header == "status" for c in columns):
            texts[0] += f" ({record['status']})"
        lines.append("| " + " | ".join(texts) + " |")
    if footnotes.columns:
        lines += [""] + [f"{cell(line)}  " for line in footnotes.lines()]
    return lines


def write_markdown(run: RunView, figures: list[FigureResult], out_dir: Path) -> Path:
    provenance = run.provenance
    lines = [f"## defectbench report: {run.run_dir.resolve().name}", "",
             f"{run.subtitle()} | torch {provenance.get('torch', '?')}, onnxruntime {provenance.get('onnxruntime', '?')} "
             f"| git `{str(provenance.get('git_sha', '?'))[:10]}` | {provenance.get('timestamp', '')}", ""]
    batch = run.headline_batch()
    at = f" at batch {batch}" if batch is not None else ""
    lines += [f"### Summary{at}", ""] + markdown_table(summary_rows(run), summary_columns(run)) + [""]
    if run.datasets:
        lines += [INTERVAL_NOTE, ""]
    variants = variant_rows(run)
    if variants:
        lines += [f"### Deployment variants{at}", ""]
        lines += markdown_table(variants, columns_by_header(VARIANT_COLUMNS, VARIANT_SUMMARY_HEADERS)) + [""]
    profile = profile_rows(run)
    if profile:
        lines += ["<details><summary>Every profile record (variants and batch sizes)</summary>", ""]
        lines += markdown_table(profile, PROFILE_COLUMNS) + ["", "</details>", ""]
    accuracy = accuracy_rows(run)
    if accuracy:
        summary_columns_ = columns_by_header(ACCURACY_COLUMNS, ACCURACY_SUMMARY_HEADERS)
        means = [r for r in accuracy if r.get("category") == MEAN_CATEGORY]
        lines += ["### Accuracy (torch-fp32, mean over categories and seeds)", ""] + markdown_table(means, summary_columns_) + [""]
        per_category = [r for r in accuracy if r.get("category") != MEAN_CATEGORY]
        lines += ["<details><summary>Accuracy per category and seed</summary>", ""] + markdown_table(per_category, summary_columns_)
        lines += ["", "</details>", ""]
    if has_operating_points(run):
        lines += ["### Deployment: rates at thresholds set from validation normals (torch-fp32)", ""]
        lines += markdown_table(deployment_rows(run), deployment_columns(run)) + ["", DEPLOYMENT_NOTE, ""]
    if run.datasets:
        lines += ranking_markdown(run)
    variant_accuracy = accuracy_rows(run, reference=False)
    if variant_accuracy:
        lines += ["<details><summary>Accuracy of the deployment variants, per category and seed</summary>", ""]
        lines += markdown_table(variant_accuracy, VARIANT_ACCURACY_COLUMNS) + ["", "</details>", ""]
    failed = run.failed
    lines += [f"### Failed jobs ({len(failed)})", ""]
    lines += [f"- `{r.get('job_id', '')}` ({r.get('model', '')}): {cell(str(r.get('error') or '(no error message recorded)'))}" for r in failed]
    lines += ["- none" if not failed else ""]
    if run.skipped:
        lines += ["", f"### Skipped ({len(run.skipped)}): not failures", ""]
        lines += [f"- {r.get('model', '')} {r.get('variant', '')} batch {r.get('batch_size', '')}: "
                  f"{cell(str(r.get('error') or '(no reason recorded)'))}" for r in run.skipped]
    lines += ["", "### Figures", ""]
    for result in figures:
        if result.figure is None:
            lines.append(f"- {result.title}: not drawn. " + " ".join(result.notes))
        else:
            lines.append(f"- [{result.title}]({result.name}.png)" + (" (" + " ".join(result.notes) + ")" if result.notes else ""))
    lines += ["", "![latency](latency.png)" if any(f.name == "latency" and f.figure for f in figures) else "",
              "", "Full tables, all figures and how to read them: `report.html` (self-contained).", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
