"""The offline jobs as functions: train a line, evaluate lines, export a backbone's models.

The CLI parses arguments and calls these; the demo calls them directly. Heavy imports (MindSpore,
faiss) happen inside, so importing this module is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from patchline.errors import PatchlineError
from patchline.names import check_name
from patchline.settings import LineSettings

ExtractorCache = dict  # (backbone, layers, weights) → (extractor, weights facts)


def cached_extractor(cache: ExtractorCache, backbone: str, layers, weights: Path | None, random_weights: bool):
    from patchline.models.mindspore_extractor import load_extractor

    key = (backbone, tuple(layers), None if weights is None else str(weights))
    if key not in cache:
        cache[key] = load_extractor(backbone, layers, weights, random_weights)
    return cache[key]


def train_line(settings: LineSettings, items: Sequence, banks: Path, random_weights: bool = False,
               progress: bool = True, extractor_cache: ExtractorCache | None = None):
    """Build and calibrate `settings.line`'s bank from good images (paths or arrays) under `banks`.

    Checks the line name and image count before loading the backbone. Returns the TrainResult.
    """
    from patchline.core.calibration import check_image_count
    from patchline.training.train import build_bank

    check_name(settings.line, "line")
    check_image_count(len(items))
    weights = Path(settings.weights) if settings.weights else None
    extractor, facts = cached_extractor({} if extractor_cache is None else extractor_cache,
                                  settings.backbone, settings.layers, weights, random_weights)
    with _writing_line(banks, settings.line):
        return build_bank(settings, items, banks, extractor, facts, progress=progress)


def _writing_line(banks: Path, line: str):
    """Remove what earlier, crashed writes left in the line's folder, then hold its writers' lock."""
    from patchline.bank.leftovers import remove_leftovers, writing

    line_dir = Path(banks) / line
    try:
        remove_leftovers(line_dir)
        line_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PatchlineError(f"cannot use the bank folder {line_dir}: {exc.strerror or exc}.") from None
    return writing(line_dir)


def grow_line(banks: Path, line: str, items: Sequence, weights: Path | None = None, random_weights: bool = False,
              progress: bool = True, reason: str = "added good images", cover: bool = False):
    """Grow `line`'s live bank with good images (training/grow.py); returns the TrainResult."""
    from patchline.bank.store import load_bank
    from patchline.training.grow import grow_bank

    check_name(line, "line")
    meta = load_bank(banks, line).meta  # refused in one sentence before the backbone loads
    extractor, facts = cached_extractor({}, meta.backbone, meta.layers, weights, random_weights)
    with _writing_line(banks, line):
        return grow_bank(banks, line, items, extractor, facts.get("sha256"), progress, reason, cover)


def trained_summary(result) -> str:
    """Lines describing a TrainResult: bank size, images, time, aggregation, threshold and what it
    promises (with the too-few-images warning when there is one), folder."""
    m = result.meta
    training = m["training"]
    promise = (m.get("threshold_policy") or {}).get("promise") or {}
    lines = [f"line {m.line}: bank {m.version} with {m.n_patches} × {m.embedding_dim} patches "
             f"from {training['n_bank_images']} images ({training['n_holdout_images']} held out) "
             f"in {result.seconds:.1f} s; aggregation {m.aggregation}, threshold {m.threshold:.4f}"]
    if promise:
        lines.append(f"  the threshold promises: {promise['text']}")
    if promise.get("warning"):
        lines.append(f"  warning: {promise['warning']}")
    return "\n".join(lines + [f"  written to {result.bank_dir}"])


@dataclass(frozen=True)
class Weights:
    """The backbone weights a job uses: a file (None: the packaged ImageNet weights) or random ones."""

    path: Path | None = None
    random: bool = False


def evaluate_lines(dataset: Path, categories: Sequence[str], banks: Path, out: Path, line: str | None = None,
                   weights: Weights = Weights(), overlays: int = 6, progress: bool = True) -> tuple[list, Path, Path]:
    """Score each MVTec-layout category's test set against its bank (named `line` when given).

    Features come from the bank's own settings (BankMeta.line_settings); the weights must be the
    ones the bank was built with. Writes results.csv / .md and report.html into `out`.
    Returns (report rows, CSV path, Markdown path)."""
    from patchline.bank.store import load_bank
    from patchline.data.datasets import MvtecCategory
    from patchline.evaluation.evaluate import evaluate_category, write_reports
    from patchline.report.html_report import write_html_report

    rows, cache = [], {}
    for name in categories:
        category = MvtecCategory(dataset, name).check()
        bank = load_bank(banks, line or name)
        settings = bank.meta.line_settings()
        extractor, facts = cached_extractor(cache, settings.backbone, settings.layers, weights.path, weights.random)
        if facts["sha256"] != bank.meta.weights_sha256:
            raise PatchlineError(
                f"bank {bank.meta.name} was built with weights {bank.meta.get('weights', {}).get('file')} "
                f"but evaluation would use {facts['file']}; pass the same --weights.")
        rows.append(evaluate_category(category, bank, extractor, settings, out, overlays, progress))
    csv_path, md_path = write_reports(rows, out)
    write_html_report(rows, out)
    return rows, csv_path, md_path


def export_backbone(backbone: str, imagesize: int, out: Path, weights: Path | None = None,
                    random_weights: bool = False) -> dict[str, Path]:
    """Export `backbone`'s split layer2 / layer3 models for `imagesize` into `out`; {name: path}."""
    from patchline.models.export import export_models
    from patchline.models.registry import backbone_spec
    from patchline.models.weights import resolve_weights

    spec = backbone_spec(backbone)
    if weights is None and not spec.packaged_weights and not random_weights:
        raise PatchlineError(f"backbone {backbone} needs --weights FILE (or --random-weights for speed tests).")
    ckpt = resolve_weights(backbone, weights, out) if (weights or spec.packaged_weights) else None
    return export_models(backbone, ckpt, imagesize, out)
