"""The evaluation report's plots, drawn with matplotlib (no display needed) and returned as PNG bytes."""

from __future__ import annotations

import io

import numpy as np

from patchline.core.metrics import auroc, roc_curve


def _figure(width: float = 5.2, height: float = 3.8):
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, never a display server
    from matplotlib import pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=110)


def _png(fig) -> bytes:
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def roc_plot(labels: np.ndarray, scores: dict[str, np.ndarray], chosen: str) -> bytes:
    """ROC curve of the chosen aggregation, bold, with every other aggregation faint behind it.

    labels: (N,) int (1 = defect); scores: {aggregation: (N,) float}. Returns a PNG.
    """
    fig, ax = _figure()
    for name, values in scores.items():
        if name != chosen:
            fpr, tpr = roc_curve(labels, values)
            ax.plot(fpr, tpr, color="0.6", alpha=0.35, linewidth=1.0)
    fpr, tpr = roc_curve(labels, scores[chosen])
    ax.plot(fpr, tpr, color="#c0392b", linewidth=2.2,
            label=f"{chosen} (chosen): AUROC {auroc(labels, scores[chosen]):.4f}")
    ax.plot([], [], color="0.6", alpha=0.6, label="the other aggregations")
    ax.plot([0, 1], [0, 1], color="0.85", linestyle="--", linewidth=0.8)
    ax.set(xlabel="false-alarm rate (good images flagged)", ylabel="detection rate (defects flagged)",
           xlim=(0, 1), ylim=(0, 1.01), title="ROC, image level")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def score_histogram(labels: np.ndarray, scores: np.ndarray, threshold: float, false_alarm_rate: float,
                    miss_rate: float) -> bytes:
    """Histogram of good vs defective image scores with the calibrated threshold drawn. Returns a PNG.

    labels: (N,) int (1 = defect); scores: (N,) float of the chosen aggregation.
    """
    fig, ax = _figure()
    scores = np.asarray(scores, dtype=np.float64)
    finite = scores[np.isfinite(scores)]
    edges = np.histogram_bin_edges(np.r_[finite, threshold], bins=40)
    ax.hist(scores[labels == 0], bins=edges, color="#2e86c1", alpha=0.6, label=f"good ({int((labels == 0).sum())})")
    ax.hist(scores[labels == 1], bins=edges, color="#c0392b", alpha=0.6,
            label=f"defective ({int((labels == 1).sum())})")
    ax.axvline(threshold, color="black", linewidth=1.5,
               label=f"threshold {threshold:.4g}: false alarms {false_alarm_rate:.1%}, misses {miss_rate:.1%}")
    ax.set(xlabel="image score", ylabel="images", title="Scores of good and defective images")
    ax.legend(fontsize=8)
    return _png(fig)
