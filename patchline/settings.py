"""A product line's settings, validated once where they enter (YAML file or command line)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from patchline.core.scoring import check_aggregation
from patchline.core.symmetry import check_symmetries
from patchline.errors import ConfigError

LAYERS = ("layer2", "layer3")
SEARCHES = ("auto", "exact", "hnsw")
CALIBRATIONS = ("leave_one_out", "crossfit", "holdout")
RESIZE_TYPES = ("short_side", "stretch")  # MindX Resizer_KeepAspectRatio_Short, Resizer_Stretch
# `search: auto` uses the graph index for banks of at least this many patches × dims. Exact search
# costs ~1 CPU ms per 100,000 for a 28 × 28 frame, the ladder ~2 ms at least (measured, one thread:
# 1,960 × 40 exact 1.7 / ladder 2.7 ms; 1,960 × 152 exact 4.8 / ladder 1.9; 1,960 × 512 exact ~17 / ladder 4.2).
SEARCH_AUTO_WORK = 200_000


@dataclass(frozen=True)
class LineSettings:
    """Everything that decides how a line's bank is built and how its frames are scored."""

    line: str
    backbone: str = "wide_resnet101_2"
    weights: str | None = None
    layers: tuple[str, ...] = ("layer2",)
    resize_type: str = "short_side"  # short_side (aspect kept, MindX Resizer_KeepAspectRatio_Short) | stretch (resize × resize)
    resize: int = 256
    imagesize: int = 224
    patchsize: int = 3
    coreset_ratio: float = 0.01
    target_dim: int | None = None
    aggregation: str = "auto"
    false_alarm_rate: float = 0.01
    holdout_fraction: float = 0.2
    # leave_one_out (every image in the bank, each scored without its own patches) | crossfit (every
    # image in the bank, each scored against a bank of the other folds) | holdout (a part left out of the bank)
    calibration: str = "leave_one_out"
    folds: int = 5  # crossfit: folds, each scored against a bank of the others
    seed: int = 0
    batch_size: int = 8
    symmetries: tuple[str, ...] = ()  # flips / turns of a good image that are good too (core/symmetry.py)
    search: str = "auto"  # exact | hnsw | auto (hnsw from SEARCH_AUTO_WORK bank patches × dims on)
    ef_search: int = 8    # graph candidates visited per query by the graph tier (hnsw only)

    def replace(self, **changes: Any) -> "LineSettings":
        """A copy with `changes` applied (None values are ignored), validated again."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return validate(dataclasses.replace(self, **changes))

    def model_fields(self) -> dict:
        """The fields a bank must match before it may score this line's frames."""
        return {"backbone": self.backbone, "layers": list(self.layers), "resize_type": self.resize_type,
                "resize": self.resize, "imagesize": self.imagesize, "patchsize": self.patchsize}


def _positive_int(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}{name} must be a positive integer, got {value!r}.")
    return value


def check_layers(layers: Any, where: str = "") -> tuple[str, ...]:
    """The one layer rule: layer2, layer3 or both, each once. Returns them as a sorted tuple;
    ConfigError (prefixed with `where`) otherwise."""
    layers = tuple(layers) if isinstance(layers, (list, tuple)) else (layers,)
    if not layers or any(layer not in LAYERS for layer in layers) or len(set(layers)) != len(layers):
        raise ConfigError(f"{where}layers must be layer2, layer3 or both, got {list(layers)!r}.")
    return tuple(sorted(layers))


def validate(settings: LineSettings, where: str = "") -> LineSettings:
    """Check every field; raise ConfigError naming the first bad one. Returns the settings."""
    s = settings
    if not isinstance(s.line, str) or not s.line:
        raise ConfigError(f"{where}line must be a non-empty name.")
    if not isinstance(s.backbone, str) or not s.backbone:
        raise ConfigError(f"{where}backbone must be a backbone name, got {s.backbone!r}.")
    object.__setattr__(s, "layers", check_layers(s.layers, where))
    if s.resize_type not in RESIZE_TYPES:
        raise ConfigError(f"{where}resize_type must be one of {', '.join(RESIZE_TYPES)}, got {s.resize_type!r}.")
    for name in ("resize", "imagesize", "patchsize", "batch_size", "ef_search"):
        _positive_int(getattr(s, name), name, where)
    if s.imagesize > s.resize:
        raise ConfigError(
            f"{where}imagesize ({s.imagesize}) is larger than resize ({s.resize}): the center crop must fit inside the resized image."
        )
    if s.imagesize < 32:
        raise ConfigError(f"{where}imagesize must be at least 32 pixels, got {s.imagesize}.")
    if s.patchsize % 2 == 0:
        raise ConfigError(f"{where}patchsize must be odd (3 is the usual choice), got {s.patchsize}.")
    if s.target_dim is not None:
        _positive_int(s.target_dim, "target_dim", where)
    if isinstance(s.coreset_ratio, bool) or not isinstance(s.coreset_ratio, (int, float)) or not 0 < s.coreset_ratio <= 1:
        raise ConfigError(f"{where}coreset_ratio must be in (0, 1], got {s.coreset_ratio!r}.")
    if not isinstance(s.false_alarm_rate, (int, float)) or not 0 < s.false_alarm_rate < 1:
        raise ConfigError(f"{where}false_alarm_rate must be in (0, 1), got {s.false_alarm_rate!r}.")
    if not isinstance(s.holdout_fraction, (int, float)) or not 0 < s.holdout_fraction < 1:
        raise ConfigError(f"{where}holdout_fraction must be in (0, 1), got {s.holdout_fraction!r}.")
    if s.calibration not in CALIBRATIONS:
        raise ConfigError(f"{where}calibration must be one of {', '.join(CALIBRATIONS)}, got {s.calibration!r}.")
    if isinstance(s.folds, bool) or not isinstance(s.folds, int) or s.folds < 2:
        raise ConfigError(f"{where}folds must be a whole number of at least 2, got {s.folds!r}.")
    try:
        object.__setattr__(s, "symmetries", check_symmetries(
            s.symmetries if isinstance(s.symmetries, (list, tuple)) else (s.symmetries,)))
    except ValueError as exc:
        raise ConfigError(f"{where}{exc}.") from None
    if s.search not in SEARCHES:
        raise ConfigError(f"{where}search must be one of {', '.join(SEARCHES)}, got {s.search!r}.")
    if s.aggregation != "auto":
        try:
            check_aggregation(s.aggregation)
        except ValueError as exc:
            raise ConfigError(f"{where}aggregation: {exc}.") from None
    return s


FIELDS = {f.name for f in dataclasses.fields(LineSettings)}


def settings_from_mapping(values: Mapping[str, Any], where: str = "") -> LineSettings:
    """Build LineSettings from a YAML/JSON mapping; unknown keys are errors naming the key."""
    unknown = sorted(set(values) - FIELDS)
    if unknown:
        raise ConfigError(f"{where}unknown setting '{unknown[0]}'; known settings: {', '.join(sorted(FIELDS))}.")
    values = dict(values)
    if "layers" in values and isinstance(values["layers"], str):
        values["layers"] = (values["layers"],)
    return validate(LineSettings(**values), where)


@dataclass(frozen=True)
class CategoryTable:
    """A dataset's per-category settings file (e.g. configs/mvtec.yaml)."""

    path: Path
    categories: dict[str, LineSettings] = field(default_factory=dict)

    def get(self, category: str) -> LineSettings:
        if category not in self.categories:
            raise ConfigError(
                f"unknown category '{category}' in {self.path}; known: {', '.join(sorted(self.categories))}."
            )
        return self.categories[category]


def load_category_table(path: str | Path) -> CategoryTable:
    """Read a YAML file with `defaults:` and `categories: {name: {overrides}}` into LineSettings."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"settings file {path} does not exist.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}.") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("categories"), dict):
        raise ConfigError(f"{path} must hold a mapping with a 'categories' mapping.")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: defaults must be a mapping.")
    table = {}
    for name, overrides in raw["categories"].items():
        if overrides is not None and not isinstance(overrides, dict):
            raise ConfigError(f"{path}: categories.{name} must be a mapping.")
        merged = {**defaults, **(overrides or {}), "line": str(name)}
        table[str(name)] = settings_from_mapping(merged, where=f"{path}: categories.{name}.")
    return CategoryTable(path=path, categories=table)
