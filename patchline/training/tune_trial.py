"""One rung of `patchline tune`'s grid: the candidates, what a trial measured, and how the trials of
one (backbone, image size) are built and scored from features computed once.

A trial's proxy score (what it shows, and what picks its aggregation) is the best aggregation's
AUROC (the one-sided ones, and the two-sided statistic when the grid asks for it) of held-out good
images against defective copies of them: the synthetic families (`core/synthetic.SUBTLE_KINDS`)
pooled, and, when the plant gave known-bad images (`--defects`), blended with those images' AUROC
(weight n / (n + 5) for n real defects). Settings compared together are ranked by
`family_rank_scores`: each family's AUROC as a z value across them, so that no single family's
spread decides. Real defects are only scored: they never enter a bank or set a threshold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from patchline.core.coreset import RandomProjection, select_from_projection
from patchline.core.embed import embed
from patchline.core.metrics import auroc
from patchline.core.pruned_search import PrunedPatchSearch, build_hnsw
from patchline.core.scoring import normal_and_defect_scores
from patchline.core.search import NearestPatchSearch
from patchline.extractors.embeddings import iter_features
from patchline.settings import SEARCH_AUTO_WORK, LineSettings

PARALLEL_EFFICIENCY = 0.7  # pipeline frames/s ≈ cores × 1000 / CPU ms × this (bench/pipeline.py, ELPV lines)
TIMED_FRAMES = 24
REAL = "real"             # the family name of the plant's known-bad images
REAL_PRIOR = 5            # real defects weigh n / (n + REAL_PRIOR) against the synthetic ones
SPREAD_FLOOR = 0.01       # family AUROCs differing less than this across settings count as this spread


@dataclass(frozen=True)
class Candidate:
    """One point of the grid."""

    backbone: str
    imagesize: int
    resize: int
    layers: tuple[str, ...]
    coreset_ratio: float
    patchsize: int = 3

    def settings(self, base: LineSettings) -> LineSettings:
        return base.replace(backbone=self.backbone, imagesize=self.imagesize, resize=self.resize,
                            layers=self.layers, coreset_ratio=self.coreset_ratio, patchsize=self.patchsize)

    def label(self) -> str:
        crop = "" if self.resize == self.imagesize else f" (resize {self.resize}, center crop)"
        return (f"{self.backbone} {self.imagesize}px{crop} {'+'.join(self.layers)} patch {self.patchsize} "
                f"coreset {self.coreset_ratio:g}")


@dataclass
class Trial:
    """What one candidate gave: proxy score per aggregation, per-family AUROC at the chosen aggregation,
    bank size, CPU ms per frame by part; rung 1 trials used a sample of the good images. scores: the
    image scores the proxy came from ({"normal": {aggregation: (n,)}, "defect": {…: (m,)}, "families":
    (m,) str}), the same images for every trial of a rung (tune_confidence resamples them)."""

    candidate: Candidate
    proxy_auroc: dict[str, float]
    aggregation: str
    bank_patches: int
    search: str
    cost_ms: dict[str, float] = field(default_factory=dict)
    families: dict[str, float] = field(default_factory=dict)
    rung: int = 2
    bank_images: int = 0
    cost_estimated: bool = False
    scores: dict | None = field(default=None, repr=False, compare=False)

    @property
    def best_auroc(self) -> float:
        return self.proxy_auroc[self.aggregation]

    @property
    def cpu_ms(self) -> float:
        return float(sum(self.cost_ms.values()))

    def frames_per_second(self, cores: int) -> float:
        """Estimated pipeline frames/s on `cores` cores from the measured CPU ms per frame."""
        return cores * 1000.0 / self.cpu_ms * PARALLEL_EFFICIENCY


@dataclass
class ProxySet:
    """Features of one (backbone, size) for one rung: {layer: (N, C, h, w)} of the bank images, the
    held-out good images and their defective copies (+ real defects); families: (n defects,) str;
    full_bank_images: how many bank images the line's own bank will have (for the search cost);
    two_sided: also score the two-sided statistic (reference: the held-out good images' own scores)."""

    bank: dict
    normal: dict
    defect: dict
    families: np.ndarray
    full_bank_images: int
    two_sided: bool = False


def candidate_grid(base: LineSettings, backbones: Sequence[str], sizes: Sequence[int],
                   layer_sets: Sequence[tuple[str, ...]], ratios: Sequence[float],
                   patchsizes: Sequence[int] | None = None, geometries: Sequence[str] = ("line",)) -> list[Candidate]:
    """Every combination. geometry 'line' keeps the base line's resize / imagesize ratio (e.g. ELPV:
    1, a center crop when > 1); 'whole' resizes the whole frame to the image size (no crop). Patch
    sizes (neighbourhood of the embedding's average pool) default to the base line's."""
    scales = dict.fromkeys({"line": base.resize / base.imagesize, "whole": 1.0}[g] for g in geometries)
    return [Candidate(b, int(s), int(round(s * scale)), tuple(layers), float(r), int(p))
            for b in backbones for s in sizes for scale in scales for layers in layer_sets
            for p in (patchsizes or [base.patchsize]) for r in ratios]


def extract_features(images: Sequence[np.ndarray], extractor, settings: LineSettings,
                     progress: str | None = None) -> tuple[dict[str, np.ndarray], float]:
    """Backbone features of in-memory images: ({layer: (N, C, h, w) float32}, preprocess CPU ms per image)."""
    parts: dict[str, list[np.ndarray]] = {}
    prep = 0.0
    for _, features, seconds in iter_features(images, extractor, settings, progress):
        prep += seconds
        for layer, value in features.items():
            parts.setdefault(layer, []).append(np.asarray(value, dtype=np.float32))
    return {layer: np.concatenate(v) for layer, v in parts.items()}, 1000.0 * prep / max(len(images), 1)


def embed_features(features: dict[str, np.ndarray], layers, patchsize: int) -> np.ndarray:
    """{layer: (N, C, h, w) float32} backbone features → (N, h', w', D) float32 embeddings of `layers`,
    16 images per `embed` call."""
    n = next(iter(features.values())).shape[0]
    return np.concatenate([embed({k: v[i:i + 16] for k, v in features.items()}, layers, patchsize, None)
                           for i in range(0, n, 16)])


def cpu_ms(call: Callable[[], object], frames: int) -> float:
    """CPU ms per frame of `call`, run as a pipeline stage runs it: BLAS and OpenMP on one thread."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        t0 = time.process_time()
        call()
        return 1000.0 * (time.process_time() - t0) / max(frames, 1)


def proxy_score(normal: dict[str, np.ndarray], defect: dict[str, np.ndarray],
                families: np.ndarray) -> tuple[str, dict[str, float], dict[str, float]]:
    """(best aggregation, {aggregation: proxy score}, {family: AUROC at the best aggregation}).

    normal / defect: {aggregation: (n,) image scores} (ties go to the earlier aggregation in that
    order); families: (len(defect),) family names. The score is the synthetic families' pooled AUROC,
    blended with the real defects' AUROC when any."""
    real = families == REAL
    weight = real.sum() / (real.sum() + REAL_PRIOR)

    def separation(a: str, rows: np.ndarray) -> float:
        values = np.r_[normal[a], defect[a][rows]]
        return auroc(np.r_[np.zeros(len(normal[a])), np.ones(int(rows.sum()))], values)

    score = {}
    order = list(normal)
    for a in order:
        synthetic = separation(a, ~real) if (~real).any() else 0.5
        score[a] = synthetic if not real.any() else (1 - weight) * synthetic + weight * separation(a, real)
    best = max(order, key=lambda a: (score[a], -order.index(a)))
    per_family = {str(f): separation(best, families == f) for f in dict.fromkeys(families.tolist())}
    return best, score, per_family


def rank_key(proxy: float, cpu_ms: float) -> tuple[float, float]:
    """How tune orders settings (higher first): the rank score (family_rank_scores) to 4 decimals, then the cheaper."""
    return round(proxy, 4), -cpu_ms


def family_rank_scores(per_family: Sequence[dict[str, float]], n_real: int = 0) -> np.ndarray:
    """The score tune ranks settings compared together by: (len(per_family),) float64.

    per_family: each setting's {family: AUROC at its aggregation} (Trial.families). Per family, a
    setting's AUROC becomes its z value across these settings, the spread floored at SPREAD_FLOOR so
    that a family every setting finds about equally well (a crack all find) adds no noise and one
    whose AUROC differs widely (a spot only large images see) cannot outweigh the others; the score
    is the synthetic families' mean z, blended with the real defects' z (weight n / (n + REAL_PRIOR))
    when known-bad images were scored."""
    if not per_family:
        return np.zeros(0)
    families = list(dict.fromkeys(f for p in per_family for f in p))
    table = np.array([[p.get(f, 0.5) for f in families] for p in per_family], dtype=np.float64)
    z = (table - table.mean(axis=0)) / np.maximum(table.std(axis=0), SPREAD_FLOOR)
    real = np.array([f == REAL for f in families])
    score = z[:, ~real].mean(axis=1) if (~real).any() else np.zeros(len(per_family))
    if real.any() and n_real:
        weight = n_real / (n_real + REAL_PRIOR)
        score = (1 - weight) * score + weight * z[:, real][:, 0]
    return score


def trial_ranks(trials: Sequence[Trial]) -> dict[int, float]:
    """{id(trial): family_rank_scores} of trials compared together (their `.families`; real defects
    counted from `.scores`)."""
    n_real = [int(np.sum(np.asarray(t.scores["families"]) == REAL)) if t.scores else 0 for t in trials]
    scores = family_rank_scores([t.families for t in trials], max(n_real, default=0))
    return {id(t): float(s) for t, s in zip(trials, scores)}


def best_first(trials: Sequence[Trial]) -> list[Trial]:
    """Trials compared together, in the order tune ranks them (rank_key on trial_ranks; ties keep their order)."""
    rank = trial_ranks(trials)
    return sorted(trials, key=lambda t: rank_key(rank[id(t)], t.cpu_ms), reverse=True)


def _search_cost(bank: np.ndarray, exact, timed: np.ndarray, aggregation: str, threshold: float,
                 full_patches: int, base: LineSettings) -> tuple[str, float, bool]:
    """(search kind the line's full bank would use, CPU ms per frame, estimated?). A bank built on a
    sample is timed as it is and scaled to the full bank's size (exact search: linear)."""
    kind = "hnsw" if full_patches * bank.shape[1] >= SEARCH_AUTO_WORK else "exact"
    search = PrunedPatchSearch(exact, build_hnsw(bank), base.ef_search) if kind == "hnsw" else exact
    ms = cpu_ms(lambda: search.patch_scores(timed, aggregation, threshold) if kind == "hnsw"
                else search.patch_scores(timed), len(timed))
    scaled = kind == "exact" and full_patches > bank.shape[0]
    return kind, ms * (full_patches / bank.shape[0] if scaled else 1.0), scaled


def try_layer_sets(candidates: Sequence[Candidate], proxy: ProxySet, base: LineSettings, on_bank=None,
                   rung: int = 2) -> list[Trial]:
    """Trials of candidates sharing one (backbone, imagesize): their layer sets, patch sizes and
    coreset ratios (each layer set and patch size embedded once).

    on_bank(candidate, search, aggregation, scores): optional, called with each candidate's bank and
    scores {"normal": {aggregation: (n,)}, "defect": {…}, "families": (n defects,), "rung": rung} (the
    benchmark scores test images there; tuning itself never does)."""
    trials = []
    n_bank = next(iter(proxy.bank.values())).shape[0]
    for layers, patchsize in dict.fromkeys((c.layers, c.patchsize) for c in candidates):
        bank_emb = embed_features(proxy.bank, layers, patchsize)
        normal_emb = embed_features(proxy.normal, layers, patchsize)
        embed_ms = cpu_ms(lambda: embed_features({k: v[:TIMED_FRAMES] for k, v in proxy.normal.items()}, layers,
                                                 patchsize), min(TIMED_FRAMES, len(normal_emb)))
        defect_emb = embed_features(proxy.defect, layers, patchsize)
        flat = bank_emb.reshape(-1, bank_emb.shape[-1])
        projected = RandomProjection(flat.shape[1], min(128, flat.shape[1]), seed=base.seed)(flat)
        for candidate in (c for c in candidates if (c.layers, c.patchsize) == (layers, patchsize)):
            chosen = np.sort(select_from_projection(projected, candidate.coreset_ratio, base.seed))
            bank = np.ascontiguousarray(flat[chosen])
            exact = NearestPatchSearch(bank)
            normal, defect, _ = normal_and_defect_scores(exact.patch_scores(normal_emb),
                                                         exact.patch_scores(defect_emb), proxy.two_sided)
            aggregation, score, families = proxy_score(normal, defect, proxy.families)
            threshold = float(np.quantile(normal[aggregation], 1.0 - base.false_alarm_rate, method="higher"))
            full_patches = int(round(bank.shape[0] * proxy.full_bank_images / n_bank))
            kind, search_ms, estimated = _search_cost(bank, exact, normal_emb[:TIMED_FRAMES], aggregation, threshold,
                                                      full_patches, base)
            scores = {"normal": normal, "defect": defect, "families": proxy.families}
            trials.append(Trial(candidate, score, aggregation, full_patches, kind,
                                {"embed": embed_ms, "search": search_ms}, families, rung, n_bank, estimated, scores))
            if on_bank is not None:
                on_bank(candidate, exact, aggregation, {**scores, "rung": rung})
    return trials
