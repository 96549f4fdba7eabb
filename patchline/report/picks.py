"""Which test images the evaluation report shows, and the overlay pictures it shows them with."""

from __future__ import annotations

import numpy as np

from patchline.core.scoring import is_defect

TOP_DEFECTS = 4          # the highest-scoring defects: what the line finds easily
MISSED_DEFECTS = 4       # the lowest-scoring defects: what it misses first
MAX_FALSE_ALARMS = 60    # every false alarm, up to this many (the page says how many more)


def report_picks(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, list[int]]:
    """Indices of the images the report shows, by kind.

    labels: (N,) int (1 = defect); scores: (N,) float of the bank's chosen aggregation.
    Returns {"top_defects": highest first, "missed_defects": lowest first (those under the
    threshold before the rest), "false_alarms": every good image over the threshold, highest
    first, at most MAX_FALSE_ALARMS}; "false_alarm_count" gives the full count as a 1-element list.
    """
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    defects = np.flatnonzero(labels == 1)
    by_score = defects[np.argsort(-scores[defects], kind="stable")]
    flagged_good = np.flatnonzero((labels == 0) & is_defect(scores, threshold))
    flagged_good = flagged_good[np.argsort(-scores[flagged_good], kind="stable")]
    return {
        "top_defects": [int(i) for i in by_score[:TOP_DEFECTS]],
        "missed_defects": [int(i) for i in by_score[::-1][:MISSED_DEFECTS]],
        "false_alarms": [int(i) for i in flagged_good[:MAX_FALSE_ALARMS]],
        "false_alarm_count": [int(flagged_good.size)],
    }
