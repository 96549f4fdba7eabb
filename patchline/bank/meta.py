"""bank.json as a typed, validated record: `BankMeta` (docs/bank-json.md lists every field).

Every field a consumer relies on is checked when the file is read (type, finite number, known
name) and kept as a typed attribute; the rest of the record (calibration details, training
facts, weights) stays readable as `meta["..."]`, exactly as written. The one compatibility
rule between a bank and what will be fed to it is `BankMeta.check_fits`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from patchline.core.scoring import TWO_SIDED, check_aggregation, check_two_sided_reference
from patchline.errors import BankError, PatchlineError
from patchline.names import check_name
from patchline.settings import RESIZE_TYPES, LineSettings, check_layers, settings_from_mapping

FORMAT = "patchline-bank/1"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _field(data: Mapping, name: str, where: str) -> Any:
    if name not in data:
        raise BankError(f"{where} lacks the field '{name}'.")
    return data[name]


def _positive_int(data: Mapping, name: str, where: str, optional: bool = False) -> int | None:
    value = data.get(name) if optional else _field(data, name, where)
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BankError(f"{where}: field '{name}' must be a positive integer, got {value!r}.")
    return value


def _score_reference(data: Mapping, aggregation: str, where: str) -> Mapping | None:
    """bank.json's `score_reference`, checked: required when the aggregation is two-sided, else None."""
    if aggregation != TWO_SIDED:
        return None
    try:
        return MappingProxyType(check_two_sided_reference(_field(data, "score_reference", where)))
    except ValueError as exc:
        raise BankError(f"{where}: field 'score_reference': {exc}.") from None


def _finite(data: Mapping, name: str, where: str, optional: bool = False) -> float | None:
    value = data.get(name) if optional else _field(data, name, where)
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BankError(f"{where}: field '{name}' must be a finite number, got {value!r}.")
    return float(value)


def _text(data: Mapping, name: str, where: str) -> str:
    value = _field(data, name, where)
    if not isinstance(value, str) or not value:
        raise BankError(f"{where}: field '{name}' must be a non-empty string, got {value!r}.")
    return value


@dataclass(frozen=True)
class BankMeta:
    """The checked fields of one bank version's bank.json; `meta[key]` reads any field of the file."""

    line: str
    version: str
    backbone: str
    layers: tuple[str, ...]
    resize: int
    imagesize: int
    patchsize: int
    target_dim: int | None
    embedding_dim: int
    grid: tuple[int, int]
    n_patches: int
    index_sha256: str
    aggregation: str
    threshold: float
    pixel_threshold: float | None
    search: Mapping[str, Any]
    record: Mapping[str, Any] = field(repr=False, compare=False)
    resize_type: str = "short_side"  # banks written before the field existed were all short_side
    score_reference: Mapping[str, Any] | None = None  # the two-sided statistic's, when that is the aggregation

    @classmethod
    def parse(cls, data: Any, where: str = "bank.json") -> "BankMeta":
        """Check a parsed bank.json object field by field; BankError naming `where` and the field."""
        if not isinstance(data, dict):
            raise BankError(f"{where} does not hold a JSON object.")
        fmt = _field(data, "format", where)
        if fmt != FORMAT:
            raise BankError(f"{where} has format '{fmt}', this patchline reads '{FORMAT}'.")
        try:
            line = check_name(_field(data, "line", where), "line")
            layers = check_layers(_field(data, "layers", where), f"{where}: ")
            aggregation = check_aggregation(_text(data, "aggregation", where))
        except BankError:
            raise
        except (PatchlineError, ValueError) as exc:
            raise BankError(f"{where}: {exc}") from None
        version = _text(data, "version", where)
        if "/" in version or version.startswith("."):
            raise BankError(f"{where}: field 'version' must be a folder name, got {version!r}.")
        grid = _field(data, "grid", where)
        if (not isinstance(grid, list) or len(grid) != 2
                or any(isinstance(g, bool) or not isinstance(g, int) or g <= 0 for g in grid)):
            raise BankError(f"{where}: field 'grid' must be two positive integers [h, w], got {grid!r}.")
        sha = _text(data, "index_sha256", where)
        if not _SHA256.match(sha):
            raise BankError(f"{where}: field 'index_sha256' must be 64 lowercase hex digits.")
        resize_type = data.get("resize_type", "short_side")
        if resize_type not in RESIZE_TYPES:
            raise BankError(f"{where}: field 'resize_type' must be one of {', '.join(RESIZE_TYPES)}, got {resize_type!r}.")
        frozen = MappingProxyType(json.loads(json.dumps(data)))  # a private deep copy, read-only at the top
        return cls(line=line, version=version, backbone=_text(data, "backbone", where), layers=layers,
                   resize=_positive_int(data, "resize", where), imagesize=_positive_int(data, "imagesize", where),
                   patchsize=_positive_int(data, "patchsize", where),
                   target_dim=_positive_int(data, "target_dim", where, optional=True),
                   embedding_dim=_positive_int(data, "embedding_dim", where), grid=(grid[0], grid[1]),
                   n_patches=_positive_int(data, "n_patches", where), index_sha256=sha, aggregation=aggregation,
                   threshold=_finite(data, "threshold", where),
                   pixel_threshold=_finite(data, "pixel_threshold", where, optional=True),
                   search=MappingProxyType(_search(data.get("search", {"kind": "exact"}), where)), record=frozen,
                   resize_type=resize_type, score_reference=_score_reference(data, aggregation, where))

    def __getitem__(self, key: str) -> Any:
        return self.record[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Any bank.json field, or `default` when the file does not have it."""
        return self.record.get(key, default)

    def as_dict(self) -> dict:
        """The whole bank.json object (a copy)."""
        return json.loads(json.dumps(dict(self.record)))

    @property
    def name(self) -> str:
        """`<line>/<version>`, for messages."""
        return f"{self.line}/{self.version}"

    @property
    def weights_sha256(self) -> str | None:
        """sha256 of the backbone weights the bank was built with (None: random weights)."""
        weights = self.record.get("weights")
        return weights.get("sha256") if isinstance(weights, Mapping) else None

    def line_settings(self) -> LineSettings:
        """The line settings that reproduce this bank's features and verdicts (for `evaluate`)."""
        return settings_from_mapping({
            "line": self.line, "backbone": self.backbone, "layers": list(self.layers), "resize": self.resize,
            "resize_type": self.resize_type,
            "imagesize": self.imagesize, "patchsize": self.patchsize, "target_dim": self.target_dim,
            "aggregation": self.aggregation})

    def check_fits(self, expected: Mapping | None = None, layer_channels: Mapping[str, int] | None = None) -> None:
        """The one rule for "may these features be scored against this bank": BankError naming the field.

        expected: any of backbone, layers, resize_type, resize, imagesize, patchsize, embedding_dim that the caller
        will feed (None values are not known and not checked). layer_channels: {layer: channels} the
        caller's models give; the bank's layers must be among them and its embedding_dim must follow.
        """
        for name, want in (expected or {}).items():
            if want is None:
                continue
            have = getattr(self, name)
            if json.loads(json.dumps(have)) != json.loads(json.dumps(want)):
                raise BankError(f"bank {self.name} was built with {name} = {_shown(have)!r} but this line uses "
                                f"{name} = {_shown(want)!r}; retrain the bank or fix the settings.")
        if layer_channels is None:
            return
        missing = [layer for layer in self.layers if layer not in layer_channels]
        if missing:
            raise BankError(f"bank {self.name} was built with layers = {list(self.layers)!r} but the stream's models "
                            f"give only {sorted(layer_channels)!r}; add the {missing[0]} model or retrain.")
        dim = self.target_dim if self.target_dim is not None else sum(layer_channels[la] for la in self.layers)
        if dim != self.embedding_dim:
            raise BankError(f"bank {self.name} was built with embedding_dim = {self.embedding_dim} but the stream's "
                            f"models give {dim}; retrain the bank or fix the models.")


def _search(record: Any, where: str) -> dict:
    """bank.json's `search`: {"kind": "exact"} (also what banks without the field get) or
    {"kind": "hnsw", "file", "index_sha256", "m", "ef_construction", "ef_search", ...}."""
    if not isinstance(record, dict) or record.get("kind") not in ("exact", "hnsw"):
        raise BankError(f"{where}: field 'search' must be an object with kind 'exact' or 'hnsw', got {record!r}.")
    if record["kind"] == "hnsw":
        for name in ("m", "ef_construction", "ef_search"):
            _positive_int(record, name, f"{where} (search)")
        file = _text(record, "file", f"{where} (search)")
        if "/" in file or file.startswith("."):
            raise BankError(f"{where}: field 'search.file' must be a file name in the bank folder, got {file!r}.")
        if not _SHA256.match(_text(record, "index_sha256", f"{where} (search)")):
            raise BankError(f"{where}: field 'search.index_sha256' must be 64 lowercase hex digits.")
    return json.loads(json.dumps(record))


def _shown(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
