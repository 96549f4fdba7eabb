"""Move a line's threshold to another false-alarm rate (or value) without retraining.

A bank version keeps every held-out calibration score (bank.json `calibration_scores`), so a new
threshold is an order statistic of numbers already on disk: the new version shares the old one's
index files (hard links) and differs only in bank.json's threshold, pixel threshold and policy.
Running pipelines switch to it between two frames like any other version; `rollback` undoes it.
"""

from __future__ import annotations

import math
from pathlib import Path

from patchline.bank.store import current_version, read_meta, write_derived_version
from patchline.bank.meta import BankMeta
from patchline.core.calibration import moved_threshold
from patchline.errors import BankError, PatchlineError


def move_threshold(root: str | Path, line: str, false_alarm_rate: float | None = None,
                   value: float | None = None) -> tuple[BankMeta, BankMeta]:
    """Write a new live version of `line` whose threshold sits at `false_alarm_rate` of the held-out
    normal scores, or at `value` (exactly one of the two). Returns (previous meta, new meta)."""
    if (false_alarm_rate is None) == (value is None):
        raise PatchlineError("give exactly one of --false-alarm-rate RATE or --value SCORE.")
    if false_alarm_rate is not None and not 0 < false_alarm_rate < 1:
        raise PatchlineError(f"--false-alarm-rate must be between 0 and 1, got {false_alarm_rate}.")
    if value is not None and not (math.isfinite(value) and value > 0):
        raise PatchlineError(f"--value must be a positive finite score, got {value}.")
    root = Path(root)
    source = root / line / current_version(root, line)
    meta = read_meta(source)
    scores = meta.get("calibration_scores")
    if not isinstance(scores, dict) or meta.aggregation not in (scores.get("image") or {}):
        raise BankError(f"bank {meta.name} keeps no held-out calibration scores for its aggregation "
                        f"{meta.aggregation} (built before patchline kept them); retrain the line once.")
    changes = moved_threshold(scores, meta.aggregation, false_alarm_rate, value)
    policy = {**dict(meta.get("threshold_policy") or {}), **changes["threshold_policy"], "moved_from": meta.version}
    new_dir = write_derived_version(root, line, source, {**changes, "threshold_policy": policy})
    return meta, read_meta(new_dir)
