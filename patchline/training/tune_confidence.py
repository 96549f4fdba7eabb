"""How sure `patchline tune`'s proxy is of its choice.

The proxy scores every setting of the last rung on the same held-out good images and the same
defective copies of them. Drawing those images again (a bootstrap: the same rows for every
setting) and choosing again shows how often each setting would have come first: a choice made in
95 % of the draws is settled by the proxy; one made in 40 % is a toss-up between the settings that
share the rest, and the proxy cannot say which of them is better. Good images only: no test image
is read here either.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from patchline.training.tune_trial import REAL, Trial, family_rank_scores, proxy_score, rank_key

RESAMPLES = 200
SETTLED = 0.5   # below this share of draws, tune says the choice is uncertain
RIVAL = 0.1     # settings first in at least this share of draws are named beside the choice


def best_shares(trials: Sequence[Trial], draws: int = RESAMPLES, seed: int = 0) -> list[float]:
    """Share of `draws` bootstrap resamples of the proxy images in which each trial has the highest
    rank score (its aggregation and family AUROCs found again in each draw, ranked as `choose` ranks
    them; ties go to the cheaper). trials: scored on the same images (their `.scores`, as
    tune_trial.try_layer_sets keeps them). Returns len(trials) floats summing to 1."""
    if not trials:
        return []
    n_normal = len(next(iter(trials[0].scores["normal"].values())))
    families = np.asarray(trials[0].scores["families"])
    n_defect = len(families)
    rng = np.random.default_rng(seed)
    wins = np.zeros(len(trials))
    for _ in range(draws):
        normal_rows, defect_rows = rng.integers(0, n_normal, n_normal), rng.integers(0, n_defect, n_defect)
        per_family = []
        for t in trials:
            normal = {a: np.asarray(v)[normal_rows] for a, v in t.scores["normal"].items()}
            defect = {a: np.asarray(v)[defect_rows] for a, v in t.scores["defect"].items()}
            per_family.append(proxy_score(normal, defect, families[defect_rows])[2])
        ranks = family_rank_scores(per_family, int(np.sum(families[defect_rows] == REAL)))
        values = [rank_key(r, t.cpu_ms) for r, t in zip(ranks, trials)]
        wins[max(range(len(trials)), key=values.__getitem__)] += 1
    return (wins / draws).tolist()


def uncertain_choice(trials: Sequence[Trial], shares: dict[int, float], chosen: Trial) -> str | None:
    """One sentence when the chosen trial comes first in fewer than SETTLED of the draws, naming the
    settings that come first in at least RIVAL of them; None when the choice is settled.
    shares: {id(trial): share} as run_tune keeps them (best_shares' list, keyed by trial)."""
    share = shares.get(id(chosen))
    if share is None or share >= SETTLED:
        return None
    rivals = sorted(((shares[id(t)], t) for t in trials if t is not chosen and shares.get(id(t), 0) >= RIVAL),
                    key=lambda p: -p[0])
    named = "; ".join(f"{t.candidate.label()} ({s:.0%})" for s, t in rivals) or "several others"
    return (f"the proxy cannot settle the choice: when its held-out good images are drawn again, the chosen setting "
            f"comes first in {share:.0%} of {RESAMPLES} draws and {named} in others; as far as good images can "
            f"tell these are equally good, so the cheapest of them may be taken (the table's CPU ms).")
