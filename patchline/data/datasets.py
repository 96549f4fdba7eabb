"""Where images come from: MVTec AD folders, a plain folder of good images, the ELPV solar cells."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from patchline.core.preprocess import list_images
from patchline.errors import PatchlineError


@dataclass(frozen=True)
class LabelledImage:
    """One test image: its file, 0 = good / 1 = defect, the defect type, and its mask file if any."""

    path: Path
    label: int
    defect_type: str
    mask_path: Path | None


def good_images(folder: str | Path) -> list[Path]:
    """The image files of a product line's folder of good parts; PatchlineError if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PatchlineError(f"image folder {folder} does not exist.")
    images = list_images(folder)
    if not images:
        raise PatchlineError(f"image folder {folder} holds no images (.png, .jpg, .bmp, .tif).")
    return images


def mvtec_categories(root: str | Path) -> list[str]:
    """Category names under an MVTec AD root (folders holding train/good), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise PatchlineError(f"dataset folder {root} does not exist.")
    names = sorted(p.name for p in root.iterdir() if (p / "train" / "good").is_dir())
    if not names:
        raise PatchlineError(f"{root} has no MVTec AD category (no <category>/train/good folder).")
    return names


@dataclass(frozen=True)
class MvtecCategory:
    """One MVTec AD category folder: <root>/<name>/{train/good, test/<type>, ground_truth/<type>}."""

    root: Path
    name: str

    @property
    def folder(self) -> Path:
        return Path(self.root) / self.name

    def check(self) -> "MvtecCategory":
        if not (self.folder / "train" / "good").is_dir():
            raise PatchlineError(f"category '{self.name}' not found: {self.folder / 'train' / 'good'} does not exist.")
        return self

    def train_images(self) -> list[Path]:
        """Good training images, sorted by name."""
        return good_images(self.folder / "train" / "good")

    def test_samples(self) -> list[LabelledImage]:
        """Every test image with label, defect type and mask (good images have no mask)."""
        test_dir = self.folder / "test"
        if not test_dir.is_dir():
            raise PatchlineError(f"category '{self.name}' has no test folder {test_dir}.")
        samples = []
        for type_dir in sorted(p for p in test_dir.iterdir() if p.is_dir()):
            for path in list_images(type_dir):
                if type_dir.name == "good":
                    samples.append(LabelledImage(path, 0, "good", None))
                    continue
                mask = self.folder / "ground_truth" / type_dir.name / f"{path.stem}_mask.png"
                samples.append(LabelledImage(path, 1, type_dir.name, mask if mask.is_file() else None))
        if not samples:
            raise PatchlineError(f"category '{self.name}' has no test images under {test_dir}.")
        return samples


@dataclass(frozen=True)
class ElpvSplit:
    """The ELPV benchmark protocol for one cell type (docs/design.md, "Data"): uint8 (N, 300, 300) arrays."""

    cell_type: str
    train: np.ndarray
    test_normal: np.ndarray
    test_defect: np.ndarray


def elpv_split(cell_type: str) -> ElpvSplit:
    """Split ELPV cells of `cell_type` ('mono' or 'poly') by the fixed protocol.

    Normals (proba == 0) in dataset order: every 4th (positions 0, 4, 8, …) is a test normal, the
    rest train; test defects are all cells with proba == 1. Cells with proba 1/3 or 2/3 are unused.
    """
    if cell_type not in ("mono", "poly"):
        raise PatchlineError(f"ELPV cell type must be 'mono' or 'poly', got '{cell_type}'.")
    try:
        from elpv_dataset.utils import load_dataset
    except ImportError:
        raise PatchlineError("the ELPV data is not installed: pip install elpv-dataset==1.0.0.post1.") from None
    images, proba, types = load_dataset()
    of_type = np.asarray(types) == cell_type
    normal = np.flatnonzero(of_type & (proba == 0))
    defect = np.flatnonzero(of_type & (proba == 1))
    is_test = np.arange(normal.size) % 4 == 0
    return ElpvSplit(cell_type, images[normal[~is_test]], images[normal[is_test]], images[defect])
