"""ELPV test AUROC when each patch is compared only with bank patches from nearby positions of the
cell (a positional neighbourhood of radius r grid steps) instead of the whole bank. Not a test;
prints a Markdown table per cell type.

    python bench/positional.py [--cells mono,poly] [--backbone efficientnet_lite0] [--layers "layer2,layer3"]
                               [--radii 1,2,4,8] [--size 224] [--coreset 0.1] [--all-patches]

ELPV cells are aligned (busbars and cell edges sit at the same place in every cell), so a dark
line that is normal at a busbar's position is not normal elsewhere. Plain PatchCore cannot see
that: any bank patch, from anywhere in the cell, may explain a query patch. Here each query patch
at grid position (y, x) is scored against the bank patches that came from positions within r steps
(|Δy| ≤ r and |Δx| ≤ r); r = ∞ is plain PatchCore. Two banks: the line's coreset (each bank
patch keeps the position it came from) and, with --all-patches, every training patch (no coreset; radii ≤ 4 only).

Test labels choose nothing: every radius and aggregation is reported.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHOWN = ("max", "topk5", "topk10", "mean")


def positional_patch_scores(queries: np.ndarray, bank: np.ndarray, positions: np.ndarray, radius: int | None,
                            block: int = 4) -> np.ndarray:
    """Each query patch's distance to its nearest bank patch among those from positions within
    `radius` grid steps (None: the whole bank).

    queries (N, h, w, D) float32; bank (M, D) float32; positions (M, 2) int (y, x) each bank patch came
    from. Returns (N, h, w) float32. Queries are taken in block × block tiles of positions, each tile
    against the bank patches near any of its positions, then masked per position."""
    from patchline.core.search import NearestPatchSearch

    n, h, w, d = queries.shape
    if radius is None:
        return NearestPatchSearch(bank).patch_scores(queries)
    bank_norms = np.einsum("ij,ij->i", bank, bank)
    out = np.empty((n, h, w), dtype=np.float32)
    for y0 in range(0, h, block):
        for x0 in range(0, w, block):
            ys, xs = np.arange(y0, min(y0 + block, h)), np.arange(x0, min(x0 + block, w))
            near = np.nonzero((positions[:, 0] >= ys[0] - radius) & (positions[:, 0] <= ys[-1] + radius)
                              & (positions[:, 1] >= xs[0] - radius) & (positions[:, 1] <= xs[-1] + radius))[0]
            tile = queries[:, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1, :]
            if not len(near):
                out[:, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1] = np.inf
                continue
            cand, cand_norms = bank[near], bank_norms[near]
            py, px = positions[near, 0], positions[near, 1]
            allowed = ((np.abs(ys[:, None] - py[None, :]) <= radius)[:, None, :]
                       & (np.abs(xs[:, None] - px[None, :]) <= radius)[None, :, :])  # (by, bx, C)
            step = max(1, 30_000_000 // (tile.shape[1] * tile.shape[2] * len(near)))  # ~120 MB of distances
            for i in range(0, n, step):
                part = tile[i:i + step]
                sq = np.einsum("nyxd,nyxd->nyx", part, part)[..., None] - 2.0 * part @ cand.T + cand_norms
                sq = np.where(allowed[None], sq, np.inf)
                out[i:i + step, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1] = np.sqrt(np.maximum(sq.min(axis=-1), 0.0))
    return out


def main() -> int:
    from patchline.core.coreset import select_coreset
    from patchline.core.metrics import auroc
    from patchline.core.scoring import aggregate_all
    from patchline.data.datasets import elpv_split
    from patchline.extractors.embeddings import as_image
    from patchline.models.mindspore_extractor import load_extractor
    from patchline.settings import load_category_table
    from patchline.training.tune import embed_features, extract_features

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="mono,poly")
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--layers", default="layer2,layer3")
    ap.add_argument("--radii", default="1,2,4,8")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--coreset", type=float, default=0.1)
    ap.add_argument("--all-patches", action="store_true", help="also the bank of every training patch (radii ≤ 4; slow)")
    args = ap.parse_args()
    layers = tuple(args.layers.split(","))
    radii = [int(r) for r in args.radii.split(",")] + [None]
    extractor = load_extractor(args.backbone, ("layer2", "layer3"), cache_dir=ROOT / "models")[0]
    for cell_type in args.cells.split(","):
        base = load_category_table(ROOT / "configs" / "elpv.yaml").get(f"elpv-{cell_type}")
        base = base.replace(backbone=args.backbone, coreset_ratio=args.coreset, imagesize=args.size,
                            resize=round(args.size * base.resize / base.imagesize), layers=("layer2", "layer3"))
        split = elpv_split(cell_type)
        train = [as_image(i) for i in split.train]
        test = [as_image(i) for i in list(split.test_normal) + list(split.test_defect)]
        labels = np.r_[np.zeros(len(split.test_normal)), np.ones(len(split.test_defect))]
        train_emb = embed_features(extract_features(train, extractor, base)[0], layers, base.patchsize)
        test_emb = embed_features(extract_features(test, extractor, base)[0], layers, base.patchsize)
        n, h, w, d = train_emb.shape
        flat = train_emb.reshape(-1, d)
        grid_yx = np.stack(np.divmod(np.arange(h * w), w), axis=1)
        positions_all = np.tile(grid_yx, (n, 1))
        chosen = np.sort(select_coreset(flat, base.coreset_ratio, seed=base.seed))  # as train picks the bank
        banks = {f"coreset {args.coreset:g} ({len(chosen)})": (np.ascontiguousarray(flat[chosen]), positions_all[chosen])}
        if args.all_patches:
            banks[f"all patches ({len(flat)})"] = (flat, positions_all)
        rows = []
        for bank_name, (bank, positions) in banks.items():
            # every training patch: small radii only (plain search of ~350 k patches per query is the cost coreset avoids)
            for radius in (radii if bank_name.startswith("coreset") else [r for r in radii if r is not None and r <= 4]):
                began = time.perf_counter()
                scores = aggregate_all(positional_patch_scores(test_emb, bank, positions, radius))
                result = {a: auroc(labels, scores[a]) for a in scores}
                rows.append((bank_name, "∞" if radius is None else str(radius), result, time.perf_counter() - began))
                print(f"{cell_type} {bank_name} r={radius}: " + ", ".join(f"{a} {result[a]:.4f}" for a in SHOWN),
                      file=sys.stderr)
        print(f"\nELPV {cell_type}: {args.backbone} {args.size}px {'+'.join(layers)}, {n} training cells, "
              f"{len(test)} test cells, patch grid {h}×{w}; test image AUROC\n")
        print("| bank | radius | " + " | ".join(SHOWN) + " | best by test (reference only) | s |")
        print("|---|---|" + "---|" * (len(SHOWN) + 2))
        for bank_name, radius, r, seconds in rows:
            best = max(r, key=r.get)
            print(f"| {bank_name} | {radius} | " + " | ".join(f"{r[a]:.4f}" for a in SHOWN)
                  + f" | {best} {r[best]:.4f} | {seconds:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
