"""Growing a bank against retraining it: time and AUROC on a real ELPV line.

    python bench/grow.py [--cell-type mono] [--add 50] [--work DIR (default: <temp dir>/patchline-grow)]

The line is trained as `configs/elpv.yaml` configures it (real Lite0 weights, real cells) on all
its training cells but the last `--add`; those are then added with `patchline train --add`'s code
path (`grow_line`). Beside it, the same line retrained from scratch on all training cells. Both
banks score the protocol's test cells (exact search, each bank's own aggregation); prints one
table: seconds (wall, CPU), bank size, threshold, image AUROC.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def auroc_of(banks: Path, line: str, cells: Path) -> float:
    """Image AUROC of `line`'s live bank on <cells>/{good,defect}/*.png (exact search)."""
    from patchline.bank.store import load_bank
    from patchline.core.metrics import auroc
    from patchline.core.preprocess import list_images
    from patchline.core.scoring import aggregate
    from patchline.extractors.image_scores import score_images
    from patchline.models.mindspore_extractor import load_extractor

    bank = load_bank(banks, line)
    settings = bank.meta.line_settings()
    extractor, _ = load_extractor(settings.backbone, settings.layers, None, False)
    good, defect = list_images(cells / "good"), list_images(cells / "defect")
    scores = aggregate(score_images(good + defect, bank.search, extractor, settings), bank.meta.aggregation)
    labels = np.array([0] * len(good) + [1] * len(defect))
    return auroc(labels, scores)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell-type", default="mono")
    ap.add_argument("--add", type=int, default=50, help="training cells held back and then added")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "patchline-grow")
    args = ap.parse_args(argv)

    from patchline.app.demo import write_elpv_line
    from patchline.app.jobs import grow_line, train_line
    from patchline.core.preprocess import list_images
    from patchline.settings import load_category_table

    work = args.work.resolve()
    dataset = write_elpv_line(work / "elpv", args.cell_type, quick=False)
    line = f"elpv-{args.cell_type}"
    cells = dataset / line / "test"
    train = list_images(dataset / line / "train" / "good")
    base = load_category_table(ROOT / "configs" / "elpv.yaml").get(line)
    from patchline.bank.store import load_bank

    rows = []

    def step(name: str, fn, banks: Path) -> None:
        _, wall, cpu = timed(fn)
        meta = load_bank(banks, line).meta
        rows.append((name, wall, cpu, meta.n_patches, meta.threshold, auroc_of(banks, line, cells)))
        print(f"{name}: {wall:.1f} s", file=sys.stderr)

    grown, full = work / "banks-grown", work / "banks-full"
    step(f"train on {len(train) - args.add} cells", lambda: train_line(base, train[: -args.add], grown, progress=False),
         grown)
    step(f"+ `train --add` {args.add} cells", lambda: grow_line(grown, line, train[-args.add:], progress=False), grown)
    step(f"retrain on all {len(train)} cells", lambda: train_line(base, train, full, progress=False), full)
    print(f"\nELPV {args.cell_type}: {len(train)} training cells, the protocol's test cells; configs/elpv.yaml "
          f"({base.backbone}, {base.imagesize} px, {'+'.join(base.layers)}, coreset {base.coreset_ratio}, "
          f"calibration {base.calibration}); exact search; {len(os.sched_getaffinity(0))} CPU cores.\n")
    print("| step | wall s | CPU s | bank patches | threshold | image AUROC |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, wall, cpu, n, threshold, score in rows:
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {n} | {threshold:.4f} | {score:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
