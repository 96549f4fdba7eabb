"""A gray camera frame reaches the model exactly as its three-channel copy would: decoding keeps gray
files one channel (a third of the resize work) and normalisation replicates them, bit for bit."""

import cv2
import numpy as np
import pytest

from patchline.core.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    decode_image,
    normalize,
    preprocess,
    to_rgb,
)
from patchline.errors import PatchlineError

pytestmark = pytest.mark.runtime  # runs in the runtime-only install too (scripts/runtime_check.sh)

RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 256, (61, 83), dtype=np.uint8)
COLOUR = RNG.integers(0, 256, (61, 83, 3), dtype=np.uint8)


def _colour_decode(data: bytes) -> np.ndarray:
    """What the decoder did before: always three channels (OpenCV replicates gray)."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _arithmetic_normalize(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    x -= IMAGENET_MEAN
    x /= IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


@pytest.mark.parametrize("suffix, pixels", [
    (".png", GRAY), (".png", GRAY.astype(np.uint16) * 257), (".png", COLOUR),
    (".png", np.dstack([COLOUR, GRAY])), (".jpg", GRAY), (".jpg", COLOUR), (".bmp", GRAY), (".tif", GRAY),
])
def test_a_decoded_file_gives_the_pixels_a_colour_decode_gives(suffix, pixels):
    ok, encoded = cv2.imencode(suffix, pixels)
    assert ok
    decoded = decode_image(encoded.tobytes())
    assert decoded.ndim == (2 if pixels.ndim == 2 else 3)
    np.testing.assert_array_equal(to_rgb(decoded), _colour_decode(encoded.tobytes()))


@pytest.mark.parametrize("resize, imagesize", [(224, 224), (48, 40), (96, 96), (64, 56)])
def test_a_gray_frame_and_its_three_channel_copy_reach_the_model_identically(resize, imagesize):
    np.testing.assert_array_equal(preprocess(GRAY, resize, imagesize), preprocess(to_rgb(GRAY), resize, imagesize))


def test_normalisation_plane_by_plane_equals_the_pixel_arithmetic_bit_for_bit():
    np.testing.assert_array_equal(normalize(COLOUR), _arithmetic_normalize(COLOUR))
    np.testing.assert_array_equal(normalize(GRAY), _arithmetic_normalize(to_rgb(GRAY)))
    assert normalize(GRAY).dtype == np.float32 and normalize(GRAY).flags.c_contiguous


def test_an_image_with_other_channels_is_refused_with_a_sentence():
    with pytest.raises(PatchlineError, match="expected a gray"):
        preprocess(np.zeros((40, 40, 4), np.uint8), 32, 32)


def test_a_stretch_resize_ignores_the_aspect_and_maps_regions_back_per_axis():
    from patchline.core.preprocess import crop_box, preprocess, resize_image

    image = np.random.default_rng(0).integers(0, 256, size=(200, 300, 3), dtype=np.uint8)
    stretched = resize_image(image, 100, "stretch")
    assert stretched.shape == (100, 100, 3)
    np.testing.assert_array_equal(stretched, cv2.resize(image, (100, 100), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(preprocess(image, 100, 80, "stretch"), normalize(stretched[10:90, 10:90]))
    assert crop_box((200, 300), 100, 80, "stretch") == (30.0, 20.0, 3.0, 2.0)  # x scale 3, y scale 2
    x0, y0, sx, sy = crop_box((200, 300), 100, 80)  # short side: one scale
    assert sx == sy == 2.0 and (x0, y0) == (70.0, 20.0)  # 100 × 150, crop at (35, 10)
