"""Coreset selection: the fast greedy k-center picks exactly what the plain reference picks."""

import math
import tracemalloc

import numpy as np
import pytest

from patchline.core.coreset import (
    RandomProjection,
    greedy_k_center,
    plain_greedy_k_center,
    select_coreset,
)
from patchline.errors import ConfigError

pytestmark = pytest.mark.runtime  # runs in the runtime-only install too (scripts/runtime_check.sh)


def _clustered(n, d, seed, n_clusters=8, dup_frac=0.2):
    """Clusters with a share of exact duplicate rows, so ties are common."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, d)) * 6
    x = centers[rng.integers(0, n_clusters, n)] + rng.standard_normal((n, d))
    x = x.astype(np.float32)
    dup = rng.random(n) < dup_frac
    x[dup] = x[rng.integers(0, n, dup.sum())]
    return x


def _grid(n, d, seed):
    """Small integer coordinates: very many exactly equal distances."""
    return np.random.default_rng(seed).integers(0, 3, (n, d)).astype(np.float32)


def _sq_dist_matrix(a, b):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


CASES = [
    # (data, n, d, n_select, start, pool_rows)
    ("gauss", 1037, 20, 150, 0, None),
    ("gauss", 1037, 128, 300, 17, 64),
    ("clustered", 999, 16, 400, 5, 37),
    ("clustered", 513, 3, 513, 512, 50),     # n_select = N, tiny dimension (padded)
    ("clustered", 700, 8, 1, 3, None),        # n_select = 1
    ("grid", 600, 4, 600, 0, 23),             # exact ties everywhere, until all covered
    ("grid", 401, 33, 200, 400, 7),
    ("gauss", 1, 5, 1, 0, None),               # a single point
]


@pytest.mark.parametrize("kind,n,d,n_select,start,pool_rows", CASES)
def test_fast_selects_exactly_what_plain_selects(kind, n, d, n_select, start, pool_rows):
    if kind == "gauss":
        x = np.random.default_rng(n + d).standard_normal((n, d)).astype(np.float32)
    elif kind == "clustered":
        x = _clustered(n, d, seed=n + d)
    else:
        x = _grid(n, d, seed=n + d)
    plain = plain_greedy_k_center(x, n_select, start=start)
    fast = greedy_k_center(x, n_select, start=start, pool_rows=pool_rows)
    assert fast.dtype == np.int64 and fast.shape == (n_select,)
    np.testing.assert_array_equal(fast, plain)
    assert fast[0] == start
    assert len(np.unique(fast)) == n_select


def test_fast_equals_plain_on_larger_clustered_set():
    # Large enough for several 2048-row tiles in the catch-up and many pool rebuilds.
    x = _clustered(6001, 48, seed=3, n_clusters=30, dup_frac=0.05)
    plain = plain_greedy_k_center(x, 700, start=11)
    for pool_rows in (None, 300):
        np.testing.assert_array_equal(greedy_k_center(x, 700, start=11, pool_rows=pool_rows), plain)


def test_other_dtypes_and_layouts_give_the_same_selection():
    x = _clustered(500, 24, seed=9)
    ref = greedy_k_center(x, 120, start=2)
    np.testing.assert_array_equal(greedy_k_center(x.astype(np.float64), 120, start=2), ref)
    np.testing.assert_array_equal(greedy_k_center(np.asfortranarray(x), 120, start=2), ref)
    np.testing.assert_array_equal(plain_greedy_k_center(x.astype(np.float64), 120, start=2), ref)


def test_greedy_radius_is_non_increasing_and_a_2_approximation():
    x = _clustered(800, 10, seed=4)
    k = 60
    picks = greedy_k_center(x, k + 1, start=0)
    d2 = _sq_dist_matrix(x, x[picks])
    # radius when pick j was made = distance of pick j to the picks before it
    radii = np.sqrt([d2[picks[j], :j].min() for j in range(1, k + 1)])
    assert np.all(np.diff(radii) <= 1e-6 * radii[:-1])
    covering = math.sqrt(d2[:, :k].min(axis=1).max())
    assert covering == pytest.approx(radii[-1], rel=1e-5)
    # k + 1 points pairwise >= covering apart: any k centers leave two of them to one center,
    # so the optimum radius is >= covering / 2 (the 2-approximation).
    pair = np.sqrt(_sq_dist_matrix(x[picks], x[picks]))
    np.fill_diagonal(pair, np.inf)
    assert pair.min() >= covering * (1 - 1e-5)


def test_distance_kernel_matches_numpy():
    x = _clustered(300, 128, seed=5)
    picks = plain_greedy_k_center(x, 2, start=7)
    d2 = _sq_dist_matrix(x, x[7:8])[:, 0]
    assert picks[1] == int(np.argmax(np.where(np.arange(300) == 7, -1, d2)))


def test_argument_checks():
    x = np.zeros((10, 4), np.float32)
    for f in (greedy_k_center, plain_greedy_k_center):
        with pytest.raises(ValueError):
            f(x, 0)
        with pytest.raises(ValueError):
            f(x, 11)
        with pytest.raises(ValueError):
            f(x, 3, start=10)
        with pytest.raises(ValueError):
            f(np.zeros(10, np.float32), 3)
        bad = x.copy()
        bad[3, 1] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            f(bad, 3)


def test_memory_stays_below_twice_the_points():
    x = np.random.default_rng(0).standard_normal((20000, 128)).astype(np.float32)
    tracemalloc.start()
    try:
        greedy_k_center(x, 400, start=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= x.nbytes, f"extra peak {peak / x.nbytes:.2f}x the input"


def test_progress_bar_goes_to_stderr(capsys):
    x = _clustered(200, 8, seed=6)
    greedy_k_center(x, 20, progress=True)
    captured = capsys.readouterr()
    assert "coreset" in captured.err and captured.out == ""


# --------------------------------------------------------------------------- projection


def test_projection_batches_equal_projecting_all_at_once():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3001, 300)).astype(np.float32)
    proj = RandomProjection(300, 64, seed=3)
    whole = proj(x)
    assert whole.shape == (3001, 64) and whole.dtype == np.float32
    for batch in (1, 7, 100, 1024):
        parts = np.concatenate([proj(x[a:a + batch]) for a in range(0, len(x), batch)])
        np.testing.assert_array_equal(parts, whole)
    # same seed, same matrix; distances roughly preserved (JL)
    np.testing.assert_array_equal(RandomProjection(300, 64, seed=3)(x[:10]), whole[:10])
    d_in = _sq_dist_matrix(x[:200], x[200:400])
    d_out = _sq_dist_matrix(whole[:200], whole[200:400])
    assert np.median(d_out / d_in) == pytest.approx(1.0, abs=0.1)


def test_projection_passes_small_features_through():
    x = np.random.default_rng(2).standard_normal((50, 96))
    proj = RandomProjection(96, 128)
    assert proj.out_dim == 96 and proj.matrix is None
    out = proj(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x.astype(np.float32))
    with pytest.raises(ValueError):
        proj(np.zeros((3, 95), np.float32))


# --------------------------------------------------------------------------- select_coreset


def test_select_coreset_on_memmap_matches_in_memory(tmp_path):
    x = _clustered(3000, 256, seed=7, n_clusters=12)
    mm = np.memmap(tmp_path / "features.f32", dtype=np.float32, mode="w+", shape=x.shape)
    mm[:] = x
    mm.flush()
    mm = np.memmap(tmp_path / "features.f32", dtype=np.float32, mode="r", shape=x.shape)
    ref = select_coreset(x, 0.05, projection_dim=32, seed=1)
    assert ref.shape == (150,) and ref.dtype == np.int64
    np.testing.assert_array_equal(select_coreset(mm, 0.05, projection_dim=32, seed=1,
                                                 batch_rows=999), ref)
    # same thing by hand: project, seeded start, plain greedy
    proj = RandomProjection(256, 32, seed=1)(x)
    start = int(np.random.default_rng(1).integers(len(x)))
    np.testing.assert_array_equal(plain_greedy_k_center(proj, 150, start=start), ref)


@pytest.mark.parametrize("ratio,expected", [(1e-9, 1), (0.01, 10), (0.0125, 12), (1.0, 1000)])
def test_select_coreset_size(ratio, expected):
    x = np.random.default_rng(8).standard_normal((1000, 16)).astype(np.float32)
    idx = select_coreset(x, ratio, projection_dim=8)
    assert len(idx) == expected == max(1, round(ratio * 1000))
    assert len(np.unique(idx)) == expected


@pytest.mark.parametrize("ratio", [0, 0.0, -0.1, 1.0001, 2, float("nan"), float("inf"), "abc", None])
def test_bad_ratio_is_a_config_error(ratio):
    x = np.zeros((10, 4), np.float32)
    with pytest.raises(ConfigError, match="coreset ratio"):
        select_coreset(x, ratio)
