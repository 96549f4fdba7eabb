"""patchline's per-aggregation AUROC table in the reference project's layout (its README §6.3).

The reference project (the MindSpore PatchCore whose tables configs/mvtec.yaml carries) names its
columns instance_auroc_max, _dx (variance), _px (mean), _topK5 … _topk100 and _best (the best
column per category, picked on the test set). `configs/mvtec.yaml` carries its own figures under
`reference_image_auroc` (`seed_image_auroc` in files written before the rename, still read); this
module lays patchline's evaluation out the same way, a reference row above each patchline row,
with patchline's leak-free choice beside it. ("Seed" elsewhere is always a random seed.)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from patchline.core.metrics import metric_text
from patchline.errors import ConfigError

# patchline aggregation → the reference project's column (its spelling, topK5 included)
REFERENCE_COLUMNS = {
    "max": "instance_auroc_max", "var": "instance_auroc_dx", "mean": "instance_auroc_px",
    "topk5": "instance_auroc_topK5", "topk8": "instance_auroc_topk8", "topk10": "instance_auroc_topk10",
    "topk15": "instance_auroc_topk15", "topk20": "instance_auroc_topk20", "topk40": "instance_auroc_topk40",
    "topk60": "instance_auroc_topk60", "topk100": "instance_auroc_topk100",
}
BEST = "instance_auroc_best"
COLUMNS = (*REFERENCE_COLUMNS.values(), BEST)
SECTION = "reference_image_auroc"
OLD_SECTION = "seed_image_auroc"  # the same section's name before the rename
REPORT_NAME = "reference_layout.md"


def _section(raw, path: Path) -> tuple[str, object]:
    """(its name, the section) of a settings file's reference table; (SECTION, None) when it has none."""
    if not isinstance(raw, dict):
        return SECTION, None
    if SECTION in raw and OLD_SECTION in raw:
        raise ConfigError(f"{path}: give {SECTION} or {OLD_SECTION} (its old name), not both.")
    name = OLD_SECTION if OLD_SECTION in raw else SECTION
    return name, raw.get(name)


def load_reference_results(path: str | Path) -> dict[str, dict[str, float]]:
    """{category: {reference column: AUROC}} from a settings file's `reference_image_auroc` section
    ({} when the file has none); ConfigError naming the entry when it is malformed."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"settings file {path} does not exist.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}.") from None
    key, section = _section(raw, path)
    if section is None:
        return {}
    columns = section.get("columns") if isinstance(section, dict) else None
    rows = section.get("rows") if isinstance(section, dict) else None
    if not isinstance(columns, list) or not isinstance(rows, dict):
        raise ConfigError(f"{path}: {key} needs 'columns' (a list) and 'rows' (a mapping).")
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise ConfigError(f"{path}: {key}.columns: unknown column '{unknown[0]}'; "
                          f"known: {', '.join(COLUMNS)}.")
    out = {}
    for name, values in rows.items():
        if (not isinstance(values, list) or len(values) != len(columns)
                or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in values)):
            raise ConfigError(f"{path}: {key}.rows.{name} must be {len(columns)} AUROCs in [0, 1].")
        out[str(name)] = dict(zip(columns, map(float, values)))
    return out


def patchline_row(row: Mapping) -> dict[str, float]:
    """An evaluation report row → {reference column: AUROC}; _best is the best of them on the test
    set, as the reference project's (for comparison only: patchline's own choice never sees test labels)."""
    out = {REFERENCE_COLUMNS[a]: float(row["image_auroc"][a]) for a in REFERENCE_COLUMNS if a in row["image_auroc"]}
    finite = [v for v in out.values() if not math.isnan(v)]
    out[BEST] = max(finite) if finite else float("nan")
    return out


def _cell(value) -> str:
    return "" if value is None else metric_text(value)


def reference_layout_table(rows: Sequence[Mapping], reference: Mapping[str, Mapping[str, float]]) -> str:
    """Markdown: per category the reference project's row (when it reports the category) above
    patchline's, in its columns, then patchline's leak-free aggregation and its AUROC; mean rows last."""
    head = ["dataset", "source", *COLUMNS, "patchline choice (normal images only)", "its AUROC"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ours_all, reference_all = [], []
    for row in rows:
        name = row["category"]
        if name in reference:
            reference_all.append(reference[name])
            lines.append("| " + " | ".join([name, "reference", *(_cell(reference[name].get(c)) for c in COLUMNS),
                                            "", ""]) + " |")
        ours = patchline_row(row)
        ours_all.append(ours)
        lines.append("| " + " | ".join([name, "patchline", *(_cell(ours.get(c)) for c in COLUMNS),
                                        row["aggregation"], _cell(float(row["chosen_auroc"]))]) + " |")
    if len(rows) > 1:
        def mean(table, column):
            values = [t[column] for t in table if column in t and not math.isnan(t[column])]
            return sum(values) / len(values) if values else None
        chosen = [float(r["chosen_auroc"]) for r in rows if not math.isnan(float(r["chosen_auroc"]))]
        if reference_all:
            lines.append("| " + " | ".join(["Mean", "reference", *(_cell(mean(reference_all, c)) for c in COLUMNS),
                                            "", ""]) + " |")
        lines.append("| " + " | ".join(["Mean", "patchline", *(_cell(mean(ours_all, c)) for c in COLUMNS), "",
                                        _cell(sum(chosen) / len(chosen) if chosen else None)]) + " |")
    return "\n".join(lines)


def write_reference_layout(rows: Sequence[Mapping], reference: Mapping[str, Mapping[str, float]],
                           out_dir: Path) -> Path:
    """Write `<out_dir>/reference_layout.md` (the table above, with a note on what _best means); its path."""
    path = Path(out_dir) / REPORT_NAME
    path.write_text(
        "Image AUROC per aggregation in the reference project's layout (its README §6.3; dx = variance, "
        "px = mean of the patch scores). `instance_auroc_best` is the best column per category, picked on "
        "the test set as the reference project did — shown only to compare; patchline's own choice (last "
        "columns) comes from normal images and synthetic defects.\n\n" + reference_layout_table(rows, reference)
        + "\n")
    return path
