"""Grow a line's live bank with new good images, without re-extracting the old ones.

The live bank's patches stay; the new images' patches join it through the same greedy k-center
rule that built it, continued: every new patch starts at its distance to the bank as it is, and
the farthest one is taken until the line's coreset ratio of the new patches has been taken (on
the same random projection the coreset uses). Patches the bank already covers are not added.
Operator feedback (`patchline feedback`: images that alarmed but are good) continues the greedy
instead until every patch of those images lies within COVER × the threshold of the bank, so each
of them then scores below the threshold.

The threshold, pixel threshold and aggregation are kept from the live version: the added images
carry no held-out partner to re-calibrate on, and a bank that covers more good patches only
scores good images lower. bank.json records the version it grew from, what was added, and the
added images' scores against the bank before the add (an honest look at how new they were).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from patchline.bank.store import load_bank, read_meta, write_bank
from patchline.core.coreset.projection import RandomProjection
from patchline.core.scoring import TWO_SIDED, aggregate, is_defect, low_side_decides
from patchline.core.search import NearestPatchSearch
from patchline.errors import PatchlineError
from patchline.extractors.embeddings import Extractor, ImageItem, iter_embeddings
from patchline.training.train import TrainResult, image_list_sha256

COVER = 0.5  # feedback: every patch of a false alarm ends within this share of the threshold of the bank


def patch_distance_at_threshold(meta) -> float:
    """The line's threshold as a patch distance: the threshold itself, or for the two-sided statistic
    (a z value) the topk5 score its high side alarms at."""
    if meta.aggregation != TWO_SIDED:
        return float(meta.threshold)
    center, scale = meta.score_reference["high"]
    return float(center + meta.threshold * scale)


def _refuse_plain_false_alarms(patch_scores: np.ndarray, scores: np.ndarray, meta) -> None:
    """PatchlineError when a false alarm of a two-sided line alarms on its low side (plainer than the good
    images the reference came from): more bank patches only lower its patch scores further."""
    plain = low_side_decides(patch_scores, meta.score_reference) & is_defect(scores, meta.threshold)
    if plain.any():
        raise PatchlineError(f"{int(plain.sum())} of these image(s) alarm because they are plainer than the good "
                             f"images line {meta.line} was calibrated on (the two-sided statistic's low side); adding "
                             f"them to the bank cannot clear that: retrain the line with them among its good images.")


def continue_greedy(bank: np.ndarray, candidates: np.ndarray, n_select: int,
                    stop_below: float | None = None) -> np.ndarray:
    """Indices of up to `n_select` rows of `candidates` (m, q) float32 chosen by greedy k-center
    started from the centres `bank` (n, q) float32: each pick is the candidate farthest from
    everything chosen so far (bank included); with `stop_below`, picking stops once no candidate
    is that far (a squared distance). Returns (k,) int64 in pick order."""
    n_select = min(int(n_select), len(candidates))
    if n_select <= 0:
        return np.zeros(0, dtype=np.int64)
    nearest = NearestPatchSearch(bank).squared_distances(candidates)[:, 0].astype(np.float64)
    points = np.ascontiguousarray(candidates, dtype=np.float32)
    chosen = np.empty(n_select, dtype=np.int64)
    for i in range(n_select):
        pick = int(np.argmax(nearest))
        if stop_below is not None and nearest[pick] <= stop_below:
            return chosen[:i]
        chosen[i] = pick
        diff = points - points[pick]
        np.minimum(nearest, np.einsum("ij,ij->i", diff, diff), out=nearest)
    return chosen


def grow_bank(banks_root: Path, line: str, items: Sequence[ImageItem], extractor: Extractor,
              weights_sha256: str | None, progress: bool = True, reason: str = "added good images",
              cover: bool = False) -> TrainResult:
    """A new version of `line`'s bank: the live bank plus the new images' farthest patches (see the
    module doc), made CURRENT. `extractor` must be built with the bank's weights (checked by sha256).

    cover: for images an operator judged good (a false alarm): instead of the coreset ratio, patches
    are added until none of the images' patches is farther from the bank than COVER × the line's
    threshold, so each of them scores below it (in full dims, exact distances)."""
    began = time.perf_counter()
    bank = load_bank(Path(banks_root), line)
    meta = bank.meta
    if weights_sha256 != meta.weights_sha256:
        raise PatchlineError(f"bank {meta.name} was built with other backbone weights than the ones given; pass "
                             f"the same --weights to grow it.")
    if not items:
        raise PatchlineError("there are no images to add.")
    settings = meta.line_settings()
    embeddings = np.concatenate([emb for _, emb in iter_embeddings(items, extractor, settings,
                                                                     "embedding new images" if progress else None)])
    patch_scores = bank.patch_scores(embeddings)
    before = aggregate(patch_scores, meta.aggregation, meta.score_reference)
    if cover and meta.aggregation == TWO_SIDED:
        _refuse_plain_false_alarms(patch_scores, before, meta)
    new = embeddings.reshape(-1, embeddings.shape[-1])
    old = bank.index.reconstruct_n(0, bank.index.ntotal)
    if cover:
        chosen = continue_greedy(old, new, len(new), stop_below=(COVER * patch_distance_at_threshold(meta)) ** 2)
    else:
        ratio = float(meta.get("coreset_ratio") or 0.01)
        projection = RandomProjection(new.shape[1], min(128, new.shape[1]), seed=int(meta.get("seed") or 0))
        chosen = continue_greedy(projection(old), projection(new), round(ratio * len(new)))
    patches = np.concatenate([old, new[chosen]])
    record = meta.as_dict()
    training = dict(record.get("training") or {})
    training.update(n_images=int(training.get("n_images", 0)) + len(items), grown_from=meta.version,
                    added={"reason": reason, "n_images": len(items), "image_list_sha256": image_list_sha256(items),
                           "n_patches": int(len(chosen)), "scores_before": [float(s) for s in before]})
    record.update(training=training, calibration=f"threshold, pixel threshold and aggregation kept from {meta.version}: "
                                                 f"the bank only grew by good patches")
    version_dir = write_bank(Path(banks_root), line, patches, record, meta.search["kind"],
                             int(meta.search.get("ef_search", 8)))
    return TrainResult(bank_dir=version_dir, meta=read_meta(version_dir), seconds=time.perf_counter() - began)
