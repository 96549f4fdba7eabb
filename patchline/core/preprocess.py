"""Image loading and the resize → center-crop → normalize chain shared by training and the pipeline."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from patchline.core.image_file import check_header, read_image_bytes
from patchline.errors import PatchlineError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def decode_image(data: bytes, source: str = "frame") -> np.ndarray:
    """Decode encoded image bytes (PNG/JPEG/BMP/TIFF) to (H, W) uint8 gray for a gray file, else
    (H, W, 3) uint8 RGB (alpha dropped, 16 bits scaled to 8).

    A gray file stays one channel: those are exactly the pixels a colour decode would replicate
    into three, and resizing one channel costs a third (`normalize` replicates it). Raises
    PatchlineError naming `source` when the bytes are not a decodable image, or when their header
    declares more pixels than image_file.MAX_PIXELS (checked before decoding).
    """
    check_header(data, source)
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_ANYCOLOR) if buffer.size else None
    except cv2.error:  # OpenCV refuses images over its pixel limit (2^30) with an assertion
        raise PatchlineError(f"{source} is too large to decode (OpenCV decodes at most 2^30 pixels) or damaged.") from None
    if image is None:
        raise PatchlineError(f"{source} is not a readable image (empty, truncated or unknown format).")
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as `decode_image` does: (H, W) uint8 gray or (H, W, 3) uint8 RGB. Only a
    regular file of bounded size is read (image_file.read_image_bytes)."""
    path = Path(path)
    return decode_image(read_image_bytes(path), source=f"image {path}")


MIN_SIDE = 32  # pixels: a smaller frame (a 1 × 1 or 1 × 5000 strip) is no picture of a part


def check_pixels(image: np.ndarray) -> np.ndarray:
    """Return `image` if it is (H, W) gray or (H, W, 3) RGB at least MIN_SIDE pixels a side, else
    raise PatchlineError."""
    if image.ndim in (2, 3) and min(image.shape[:2]) < MIN_SIDE:
        h, w = image.shape[:2]
        raise PatchlineError(f"image of {w}×{h} pixels is too small: at least {MIN_SIDE} pixels a side are needed.")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3):
        return image
    raise PatchlineError(f"expected a gray (H, W) or RGB (H, W, 3) image, got shape {image.shape}.")


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Return (H, W, 3) uint8 from (H, W) gray or (H, W, 3) RGB input."""
    image = check_pixels(image)
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


def resized_shape(h: int, w: int, resize: int, resize_type: str = "short_side") -> tuple[int, int]:
    """(height, width) after resizing an h × w image: its shorter side to `resize` pixels, aspect
    kept ("short_side"), or both sides to `resize` ("stretch")."""
    if resize_type == "stretch":
        return resize, resize
    scale = resize / min(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_shorter_side(image: np.ndarray, resize: int) -> np.ndarray:
    """Resize (H, W) or (H, W, C) so its shorter side is `resize` pixels, keeping the aspect ratio.

    Shrinking uses area interpolation (no aliasing), enlarging uses bilinear.
    """
    return resize_image(image, resize, "short_side")


def resize_image(image: np.ndarray, resize: int, resize_type: str = "short_side") -> np.ndarray:
    """(H, W) or (H, W, C) resized as `resized_shape` says; area interpolation when the shorter
    side shrinks, bilinear when it grows."""
    h, w = image.shape[:2]
    new_h, new_w = resized_shape(h, w, resize, resize_type)
    if (new_h, new_w) == (h, w):
        return image
    interpolation = cv2.INTER_AREA if resize < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, (new_w, new_h), interpolation=interpolation)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Cut the central size × size window of (H, W) or (H, W, C) (a view); the image must be at least that large."""
    h, w = image.shape[:2]
    if h < size or w < size:
        raise PatchlineError(f"image of {w}×{h} pixels is smaller than the {size}-pixel crop.")
    top, left = (h - size) // 2, (w - size) // 2
    return image[top : top + size, left : left + size]


def normalize(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 gray or (H, W, 3) uint8 RGB → (3, H, W) float32 with ImageNet mean/std (gray is
    replicated to the three channels).

    Planes first (uint8 transposes are cheap), then (v / 255 − mean) / std in float32 plane by
    plane; a gray image is converted once and normalized three times."""
    image = check_pixels(image)
    scale = np.float32(1.0 / 255.0)
    if image.ndim == 2:
        x = image.astype(np.float32)
        x *= scale
        out = np.empty((3,) + image.shape, dtype=np.float32)
        for c in range(3):
            np.subtract(x, IMAGENET_MEAN[c], out=out[c])
            out[c] /= IMAGENET_STD[c]
        return out
    out = np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32)
    out *= scale
    out -= IMAGENET_MEAN[:, None, None]
    out /= IMAGENET_STD[:, None, None]
    return out


def preprocess(image: np.ndarray, resize: int, imagesize: int, resize_type: str = "short_side") -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 → (3, imagesize, imagesize) float32 network input."""
    return normalize(center_crop(resize_image(check_pixels(image), resize, resize_type), imagesize))


def crop_box(frame_shape: tuple[int, int], resize: int, imagesize: int,
             resize_type: str = "short_side") -> tuple[float, float, float, float]:
    """Where the crop sits in the original frame: (x0, y0, sx, sy) with frame x = x0 + crop x * sx
    and frame y = y0 + crop y * sy.

    Takes the frame's (H, W); returns the crop's top-left corner in frame pixels and the frame
    pixels per crop pixel along x and y (equal unless a non-square frame was stretched), so
    anomaly-map coordinates can be reported in frame pixels.
    """
    h, w = frame_shape
    new_h, new_w = resized_shape(h, w, resize, resize_type)
    left, top = (new_w - imagesize) // 2, (new_h - imagesize) // 2
    sx, sy = w / new_w, h / new_h
    return left * sx, top * sy, sx, sy


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside `folder` (sorted by name), by suffix; [] when there are none."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def mask_to_crop(mask: np.ndarray, resize: int, imagesize: int, resize_type: str = "short_side") -> np.ndarray:
    """(H, W) ground-truth mask → (imagesize, imagesize) bool, resized and cropped like the image."""
    h, w = mask.shape[:2]
    new_h, new_w = resized_shape(h, w, resize, resize_type)
    resized = cv2.resize(mask.astype(np.uint8), (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    return center_crop(resized[:, :, None], imagesize)[:, :, 0] > 0


def load_mask(path: str | Path) -> np.ndarray:
    """Read a ground-truth mask PNG as (H, W) bool (non-zero = defect); the same file and pixel
    rules as images."""
    data = read_image_bytes(path, "mask")
    check_header(data, f"mask {path}")
    mask = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise PatchlineError(f"cannot read mask {path}.")
    return mask > 0
