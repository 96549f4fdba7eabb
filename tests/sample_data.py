"""An MVTec AD-layout dataset built from real texture photos with synthetic defects and exact masks.

scikit-image ships CC0 texture photos (brick, grass, gravel, 512 × 512 gray). Random crops of one
photo are a category's good parts; the same crops with a pasted patch, a scratch or a blob are
its defects, with pixel-exact ground-truth masks. Only the tests use it (scikit-image is a test
dependency).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from patchline.core.synthetic import KINDS, make_defect


def texture_photo(name: str) -> np.ndarray:
    """The scikit-image texture photo `name` as (512, 512, 3) uint8 RGB."""
    from skimage import data

    gray = getattr(data, name)()
    return np.repeat(gray[:, :, None], 3, axis=2)


def random_crops(photo: np.ndarray, count: int, size: tuple[int, int], rng: np.random.Generator) -> list[np.ndarray]:
    """`count` random (height, width) = size crops of an (H, W, 3) uint8 photo."""
    h, w = photo.shape[:2]
    ch, cw = size
    crops = []
    for _ in range(count):
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crops.append(np.ascontiguousarray(photo[y : y + ch, x : x + cw]))
    return crops


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def make_texture_dataset(
    root: str | Path,
    categories=("brick",),
    n_train: int = 24,
    n_test_good: int = 6,
    n_test_defect: int = 9,
    size: int | tuple[int, int] = 256,
    seed: int = 0,
    defect_folder: str | None = None,
) -> Path:
    """Write an MVTec AD-layout dataset under `root`; return root.

    Per category: train/good/NNN.png, test/good/NNN.png, test/<kind>/NNN.png for each synthetic
    defect kind, ground_truth/<kind>/NNN_mask.png (255 = defect); with `defect_folder`, all kinds
    go into that one folder instead. Images are RGB, size × size or (height, width) = size.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for category in categories:
        photo = texture_photo(category)
        shape = (size, size) if isinstance(size, int) else tuple(size)
        crops = random_crops(photo, n_train + n_test_good + n_test_defect, shape, rng)
        for i, crop in enumerate(crops[:n_train]):
            _write(root / category / "train" / "good" / f"{i:03d}.png", crop)
        for i, crop in enumerate(crops[n_train : n_train + n_test_good]):
            _write(root / category / "test" / "good" / f"{i:03d}.png", crop)
        for i, crop in enumerate(crops[n_train + n_test_good :]):
            kind = KINDS[i % len(KINDS)]
            defect, mask = make_defect(crop, kind, rng)
            folder = defect_folder or kind
            _write(root / category / "test" / folder / f"{i:03d}.png", defect)
            _write(root / category / "ground_truth" / folder / f"{i:03d}_mask.png", mask.astype(np.uint8) * 255)
    return root
