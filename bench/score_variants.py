"""ELPV test AUROC of image statistics beyond the line's aggregations, and of the EfficientNet-Lite
variants, each on the full cross-fitted bank a line of those settings builds. Not a test; prints
a Markdown table per cell type.

    python bench/score_variants.py [--cells mono,poly] [--backbones efficientnet_lite0,efficientnet_lite1,efficientnet_lite2]
                                   [--layers "layer2;layer2,layer3"] [--size 224] [--coreset 0.1]

For each backbone and layer set, the bank is built as `patchline train` builds it with
`calibration: crossfit` (the coreset of every training cell's patches; each training cell also
scored against the coreset of the other folds), then the protocol's test cells are scored:

- every aggregation the line can choose (max, mean, var, topk<N>);
- `reweighted`: the PatchCore paper's k-nearest re-weighting (k = 9, as anomalib): the image's
  most anomalous patch q, its nearest bank patch m, the 9 bank patches nearest to m, and
  score = max × (1 − softmax(‖q − those 9‖)[m]);
- `two-sided`: an image is unusual when its patch scores run high **or** unusually low —
  max(z of topk5, z of −mean), each z standardised by the cross-fitted (held-out) training
  scores only; `low side` is the AUROC of −mean alone (0.5: no signal in low scores).

Test labels never choose anything here: every column is reported. The normals' statistics come
from training cells only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
K_REWEIGHT = 9
SHOWN = ("max", "topk5", "topk10", "mean")


def reweighted_max(patch_scores: np.ndarray, embeddings: np.ndarray, rows: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """The paper's k-nearest re-weighted image score.

    patch_scores (N, h, w) float32, embeddings (N, h, w, D) float32, rows (N, h, w) int nearest bank
    row of each patch, bank (M, D) float32. Returns (N,) float32."""
    n = patch_scores.shape[0]
    flat_scores = patch_scores.reshape(n, -1)
    top = flat_scores.argmax(axis=1)
    q = embeddings.reshape(n, -1, embeddings.shape[-1])[np.arange(n), top]
    m = bank[rows.reshape(n, -1)[np.arange(n), top]]
    bank_norms = np.einsum("ij,ij->i", bank, bank)
    out = np.empty(n, dtype=np.float32)
    for i in range(n):
        to_m = bank_norms - 2.0 * bank @ m[i]  # + ‖m‖², the same for every row
        support = np.argpartition(to_m, K_REWEIGHT)[:K_REWEIGHT]
        support = support[np.argsort(to_m[support])]  # m itself first (distance 0)
        d = np.linalg.norm(bank[support] - q[i], axis=1).astype(np.float64)
        soft = np.exp(d - d.max())
        out[i] = flat_scores[i, top[i]] * (1.0 - soft[0] / soft.sum())
    return out


def zscore(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(values − mean(reference)) / std(reference), float64."""
    return (np.asarray(values, np.float64) - reference.mean()) / max(float(reference.std()), 1e-12)


def line_bank(embeddings: np.ndarray, base) -> tuple[np.ndarray, np.ndarray]:
    """(bank (M, D), cross-fitted held-out patch scores (N, h, w)) as `train` builds them for crossfit."""
    from patchline.core.coreset import RandomProjection, select_from_projection
    from patchline.training.train import fold_banks

    n, h, w, d = embeddings.shape
    flat = embeddings.reshape(-1, d)
    projected = RandomProjection(d, 128, seed=base.seed)(flat)
    held_out = np.empty((n, h, w), dtype=np.float32)
    for scored, _, search in fold_banks(n, flat, projected, (h, w), base, progress=True):
        held_out[scored] = search.patch_scores(embeddings[scored])
    chosen = np.sort(select_from_projection(projected, base.coreset_ratio, base.seed))
    return np.ascontiguousarray(flat[chosen]), held_out


def variant_row(train_emb: np.ndarray, test_emb: np.ndarray, labels: np.ndarray, base) -> dict:
    """Test AUROC of every statistic for one (backbone, size, layers) on its full cross-fitted bank."""
    from patchline.core.metrics import auroc
    from patchline.core.scoring import AGGREGATIONS, aggregate_all, patch_scores_from_distances
    from patchline.core.search import NearestPatchSearch

    began = time.perf_counter()
    bank, held_out = line_bank(train_emb, base)
    search = NearestPatchSearch(bank)
    n, h, w, d = test_emb.shape
    squared, rows = search.nearest(test_emb.reshape(-1, d))
    scores = patch_scores_from_distances(squared[:, None], (h, w))
    test = aggregate_all(scores)
    normal = aggregate_all(held_out, ("topk5", "mean"))
    result = {a: auroc(labels, test[a]) for a in AGGREGATIONS}
    result["reweighted"] = auroc(labels, reweighted_max(scores, test_emb, rows.reshape(n, h, w), bank))
    z_high = zscore(test["topk5"], normal["topk5"])
    z_low = zscore(-test["mean"], -normal["mean"])
    result["two-sided"] = auroc(labels, np.maximum(z_high, z_low))
    result["low side"] = auroc(labels, -test["mean"])
    result["test normals below −3σ"] = int(np.sum((z_low > 3)[labels == 0]))
    result["test defects below −3σ"] = int(np.sum((z_low > 3)[labels == 1]))
    result["bank"] = bank.shape
    result["seconds"] = time.perf_counter() - began
    return result


def main() -> int:
    from patchline.core.scoring import AGGREGATIONS
    from patchline.data.datasets import elpv_split
    from patchline.extractors.embeddings import as_image
    from patchline.models.mindspore_extractor import load_extractor
    from patchline.settings import load_category_table
    from patchline.training.tune import embed_features, extract_features

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="mono,poly")
    ap.add_argument("--backbones", default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2")
    ap.add_argument("--layers", default="layer2;layer2,layer3", help="layer sets, ';'-separated")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--coreset", type=float, default=0.1)
    args = ap.parse_args()
    layer_sets = [tuple(s.split(",")) for s in args.layers.split(";")]
    for cell_type in args.cells.split(","):
        base = load_category_table(ROOT / "configs" / "elpv.yaml").get(f"elpv-{cell_type}")
        base = base.replace(coreset_ratio=args.coreset, imagesize=args.size,
                            resize=round(args.size * base.resize / base.imagesize))
        split = elpv_split(cell_type)
        train = [as_image(i) for i in split.train]
        test = [as_image(i) for i in list(split.test_normal) + list(split.test_defect)]
        labels = np.r_[np.zeros(len(split.test_normal)), np.ones(len(split.test_defect))]
        rows = []
        for backbone in args.backbones.split(","):
            extractor = load_extractor(backbone, ("layer2", "layer3"), cache_dir=ROOT / "models")[0]
            settings = base.replace(backbone=backbone, layers=("layer2", "layer3"))
            raw_train = extract_features(train, extractor, settings)[0]
            raw_test = extract_features(test, extractor, settings)[0]
            for layers in layer_sets:
                label = f"{backbone} {args.size}px {'+'.join(layers)}"
                row = variant_row(embed_features(raw_train, layers, base.patchsize),
                                  embed_features(raw_test, layers, base.patchsize), labels, base)
                print(f"{cell_type} {label}: {row}", file=sys.stderr)
                rows.append((label, row))
        print(f"\nELPV {cell_type}: {len(train)} training cells, {len(test)} test cells; coreset {args.coreset}, "
              f"crossfit ({base.folds} folds), exact search; test image AUROC\n")
        head = ["setting", "bank", *SHOWN, "best aggregation by test (reference only)", "reweighted (k = 9)", "two-sided", "low side",
                "normals / defects with z(−mean) > 3", "s"]
        print("| " + " | ".join(head) + " |")
        print("|---" * len(head) + "|")
        for label, r in rows:
            best = max(AGGREGATIONS, key=lambda a: r[a])
            print(f"| {label} | {r['bank'][0]} × {r['bank'][1]} | " + " | ".join(f"{r[a]:.4f}" for a in SHOWN)
                  + f" | {best} {r[best]:.4f} | {r['reweighted']:.4f} | {r['two-sided']:.4f} | {r['low side']:.4f} | "
                  f"{r['test normals below −3σ']} / {r['test defects below −3σ']} | {r['seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
