"""`patchline run` against `patchline run --host-api` on a real line: the same frames, the same bank.

    python bench/host_api.py [--cells mono|poly] [--rounds 3] [--work DIR (default: patchline-bench in the temp folder)]

The line is elpv-<cells> trained as configs/elpv.yaml says (bench/pipeline.py trains it once into
--work and reuses it), the pipeline its shipped file; every test cell is read from a folder as
fast as the chain takes it, nothing published (verdicts counted by a sink in the process). The two
ways alternate for --rounds rounds in one process, after one untimed warm-up each, so both see the
same machine; per way: frames/s (wall) and CPU ms per frame (process CPU time, all threads), the
mean over rounds with a t interval, and the difference with its interval. Also checks that both
ways gave every cell the same verdict (scores within 1e-4).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def interval(values: list[float]) -> tuple[float, float]:
    """(mean, half width of its 95 % t interval); half width nan for one value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, T95.get(len(values) - 1, 2.0) * statistics.stdev(values) / math.sqrt(len(values))


def one_run(settings, host_api: bool) -> tuple[float, float, dict]:
    """(wall s, CPU s, source → (verdict, score)) of one run of the whole folder."""
    from patchline.app.host_run import run_host_api
    from patchline.app.run import run_pipeline
    from patchline.app.sinks import Sink

    verdicts = {}

    class Count(Sink):
        def verdict(self, verdict):
            verdicts[verdict.payload["source"]] = (verdict.payload["verdict"], verdict.payload["score"])

    wall, cpu = time.perf_counter(), time.process_time()
    (run_host_api if host_api else run_pipeline)(settings, [Count()])
    return time.perf_counter() - wall, time.process_time() - cpu, verdicts


def same_verdicts(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k][0] == b[k][0] and (a[k][1] is None) == (b[k][1] is None)
        and (a[k][1] is None or abs(a[k][1] - b[k][1]) <= 1e-4 * max(1.0, abs(a[k][1]))) for k in a)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", choices=("mono", "poly"), default="mono")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "patchline-bench")
    args = ap.parse_args()
    from bench.pipeline import CONFIGURED, banks_for, line_pipeline, test_cells, train_real_line
    from patchline.app.run_settings import RunSettings
    from patchline.settings import load_category_table

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ["PATCHLINE_MODELS"] = str(work / "models")  # the pipeline's models/… paths resolve there
    line, _ = train_real_line(args.cells, work, CONFIGURED)
    pipeline = line_pipeline(CONFIGURED, load_category_table(CONFIGURED).get(line), line, work)
    cells = test_cells(work, args.cells)
    settings = RunSettings(pipeline, (str(cells),), line=line, banks_root=banks_for(work, CONFIGURED), quiet=True)
    results: dict[bool, dict[str, list[float]]] = {False: {"fps": [], "cpu": []}, True: {"fps": [], "cpu": []}}
    seen = {}
    for host_api in (False, True):  # warm-up: page cache, model files, faiss
        seen[host_api] = one_run(settings, host_api)[2]
    for _ in range(args.rounds):
        for host_api in (False, True):
            wall, cpu, got = one_run(settings, host_api)
            results[host_api]["fps"].append(len(got) / wall)
            results[host_api]["cpu"].append(cpu * 1000.0 / len(got))
    n = len(seen[False])
    print(f"\n{line}: {n} test cells, {args.rounds} rounds each way, alternating; {os.cpu_count()} cores; "
          f"same verdicts both ways: {'yes' if same_verdicts(seen[False], seen[True]) else 'NO'}\n")
    print("| way | frames/s (95 % CI) | CPU ms per frame (95 % CI) |")
    print("|---|---|---|")
    for host_api, name in ((False, "patchline run"), (True, "patchline run --host-api")):
        fps, cpu = interval(results[host_api]["fps"]), interval(results[host_api]["cpu"])
        print(f"| {name} | {fps[0]:.1f} ± {fps[1]:.1f} | {cpu[0]:.1f} ± {cpu[1]:.1f} |")
    diff = interval([h - r for h, r in zip(results[True]["fps"], results[False]["fps"])])
    verdict = "not distinguishable" if abs(diff[0]) <= diff[1] else ("faster" if diff[0] > 0 else "slower")
    print(f"\n--host-api minus run, frames/s: {diff[0]:+.1f} ± {diff[1]:.1f} (paired by round): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
