"""Benchmark: coreset selection time and peak memory (not a test).

    python bench/coreset.py [--sizes 50000,200000] [--ratios 0.01,0.1] [--dim 1024]
                            [--projection-dim 128] [--plain-steps 100]

For each size N it builds an N x dim float32 matrix of mildly clustered synthetic features
(64 clusters, a 16-dim structured spread per cluster plus isotropic noise), then times
``select_coreset`` at each ratio and, in a second untimed run, its peak of allocated memory
(tracemalloc sees every numpy buffer; RSS is not used because the allocator keeps freed
memory resident, which hides reuse). The plain
reference (``plain_greedy_k_center``) is timed for a few steps on the same projected data,
and its total is extrapolated linearly (its per-step cost does not depend on the step).
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from patchline.core.coreset import (  # noqa: E402
    RandomProjection,
    greedy_k_center,
    plain_greedy_k_center,
    select_coreset,
)


def clustered_features(n: int, dim: int, seed: int = 0, n_clusters: int = 64,
                       rank: int = 16) -> np.ndarray:
    """(n, dim) float32: cluster centre + low-rank structured part + noise (mildly clustered).

    Between-centre distances are ~1.7x the typical within-cluster distance, so clusters
    overlap in their tails, as patch embeddings of one product do.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    basis = rng.standard_normal((n_clusters, rank, dim), dtype=np.float32)
    basis *= np.float32(np.sqrt(0.3 / rank))
    weights = rng.dirichlet(np.full(n_clusters, 2.0))
    labels = rng.choice(n_clusters, n, p=weights)
    x = np.empty((n, dim), np.float32)
    for a in range(0, n, 8192):
        lab = labels[a:a + 8192]
        z = rng.standard_normal((len(lab), rank), dtype=np.float32)
        noise = rng.standard_normal((len(lab), dim), dtype=np.float32)
        noise *= np.float32(np.sqrt(0.05))
        x[a:a + 8192] = centres[lab] + np.einsum("nr,nrd->nd", z, basis[lab]) + noise
    return x


def _peak_allocated(fn) -> int:
    """Peak bytes allocated (numpy buffers included) while fn runs, above what it started with."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="50000,200000")
    ap.add_argument("--ratios", default="0.01,0.1")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--projection-dim", type=int, default=128)
    ap.add_argument("--plain-steps", type=int, default=100,
                    help="steps of the plain reference to time (and to check against the fast path)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    ratios = [float(r) for r in args.ratios.split(",")]

    rows = []
    for n in sizes:
        feats = clustered_features(n, args.dim, seed=args.seed)
        feat_mib = feats.nbytes / 2**20
        # the plain reference on the same projected points and start as select_coreset
        proj = RandomProjection(args.dim, args.projection_dim, args.seed)(feats)
        start = int(np.random.default_rng(args.seed).integers(n))
        steps = min(args.plain_steps, n - 1)
        # best of two for each, so a busy moment does not skew the difference
        t_one = min(_timed(lambda: plain_greedy_k_center(proj, 1, start=start))[1] for _ in range(2))
        t_many = []
        for _ in range(2):
            plain_sel, t, _ = _timed(lambda: plain_greedy_k_center(proj, steps + 1, start=start))
            t_many.append(t)
        per_step = max(min(t_many) - t_one, 0.0) / max(steps, 1)
        fast_prefix = greedy_k_center(proj, steps + 1, start=start)
        if not np.array_equal(plain_sel, fast_prefix):
            print(f"MISMATCH: fast and plain differ on N={n}", file=sys.stderr)
            return 1
        for ratio in ratios:
            k = max(1, round(ratio * n))
            _, fast_wall, _ = _timed(lambda: greedy_k_center(proj, k, start=start))
            sel, wall, cpu = _timed(lambda: select_coreset(feats, ratio, args.projection_dim,
                                                           seed=args.seed))
            assert len(sel) == k and np.array_equal(sel[: steps + 1], plain_sel[: min(k, steps + 1)])
            extra = _peak_allocated(lambda: select_coreset(feats, ratio, args.projection_dim,
                                                           seed=args.seed)) / 2**20
            plain_total = t_one + per_step * (k - 1)
            rows.append((n, ratio, k, wall, cpu, extra, feat_mib, fast_wall, per_step, plain_total))
        del proj

    print(f"\nCoreset selection, {args.dim}-dim float32 features projected to "
          f"{args.projection_dim}; {len(os.sched_getaffinity(0))} CPUs, {platform.processor() or platform.machine()}, "
          f"load average at end {os.getloadavg()[0]:.1f}\n")
    print("| N | ratio | picks | select_coreset wall s | CPU s | peak allocated (MiB) | "
          "peak / features | greedy_k_center s | plain ms/step (measured) | "
          "plain total s (extrapolated) | speed-up (greedy) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, ratio, k, wall, cpu, extra, feat_mib, fast_wall, per_step, plain_total in rows:
        extra_s = f"{extra:.0f}"
        ratio_s = f"{(feat_mib + extra) / feat_mib:.2f}x"
        print(f"| {n:,} | {ratio:g} | {k:,} | {wall:.1f} | {cpu:.1f} | {extra_s} | {ratio_s} | "
              f"{fast_wall:.1f} | {per_step * 1e3:.2f} | {plain_total:.1f} | "
              f"{plain_total / fast_wall:.1f}x |")
    print("\nselect_coreset = projection + greedy. greedy_k_center = the greedy part alone, on the "
          "same projected points and start as the plain reference. "
          "peak / features = (feature matrix + peak allocated by select_coreset) / feature matrix. "
          "Plain totals are extrapolated from the measured per-step time; the fast picks were "
          "checked equal to the plain picks on the measured steps.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
