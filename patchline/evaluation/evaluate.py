"""Batch evaluation of trained banks on MVTec AD-layout test sets.

Reports image AUROC for every aggregation (the reference project's table), the line's own aggregation chosen
from normal images (with a bootstrap interval), what the bank's own threshold does on the test
images (detection and false-alarm rates with Wilson intervals), pixel AUROC and PRO; writes CSV +
Markdown and heat-map overlays.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np

from patchline.bank.store import Bank
from patchline.core.anomaly_map import anomaly_map, overlay
from patchline.core.intervals import bootstrap_auroc, operating_point
from patchline.core.metrics import auroc, pro_score
from patchline.core.preprocess import center_crop, load_mask, mask_to_crop, resize_image, to_rgb
from patchline.core.scoring import AGGREGATIONS, aggregate, aggregate_all
from patchline.data.datasets import MvtecCategory
from patchline.core.metrics import metric_text
from patchline.extractors.embeddings import Extractor, as_image
from patchline.extractors.image_scores import score_images
from patchline.report.picks import report_picks
from patchline.settings import LineSettings


def _overlay_sample(labels: np.ndarray, count: int) -> list[int]:
    """Indices of up to `count` images, half defects and half good, spread over the test set."""
    picks = []
    for label in (1, 0):
        idx = np.flatnonzero(labels == label)
        take = min(len(idx), count - count // 2 if label == 1 else count // 2)
        picks += [int(idx[i]) for i in np.linspace(0, len(idx) - 1, take).round().astype(int)] if take else []
    return sorted(set(picks))


def _masks(samples, settings: LineSettings, shape: tuple) -> np.ndarray:
    """(N, S, S) bool ground-truth masks cropped as the model saw each image (all False without one)."""
    masks = np.zeros(shape, dtype=bool)
    for i, sample in enumerate(samples):
        if sample.mask_path is not None:
            masks[i] = mask_to_crop(load_mask(sample.mask_path), settings.resize, settings.imagesize, settings.resize_type)
    return masks


def _write_scores(path: Path, samples, image_scores: dict) -> None:
    """scores.csv: one row per test image with its label and every aggregation's score."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "defect_type", "label", *image_scores])
        for i, sample in enumerate(samples):
            writer.writerow([str(sample.path), sample.defect_type, sample.label,
                             *(f"{image_scores[a][i]:.9g}" for a in image_scores)])


def _picture_maker(paths: list, maps: np.ndarray, masks: np.ndarray, settings: LineSettings):
    """picture(i) → (S, 2S, 3) uint8 BGR: image i's crop beside its heat-map overlay, the true defect
    outlined; one colour scale for the whole test set."""
    vmin, vmax = float(np.quantile(maps, 0.01)), float(np.quantile(maps, 0.999))

    def picture(i: int) -> np.ndarray:
        crop = to_rgb(center_crop(resize_image(as_image(paths[i]), settings.resize, settings.resize_type),
                                   settings.imagesize))
        heat = overlay(crop, maps[i], vmin, vmax)
        if masks[i].any():
            contours, _ = cv2.findContours(masks[i].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(heat, contours, -1, (255, 255, 255), 1)
        return cv2.cvtColor(np.hstack([crop, heat]), cv2.COLOR_RGB2BGR)
    return picture


def evaluate_category(
    category: MvtecCategory,
    bank: Bank,
    extractor: Extractor,
    settings: LineSettings,
    out_dir: Path,
    n_overlays: int = 6,
    progress: bool = True,
) -> dict:
    """Score a category's test set; write its per-image scores CSV and overlays under out_dir/<name>.

    Returns one results row: image AUROC per aggregation (`image_auroc[<agg>]`), the bank's chosen
    aggregation and its AUROC with a 95 % bootstrap interval, pixel AUROC, PRO, and the operating
    point at the bank's threshold (`operating_point`: detection and false-alarm rates with 95 %
    Wilson intervals; reported only: nothing here feeds back into a setting).
    """
    samples = category.test_samples()
    paths = [s.path for s in samples]
    labels = np.array([s.label for s in samples])
    patch_scores = score_images(paths, bank, extractor, settings, progress=f"test {category.name}" if progress else None)
    image_scores = aggregate_all(patch_scores)
    chosen = bank.meta.aggregation
    if chosen not in image_scores:
        image_scores[chosen] = aggregate(patch_scores, chosen, bank.meta.score_reference)
    maps = anomaly_map(patch_scores, settings.imagesize)
    masks = _masks(samples, settings, maps.shape)
    has_pixel_truth = masks.any()
    cat_dir = Path(out_dir) / category.name
    (cat_dir / "overlays").mkdir(parents=True, exist_ok=True)
    _write_scores(cat_dir / "scores.csv", samples, image_scores)
    picture = _picture_maker(paths, maps, masks, settings)
    for i in _overlay_sample(labels, n_overlays):
        cv2.imwrite(str(cat_dir / "overlays" / f"{samples[i].defect_type}_{paths[i].stem}.png"), picture(i))
    _write_report_data(cat_dir, samples, labels, image_scores, chosen, bank.meta.threshold, picture)

    threshold = bank.meta.threshold
    point = operating_point(labels, image_scores[chosen], threshold)
    _, auroc_low, auroc_high = bootstrap_auroc(labels, image_scores[chosen])
    return {
        "category": category.name,
        "n_good": int((labels == 0).sum()),
        "n_defect": int((labels == 1).sum()),
        "image_auroc": {a: auroc(labels, image_scores[a]) for a in dict.fromkeys([*AGGREGATIONS, chosen])},
        "aggregation": chosen,
        "chosen_auroc": auroc(labels, image_scores[chosen]),
        "chosen_auroc_interval": (auroc_low, auroc_high),
        "pixel_auroc": auroc(masks.ravel(), maps.ravel()) if has_pixel_truth else float("nan"),
        "pro": pro_score(masks, maps) if has_pixel_truth else float("nan"),
        "threshold": threshold,
        "promise": (bank.meta.get("threshold_policy") or {}).get("promise", {}).get("text", ""),
        "operating_point": point,
        "test_false_alarm_rate": point.false_alarm_rate,
        "test_miss_rate": 1.0 - point.detection,
    }


def _write_report_data(cat_dir: Path, samples, labels: np.ndarray, image_scores: dict, chosen: str,
                       threshold: float, picture) -> None:
    """cat_dir/report.json (labels, every aggregation's scores, the pictures it shows) and report/*.jpg."""
    picks = report_picks(labels, image_scores[chosen], threshold)
    shown_dir = cat_dir / "report"
    shown_dir.mkdir(exist_ok=True)
    for old in shown_dir.glob("*.jpg"):  # a re-run shows this run's pictures only
        old.unlink()
    shown = []
    for kind in ("top_defects", "missed_defects", "false_alarms"):
        for rank, i in enumerate(picks[kind]):
            name = f"{kind}_{rank:02d}_{samples[i].path.stem}.jpg"
            cv2.imwrite(str(shown_dir / name), picture(i), [cv2.IMWRITE_JPEG_QUALITY, 85])
            shown.append({"kind": kind, "file": f"report/{name}", "image": str(samples[i].path),
                          "defect_type": samples[i].defect_type, "score": float(image_scores[chosen][i])})
    data = {"aggregation": chosen, "threshold": float(threshold), "labels": [int(v) for v in labels],
            "scores": {a: [float(v) for v in values] for a, values in image_scores.items()},
            "shown": shown, "false_alarm_count": picks["false_alarm_count"][0]}
    (cat_dir / "report.json").write_text(json.dumps(data))


_OPERATING = ["detection", "detection_low", "detection_high", "false_alarm_rate", "false_alarm_low",
              "false_alarm_high"]


def _columns() -> list[str]:
    return (["category", "n_good", "n_defect"] + [f"auroc_{a}" for a in AGGREGATIONS]
            + ["aggregation", "auroc_chosen", "auroc_chosen_low", "auroc_chosen_high", "pixel_auroc", "pro",
               "threshold"] + _OPERATING)


def _flatten(row: dict) -> list:
    point = row["operating_point"].as_dict()
    return ([row["category"], row["n_good"], row["n_defect"]] + [row["image_auroc"][a] for a in AGGREGATIONS]
            + [row["aggregation"], row["chosen_auroc"], *row["chosen_auroc_interval"], row["pixel_auroc"],
               row["pro"], row["threshold"]] + [point[c] for c in _OPERATING])


def _mean_row(rows: list[dict]) -> list:
    """Means of the AUROCs and rates over categories; intervals and thresholds do not average."""
    flat = [_flatten(r) for r in rows]
    columns = _columns()
    mean = ["mean", sum(f[1] for f in flat), sum(f[2] for f in flat)]
    for col in range(3, len(flat[0])):
        values = [f[col] for f in flat]
        skip = isinstance(values[0], str) or columns[col] == "threshold" or columns[col].endswith(("_low", "_high"))
        mean.append("" if skip else float(np.nanmean(values)))
    return mean


def write_reports(rows: list[dict], out_dir: Path) -> tuple[Path, Path]:
    """Write results.csv and results.md (one row per category plus a mean row); return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = [_flatten(r) for r in rows] + ([_mean_row(rows)] if len(rows) > 1 else [])
    csv_path, md_path = out_dir / "results.csv", out_dir / "results.md"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_columns())
        writer.writerows(table)
    lines = ["| " + " | ".join(_columns()) + " |", "|" + "---|" * len(_columns())]
    lines += ["| " + " | ".join(metric_text(v) for v in row) + " |" for row in table]
    md_path.write_text(
        "Image AUROC for every aggregation; `aggregation` is the one each bank chose from normal images "
        "(and synthetic defects) only, `auroc_chosen` its test AUROC with a 95 % stratified bootstrap interval. "
        "detection / false_alarm_rate: the shares of defective / good test images the bank's own threshold "
        "flags, with 95 % Wilson intervals.\n\n" + "\n".join(lines) + "\n"
    )
    return csv_path, md_path


def summary_table(rows: list[dict]) -> str:
    """A compact text table for the terminal: category, chosen aggregation, AUROCs, PRO, and under
    each category what the bank's own threshold does on the test images (with 95 % intervals)."""
    head = (f"{'category':<14}{'aggregation':<12}{'img AUROC':>10}{'95 % interval':>17}{'best any':>10}"
            f"{'pix AUROC':>10}{'PRO':>8}")
    out = [head]
    for r in rows:
        best = max(r["image_auroc"].values())
        low, high = r["chosen_auroc_interval"]
        out.append(f"{r['category']:<14}{r['aggregation']:<12}{metric_text(r['chosen_auroc']):>10}"
                   f"{'[' + metric_text(low) + ', ' + metric_text(high) + ']':>17}{metric_text(best):>10}"
                   f"{metric_text(r['pixel_auroc']):>10}{metric_text(r['pro']):>8}")
        out.append(f"  at its threshold {r['threshold']:.4g}: {r['operating_point'].text()}")
        if r.get("promise"):
            out.append(f"  the threshold promised: {r['promise']}")
    return "\n".join(out)
