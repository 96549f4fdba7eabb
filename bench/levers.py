"""What raises detection at the bank's own threshold: the levers, each against the line's setting,
on the same test cells with paired intervals (benchmark only: the test split chooses nothing).

For each ELPV line (the fixed split of docs/benchmarks.md) every lever trains a bank with
`patchline train`'s code (leave-one-out calibration, 1 % target) and scores the test cells:
- the line's setting (configs/elpv.yaml) and, from the same bank, every other aggregation at the
  threshold its own held-out scores give;
- symmetries: the bank also chooses among flipped / turned copies (hflip, vflip, rot180);
- another backbone: the setting `patchline tune` chose from good cells (configs/elpv-*.tuned.yaml);
- two backbones fused: each bank's image score standardised by its own held-out training scores
  (mean, std), the two averaged; threshold: the same conformal rule on the averaged held-out scores.
Each row: AUROC [bootstrap 95 %], detection and false alarms at the threshold [Wilson 95 %], the
paired difference in detection against the line's setting [paired bootstrap 95 %], and the
detection the scores would give with the threshold on the test normals' own 1 % point.

    python -m bench.levers [--cell-types mono,poly] [--levers setting,symmetries,tuned,fused]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LEVERS = ("setting", "symmetries", "tuned", "fused")
SYMMETRIES = ["hflip", "vflip", "rot180"]


def train_lever(cell_type: str, lever: str, quick: bool = False) -> dict:
    """Train one lever's bank on the split's training cells and score its test cells (this process).
    Returns {aggregation: {"test": [...], "calibration": [...]}} plus the bank's facts."""
    from bench.elpv import train_and_score
    from patchline.core.scoring import aggregate_all
    from patchline.data.datasets import elpv_split
    from patchline.settings import load_category_table

    config = ROOT / "configs" / ("elpv-%s.tuned.yaml" % cell_type if lever == "tuned" else "elpv.yaml")
    settings = load_category_table(config).get(f"elpv-{cell_type}").replace(calibration="leave_one_out",
                                                                              false_alarm_rate=0.01)
    if lever == "symmetries":
        settings = settings.replace(symmetries=tuple(SYMMETRIES))
    split = elpv_split(cell_type)
    if quick:  # a smoke test of the bench itself: figures not for reporting
        split = type(split)(cell_type, split.train[:60], split.test_normal[:20], split.test_defect[:20])
    trained = train_and_score(settings, split)
    patch, train_cpu = trained["patch_scores"], trained["train_cpu_s"]
    meta = trained["meta"]
    test = aggregate_all(patch)
    return {"lever": lever, "aggregation": meta.aggregation, "n_patches": meta.n_patches,
            "setting": f"{settings.backbone} {settings.imagesize} px {'+'.join(settings.layers)}, coreset "
                       f"{settings.coreset_ratio}" + (f", symmetries {','.join(settings.symmetries)}"
                                                      if settings.symmetries else ""),
            "train_cpu_s": train_cpu, "labels": [0] * len(split.test_normal) + [1] * len(split.test_defect),
            "scores": {a: {"test": [float(v) for v in test[a]],
                           "calibration": list(meta["calibration_scores"]["image"][a])} for a in test}}


def fused(first: dict, second: dict) -> dict:
    """Two banks' chosen-aggregation scores, each standardised by its own held-out training scores,
    averaged: {"test": [...], "calibration": [...]} (both banks scored the same images in the same order)."""
    def z(bank: dict) -> tuple[np.ndarray, np.ndarray]:
        s = bank["scores"][bank["aggregation"]]
        calib = np.asarray(s["calibration"])
        mean, std = calib.mean(), calib.std()
        return (np.asarray(s["test"]) - mean) / std, (calib - mean) / std
    (t1, c1), (t2, c2) = z(first), z(second)
    return {"test": list((t1 + t2) / 2), "calibration": list((c1 + c2) / 2)}


def _paired_detection(labels: np.ndarray, flagged_a: np.ndarray, flagged_b: np.ndarray,
                      n_boot: int = 2000) -> tuple[float, float, float]:
    """Detection(a) − detection(b) over the same defective images, with a paired bootstrap interval."""
    a, b = flagged_a[labels].astype(float), flagged_b[labels].astype(float)
    idx = np.random.default_rng(0).integers(0, len(a), (n_boot, len(a)))
    diffs = a[idx].mean(axis=1) - b[idx].mean(axis=1)
    return float(a.mean() - b.mean()), float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))


def row(name: str, labels: np.ndarray, scores: dict, reference: np.ndarray | None) -> tuple[str, np.ndarray]:
    """One Markdown row for a score set ({"test", "calibration"}); returns it and the flags it gives."""
    from patchline.core.calibration import threshold_at
    from patchline.core.intervals import bootstrap_auroc, distinguishable, operating_point, threshold_for_rate
    from patchline.core.scoring import is_defect

    test = np.asarray(scores["test"])
    threshold = threshold_at(np.asarray(scores["calibration"]), 0.01)
    point = operating_point(labels, test, threshold)
    auc, low, high = bootstrap_auroc(labels, test)
    flags = is_defect(test, threshold)
    if reference is None:
        paired = "—"
    else:
        diff, d_low, d_high = _paired_detection(labels, flags, reference)
        verdict = "" if distinguishable(d_low, d_high) else ", not distinguishable"
        paired = f"{diff:+.3f} [{d_low:+.3f}, {d_high:+.3f}]{verdict}"
    d_lo, d_hi = point.detection_interval
    f_lo, f_hi = point.false_alarm_interval
    at_test = operating_point(labels, test, threshold_for_rate(test[~labels], 0.01)).detection
    return (f"| {name} | {auc:.4f} [{low:.4f}, {high:.4f}] | {point.detection:.3f} [{d_lo:.3f}, {d_hi:.3f}] | "
            f"{point.false_alarms}/{point.n_good} = {point.false_alarm_rate:.3f} [{f_lo:.3f}, {f_hi:.3f}] | "
            f"{paired} | {at_test:.3f} |", flags)


def calibration_table(base: dict) -> str:
    """Does the threshold hit its target? The setting's bank moved to several targets from its kept
    held-out scores (as `patchline threshold` moves it): realised test false alarms against the
    counts the target itself would give, and the detection there."""
    from patchline.core.calibration import threshold_at
    from patchline.core.intervals import binomial_range, operating_point

    labels = np.asarray(base["labels"]).astype(bool)
    scores = base["scores"][base["aggregation"]]
    lines = ["| target | threshold | realised false alarms [Wilson 95 %] | counts the target gives (95 %) | "
             "detection [Wilson 95 %] |", "|---|---|---|---|---|"]
    for rate in (0.01, 0.02, 0.05, 0.10):
        threshold = threshold_at(np.asarray(scores["calibration"]), rate)
        p = operating_point(labels, np.asarray(scores["test"]), threshold)
        low, high = binomial_range(p.n_good, rate)
        inside = "inside" if low <= p.false_alarms <= high else "**outside**"
        f_lo, f_hi = p.false_alarm_interval
        d_lo, d_hi = p.detection_interval
        lines.append(f"| {rate:.0%} | {threshold:.3f} | {p.false_alarms}/{p.n_good} = {p.false_alarm_rate:.3f} "
                     f"[{f_lo:.3f}, {f_hi:.3f}] | {low}–{high}: {inside} | {p.detection:.3f} [{d_lo:.3f}, {d_hi:.3f}] |")
    return "\n".join(lines)


def table(cell_type: str, banks: dict[str, dict]) -> str:
    """The Markdown table of one line: the setting's row first, every other aggregation, each lever."""
    base = banks["setting"]
    labels = np.asarray(base["labels"]).astype(bool)
    lines = [f"ELPV {cell_type} ({int((~labels).sum())} good, {int(labels.sum())} defective test cells; "
             f"threshold: 1 % target, leave-one-out; a lever's detection is paired with the setting's)", "",
             "| lever | AUROC | detection at the bank's threshold | false alarms | detection − setting's | "
             "benchmark only: detection at the test normals' 1 % point |", "|---|---|---|---|---|---|"]
    first, reference = row(f"setting: {base['setting']}, {base['aggregation']} (chosen)", labels,
                           base["scores"][base["aggregation"]], None)
    lines.append(first)
    for agg, scores in base["scores"].items():
        if agg != base["aggregation"]:
            lines.append(row(f"same bank, {agg}", labels, scores, reference)[0])
    for lever in ("symmetries", "tuned"):
        if lever in banks:
            b = banks[lever]
            lines.append(row(f"{lever}: {b['setting']}, {b['aggregation']}", labels, b["scores"][b["aggregation"]],
                             reference)[0])
    if "fused" in banks:
        lines.append(row("fused: setting + tuned (standardised scores averaged)", labels, banks["fused"], reference)[0])
    costs = ", ".join(f"{k} {v['train_cpu_s']:.0f} CPU s / {v['n_patches']} patches" for k, v in banks.items()
                      if isinstance(v, dict) and "train_cpu_s" in v)
    return "\n".join(lines + ["", f"training: {costs}", "", f"The setting's threshold moved to other targets "
                              f"({base['aggregation']}, from its own held-out scores):", "", calibration_table(base)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell-types", default="mono,poly")
    parser.add_argument("--levers", default=",".join(LEVERS))
    parser.add_argument("--quick", action="store_true", help="60 training and 40 test cells: checks the bench runs")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(train_lever(*args.one, quick=args.quick)))
        return 0
    levers = args.levers.split(",")
    for cell_type in args.cell_types.split(","):
        banks = {}
        for lever in [lv for lv in ("setting", "symmetries", "tuned") if lv in levers or
                      (lv in ("setting", "tuned") and "fused" in levers) or lv == "setting"]:
            done = subprocess.run([sys.executable, "-m", "bench.levers", "--one", cell_type, lever]
                                  + (["--quick"] if args.quick else []), cwd=ROOT,
                                  capture_output=True, text=True, check=True)
            banks[lever] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{cell_type} {lever}: {banks[lever]['train_cpu_s']:.0f} CPU s of training", file=sys.stderr)
        if "fused" in levers:
            banks["fused"] = fused(banks["setting"], banks["tuned"])
        if "tuned" not in levers:
            banks.pop("tuned", None)
        print(table(cell_type, banks) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
