"""Confidence intervals for the figures a line is judged by.

Rates (detection, false alarms) get binomial intervals (Wilson, Clopper–Pearson); AUROC and
differences of AUROC get bootstrap intervals that resample good and defective images apart
(stratified), the difference paired over the same images. Pure numpy and the standard library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from patchline.core.metrics import auroc
from patchline.core.scoring import is_defect

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def _z(confidence: float) -> float:
    if confidence == 0.95:
        return Z95
    return math.sqrt(2.0) * _erfinv(confidence)


def _erfinv(y: float) -> float:
    """Inverse error function by bisection on math.erf (enough for a quantile of a confidence level)."""
    lo, hi = 0.0, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erf(mid) < y else (lo, mid)
    return (lo + hi) / 2


def _check_counts(k: int, n: int) -> None:
    if n <= 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a rate k / n: (low, high) in [0, 1]."""
    _check_counts(k, n)
    z = _z(confidence)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) <= k), summed in log space (exact for the n a line has)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def _solve_p(target: float, k: int, n: int) -> float:
    """The p at which P(Binomial(n, p) <= k) equals `target` (decreasing in p), by bisection."""
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if binomial_cdf(k, n, mid) > target else (lo, mid)
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) two-sided interval of a rate k / n: (low, high)."""
    _check_counts(k, n)
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else _solve_p(1.0 - alpha / 2, k - 1, n)
    high = 1.0 if k == n else _solve_p(alpha / 2, k, n)
    return low, high


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided exact upper confidence bound of a rate after k events in n trials.

    For a threshold set at an order statistic of n held-out normal scores with k of them above
    it, this bounds the false-alarm rate on new normal images: with `confidence` it is at most
    this value (the rate is Beta(k + 1, n - k) distributed over calibration sets)."""
    _check_counts(k, n)
    return 1.0 if k == n else _solve_p(1.0 - confidence, k, n)


def binomial_range(n: int, rate: float, confidence: float = 0.95) -> tuple[int, int]:
    """The event counts among n trials that a true `rate` gives with `confidence` probability: the
    (1 − c) / 2 and (1 + c) / 2 points of Binomial(n, rate), e.g. the false alarms among n good
    images that a threshold truly at `rate` lets through."""
    tail = (1.0 - confidence) / 2
    return (next(k for k in range(n + 1) if binomial_cdf(k, n, rate) >= tail),
            next(k for k in range(n + 1) if binomial_cdf(k, n, rate) >= 1.0 - tail))


def images_needed(false_alarm_rate: float) -> int:
    """Fewest held-out normal images whose highest score still meets `false_alarm_rate` on
    average: a threshold at the highest of n scores lets 1 / (n + 1) of new normals alarm."""
    return max(1, math.ceil(1.0 / false_alarm_rate) - 1)


def _bootstrap_indices(labels: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, N) int indices: each row resamples the good and the defective images apart."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    return np.concatenate([pos[rng.integers(0, len(pos), (n_boot, len(pos)))],
                           neg[rng.integers(0, len(neg), (n_boot, len(neg)))]], axis=1)


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def bootstrap_auroc(labels: np.ndarray, scores: np.ndarray, n_boot: int = 1000, seed: int = 0,
                    confidence: float = 0.95) -> tuple[float, float, float]:
    """AUROC and its stratified percentile-bootstrap interval.

    labels: (N,) bool/int (1 = defect); scores: (N,) float. Returns (auroc, low, high);
    NaNs when only one class is present."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    point = auroc(labels, scores)
    if math.isnan(point):
        return point, point, point
    idx = _bootstrap_indices(labels, n_boot, seed)
    values = np.array([auroc(labels[i], scores[i]) for i in idx])
    return (point, *_percentiles(values, confidence))


def paired_bootstrap_difference(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                                n_boot: int = 1000, seed: int = 0,
                                confidence: float = 0.95) -> tuple[float, float, float]:
    """AUROC(a) − AUROC(b) on the same images, with a paired stratified bootstrap interval.

    labels: (N,) bool/int; scores_a, scores_b: (N,) float, image for image. Returns
    (difference, low, high): the same resampled images score both sides in every round."""
    labels = np.asarray(labels).astype(bool).ravel()
    a = np.asarray(scores_a, dtype=np.float64).ravel()
    b = np.asarray(scores_b, dtype=np.float64).ravel()
    if not (len(a) == len(b) == len(labels)):
        raise ValueError(f"paired scores need the same images: {len(labels)} labels, {len(a)} and {len(b)} scores")
    point = auroc(labels, a) - auroc(labels, b)
    idx = _bootstrap_indices(labels, n_boot, seed)
    values = np.array([auroc(labels[i], a[i]) - auroc(labels[i], b[i]) for i in idx])
    return (point, *_percentiles(values, confidence))


def distinguishable(low: float, high: float) -> bool:
    """True when an interval of a difference leaves 0 out."""
    return low > 0.0 or high < 0.0


@dataclass(frozen=True)
class OperatingPoint:
    """What a threshold does on labelled images: detection and false-alarm rates with 95 % Wilson intervals."""

    threshold: float
    n_defect: int
    n_good: int
    detected: int
    false_alarms: int

    @property
    def detection(self) -> float:
        return self.detected / self.n_defect if self.n_defect else float("nan")

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.n_good if self.n_good else float("nan")

    @property
    def detection_interval(self) -> tuple[float, float]:
        return wilson(self.detected, self.n_defect) if self.n_defect else (float("nan"),) * 2

    @property
    def false_alarm_interval(self) -> tuple[float, float]:
        return wilson(self.false_alarms, self.n_good) if self.n_good else (float("nan"),) * 2

    def text(self) -> str:
        """'detects 67.7 % [62.3, 72.6] of 313 defective, false alarms 0.0 % [0.0, 2.5] of 147 good'."""
        def rate(value: float, interval: tuple[float, float], n: int) -> str:
            return f"{100 * value:.1f} % [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}] of {n}"
        return (f"detects {rate(self.detection, self.detection_interval, self.n_defect)} defective, false alarms "
                f"{rate(self.false_alarm_rate, self.false_alarm_interval, self.n_good)} good")

    def as_dict(self) -> dict:
        """Plain numbers for CSV / JSON: rates, counts and interval ends."""
        d_lo, d_hi = self.detection_interval
        f_lo, f_hi = self.false_alarm_interval
        return {"threshold": self.threshold, "detection": self.detection, "detection_low": d_lo,
                "detection_high": d_hi, "detected": self.detected, "n_defect": self.n_defect,
                "false_alarm_rate": self.false_alarm_rate, "false_alarm_low": f_lo, "false_alarm_high": f_hi,
                "false_alarms": self.false_alarms, "n_good": self.n_good}


def operating_point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> OperatingPoint:
    """The verdicts a threshold gives (score > threshold is a defect, as the judge decides).

    labels: (N,) bool/int (1 = defect); scores: (N,) float."""
    labels = np.asarray(labels).astype(bool).ravel()
    flagged = is_defect(np.asarray(scores, dtype=np.float64).ravel(), threshold)
    return OperatingPoint(threshold=float(threshold), n_defect=int(labels.sum()), n_good=int((~labels).sum()),
                          detected=int((flagged & labels).sum()), false_alarms=int((flagged & ~labels).sum()))


def threshold_for_rate(good_scores: np.ndarray, false_alarm_rate: float) -> float:
    """The lowest threshold letting at most `false_alarm_rate` of these good scores exceed it
    (benchmarks only: where the threshold would sit if it were placed on these images)."""
    s = np.sort(np.asarray(good_scores, dtype=np.float64).ravel())
    allowed = int(math.floor(false_alarm_rate * len(s) + 1e-9))
    return float(s[len(s) - 1 - allowed])
