"""Images → patch scores against a bank: the one scoring path of training's calibration, `evaluate`
and the benchmarks. What a patch score means for a verdict (aggregation, threshold) is
core/scoring.py's; the pipeline computes the same scores element by element."""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from patchline.extractors.embeddings import Extractor, ImageItem, iter_embeddings
from patchline.settings import LineSettings


class PatchScorer(Protocol):
    """Anything that scores embeddings against a bank: a loaded `Bank` or a `NearestPatchSearch`."""

    def patch_scores(self, embeddings: np.ndarray) -> np.ndarray: ...


def score_images(items: Sequence[ImageItem], bank: PatchScorer, extractor: Extractor, settings: LineSettings,
                 progress: str | None = None) -> np.ndarray:
    """Patch scores (N, h, w) float32 of images (paths or arrays) against a bank, batch by batch."""
    return np.concatenate([bank.patch_scores(emb) for _, emb in iter_embeddings(items, extractor, settings, progress)])
