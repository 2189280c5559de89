"""report.html: one self-contained file (figures as base64 data URIs, inline CSS and JS, nothing fetched)."""
from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from reports.deployment import DEPLOYMENT_NOTE, deployment_columns, deployment_rows, has_operating_points
from reports.deployment import HOW_TO_READ as DEPLOYMENT_HOW_TO_READ
from reports.figures import HEADINGS, FigureResult
from reports.ranking import HOW_TO_READ as RANKING_HOW_TO_READ
from reports.ranking import ranking_html
from reports.run_data import RunView
from reports.tables import (
    ACCURACY_COLUMNS, HOW_TO_READ, INTERVAL_NOTE, PROFILE_COLUMNS, VARIANT_ACCURACY_COLUMNS, VARIANT_COLUMNS, Column, Footnotes,
    accuracy_rows, profile_rows, summary_columns, summary_rows, variant_rows,
)

PROVENANCE_ORDER = ["timestamp", "command", "device", "cpu", "gpu", "threads", "python", "torch", "onnxruntime",
                    "git_sha", "seed", "hostname"]

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; margin: 24px auto;
       max-width: 1600px; padding: 0 16px; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; margin-top: 1.8em; }
.subtitle { color: #57606a; margin-top: 0; }
nav a { margin-right: 1em; color: #0969da; text-decoration: none; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #d0d7de; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f6f8fa; position: sticky; top: 0; white-space: normal; vertical-align: bottom; min-width: 3em; }
td.text, th.text { text-align: left; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th:hover { background: #eaeef2; }
th.asc::after { content: " \\25B2"; font-size: 0.75em; }
th.desc::after { content: " \\25BC"; font-size: 0.75em; }
tr.failed td { background: #fff1f0; }
tr.skipped td { color: #6e7781; font-style: italic; }
td.undefined { color: #6e7781; cursor: help; }
ul.footnotes { font-size: 0.85em; color: #57606a; list-style: none; padding-left: 0; margin-top: 0.3em; }
tr.mean td { font-weight: 600; background: #f6f8fa; }
.scroll { overflow-x: auto; max-width: 100%; }
table.provenance td { text-align: left; white-space: normal; }
figure { margin: 1.2em 0 2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: 0.9em; }
.note { background: #fff8c5; border: 1px solid #d4a72c; padding: 6px 10px; border-radius: 4px; }
pre.error { white-space: pre-wrap; word-break: break-word; margin: 0; font-size: 0.95em; }
table.failed td { text-align: left; white-space: normal; vertical-align: top; }
dl.read dt { font-weight: 600; margin-top: 0.6em; }
dl.read dd { margin-left: 1.2em; }
"""

# Click a header to sort by it; click again to reverse. Cells sort on data-sort (numbers) else their text;
# empty values stay last either way.
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(ascending ? "asc" : "desc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var numeric = th.dataset.numeric === "1";
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.sort, y = b.cells[column].dataset.sort;
        if (x === "" && y === "") return 0;
        if (x === "") return 1;
        if (y === "") return -1;
        var order = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def records_table(records: list[dict], columns: list[Column], table_id: str) -> str:
    head = "".join(
        f'<th class="{"" if c.numeric else "text"}" data-numeric="{1 if c.numeric else 0}">{escape(c.header)}</th>' for c in columns
    )
    footnotes = Footnotes()
    body = []
    for record in records:
        classes = []
        if record.get("status") == "failed":
            classes.append("failed")
        elif record.get("status") == "skipped":
            classes.append("skipped")
        if record.get("category") == "mean":
            classes.append("mean")
        cells = []
        for column in columns:
            cell = column.render(record)
            kind = "" if column.numeric else "text"
            if cell.note:  # an undefined metric: empty, with its reason as a tooltip and a footnote
                cells.append(f'<td class="{kind} undefined" data-sort="" title="{escape(cell.note)}">'
                             f"<sup>{footnotes.mark(cell.note, column.header)}</sup></td>")
                continue
            title = f' title="{escape(cell.title)}"' if cell.title else ""
            cells.append(f'<td class="{kind}" data-sort="{escape(cell.sort)}"{title}>{escape(cell.text)}</td>')
        body.append(f'<tr class="{" ".join(classes)}">{"".join(cells)}</tr>')
    notes = "".join(f"<li>{escape(line)}</li>" for line in footnotes.lines())
    return (f'<div class="scroll"><table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>'
            + (f'<ul class="footnotes">{notes}</ul>' if notes else ""))


def provenance_section(run: RunView) -> str:
    keys = [k for k in PROVENANCE_ORDER if k in run.provenance] + sorted(k for k in run.provenance if k not in PROVENANCE_ORDER)
    rows = "".join(
        f'<tr><th class="text">{escape(k)}</th><td>{escape("–" if run.provenance[k] in (None, "") else str(run.provenance[k]))}</td></tr>'
        for k in keys
    )
    counts = (f"{len(run.records)} records, {len(run.models)} models, {len(run.failed)} failed, "
              f"{len(run.skipped)} skipped.")
    return f'<h2 id="provenance">Provenance</h2><p>{escape(counts)}</p><table class="provenance">{rows}</table>'


def figures_section(figures: list[FigureResult], out_dir: Path) -> str:
    parts = ['<h2 id="figures">Figures</h2>']
    for result in figures:
        parts.append(f'<h3 id="fig-{result.name}">{escape(HEADINGS.get(result.name, result.name))}</h3>')
        notes = "".join(f"<li>{escape(n)}</li>" for n in result.notes)
        if result.figure is None:
            parts.append(f'<div class="note">Figure not drawn.<ul>{notes}</ul></div>')
            continue
        png = out_dir / f"{result.name}.png"
        parts.append(
            f'<figure><img alt="{escape(result.title)}" src="{data_uri(png)}">'
            f"<figcaption>Files: {escape(result.name)}.png, {escape(result.name)}.svg (vector) beside this report."
            f'{"<ul>" + notes + "</ul>" if notes else ""}</figcaption></figure>'
        )
    return "".join(parts)


def failed_section(run: RunView) -> str:
    if not run.failed:
        return '<h2 id="failed">Failed jobs</h2><p>None: every job finished.</p>'
    rows = "".join(
        f"<tr><td>{escape(str(r.get('job_id', '')))}</td><td>{escape(str(r.get('suite', '')))}</td>"
        f"<td>{escape(str(r.get('model', '')))}</td><td>{escape(str(r.get('variant', '') or ''))}</td>"
        f"<td>{escape(str(r.get('category', '') or ''))}</td>"
        f'<td><pre class="error">{escape(str(r.get("error") or "(no error message recorded)"))}</pre></td></tr>'
        for r in run.failed
    )
    return (f'<h2 id="failed">Failed jobs ({len(run.failed)})</h2>'
            "<p>Failed records are left out of the figures; what they measured before failing stays in the tables.</p>"
            f'<table class="failed"><thead><tr><th class="text">job</th><th class="text">suite</th><th class="text">model</th>'
            f'<th class="text">variant</th><th class="text">category</th><th class="text">error</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def skipped_section(run: RunView) -> str:
    if not run.skipped:
        return ""
    rows = "".join(
        f"<tr><td>{escape(str(r.get('model', '')))}</td><td>{escape(str(r.get('variant', '') or ''))}</td>"
        f"<td>{escape(str(r.get('batch_size', '') or ''))}</td>"
        f'<td><pre class="error">{escape(str(r.get("error") or "(no reason recorded)"))}</pre></td></tr>'
        for r in run.skipped
    )
    return (f'<h3 id="skipped">Skipped ({len(run.skipped)}): not failures</h3>'
            "<p>Variants the device or runtime cannot do, and batch sizes past an out-of-memory in a sweep.</p>"
            f'<table class="failed"><thead><tr><th class="text">model</th><th class="text">variant</th>'
            f'<th class="text">batch</th><th class="text">reason</th></tr></thead><tbody>{rows}</tbody></table>')


def how_to_read_section() -> str:
    items = "".join(f"<dt>{escape(term)}</dt><dd>{escape(text)}</dd>"
                    for term, text in HOW_TO_READ + DEPLOYMENT_HOW_TO_READ + RANKING_HOW_TO_READ)
    return f'<h2 id="how-to-read">How to read this</h2><dl class="read">{items}</dl>'


def write_html(run: RunView, figures: list[FigureResult], out_dir: Path) -> Path:
    title = f"defectbench report: {run.run_dir.resolve().name}"
    subtitle = f"{run.subtitle()} | {run.provenance.get('timestamp', '')}"
    results = ['<h2 id="results">Results</h2><p>Click a column header to sort. Hover an empty cell with a '
               "footnote mark for why it is empty.</p>"]
    batch = run.headline_batch()
    at = f" at batch {batch}" if batch is not None else ""
    results.append(f"<h3>Summary: one row per model{escape(at)}</h3>"
                   + records_table(summary_rows(run), summary_columns(run), "summary-table")
                   + (f'<p class="subtitle">{escape(INTERVAL_NOTE)} More under <a href="#how-to-read">How to read this</a>.</p>'
                      if run.datasets else ""))
    variants = variant_rows(run)
    if variants:
        results.append(f"<h3>Deployment variants{escape(at)}: speed-up and accuracy cost</h3>"
                       + records_table(variants, VARIANT_COLUMNS, "variant-table"))
    profile = profile_rows(run)
    results.append("<h3>Profile records (every variant and batch size)</h3>"
                   + (records_table(profile, PROFILE_COLUMNS, "profile-table") if profile else "<p>No profile records.</p>"))
    accuracy = accuracy_rows(run)
    results.append("<h3>Accuracy (torch-fp32, per category and seed; mean rows in bold)</h3>"
                   + (records_table(accuracy, ACCURACY_COLUMNS, "accuracy-table") if accuracy else "<p>No accuracy records.</p>"))
    if has_operating_points(run):
        results.append("<h3 id=\"deployment\">Deployment: rates at thresholds set from validation normals (torch-fp32)</h3>"
                       + records_table(deployment_rows(run), deployment_columns(run), "deployment-table")
                       + f'<p class="subtitle">{escape(DEPLOYMENT_NOTE)}</p>')
    variant_accuracy = accuracy_rows(run, reference=False)
    if variant_accuracy:
        results.append("<h3>Accuracy of the deployment variants (delta: variant minus torch-fp32, paired)</h3>"
                       + records_table(variant_accuracy, VARIANT_ACCURACY_COLUMNS, "variant-accuracy-table"))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p class="subtitle">{escape(subtitle)}</p>
<nav><a href="#results">Results</a>{'<a href="#ranking">Which model to pick</a>' if run.datasets else ""}<a href="#figures">Figures</a><a href="#failed">Failed jobs</a><a href="#how-to-read">How to read this</a><a href="#provenance">Provenance</a></nav>
{"".join(results)}
{ranking_html(run) if run.datasets else ""}
{figures_section(figures, out_dir)}
{failed_section(run)}
{skipped_section(run)}
{how_to_read_section()}
{provenance_section(run)}
<script>{SORT_JS}</script>
</body></html>
"""
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
