"""Nearest-patch search: faiss IndexFlatL2.search(k=1) against patchline's BLAS search, same run.

One frame's patches (784 queries at 224 px / stride 8) against banks of typical sizes.
Wall and CPU milliseconds per frame (CPU covers all threads). Not a test. Prints a Markdown table.

    python bench/search.py
"""

from __future__ import annotations

import time

import faiss
import numpy as np

from patchline.core.search import NearestPatchSearch

SHAPES = [(40, 1960), (152, 1960), (512, 1960), (1536, 1960), (152, 27675), (1024, 8000)]


def timed(fn, repeats: int = 20) -> tuple[float, float]:
    """(wall ms, CPU ms) per call, after one warm-up call."""
    fn()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return ((time.perf_counter() - wall) / repeats * 1e3, (time.process_time() - cpu) / repeats * 1e3)


def main() -> None:
    faiss.omp_set_num_threads(1)  # one search per frame is small: OpenMP workers would only contend
    rng = np.random.default_rng(0)
    print("| dim | bank patches | faiss wall / CPU ms | patchline wall / CPU ms | CPU speed-up | max rel. diff |")
    print("|---:|---:|---:|---:|---:|---:|")
    for dim, size in SHAPES:
        bank = rng.normal(size=(size, dim)).astype(np.float32)
        queries = rng.normal(size=(784, dim)).astype(np.float32)
        index = faiss.IndexFlatL2(dim)
        index.add(bank)
        ours = NearestPatchSearch(bank)
        fw, fc = timed(lambda: index.search(queries, 1))
        pw, pc = timed(lambda: ours.squared_distances(queries))
        ref = index.search(queries, 1)[0]
        diff = float(np.max(np.abs(ours.squared_distances(queries) - ref) / np.maximum(ref, 1e-6)))
        print(f"| {dim} | {size} | {fw:.1f} / {fc:.1f} | {pw:.1f} / {pc:.1f} | {fc / pc:.1f}× | {diff:.1e} |")


if __name__ == "__main__":
    main()
