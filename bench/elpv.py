"""ELPV benchmark (the fixed split of docs/benchmarks.md): what the bank's own threshold does, every
aggregation's AUROC, the leak-free choice, cost.

For each cell type (mono, poly): train a bank on the split's training normals with a line settings
file (default configs/elpv.yaml; threshold and aggregation chosen from held-out training normals
and synthetic defects only), then score the test normals and test defects (proba == 1): detection
and false-alarm rates at the bank's threshold with 95 % Wilson intervals, AUROC with a bootstrap
interval. Each cell type runs in its own process so peak RSS is its own. Prints a Markdown table.

    python bench/elpv.py [--cell-types mono,poly] [--config FILE] [--coreset 0.1]
                         [--calibration leave_one_out|crossfit|holdout]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_and_score(settings, split) -> dict:
    """Train `settings`' bank on an ElpvSplit's training cells with `patchline train`'s code and score its
    test cells (normals first, then defects) against it. Returns {"meta": BankMeta, "patch_scores":
    (N, h, w) float32, "train_s", "train_cpu_s", "score_s", "index_bytes"}; the bank is thrown away."""
    from patchline.bank.store import load_bank
    from patchline.extractors.image_scores import score_images
    from patchline.models.mindspore_extractor import load_extractor
    from patchline.training.train import build_bank

    extractor, facts = load_extractor(settings.backbone, settings.layers, cache_dir=ROOT / "models")
    with tempfile.TemporaryDirectory() as banks:
        began, began_cpu = time.perf_counter(), time.process_time()
        result = build_bank(settings, list(split.train), Path(banks), extractor, facts, progress=False)
        train_s, train_cpu_s = time.perf_counter() - began, time.process_time() - began_cpu
        bank = load_bank(Path(banks), settings.line)
        began = time.perf_counter()
        patch_scores = score_images(list(split.test_normal) + list(split.test_defect), bank, extractor, settings)
        return {"meta": bank.meta, "patch_scores": patch_scores, "train_s": train_s, "train_cpu_s": train_cpu_s,
                "score_s": time.perf_counter() - began,
                "index_bytes": (result.bank_dir / "index.faiss").stat().st_size}


def run_one(cell_type: str, coreset: float | None, size: int | None = None, calibration: str | None = None,
            config: Path = ROOT / "configs" / "elpv.yaml") -> dict:
    """Train + score one cell type in this process; return the measurements."""
    import numpy as np

    from patchline.core.metrics import auroc
    from patchline.core.intervals import binomial_range, bootstrap_auroc, operating_point, threshold_for_rate
    from patchline.core.scoring import AGGREGATIONS, aggregate_all
    from patchline.data.datasets import elpv_split
    from patchline.settings import load_category_table

    settings = load_category_table(config).get(f"elpv-{cell_type}")
    if coreset:
        settings = settings.replace(coreset_ratio=coreset)
    if size:
        settings = settings.replace(resize=size, imagesize=size)
    if calibration:
        settings = settings.replace(calibration=calibration)
    split = elpv_split(cell_type)
    trained = train_and_score(settings, split)
    meta, patch_scores, train_s, score_s = trained["meta"], trained["patch_scores"], trained["train_s"], trained["score_s"]
    index_bytes = trained["index_bytes"]
    labels = np.r_[np.zeros(len(split.test_normal)), np.ones(len(split.test_defect))]
    scores = aggregate_all(patch_scores)
    chosen = meta.aggregation
    point = operating_point(labels, scores[chosen], meta.threshold)
    good = scores[chosen][labels == 0]
    at_test = {rate: operating_point(labels, scores[chosen], threshold_for_rate(good, rate)).as_dict()
               for rate in (0.01, 0.02)}
    policy = meta["threshold_policy"]
    return {
        "cell_type": cell_type, "n_train": len(split.train), "n_test_normal": len(split.test_normal),
        "n_test_defect": len(split.test_defect), "auroc": {a: auroc(labels, scores[a]) for a in AGGREGATIONS},
        "chosen": chosen, "chosen_auroc": auroc(labels, scores[chosen]), "train_s": train_s,
        "score_ms_per_image": 1000 * score_s / len(labels),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "bank_patches": meta.n_patches, "bank_dim": meta.embedding_dim,
        "bank_mib": index_bytes / 2**20, "operating_point": point.as_dict(), "operating_text": point.text(),
        "auroc_interval": bootstrap_auroc(labels, scores[chosen])[1:], "at_test_normals": at_test,
        "target": policy["false_alarm_rate"], "promise": policy["promise"]["text"],
        "target_counts": binomial_range(len(good), policy["false_alarm_rate"]), "coreset_ratio": settings.coreset_ratio,
        "imagesize": settings.imagesize, "layers": "+".join(settings.layers), "backbone": settings.backbone,
        "synthetic_auroc": meta["aggregation_choice"]["synthetic_auroc"][chosen],
        "calibration": settings.calibration, "n_bank_images": meta["training"]["n_bank_images"],
    }


def _at_threshold(r: dict) -> str:
    p = r["operating_point"]
    low, high = r["target_counts"]
    inside = "inside" if low <= p["false_alarms"] <= high else "OUTSIDE"
    return (f"detection {p['detection']:.3f} [{p['detection_low']:.3f}, {p['detection_high']:.3f}]; false alarms "
            f"{p['false_alarms']}/{p['n_good']} = {p['false_alarm_rate']:.3f} [{p['false_alarm_low']:.3f}, "
            f"{p['false_alarm_high']:.3f}], {inside} the {low}–{high} a {r['target']:g} target gives")


def table(results: list[dict]) -> str:
    """Markdown: one column per cell type, one row per aggregation and per cost figure."""
    from patchline.core.scoring import AGGREGATIONS

    head = "| | " + " | ".join(r["cell_type"] for r in results) + " |"
    lines = [head, "|---" * (len(results) + 1) + "|"]
    for a in AGGREGATIONS:
        lines.append(f"| image AUROC {a} | " + " | ".join(f"{r['auroc'][a]:.4f}" for r in results) + " |")
    rows = [
        ("**chosen (normals only)**", lambda r: f"**{r['chosen']}: {r['chosen_auroc']:.4f}** "
                                                f"[{r['auroc_interval'][0]:.4f}, {r['auroc_interval'][1]:.4f}]"),
        ("synthetic-defect AUROC of the choice (training data only)", lambda r: f"{r['synthetic_auroc']:.4f}"),
        ("**at the bank's own threshold** (95 % Wilson intervals)", _at_threshold),
        ("what the threshold promised (training normals only)", lambda r: r["promise"]),
        ("benchmark only: detection with the threshold on the test normals' own 1 % / 2 % point",
         lambda r: " / ".join(f"{r['at_test_normals'][k]['detection']:.3f}" for k in ("0.01", "0.02"))),
        ("train images / test normal / test defect", lambda r: f"{r['n_train']} / {r['n_test_normal']} / {r['n_test_defect']}"),
        ("train time (s)", lambda r: f"{r['train_s']:.1f}"),
        ("scoring (ms / image)", lambda r: f"{r['score_ms_per_image']:.1f}"),
        ("peak RSS (MiB)", lambda r: f"{r['peak_rss_mib']:.0f}"),
        ("bank (patches × dim, MiB)", lambda r: f"{r['bank_patches']} × {r['bank_dim']}, {r['bank_mib']:.1f}"),
        ("settings", lambda r: f"{r['backbone']}, {r['imagesize']} px, {r['layers']}, coreset {r['coreset_ratio']}"),
        ("calibration (bank images)", lambda r: f"{r['calibration']} ({r['n_bank_images']})"),
    ]
    for name, cell in rows:
        lines.append(f"| {name} | " + " | ".join(cell(r) for r in results) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell-types", default="mono,poly")
    parser.add_argument("--coreset", type=float, help="override the coreset ratio of configs/elpv.yaml")
    parser.add_argument("--size", type=int, help="override resize = imagesize (whole cell) of configs/elpv.yaml")
    parser.add_argument("--calibration", choices=("leave_one_out", "crossfit", "holdout"),
                        help="override the calibration scheme")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "elpv.yaml",
                        help="the line settings file with elpv-mono / elpv-poly entries (default configs/elpv.yaml)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.coreset, args.size, args.calibration, args.config)))
        return
    results = []
    for cell_type in args.cell_types.split(","):
        cmd = [sys.executable, __file__, "--one", cell_type, "--config", str(args.config)] + (["--coreset", str(args.coreset)] if args.coreset else []) \
            + (["--size", str(args.size)] if args.size else []) \
            + (["--calibration", args.calibration] if args.calibration else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{cell_type}: done in {results[-1]['train_s']:.0f} s of training", file=sys.stderr)
    print(table(results))


if __name__ == "__main__":
    main()
