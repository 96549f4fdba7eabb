"""patchline's per-aggregation AUROC table in the reference project's layout (its README §6.3).

The seed names its columns instance_auroc_max, _dx (variance), _px (mean), _topK5 … _topk100 and
_best (the best column per category, picked on the test set). `configs/mvtec.yaml` carries the
seed's own figures under `seed_image_auroc`; this module lays patchline's evaluation out the same
way, a seed row above each patchline row, with patchline's leak-free choice beside it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from patchline.errors import ConfigError
from patchline.formats import metric_text

# patchline aggregation → the seed's column (its spelling, topK5 included)
SEED_COLUMNS = {
    "max": "instance_auroc_max", "var": "instance_auroc_dx", "mean": "instance_auroc_px",
    "topk5": "instance_auroc_topK5", "topk8": "instance_auroc_topk8", "topk10": "instance_auroc_topk10",
    "topk15": "instance_auroc_topk15", "topk20": "instance_auroc_topk20", "topk40": "instance_auroc_topk40",
    "topk60": "instance_auroc_topk60", "topk100": "instance_auroc_topk100",
}
BEST = "instance_auroc_best"
COLUMNS = (*SEED_COLUMNS.values(), BEST)


def load_seed_results(path: str | Path) -> dict[str, dict[str, float]]:
    """{category: {seed column: AUROC}} from a settings file's `seed_image_auroc` section
    ({} when the file has none); ConfigError naming the entry when it is malformed."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"settings file {path} does not exist.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}.") from None
    section = raw.get("seed_image_auroc") if isinstance(raw, dict) else None
    if section is None:
        return {}
    columns = section.get("columns") if isinstance(section, dict) else None
    rows = section.get("rows") if isinstance(section, dict) else None
    if not isinstance(columns, list) or not isinstance(rows, dict):
        raise ConfigError(f"{path}: seed_image_auroc needs 'columns' (a list) and 'rows' (a mapping).")
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise ConfigError(f"{path}: seed_image_auroc.columns: unknown column '{unknown[0]}'; "
                          f"known: {', '.join(COLUMNS)}.")
    out = {}
    for name, values in rows.items():
        if (not isinstance(values, list) or len(values) != len(columns)
                or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in values)):
            raise ConfigError(f"{path}: seed_image_auroc.rows.{name} must be {len(columns)} AUROCs in [0, 1].")
        out[str(name)] = dict(zip(columns, map(float, values)))
    return out


def patchline_row(row: Mapping) -> dict[str, float]:
    """An evaluation report row → {seed column: AUROC}; _best is the best of them on the test set,
    as the seed's (for comparison only: patchline's own choice never sees test labels)."""
    out = {SEED_COLUMNS[a]: float(row["image_auroc"][a]) for a in SEED_COLUMNS if a in row["image_auroc"]}
    finite = [v for v in out.values() if not math.isnan(v)]
    out[BEST] = max(finite) if finite else float("nan")
    return out


def _cell(value) -> str:
    return "" if value is None else metric_text(value)


def seed_layout_table(rows: Sequence[Mapping], seed: Mapping[str, Mapping[str, float]]) -> str:
    """Markdown: per category the seed's row (when it reports the category) above patchline's, in
    the seed's columns, then patchline's leak-free aggregation and its AUROC; mean rows last."""
    head = ["dataset", "source", *COLUMNS, "patchline choice (normal images only)", "its AUROC"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ours_all, seed_all = [], []
    for row in rows:
        name = row["category"]
        if name in seed:
            seed_all.append(seed[name])
            lines.append("| " + " | ".join([name, "seed", *(_cell(seed[name].get(c)) for c in COLUMNS), "", ""]) + " |")
        ours = patchline_row(row)
        ours_all.append(ours)
        lines.append("| " + " | ".join([name, "patchline", *(_cell(ours.get(c)) for c in COLUMNS),
                                        row["aggregation"], _cell(float(row["chosen_auroc"]))]) + " |")
    if len(rows) > 1:
        def mean(table, column):
            values = [t[column] for t in table if column in t and not math.isnan(t[column])]
            return sum(values) / len(values) if values else None
        chosen = [float(r["chosen_auroc"]) for r in rows if not math.isnan(float(r["chosen_auroc"]))]
        if seed_all:
            lines.append("| " + " | ".join(["Mean", "seed", *(_cell(mean(seed_all, c)) for c in COLUMNS), "", ""]) + " |")
        lines.append("| " + " | ".join(["Mean", "patchline", *(_cell(mean(ours_all, c)) for c in COLUMNS), "",
                                        _cell(sum(chosen) / len(chosen) if chosen else None)]) + " |")
    return "\n".join(lines)


def write_seed_layout(rows: Sequence[Mapping], seed: Mapping[str, Mapping[str, float]], out_dir: Path) -> Path:
    """Write `<out_dir>/seed_layout.md` (the table above, with a note on what _best means); its path."""
    path = Path(out_dir) / "seed_layout.md"
    path.write_text(
        "Image AUROC per aggregation in the reference project's layout (its README §6.3; dx = variance, "
        "px = mean of the patch scores). `instance_auroc_best` is the best column per category, picked on "
        "the test set as the seed did — shown only to compare; patchline's own choice (last columns) comes "
        "from normal images and synthetic defects.\n\n" + seed_layout_table(rows, seed) + "\n")
    return path
