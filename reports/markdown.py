"""report.md: a short report for a pull-request comment (summary tables, failed jobs, links to the PNGs)."""
from __future__ import annotations

from pathlib import Path

from reports.figures import FigureResult
from reports.results import MEAN_CATEGORY, Run
from reports.tables import (
    ACCURACY_COLUMNS, ACCURACY_SUMMARY_KEYS, PROFILE_COLUMNS, PROFILE_SUMMARY_KEYS, Column, accuracy_rows,
    columns_by_key, profile_rows,
)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(records: list[dict], columns: list[Column]) -> list[str]:
    lines = ["| " + " | ".join(c.header for c in columns) + " |",
             "|" + "|".join("---" if not c.numeric else "---:" for c in columns) + "|"]
    for record in records:
        texts = [cell(c.text(record)) for c in columns]
        if record.get("status") != "ok":
            texts[0] += " (failed)"
        lines.append("| " + " | ".join(texts) + " |")
    return lines


def write_markdown(run: Run, figures: list[FigureResult], out_dir: Path) -> Path:
    provenance = run.provenance
    lines = [f"## defectbench report: {run.run_dir.resolve().name}", "",
             f"{run.subtitle()} | torch {provenance.get('torch', '?')}, onnxruntime {provenance.get('onnxruntime', '?')} "
             f"| git `{str(provenance.get('git_sha', '?'))[:10]}` | {provenance.get('timestamp', '')}", ""]
    profile = profile_rows(run)
    if profile:
        lines += ["### Profile (cost)", ""] + markdown_table(profile, columns_by_key(PROFILE_COLUMNS, PROFILE_SUMMARY_KEYS)) + [""]
    accuracy = accuracy_rows(run)
    if accuracy:
        summary_columns = columns_by_key(ACCURACY_COLUMNS, ACCURACY_SUMMARY_KEYS)
        means = [r for r in accuracy if r.get("category") == MEAN_CATEGORY]
        lines += ["### Accuracy (mean over categories)", ""] + markdown_table(means, summary_columns) + [""]
        per_category = [r for r in accuracy if r.get("category") != MEAN_CATEGORY]
        lines += ["<details><summary>Accuracy per category</summary>", ""] + markdown_table(per_category, summary_columns)
        lines += ["", "</details>", ""]
    failed = run.failed
    lines += [f"### Failed jobs ({len(failed)})", ""]
    lines += [f"- `{r.get('job_id', '')}` ({r.get('model', '')}): {cell(str(r.get('error') or '(no error message recorded)'))}" for r in failed]
    lines += ["- none" if not failed else "", "", "### Figures", ""]
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
