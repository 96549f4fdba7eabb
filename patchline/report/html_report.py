"""One self-contained HTML page for an evaluation run: a section per category, every image inlined.

Reads what `evaluate_category` left in each category's folder (report.json, report/*.jpg) and the
results rows; the page opens from disk with a double click, no server and no network.
"""

from __future__ import annotations

import base64
import html
import json
import math
import time
from pathlib import Path

import numpy as np

from patchline.core.scoring import AGGREGATIONS, is_defect
from patchline.core.metrics import metric_text
from patchline.report.plots import roc_plot, score_histogram

_KINDS = {
    "top_defects": ("Highest-scoring defects", "what the line finds most easily"),
    "missed_defects": ("Lowest-scoring defects", "what it misses first; under the threshold means missed"),
    "false_alarms": ("False alarms", "good images over the threshold"),
}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1em} td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f4f4f4} tr.chosen td{font-weight:bold;background:#fdf2e9}
.plots img{max-width:48%;margin-right:1%} .facts span{margin-right:1.5em}
figure{display:inline-block;margin:0 12px 12px 0;vertical-align:top} figure img{height:180px;display:block}
figcaption{font-size:.85em;max-width:400px;overflow-wrap:anywhere} .muted{color:#777;font-size:.9em}
"""


def _img(data: bytes, mime: str, alt: str, css_class: str = "") -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img class="{css_class}" alt="{html.escape(alt)}" src="data:{mime};base64,{encoded}">'


def _rate(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1%}"


def _aggregation_table(row: dict) -> str:
    lines = ["<table class='aggregations'><tr><th>aggregation</th><th>image AUROC</th></tr>"]
    for name in dict.fromkeys([*AGGREGATIONS, *row["image_auroc"]]):
        mark = " class='chosen'" if name == row["aggregation"] else ""
        label = f"{name} (chosen from good images)" if mark else name
        lines.append(f"<tr{mark}><td>{html.escape(label)}</td><td>{metric_text(row['image_auroc'][name])}</td></tr>")
    return "\n".join(lines) + "</table>"


def _category_section(row: dict, cat_dir: Path) -> str:
    name = row["category"]
    data = json.loads((cat_dir / "report.json").read_text())
    labels = np.array(data["labels"])
    scores = {a: np.array(v, dtype=np.float64) for a, v in data["scores"].items()}
    chosen = data["aggregation"]
    parts = [f"<section class='category' id='{html.escape(name)}'><h2>{html.escape(name)}</h2>",
             "<p class='facts'>"
             f"<span>{row['n_good']} good, {row['n_defect']} defective test images</span>"
             f"<span>aggregation <b>{html.escape(chosen)}</b>: image AUROC <b>{metric_text(row['chosen_auroc'])}</b> "
             f"(95 % interval {metric_text(row['chosen_auroc_interval'][0])}–{metric_text(row['chosen_auroc_interval'][1])})"
             f"</span><span>pixel AUROC {metric_text(row['pixel_auroc'])}, PRO {metric_text(row['pro'])}</span></p>",
             f"<p class='operating'>At the bank's own threshold {row['threshold']:.4g}: "
             f"<b>{html.escape(row['operating_point'].text())}</b> (95 % Wilson intervals)."
             + (f" The threshold promised: {html.escape(row['promise'])}." if row.get("promise") else "") + "</p>"]
    plots = []
    if labels.min() != labels.max():
        plots.append(_img(roc_plot(labels, scores, chosen), "image/png", f"ROC curve of {chosen}", "roc"))
    plots.append(_img(score_histogram(labels, scores[chosen], data["threshold"], row["test_false_alarm_rate"],
                                      row["test_miss_rate"]), "image/png", "score histogram", "histogram"))
    parts.append("<div class='plots'>" + "".join(plots) + "</div>")
    parts.append(_aggregation_table(row))
    for kind, (title, note) in _KINDS.items():
        shown = [s for s in data["shown"] if s["kind"] == kind]
        extra = ""
        if kind == "false_alarms" and data["false_alarm_count"] > len(shown):
            extra = f" — the {len(shown)} highest of {data['false_alarm_count']}"
        parts.append(f"<h3>{title} <span class='muted'>({note}{extra})</span></h3>")
        if not shown:
            parts.append("<p class='muted'>none</p>")
        for item in shown:
            picture = (cat_dir / item["file"]).read_bytes()
            side = "over" if is_defect(item["score"], data["threshold"]) else "under"
            caption = f"score {item['score']:.4g} ({side} the threshold) · {item['defect_type']} · {Path(item['image']).name}"
            parts.append(f"<figure class='overlay {kind}'>{_img(picture, 'image/jpeg', caption)}"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def write_html_report(rows: list[dict], out_dir: Path, title: str = "patchline evaluation") -> Path:
    """out_dir/report.html for these results rows (one section per category); returns its path."""
    out_dir = Path(out_dir)
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p class='muted'>Written {time.strftime('%Y-%m-%d %H:%M')}. Each line's aggregation and threshold "
            "were chosen from good images only; the test labels below only report. Left of each overlay: the "
            "crop the model saw; right: its anomaly map (white outline: the true defect, where known).</p>"]
    if len(rows) > 1:
        body.append("<p>" + " · ".join(f"<a href='#{html.escape(r['category'])}'>{html.escape(r['category'])}</a>"
                                       for r in rows) + "</p>")
    body += [_category_section(row, out_dir / row["category"]) for row in rows]
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>" + "\n".join(body) + "</body></html>\n")
    path = out_dir / "report.html"
    path.write_text(page)
    return path
