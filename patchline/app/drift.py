"""Drift: is a camera's recent stream still like the good images its bank was calibrated on?

Per camera, the last `window` image scores and verdicts are kept. Their median and 99th
percentile are compared with the same statistics of the bank's held-out good images (bank.json
`normal_scores`), and the share of frames judged defect with the bank's calibrated false-alarm
rate. Drift is raised when the window is full and
  - the alarm rate exceeds `alarm_factor` × the calibrated false-alarm rate (at least 1 / window), or
  - the median score has moved by more than `median_factor` (up or down) from the calibrated median;
and cleared when neither holds any more. A lens gone soft, a lamp dimming or a new supplier's
parts show first as a shifted median, long before the alarms pile up.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

DRIFT_WINDOW = 200  # frames


@dataclass(frozen=True)
class DriftRule:
    """When a camera's stream counts as drifting (see the module doc)."""

    window: int = DRIFT_WINDOW
    alarm_factor: float = 5.0
    median_factor: float = 1.5


def reference_of(meta) -> dict | None:
    """{"median", "p99", "false_alarm_rate"} of a bank's calibration (BankMeta), or None when its
    bank.json lacks them (nothing to compare with)."""
    normal = (meta.get("normal_scores") or {}).get(meta.aggregation) or {}
    policy = meta.get("threshold_policy") or {}
    if not {"p50", "p99"} <= set(normal) or "false_alarm_rate" not in policy:
        return None
    return {"median": float(normal["p50"]), "p99": float(normal["p99"]),
            "false_alarm_rate": float(policy["false_alarm_rate"])}


class DriftMonitor:
    """One camera's rolling window of scores and verdicts against its bank's calibration."""

    def __init__(self, rule: DriftRule = DriftRule()):
        self.rule = rule
        self.scores: deque[float] = deque(maxlen=rule.window)
        self.defects: deque[bool] = deque(maxlen=rule.window)
        self.drifting = False
        self.stats: dict = {}

    def add(self, score: float, defect: bool, reference: dict | None) -> bool | None:
        """Take one judged frame; True when drift was just raised, False when just cleared, else None.
        `stats` then holds the window's figures beside the reference ones."""
        self.scores.append(float(score))
        self.defects.append(bool(defect))
        scores = np.fromiter(self.scores, dtype=np.float64)
        stats = {"window": len(scores), "median": float(np.median(scores)),
                 "p99": float(np.quantile(scores, 0.99)), "alarm_rate": float(np.mean(self.defects))}
        reasons = []
        if reference is not None:
            stats.update(calibrated_median=reference["median"], calibrated_p99=reference["p99"],
                         calibrated_false_alarm_rate=reference["false_alarm_rate"])
            if len(scores) >= self.rule.window:
                allowed = self.rule.alarm_factor * max(reference["false_alarm_rate"], 1.0 / self.rule.window)
                if stats["alarm_rate"] > allowed:
                    reasons.append(f"alarm rate {stats['alarm_rate']:.3f} over {allowed:.3f} "
                                   f"({self.rule.alarm_factor:g} × the calibrated {reference['false_alarm_rate']:.3f})")
                ratio = stats["median"] / reference["median"] if reference["median"] > 0 else 1.0
                if ratio > self.rule.median_factor or ratio < 1.0 / self.rule.median_factor:
                    reasons.append(f"median score {stats['median']:.4g} is {ratio:.2f} × the calibrated "
                                   f"{reference['median']:.4g}")
        stats["drift"] = bool(reasons)
        stats["reasons"] = reasons
        self.stats = stats
        if bool(reasons) != self.drifting:
            self.drifting = bool(reasons)
            return self.drifting
        return None
