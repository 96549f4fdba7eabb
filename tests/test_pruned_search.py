"""Graph (HNSW) search with exact image scores: the nearest patch where it must be found, image scores equal
to exact search for max / topk, upper bounds elsewhere, and the line setting that switches it off."""

import json

import numpy as np
import pytest

from patchline.bank.store import SEARCH_FILE, load_bank, write_bank
from patchline.core.pruned_search import PrunedPatchSearch, build_hnsw
from patchline.core.scoring import aggregate
from patchline.core.search import NearestPatchSearch
from patchline.errors import BankError
from patchline.settings import LineSettings, validate

pytestmark = pytest.mark.runtime  # runs in the runtime-only install too (scripts/runtime_check.sh)

META = {"backbone": "efficientnet_lite0", "layers": ["layer2"], "resize": 256, "imagesize": 224,
        "patchsize": 3, "grid": [8, 8], "aggregation": "topk5", "threshold": 1.5}


def _clustered(n_clusters=16, per=200, dim=24, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=20.0, size=(n_clusters, dim)).astype(np.float32)
    points = centers[:, None, :] + rng.normal(scale=0.5, size=(n_clusters, per, dim)).astype(np.float32)
    return centers, points.reshape(-1, dim)


def test_the_graph_finds_the_exact_nearest_patch_when_it_may_visit_the_whole_bank():
    # With ef_search at least the bank size the graph search is exhaustive: it must return the
    # exact nearest patch of every query.
    rng = np.random.default_rng(1)
    bank = rng.normal(size=(200, 24)).astype(np.float32)
    search = PrunedPatchSearch(NearestPatchSearch(bank), build_hnsw(bank), ef_search=256)
    queries = rng.normal(size=(64, 24)).astype(np.float32)
    exact = NearestPatchSearch(bank).squared_distances(queries)[:, 0]
    np.testing.assert_allclose(search.upper_bounds(queries), exact, rtol=1e-5)


def test_exact_search_returns_the_nearest_row_across_bank_and_query_blocks():
    from patchline.core.search import CHUNK, QUERY_CHUNK

    rng = np.random.default_rng(3)
    bank = rng.normal(size=(CHUNK + 300, 8)).astype(np.float32)
    queries = rng.normal(size=(QUERY_CHUNK + 40, 8)).astype(np.float32)
    squared, rows = NearestPatchSearch(bank).nearest(queries)
    brute = ((queries[:, None, :].astype(np.float64) - bank[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(rows, brute.argmin(axis=1))
    np.testing.assert_allclose(squared, brute.min(axis=1), rtol=1e-5)


def test_the_low_dimensional_bound_never_loses_the_nearest_patch():
    from patchline.core.pruned_search import LowDimExactSearch, _projection

    _, bank = _clustered()
    index = build_hnsw(bank)
    mean, basis, _ = _projection(index)
    queries = (bank[:50] + np.random.default_rng(4).normal(scale=3.0, size=(50, 24))).astype(np.float32)
    exact = NearestPatchSearch(bank).squared_distances(queries)[:, 0]
    loose = exact * 4 + 1  # any upper bound works; the result must be the exact minimum
    np.testing.assert_allclose(LowDimExactSearch(bank, mean, basis).squared_distances(queries, loose), exact, rtol=1e-5)


@pytest.mark.parametrize("aggregation", ["max", "topk5", "topk20", "mean", "var"])
def test_image_scores_equal_exact_search_even_when_the_index_misses_neighbours(aggregation):
    rng = np.random.default_rng(2)
    bank = rng.normal(size=(4000, 32)).astype(np.float32)  # no structure: a small ef misses often
    exact = NearestPatchSearch(bank)
    pruned = PrunedPatchSearch(exact, build_hnsw(bank), ef_search=1)
    embeddings = rng.normal(size=(3, 8, 8, 32)).astype(np.float32)
    embeddings[1, 2, 3] += 6.0  # one defect-like patch
    want = exact.patch_scores(embeddings)
    got = pruned.patch_scores(embeddings, aggregation)
    np.testing.assert_allclose(aggregate(got, aggregation), aggregate(want, aggregation), rtol=1e-6)
    assert (got >= want * (1 - 1e-5)).all()  # everything else is an upper bound
    bounds = np.sqrt(pruned.upper_bounds(embeddings.reshape(-1, 32)))
    assert (bounds > want.ravel() * (1 + 1e-3)).any()  # the graph alone really misses nearest patches
    assert np.isclose(got.max(), want.max()) and got[1].argmax() == want[1].argmax()


def test_a_graph_bank_records_its_index_and_scores_the_chosen_aggregation_exactly(tmp_path):
    _, bank = _clustered(per=700)  # 11,200 patches × 24 dims: `auto` searches them with the graph index
    version = write_bank(tmp_path, "line", bank, META, search="auto", ef_search=4)
    record = json.loads((version / "bank.json").read_text())["search"]
    assert record["kind"] == "hnsw" and record["ef_search"] == 4 and (version / SEARCH_FILE).is_file()
    loaded = load_bank(tmp_path, "line")
    embeddings = np.random.default_rng(3).normal(scale=20.0, size=(2, 8, 8, 24)).astype(np.float32)
    np.testing.assert_allclose(aggregate(loaded.patch_scores(embeddings, "topk5"), "topk5"),
                               aggregate(loaded.patch_scores(embeddings), "topk5"), rtol=1e-6)
    (version / SEARCH_FILE).write_bytes((version / SEARCH_FILE).read_bytes()[:200])
    with pytest.raises(BankError, match="damaged or half-written"):
        load_bank(tmp_path, "line")


def test_the_line_setting_switches_the_index_off(tmp_path):
    assert validate(LineSettings(line="x")).search == "auto"
    _, bank = _clustered(per=700)
    version = write_bank(tmp_path, "line", bank, META, search=LineSettings(line="x", search="exact").search)
    assert json.loads((version / "bank.json").read_text())["search"] == {"kind": "exact"}
    assert not (version / SEARCH_FILE).exists() and load_bank(tmp_path, "line").pruned is None
    small = write_bank(tmp_path, "small", bank[:500], META, search="auto")  # 12,000 patches × dims: exact is cheaper
    assert json.loads((small / "bank.json").read_text())["search"] == {"kind": "exact"}
    wide = np.random.default_rng(2).normal(size=(1400, 152)).astype(np.float32)  # few patches, many dims
    assert json.loads((write_bank(tmp_path, "wide", wide, META, search="auto") / "bank.json").read_text()
                      )["search"]["kind"] == "hnsw"


def test_a_defect_between_the_coarse_grid_points_is_found_and_scored_exactly_with_few_exact_queries():
    # The coarse tier searches only every 2nd patch of each row and column through the graph. A
    # defect patch at a position it skips must still climb to an exact score, and patches that
    # cannot reach the top must not be searched exactly.
    centers, bank = _clustered(per=300)
    rng = np.random.default_rng(5)
    exact = NearestPatchSearch(bank)
    pruned = PrunedPatchSearch(exact, build_hnsw(bank), ef_search=8)
    embeddings = (centers[rng.integers(0, len(centers), size=(1, 16, 16))]
                  + rng.normal(scale=0.5, size=(1, 16, 16, 24))).astype(np.float32)
    embeddings[0, 6, 8] += 8.0  # row 6, column 8: not on the coarse grid (odd rows and columns)
    want = exact.patch_scores(embeddings)
    for aggregation in ("max", "topk5"):
        pruned.exact_queries = 0
        got = pruned.patch_scores(embeddings, aggregation)
        np.testing.assert_allclose(aggregate(got, aggregation), aggregate(want, aggregation), rtol=1e-6)
        assert np.unravel_index(got[0].argmax(), (16, 16)) == (6, 8)
        assert pruned.exact_queries < 16 * 16 // 4  # the ladder stops well short of searching everything


def test_a_defect_frame_has_its_map_drawn_from_graph_bounds():
    _, bank = _clustered(per=300)
    rng = np.random.default_rng(6)
    pruned = PrunedPatchSearch(NearestPatchSearch(bank), build_hnsw(bank), ef_search=8)
    embeddings = (bank[rng.integers(0, len(bank), size=(1, 16, 16))]
                  + rng.normal(scale=0.3, size=(1, 16, 16, 24))).astype(np.float32)
    embeddings[0, 4, 4] += 8.0
    flat = embeddings.reshape(-1, 24)
    pruned.graph_queries = 0
    pruned.patch_scores(embeddings, "max")  # no threshold: only what the image score needs
    without = pruned.graph_queries
    pruned.graph_queries = 0
    got = pruned.patch_scores(embeddings, "max", threshold=0.0)  # every frame a defect
    assert pruned.graph_queries > without
    graph = np.sqrt(pruned.graph_bounds(flat)[0]).reshape(got.shape)
    assert (got <= graph * (1 + 1e-5)).all()  # no patch left looser than its own graph search
