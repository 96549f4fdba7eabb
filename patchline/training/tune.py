"""Find a line's settings from its good images only: a small grid, ranked by a synthetic-defect proxy,
under a frames-per-second budget.

For each (backbone, image size) the backbone runs once over the good images (both layers kept);
every layer set and coreset ratio of the grid is then built from those features. The good images
are split: a bank part, and a proxy part scored as it is and with subtle synthetic defects
(`core/synthetic.SUBTLE_KINDS`: thin cracks, dark regions, texture changes, small spots). A
setting's proxy AUROC is the best aggregation's AUROC of proxy normals against proxy defects; its
cost is measured CPU time per frame (the caller measures the exported models; search and embed
are timed here on the setting's own bank, searched as the pipeline would search it).
No test image is ever read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from patchline.core.coreset import RandomProjection, select_from_projection
from patchline.core.embed import embed
from patchline.core.metrics import auroc
from patchline.core.pruned_search import PrunedPatchSearch, build_hnsw
from patchline.core.scoring import AGGREGATIONS, aggregate_all
from patchline.core.search import NearestPatchSearch
from patchline.core.synthetic import SUBTLE_KINDS, make_defect
from patchline.errors import PatchlineError
from patchline.extractors.embeddings import ImageItem, as_image, iter_features
from patchline.settings import SEARCH_AUTO_WORK, LineSettings

PROXY_FRACTION = 0.25     # of the good images: scored, never in the proxy bank
DEFECTS_PER_IMAGE = 2     # subtle synthetic defects per proxy image
PARALLEL_EFFICIENCY = 0.7  # pipeline frames/s ≈ cores × 1000 / CPU ms × this (bench/pipeline.py, ELPV lines)
OVERHEAD_MS = 1.0         # threads, payloads, MQTT per frame (bench/pipeline.py: ~0.6–1.0 CPU ms)
TIMED_FRAMES = 24


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
        return (f"{self.backbone} {self.imagesize}px {'+'.join(self.layers)} patch {self.patchsize} "
                f"coreset {self.coreset_ratio:g}")


@dataclass
class Trial:
    """What one candidate gave: proxy AUROC per aggregation, bank size, CPU ms per frame by part."""

    candidate: Candidate
    proxy_auroc: dict[str, float]
    aggregation: str
    bank_patches: int
    search: str
    cost_ms: dict[str, float] = field(default_factory=dict)

    @property
    def best_auroc(self) -> float:
        return self.proxy_auroc[self.aggregation]

    @property
    def cpu_ms(self) -> float:
        return float(sum(self.cost_ms.values()))

    def frames_per_second(self, cores: int) -> float:
        """Estimated pipeline frames/s on `cores` cores from the measured CPU ms per frame."""
        return cores * 1000.0 / self.cpu_ms * PARALLEL_EFFICIENCY


def candidate_grid(base: LineSettings, backbones: Sequence[str], sizes: Sequence[int],
                   layer_sets: Sequence[tuple[str, ...]], ratios: Sequence[float],
                   patchsizes: Sequence[int] | None = None) -> list[Candidate]:
    """Every combination; resize keeps the base line's resize / imagesize ratio (e.g. whole cell: 1);
    patch sizes (neighbourhood of the embedding's average pool) default to the base line's."""
    scale = base.resize / base.imagesize
    return [Candidate(b, int(s), int(round(s * scale)), tuple(layers), float(r), int(p))
            for b in backbones for s in sizes for layers in layer_sets
            for p in (patchsizes or [base.patchsize]) for r in ratios]


def split_for_proxy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(bank image indices, proxy image indices) of n good images; raises when too few to tune on."""
    n_proxy = max(4, int(round(n * PROXY_FRACTION)))
    if n - n_proxy < 4:
        raise PatchlineError(f"tuning needs at least 8 good images (4 for the bank, 4 to score); got {n}.")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_proxy:]), np.sort(order[:n_proxy])


def proxy_defects(images: Sequence[np.ndarray], seed: int) -> list[np.ndarray]:
    """DEFECTS_PER_IMAGE subtle synthetic defects per image, cycling SUBTLE_KINDS (seeded)."""
    rng = np.random.default_rng(seed + 104729)
    kinds = [SUBTLE_KINDS[k % len(SUBTLE_KINDS)] for k in range(len(images) * DEFECTS_PER_IMAGE)]
    return [make_defect(images[k // DEFECTS_PER_IMAGE], kind, rng)[0] for k, kind in enumerate(kinds)]


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


def _cpu_ms(call: Callable[[], object], frames: int) -> float:
    """CPU ms per frame of `call`, run as a pipeline stage runs it: BLAS and OpenMP on one thread."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        t0 = time.process_time()
        call()
        return 1000.0 * (time.process_time() - t0) / max(frames, 1)


def try_layer_sets(candidates: Sequence[Candidate], bank_features: dict, normal_features: dict,
                   defect_features: dict, base: LineSettings, on_bank=None) -> list[Trial]:
    """Trials of candidates sharing one (backbone, imagesize): their layer sets, patch sizes and
    coreset ratios (each layer set and patch size embedded once).

    *_features: {layer: (N, C, h, w)} of the bank part, the proxy normals and the proxy defects.
    on_bank(candidate, search, aggregation): optional, called with each candidate's bank (the
    benchmark scores test images there; tuning itself never does)."""
    trials = []
    labels = None
    for layers, patchsize in dict.fromkeys((c.layers, c.patchsize) for c in candidates):
        bank_emb = embed_features(bank_features, layers, patchsize)
        normal_emb = embed_features(normal_features, layers, patchsize)
        embed_ms = _cpu_ms(lambda: embed_features({k: v[:TIMED_FRAMES] for k, v in normal_features.items()}, layers,
                                              patchsize), min(TIMED_FRAMES, len(normal_emb)))
        defect_emb = embed_features(defect_features, layers, patchsize)
        flat = bank_emb.reshape(-1, bank_emb.shape[-1])
        projected = RandomProjection(flat.shape[1], min(128, flat.shape[1]), seed=base.seed)(flat)
        labels = np.r_[np.zeros(len(normal_emb)), np.ones(len(defect_emb))]
        for candidate in (c for c in candidates if (c.layers, c.patchsize) == (layers, patchsize)):
            chosen = np.sort(select_from_projection(projected, candidate.coreset_ratio, base.seed))
            bank = np.ascontiguousarray(flat[chosen])
            exact = NearestPatchSearch(bank)
            normal = aggregate_all(exact.patch_scores(normal_emb))
            defect = aggregate_all(exact.patch_scores(defect_emb))
            separation = {a: auroc(labels, np.r_[normal[a], defect[a]]) for a in AGGREGATIONS}
            aggregation = max(AGGREGATIONS, key=lambda a: (separation[a], -AGGREGATIONS.index(a)))
            kind = "hnsw" if bank.shape[0] * bank.shape[1] >= SEARCH_AUTO_WORK else "exact"
            search = PrunedPatchSearch(exact, build_hnsw(bank), base.ef_search) if kind == "hnsw" else exact
            threshold = float(np.quantile(normal[aggregation], 1.0 - base.false_alarm_rate, method="higher"))
            timed = normal_emb[:TIMED_FRAMES]
            search_ms = _cpu_ms(lambda: search.patch_scores(timed, aggregation, threshold) if kind == "hnsw"
                                else search.patch_scores(timed), len(timed))
            trials.append(Trial(candidate, separation, aggregation, int(bank.shape[0]), kind,
                                {"embed": embed_ms, "search": search_ms}))
            if on_bank is not None:
                on_bank(candidate, exact, aggregation)
    return trials


def tune_line(base: LineSettings, items: Sequence[ImageItem], candidates: Sequence[Candidate],
              extractor_for: Callable[[str], object], model_ms_for: Callable[[Candidate], dict[str, float]],
              progress: bool = True, on_bank=None) -> list[Trial]:
    """Every candidate's Trial, from good images only.

    extractor_for(backbone): the backbone's feature extractor (both layers); model_ms_for(candidate):
    {"layer2": ms, "layer3": ms} CPU per frame of its exported models. Returns trials in grid order.
    """
    images = [as_image(item) for item in items]
    bank_idx, proxy_idx = split_for_proxy(len(images), base.seed)
    bank_images = [images[i] for i in bank_idx]
    normal_images = [images[i] for i in proxy_idx]
    defect_images = proxy_defects(normal_images, base.seed)
    trials = []
    groups = list(dict.fromkeys((c.backbone, c.imagesize, c.resize) for c in candidates))
    for backbone, size, resize in tqdm(groups, desc="backbones × sizes", unit="set", disable=not progress):
        settings = base.replace(backbone=backbone, imagesize=size, resize=resize, layers=("layer2", "layer3"))
        extractor = extractor_for(backbone)
        show = (lambda what: f"{backbone} {size}px {what}") if progress else (lambda what: None)
        bank_features, _ = extract_features(bank_images, extractor, settings, show("bank part"))
        normal_features, prep_ms = extract_features(normal_images, extractor, settings, show("proxy normals"))
        defect_features, _ = extract_features(defect_images, extractor, settings, show("proxy defects"))
        group = [c for c in candidates if (c.backbone, c.imagesize, c.resize) == (backbone, size, resize)]
        for trial in try_layer_sets(group, bank_features, normal_features, defect_features, base, on_bank):
            models = model_ms_for(trial.candidate)
            trial.cost_ms = {"preprocess": prep_ms, "layer2": models["layer2"],
                             "layer3": models["layer3"] if "layer3" in trial.candidate.layers else 0.0,
                             **trial.cost_ms, "overhead": OVERHEAD_MS}
            trials.append(trial)
    return trials


def choose(trials: Sequence[Trial], budget_fps: float | None, cores: int) -> Trial:
    """The trial with the highest proxy AUROC among those whose estimated frames/s meet the budget
    (ties: the cheaper). PatchlineError, one sentence, when none does."""
    fitting = [t for t in trials if budget_fps is None or t.frames_per_second(cores) >= budget_fps]
    if not fitting:
        fastest = max(trials, key=lambda t: t.frames_per_second(cores))
        raise PatchlineError(f"no setting tried reaches {budget_fps:.0f} frames/s on {cores} cores; the fastest, "
                             f"{fastest.candidate.label()}, reaches about {fastest.frames_per_second(cores):.0f}.")
    return max(fitting, key=lambda t: (round(t.best_auroc, 4), -t.cpu_ms))
