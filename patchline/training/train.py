"""Build one product line's bank: embeddings of good images → coreset → faiss bank + calibration."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from patchline.bank.meta import BankMeta
from patchline.bank.store import read_meta, write_bank
from patchline.core.calibration import calibrate, check_image_count, holdout_split, synthetic_defects
from patchline.core.coreset import RandomProjection, select_from_projection
from patchline.core.search import NearestPatchSearch
from patchline.core.symmetry import symmetric_copy
from patchline.extractors.embeddings import Extractor, ImageItem, as_image, iter_embeddings
from patchline.extractors.image_scores import score_images
from patchline.settings import LineSettings


@dataclass
class TrainResult:
    """What a training run produced: the bank folder and the facts worth printing."""

    bank_dir: Path
    meta: BankMeta
    seconds: float


def image_list_sha256(items: Sequence[ImageItem]) -> str:
    """Hash identifying a training set: file names for paths, pixel bytes for arrays."""
    digest = hashlib.sha256()
    for item in items:
        if isinstance(item, np.ndarray):
            digest.update(hashlib.sha256(np.ascontiguousarray(item).tobytes()).digest())
        else:
            digest.update(Path(item).name.encode() + b"\n")
    return digest.hexdigest()


def collect_embeddings(
    items: Sequence[ImageItem], extractor: Extractor, settings: LineSettings, work_dir: Path, progress: bool
) -> tuple[np.memmap, np.ndarray, tuple[int, int]]:
    """Embed every image into a disk-backed (P, D) float32 matrix and its (P, 128) projection.

    Only the projection lives in RAM, so the full bank is never held twice in memory.
    Returns (embeddings memmap, projected array, patch grid (h, w)).
    """
    matrix = projected = projection = None
    grid = None
    for start, emb in iter_embeddings(items, extractor, settings, progress="features" if progress else None):
        n, h, w, d = emb.shape
        if matrix is None:
            grid = (h, w)
            total = len(items) * h * w
            matrix = np.lib.format.open_memmap(work_dir / "embeddings.npy", mode="w+", dtype=np.float32, shape=(total, d))
            projection = RandomProjection(d, 128, seed=settings.seed)
            projected = np.empty((total, projection(emb[:1, 0, 0, :]).shape[1]), dtype=np.float32)
        rows = slice(start * h * w, (start + n) * h * w)
        flat = emb.reshape(-1, d)
        matrix[rows] = flat
        projected[rows] = projection(flat)
    return matrix, projected, grid


def crossfit_folds(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """Image indices of `folds` folds of n images (seeded, sorted, sizes differ by at most one)."""
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(order[k::folds]) for k in range(folds)]


def patch_rows(images: np.ndarray, per_image: int) -> np.ndarray:
    """Rows of an image-by-image (n_images * per_image, D) patch matrix that belong to `images`
    ((k,) int indices): (k * per_image,) int, image by image."""
    return (images[:, None] * per_image + np.arange(per_image)[None, :]).ravel()


class WithSymmetricCopies:
    """The training images followed by each declared symmetric copy of every one of them
    (originals first, then all copies of the first symmetry, …); copies are made as they are read."""

    def __init__(self, items: Sequence[ImageItem], symmetries: Sequence[str]):
        self.items, self.symmetries = list(items), tuple(symmetries)

    def __len__(self) -> int:
        return len(self.items) * (1 + len(self.symmetries))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        copy, original = divmod(index, len(self.items))
        item = self.items[original]
        return item if copy == 0 else symmetric_copy(as_image(item), self.symmetries[copy - 1])

    def owners(self) -> np.ndarray:
        """(len(self),) int64: the original image each entry was made from."""
        return np.tile(np.arange(len(self.items)), 1 + len(self.symmetries))


def fold_banks(n_images: int, matrix: np.ndarray, projected: np.ndarray, grid: tuple[int, int],
               settings: LineSettings, progress: bool = False,
               owners: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, NearestPatchSearch]]:
    """Cross-fitting's banks: per non-empty fold, (scored image indices, bank image indices, the
    exact search of the coreset — same ratio and seed as the line's — of the bank images' patches).

    matrix: (n_entries * h * w, D) patch embeddings, entry by entry; projected: their (…, 128)
    projection; owners: (n_entries,) the original image of each entry (default: entry i is image i)."""
    owners = np.arange(n_images) if owners is None else owners
    ratio = settings.coreset_ratio * n_images / len(owners)  # the bank keeps ratio × the originals' patches
    folds = crossfit_folds(n_images, settings.folds, settings.seed)
    for scored in tqdm(folds, desc="calibration folds", unit="fold", disable=not progress, leave=False):
        if not len(scored):  # fewer images than folds
            continue
        others = np.setdiff1d(np.arange(n_images), scored)
        rows = patch_rows(np.flatnonzero(np.isin(owners, others)), grid[0] * grid[1])
        chosen = select_from_projection(projected[rows], ratio, settings.seed, False)
        yield scored, others, NearestPatchSearch(np.ascontiguousarray(matrix[rows[np.sort(chosen)]]))


def _defect_scores(items: list, settings: LineSettings, extractor: Extractor, score) -> np.ndarray:
    """(N, h, w) float32 patch scores of each image's synthetic defect, `score(index, (1, h, w, D)
    embeddings)` deciding which bank patches image `index` may match."""
    defects = synthetic_defects([as_image(item) for item in items], settings.seed)
    out = []
    for start, emb in iter_embeddings(defects, extractor, settings):
        out += [score(start + j, emb[j:j + 1])[0] for j in range(len(emb))]
    return np.stack(out).astype(np.float32)


def _crossfit_scores(items: list, matrix: np.ndarray, projected: np.ndarray, grid: tuple[int, int],
                     settings: LineSettings, extractor: Extractor, progress: bool,
                     owners: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    """Held-out scores for every image: fold k's images (and their synthetic defects) scored
    against a bank built, the same way, from the other folds' patches only. Returns (normal
    (N, h, w) float32, defect (N, h, w) float32, [(scored image indices, bank image indices)])."""
    normal = np.empty((len(items),) + grid, dtype=np.float32)
    searches, record = {}, []
    for scored, others, search in fold_banks(len(items), matrix, projected, grid, settings, progress, owners):
        own = patch_rows(scored, grid[0] * grid[1])
        normal[scored] = search.patch_scores(np.asarray(matrix[own]).reshape(len(scored), *grid, -1))
        searches.update({int(i): search for i in scored})
        record.append((scored, others))
    defect = _defect_scores(items, settings, extractor, lambda i, emb: searches[i].patch_scores(emb))
    return normal, defect, record


def _leave_one_out_scores(items: list, matrix: np.ndarray, chosen: np.ndarray, grid: tuple[int, int],
                          settings: LineSettings, extractor: Extractor, progress: bool,
                          owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Held-out scores for every image against the line's own bank (the coreset rows `chosen` of
    the entry-by-entry patch matrix), with every patch the image or its copies contributed left
    out of the search. Returns (normal (N, h, w) float32, defect (N, h, w) float32)."""
    per = grid[0] * grid[1]
    search = NearestPatchSearch(np.ascontiguousarray(matrix[chosen]))
    owner = owners[np.asarray(chosen) // per]
    own_rows = [np.flatnonzero(owner == i) for i in range(len(items))]
    normal = np.empty((len(items),) + grid, dtype=np.float32)
    for i in tqdm(range(len(items)), desc="calibration", unit="img", disable=not progress, leave=False):
        normal[i] = search.patch_scores(np.asarray(matrix[i * per:(i + 1) * per]).reshape(1, *grid, -1), own_rows[i])[0]
    defect = _defect_scores(items, settings, extractor, lambda i, emb: search.patch_scores(emb, own_rows[i]))
    return normal, defect


@dataclass
class _Fitted:
    """What fitting the bank gave: the coreset patches, the patch grid, held-out patch scores of the
    calibration images and of their synthetic defects, and crossfit's folds (None otherwise)."""

    patches: np.ndarray
    grid: tuple[int, int]
    normal: np.ndarray | None = None
    defect: np.ndarray | None = None
    folds: list | None = None


def _fit(fit_items: list, settings: LineSettings, extractor: Extractor, line_dir: Path, progress: bool) -> _Fitted:
    """Embed the bank images (with their symmetric copies), pick the coreset and, for leave_one_out
    and crossfit, score every image held out. The embeddings live on disk in a work folder only."""
    entries = WithSymmetricCopies(fit_items, settings.symmetries)
    owners = entries.owners()
    work_dir = Path(tempfile.mkdtemp(dir=line_dir, prefix=".work-"))
    try:
        matrix, projected, grid = collect_embeddings(entries, extractor, settings, work_dir, progress)
        fitted = _Fitted(patches=np.empty(0), grid=grid)
        if settings.calibration == "crossfit":
            fitted.normal, fitted.defect, fitted.folds = _crossfit_scores(fit_items, matrix, projected, grid, settings,
                                                                          extractor, progress, owners)
        ratio = settings.coreset_ratio / (1 + len(settings.symmetries))
        chosen = np.sort(select_from_projection(projected, ratio, settings.seed, progress))
        del projected
        if settings.calibration == "leave_one_out":
            fitted.normal, fitted.defect = _leave_one_out_scores(fit_items, matrix, chosen, grid, settings,
                                                                 extractor, progress, owners)
        fitted.patches = np.ascontiguousarray(matrix[chosen])
        del matrix
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return fitted


def _calibration(fitted: _Fitted, items: list, hold_items: list, settings: LineSettings, extractor: Extractor) -> dict:
    """calibrate()'s bank.json fields from the held-out scores (scoring the held-out part first for
    holdout), with the scheme in words and crossfit's folds."""
    if settings.calibration == "holdout":
        search = NearestPatchSearch(fitted.patches)
        hold_images = [as_image(i) for i in hold_items]
        fitted.normal = score_images(hold_images, search, extractor, settings)
        fitted.defect = score_images(synthetic_defects(hold_images, settings.seed), search, extractor, settings)
    calibration = calibrate(fitted.normal, fitted.defect, settings.aggregation, settings.false_alarm_rate,
                            settings.imagesize)
    policy = calibration["threshold_policy"]
    if settings.calibration == "leave_one_out":
        policy["scheme"] = ("leave-one-out: the bank holds every image; each image (and its synthetic defect) scored "
                            "against it with the patches that image (and its symmetric copies) contributed left out")
    if fitted.folds is not None:
        policy["scheme"] = (f"cross-fitted: {settings.folds} folds; each image scored against a bank of the other "
                            f"folds' patches (same coreset ratio), the bank itself built from every image")
        policy["folds"] = [{"scored": [_item_name(items[i], i) for i in scored],
                            "bank": [_item_name(items[i], i) for i in bank]} for scored, bank in fitted.folds]
    return calibration


def build_bank(
    settings: LineSettings,
    items: Sequence[ImageItem],
    banks_root: Path,
    extractor: Extractor,
    weights_info: dict | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train `settings.line`'s bank from good images and make it the line's CURRENT version.

    items: good images (file paths or (H, W[, 3]) uint8 arrays). With calibration "holdout", a
    part (settings.holdout_fraction) is held out of the bank to calibrate threshold and
    aggregation (calibration.py); with "leave_one_out" or "crossfit" the bank takes every image
    and each image is scored, for calibration, against the bank without its own patches, or
    against a bank built from the other folds only. With settings.symmetries the bank chooses its
    patches (as many as without) among the images and their symmetric copies.
    weights_info: facts about the backbone weights recorded in bank.json (path, sha256, source).
    """
    began = time.perf_counter()
    items = list(items)
    if settings.calibration in ("crossfit", "leave_one_out"):
        check_image_count(len(items))
        fit_items, hold_items = items, []
    else:
        fit_idx, hold_idx = holdout_split(len(items), settings.holdout_fraction, settings.seed)
        fit_items, hold_items = [items[i] for i in fit_idx], [items[i] for i in hold_idx]
    line_dir = Path(banks_root) / settings.line
    line_dir.mkdir(parents=True, exist_ok=True)
    fitted = _fit(fit_items, settings, extractor, line_dir, progress)
    grid = fitted.grid
    meta = {
        **settings.model_fields(), "target_dim": settings.target_dim, "grid": list(grid),
        "coreset_ratio": settings.coreset_ratio, "seed": settings.seed, "symmetries": list(settings.symmetries),
        "weights": weights_info or {},
        "training": {
            "n_images": len(items), "n_bank_images": len(fit_items), "n_holdout_images": len(hold_items),
            "calibration": settings.calibration, "image_list_sha256": image_list_sha256(items),
            "n_patches_before_coreset": int(len(fit_items) * (1 + len(settings.symmetries)) * grid[0] * grid[1]),
        },
        **_calibration(fitted, items, hold_items, settings, extractor),
    }
    bank_dir = write_bank(banks_root, settings.line, fitted.patches, meta, settings.search, settings.ef_search)
    return TrainResult(bank_dir=bank_dir, meta=read_meta(bank_dir), seconds=time.perf_counter() - began)


def _item_name(item: ImageItem, index: int) -> str:
    """How bank.json names a training image: its file name, or #index for an array."""
    return f"#{index}" if isinstance(item, np.ndarray) else Path(item).name
