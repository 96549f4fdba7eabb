"""The embedding path against torch's reference operators (torch only as a numerical reference)."""

import numpy as np
import pytest
import torch  # noqa: E402

from patchline.core.embed import bilinear_resize, embed, embedding_dim, local_average, reduce_channels

F = torch.nn.functional


def test_local_average_matches_zero_padded_average_pooling():
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 9)).astype(np.float32)
    for patchsize in (1, 3, 5):
        ref = F.avg_pool2d(torch.from_numpy(x), patchsize, stride=1, padding=patchsize // 2, count_include_pad=True)
        np.testing.assert_allclose(local_average(x, patchsize), ref.numpy(), atol=1e-6)


def test_bilinear_resize_matches_torch_interpolate():
    x = np.random.default_rng(1).normal(size=(2, 4, 14, 14)).astype(np.float32)
    for size in ((28, 28), (40, 40), (14, 14), (7, 9)):
        ref = F.interpolate(torch.from_numpy(x), size=size, mode="bilinear", align_corners=False)
        np.testing.assert_allclose(bilinear_resize(x, size), ref.numpy(), atol=1e-5)


def test_channel_reduction_matches_adaptive_average_pooling():
    x = np.random.default_rng(2).normal(size=(10, 1536)).astype(np.float32)
    for dim in (1024, 100, 1536):
        ref = F.adaptive_avg_pool1d(torch.from_numpy(x)[:, None, :], dim)[:, 0, :]
        np.testing.assert_allclose(reduce_channels(x, dim), ref.numpy(), atol=1e-5)


def test_two_layers_are_averaged_upsampled_and_concatenated_on_the_layer2_grid():
    rng = np.random.default_rng(3)
    features = {"layer2": rng.normal(size=(2, 8, 16, 16)).astype(np.float32),
                "layer3": rng.normal(size=(2, 12, 8, 8)).astype(np.float32)}
    patches = embed(features, ("layer2", "layer3"), patchsize=3)
    assert patches.shape == (2, 16, 16, 20) and patches.dtype == np.float32 and patches.flags.c_contiguous
    l2 = F.avg_pool2d(torch.from_numpy(features["layer2"]), 3, 1, 1)
    l3 = F.interpolate(F.avg_pool2d(torch.from_numpy(features["layer3"]), 3, 1, 1), size=(16, 16),
                       mode="bilinear", align_corners=False)
    ref = torch.cat([l2, l3], dim=1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(patches, ref, atol=1e-5)
    reduced = embed(features, ("layer2", "layer3"), patchsize=3, target_dim=10)
    assert reduced.shape == (2, 16, 16, 10)
    assert embedding_dim({"layer2": 8, "layer3": 12}, ("layer2", "layer3"), None) == 20


def test_layer3_alone_uses_its_own_grid():
    x = np.ones((1, 4, 6, 6), dtype=np.float32)
    out = embed({"layer3": x}, ("layer3",), patchsize=3)
    assert out.shape == (1, 6, 6, 4)
    assert out[0, 3, 3, 0] == pytest.approx(1.0) and out[0, 0, 0, 0] == pytest.approx(4 / 9)


@pytest.mark.parametrize("c2, c3, h2, h3, patchsize", [(40, 112, 35, 18, 3), (520, 1030, 28, 14, 5), (3, 1, 9, 5, 1)])
def test_embed_matches_torch_for_odd_grids_many_channels_and_other_patch_sizes(c2, c3, h2, h3, patchsize):
    # 280-px crops give a 35 × 35 layer2 grid and an 18 × 18 layer3 one; wide backbones give more
    # channels than OpenCV filters take at once (512)
    rng = np.random.default_rng(4)
    features = {"layer2": rng.normal(size=(2, c2, h2, h2)).astype(np.float32),
                "layer3": rng.normal(size=(2, c3, h3, h3)).astype(np.float32)}
    pad = patchsize // 2
    l2 = F.avg_pool2d(torch.from_numpy(features["layer2"]), patchsize, 1, pad, count_include_pad=True)
    l3 = F.interpolate(F.avg_pool2d(torch.from_numpy(features["layer3"]), patchsize, 1, pad, count_include_pad=True),
                       size=(h2, h2), mode="bilinear", align_corners=False)
    ref = torch.cat([l2, l3], dim=1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(embed(features, ("layer2", "layer3"), patchsize=patchsize), ref, atol=1e-5)
