"""Find a line's settings from its good images only: a small grid, ranked by a synthetic-defect proxy,
under a frames-per-second budget, by successive halving.

The good images are split: a bank part, and a proxy part scored as it is and with subtle synthetic
defects (`core/synthetic.SUBTLE_KINDS`: thin cracks, dark regions, texture changes, small spots),
plus the plant's known-bad images when given (scored only, never in a bank). Rung 1 tries every
setting on a sample (RUNG1_IMAGES good images: two thirds bank, one third scored); rung 2 tries the best `keep`
of them on every image, and the choice is made among rung 2's trials. Backbone features are
computed once per (backbone, size) and image (`FeatureCache`) and serve every layer set, patch size
and coreset ratio, in both rungs. A trial's cost is measured CPU time per frame (the caller
measures the exported models; search and embed are timed here). No test image is ever read.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from patchline.core.synthetic import SUBTLE_KINDS, make_defect
from patchline.errors import PatchlineError
from patchline.extractors.embeddings import ImageItem, as_image
from patchline.settings import LineSettings
from patchline.training.tune_trial import (REAL, Candidate, ProxySet, Trial, candidate_grid, embed_features,
                                           best_first, extract_features, try_layer_sets)

__all__ = ["Candidate", "Trial", "candidate_grid", "embed_features", "extract_features", "split_for_proxy",
           "proxy_defects", "Halving", "TuneHooks", "tune_line", "choose", "last_rung_fitting", "no_good_setting"]

PROXY_FRACTION = 0.25     # of the good images: scored, never in the proxy bank
DEFECTS_PER_IMAGE = 2     # subtle synthetic defects per proxy image
OVERHEAD_MS = 1.0         # threads, payloads, MQTT per frame (bench/pipeline.py: ~0.6–1.0 CPU ms)
RUNG1_IMAGES = 144        # good images of rung 1 (every setting): 96 for its bank, 48 scored
KEEP = 4                  # settings rung 2 tries on every image
NO_GOOD = 0.7             # below this best proxy score, tune says no setting is good


def split_for_proxy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(bank image indices, proxy image indices) of n good images; raises when too few to tune on."""
    n_proxy = max(4, int(round(n * PROXY_FRACTION)))
    if n - n_proxy < 4:
        raise PatchlineError(f"tuning needs at least 8 good images (4 for the bank, 4 to score); got {n}.")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_proxy:]), np.sort(order[:n_proxy])


def proxy_defects(images: Sequence[np.ndarray], seed: int) -> list[np.ndarray]:
    """DEFECTS_PER_IMAGE subtle synthetic defects per image, cycling SUBTLE_KINDS (seeded); defect k
    is made from image k // DEFECTS_PER_IMAGE and is of family proxy_families(…)[k]."""
    rng = np.random.default_rng(seed + 104729)
    kinds = proxy_families(len(images))
    return [make_defect(images[k // DEFECTS_PER_IMAGE], kind, rng)[0] for k, kind in enumerate(kinds)]


def proxy_families(n_images: int) -> list[str]:
    """The synthetic family of each of proxy_defects' images for n_images proxy images."""
    return [SUBTLE_KINDS[k % len(SUBTLE_KINDS)] for k in range(n_images * DEFECTS_PER_IMAGE)]


class FeatureCache:
    """Backbone features per (backbone, imagesize, resize) and image, computed on first use: one forward
    pass serves every setting and both rungs."""

    def __init__(self, images: Sequence[np.ndarray], extractor_for: Callable[[str], object], base: LineSettings):
        self.images, self.extractor_for, self.base = images, extractor_for, base
        self.store: dict[tuple, dict[int, dict[str, np.ndarray]]] = {}
        self.prep_ms: dict[tuple, float] = {}

    def get(self, key: tuple, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """{layer: (len(indices), C, h, w)} of the images at `indices` for key (backbone, size, resize)."""
        done = self.store.setdefault(key, {})
        missing = [int(i) for i in indices if int(i) not in done]
        if missing:
            backbone, size, resize = key
            settings = self.base.replace(backbone=backbone, imagesize=size, resize=resize,
                                         layers=("layer2", "layer3"))
            features, prep = extract_features([self.images[i] for i in missing], self.extractor_for(backbone), settings)
            self.prep_ms.setdefault(key, prep)
            for row, i in enumerate(missing):
                done[i] = {layer: value[row] for layer, value in features.items()}
        return {layer: np.stack([done[int(i)][layer] for i in indices]) for layer in done[int(indices[0])]}

    def keep_only(self, keys) -> None:
        """Forget every (backbone, size, resize) but `keys`."""
        for key in [k for k in self.store if k not in set(keys)]:
            del self.store[key]


class _Clock:
    """Progress lines with the time left in a rung, from the work done so far (weight: size² × settings)."""

    def __init__(self, say, name: str, weights: list[float]):
        self.say, self.name, self.weights, self.done, self.began = say, name, weights, 0, time.perf_counter()

    def step(self, what: str) -> None:
        self.done += 1
        spent = time.perf_counter() - self.began
        left = spent / sum(self.weights[:self.done]) * sum(self.weights[self.done:])
        self.say(f"tune {self.name}: {self.done}/{len(self.weights)} (backbone, size) done ({what}), "
                 f"{spent / 60:.1f} min so far, about {left / 60:.1f} min left in this rung")


def _rung(candidates, cache: FeatureCache, index: dict, base, model_ms_for, on_bank, rung: int, say) -> list[Trial]:
    """Trials of `candidates` on the images `index` names ({"bank", "normal", "defect"}: cache rows)."""
    groups = list(dict.fromkeys((c.backbone, c.imagesize, c.resize) for c in candidates))
    members = {g: [c for c in candidates if (c.backbone, c.imagesize, c.resize) == g] for g in groups}
    clock = _Clock(say, f"rung {rung}", [float(g[1]) ** 2 * len(members[g]) for g in groups])
    trials = []
    for key in groups:
        proxy = ProxySet(cache.get(key, index["bank"]), cache.get(key, index["normal"]),
                         cache.get(key, index["defect"]), index["families"], index["full_bank"],
                         index["two_sided"])
        for trial in try_layer_sets(members[key], proxy, base, on_bank, rung):
            models = model_ms_for(trial.candidate)
            trial.cost_ms = {"preprocess": cache.prep_ms[key], "layer2": models["layer2"],
                             "layer3": models["layer3"] if "layer3" in trial.candidate.layers else 0.0,
                             **trial.cost_ms, "overhead": OVERHEAD_MS}
            trials.append(trial)
        clock.step(f"{key[0]} {key[1]}px")
    return trials


def _plan(n_images: int, n_real: int, seed: int, sample: int) -> tuple[dict, dict]:
    """(rung-1 index, rung-2 index) into [good images…, synthetic defects…, real defects…]; rung 1
    samples `sample` good images (two thirds for its bank, one third scored)."""
    bank, normal = split_for_proxy(n_images, seed)
    rng = np.random.default_rng(seed + 1)
    families = np.array(proxy_families(len(normal)) + [REAL] * n_real)
    defect = np.arange(n_images, n_images + len(families))
    full = {"bank": bank, "normal": normal, "defect": defect, "families": families, "full_bank": len(bank)}
    small_bank = np.sort(rng.permutation(bank)[:sample - sample // 3])
    picked = np.sort(rng.permutation(len(normal))[:sample // 3])
    rows = np.r_[[k for k in range(len(normal) * DEFECTS_PER_IMAGE) if k // DEFECTS_PER_IMAGE in set(picked)],
                 np.arange(len(normal) * DEFECTS_PER_IMAGE, len(families))].astype(int)
    sample = {"bank": small_bank, "normal": normal[picked], "defect": defect[rows], "families": families[rows],
              "full_bank": len(bank)}
    return sample, full


@dataclass(frozen=True)
class Halving:
    """Successive halving: rung 1 tries every setting on `sample` good images (two thirds bank, one third
    scored); rung 2 tries the best `keep` that pass hooks.fits on every image (None: all of them)."""

    keep: int | None = KEEP
    sample: int = RUNG1_IMAGES


@dataclass
class TuneHooks:
    """extractor_for(backbone): the backbone's feature extractor (both layers); model_ms_for(candidate):
    {"layer2": ms, "layer3": ms} CPU per frame of its exported models; fits(trial): whether a trial
    meets the budget (None: all do); on_bank(candidate, search, aggregation, scores): called with each
    trial's bank and proxy scores, both rungs (benchmarks only; tune_trial.try_layer_sets)."""

    extractor_for: Callable[[str], object]
    model_ms_for: Callable[[Candidate], dict[str, float]]
    fits: Callable[[Trial], bool] | None = None
    on_bank: Callable | None = None


def tune_line(base: LineSettings, items: Sequence[ImageItem], candidates: Sequence[Candidate], hooks: TuneHooks,
              progress: bool = True, defects: Sequence[ImageItem] = (), halving: Halving = Halving(),
              two_sided: bool = False) -> list[Trial]:
    """Every candidate's Trial, from good images only (and `defects`, scored, never in a bank).

    halving: how many good images rung 1 uses and how many settings rung 2 tries. two_sided: the two-sided statistic is one of the
    aggregations each trial chooses among. Returns rung 2's trials and then rung 1's trials of the settings rung 2 did not try
    (rung 1 is skipped when the grid or the image set is already small)."""
    extractor_for, model_ms_for, fits, on_bank = hooks.extractor_for, hooks.model_ms_for, hooks.fits, hooks.on_bank
    keep, sample = halving.keep, halving.sample
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if progress else (lambda text: None)
    images = [as_image(item) for item in items]
    sample, full = _plan(len(images), len(defects), base.seed, max(sample, 6))
    sample["two_sided"] = full["two_sided"] = two_sided
    synthetic = proxy_defects([images[i] for i in full["normal"]], base.seed)
    cache = FeatureCache(images + synthetic + [as_image(d) for d in defects], extractor_for, base)
    one_rung = (keep is not None and len(candidates) <= keep) or (
        len(sample["bank"]) >= len(full["bank"]) and len(sample["normal"]) >= len(full["normal"]))
    if one_rung:
        return _rung(candidates, cache, full, base, model_ms_for, on_bank, 2, say)
    say(f"tune rung 1: all {len(candidates)} settings on {len(sample['bank'])} bank images and "
        f"{len(sample['normal'])} scored good images")
    first = _rung(candidates, cache, sample, base, model_ms_for, on_bank, 1, say)
    ranked = best_first([t for t in first if fits is None or fits(t)])
    promoted = [t.candidate for t in (ranked if keep is None else ranked[:keep])] or [first[0].candidate]
    cache.keep_only({(c.backbone, c.imagesize, c.resize) for c in promoted})
    say(f"tune rung 2: the best {len(promoted)} on all {len(full['bank'])} bank images and "
        f"{len(full['normal'])} scored good images")
    second = _rung(promoted, cache, full, base, model_ms_for, on_bank, 2, say)
    return second + [t for t in first if t.candidate not in set(promoted)]


def last_rung_fitting(trials: Sequence[Trial], budget_fps: float | None, cores: int) -> list[Trial]:
    """The trials `choose` chooses among: the last rung's whose estimated frames/s meet the budget."""
    last = max(t.rung for t in trials)
    return [t for t in trials if t.rung == last and (budget_fps is None or t.frames_per_second(cores) >= budget_fps)]


def choose(trials: Sequence[Trial], budget_fps: float | None, cores: int) -> Trial:
    """The trial of the last rung with the highest rank score (tune_trial.family_rank_scores, among those
    whose estimated frames/s meet the budget; ties: the cheaper). PatchlineError, one sentence, when none does."""
    fitting = last_rung_fitting(trials, budget_fps, cores)
    if not fitting:
        fastest = max(trials, key=lambda t: t.frames_per_second(cores))
        raise PatchlineError(f"no setting tried reaches {budget_fps:.0f} frames/s on {cores} cores; the fastest, "
                             f"{fastest.candidate.label()}, reaches about {fastest.frames_per_second(cores):.0f}.")
    return best_first(fitting)[0]


def no_good_setting(chosen: Trial, sizes: Sequence[int]) -> str | None:
    """One sentence a plant engineer can act on when even the chosen setting hardly tells defects from
    good images (proxy score below NO_GOOD), else None."""
    if chosen.best_auroc >= NO_GOOD:
        return None
    real = chosen.families.get(REAL)
    if real is not None and real < NO_GOOD:
        return (f"no setting tried tells your known-bad images from the good ones (AUROC {real:.2f} at best): check "
                f"that the defects are visible in these frames, or try a closer camera or larger --grid-sizes "
                f"(largest tried: {max(sizes)} px).")
    faint = sorted(f for f, v in chosen.families.items() if f != REAL and v < NO_GOOD)
    names = ", ".join(f.replace("_", " ") for f in faint) or "the synthetic defects"
    return (f"no setting tried is good: at best the proxy scores {chosen.best_auroc:.2f} (1.0 = every defect found), "
            f"and {names} of the size tried are invisible at {max(sizes)} px and below; a closer camera, "
            f"larger --grid-sizes (e.g. {2 * max(sizes)}) or a finer layer (--grid-layers layer2) may help.")
