"""Banks on disk: round trip, atomic CURRENT, refusal of mismatched, corrupt or half-written banks."""

import json

import numpy as np
import pytest

from patchline.bank.store import CURRENT_FILE, load_bank, write_bank
from patchline.errors import BankError, ConfigError

pytestmark = pytest.mark.runtime  # runs in the runtime-only install too (scripts/runtime_check.sh)

META = {"backbone": "efficientnet_lite0", "layers": ["layer2", "layer3"], "resize": 256, "imagesize": 224,
        "patchsize": 3, "grid": [4, 4], "aggregation": "max", "threshold": 1.5}


@pytest.fixture
def patches():
    return np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)


def test_a_written_bank_loads_back_and_scores_its_own_patches_as_zero(tmp_path, patches):
    version_dir = write_bank(tmp_path, "bottle", patches, META)
    bank = load_bank(tmp_path, "bottle", expected={"backbone": "efficientnet_lite0", "layers": ("layer2", "layer3")})
    assert bank.path == version_dir and bank.version == version_dir.name
    assert (tmp_path / "bottle" / CURRENT_FILE).read_text().strip() == bank.version
    scores = bank.patch_scores(patches[:16].reshape(1, 4, 4, 16))
    assert scores.shape == (1, 4, 4) and np.allclose(scores, 0.0, atol=1e-3)
    shifted = bank.patch_scores((patches[:16] + 1.0).reshape(1, 4, 4, 16))
    assert (shifted > 0.5).all()
    meta = json.loads((version_dir / "bank.json").read_text())
    assert meta["n_patches"] == 50 and meta["embedding_dim"] == 16 and meta["line"] == "bottle"
    assert {p.name for p in version_dir.iterdir()} == {"index.faiss", "bank.json"}


def test_a_new_version_becomes_current_and_old_versions_stay_loadable(tmp_path, patches):
    first = write_bank(tmp_path, "line-a", patches, META)
    second = write_bank(tmp_path, "line-a", patches[:10], META)
    assert first.name != second.name
    assert load_bank(tmp_path, "line-a").version == second.name
    assert load_bank(tmp_path, "line-a", version=first.name).index.ntotal == 50


@pytest.mark.parametrize("field,value,message", [
    ("backbone", "wide_resnet101_2", "backbone"),
    ("imagesize", 320, "imagesize"),
    ("layers", ["layer2"], "layers"),
])
def test_a_bank_built_with_other_settings_is_refused_naming_the_field(tmp_path, patches, field, value, message):
    write_bank(tmp_path, "bottle", patches, META)
    with pytest.raises(BankError, match=f"built with {message} = "):
        load_bank(tmp_path, "bottle", expected={field: value})


def test_a_truncated_index_is_refused(tmp_path, patches):
    version_dir = write_bank(tmp_path, "bottle", patches, META)
    index = version_dir / "index.faiss"
    index.write_bytes(index.read_bytes()[:100])
    with pytest.raises(BankError, match="damaged or half-written"):
        load_bank(tmp_path, "bottle")


def test_bank_json_problems_are_named(tmp_path, patches):
    version_dir = write_bank(tmp_path, "bottle", patches, META)
    meta_path = version_dir / "bank.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text("{not json")
    with pytest.raises(BankError, match="not valid JSON"):
        load_bank(tmp_path, "bottle")
    del meta["threshold"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BankError, match="lacks the field 'threshold'"):
        load_bank(tmp_path, "bottle")


def test_missing_bank_and_leftover_staging_folders(tmp_path, patches):
    with pytest.raises(BankError, match="has no bank"):
        load_bank(tmp_path, "nothing")
    version_dir = write_bank(tmp_path, "bottle", patches, META)
    # A crashed writer leaves only a hidden staging folder; CURRENT still names the complete bank.
    (tmp_path / "bottle" / ".20990101T000000Z.abc").mkdir()
    assert load_bank(tmp_path, "bottle").path == version_dir
    (tmp_path / "bottle" / CURRENT_FILE).write_text("../../etc\n")
    with pytest.raises(BankError, match="does not name a bank version"):
        load_bank(tmp_path, "bottle")


def test_line_names_must_be_safe(tmp_path, patches):
    with pytest.raises(ConfigError, match="not allowed"):
        write_bank(tmp_path, "../evil", patches, META)


@pytest.mark.parametrize("dim,bank_size", [(16, 50), (152, 5000), (512, 300)])
def test_bank_search_equals_faiss_exact_search(tmp_path, dim, bank_size):
    rng = np.random.default_rng(dim)
    patches = rng.normal(size=(bank_size, dim)).astype(np.float32)
    write_bank(tmp_path, "line", patches, META)
    bank = load_bank(tmp_path, "line")
    # more queries than one product block (QUERY_CHUNK): a batch of frames is searched in pieces
    queries = np.concatenate([rng.normal(size=(1100, dim)), patches[:56] + 1e-3]).astype(np.float32)
    n = len(queries)
    reference, _ = bank.index.search(queries, 1)
    ours = bank.search.squared_distances(queries)
    assert ours.shape == reference.shape == (n, 1)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("field,value,message", [
    ("threshold", float("nan"), "'threshold' must be a finite number"),
    ("threshold", "1.5", "'threshold' must be a finite number"),
    ("aggregation", "median", "aggregation"),
    ("layers", ["layer4"], "layer4"),
    ("grid", [4], "'grid' must be two positive integers"),
    ("imagesize", 0, "'imagesize' must be a positive integer"),
    ("pixel_threshold", float("inf"), "'pixel_threshold' must be a finite number"),
    ("resize_type", "fit", "'resize_type' must be one of short_side, stretch"),
])
def test_every_bank_json_field_is_checked_by_type_and_value(tmp_path, patches, field, value, message):
    version_dir = write_bank(tmp_path, "bottle", patches, META)
    meta_path = version_dir / "bank.json"
    data = json.loads(meta_path.read_text())
    data[field] = value
    meta_path.write_text(json.dumps(data))
    with pytest.raises(BankError, match=message) as refused:
        load_bank(tmp_path, "bottle")
    assert "bank.json" in str(refused.value)


def test_bank_meta_is_typed_frozen_and_rebuilds_the_line_settings(tmp_path, patches):
    write_bank(tmp_path, "bottle", patches, {**META, "target_dim": None, "weights": {"sha256": "ab" * 32}})
    meta = load_bank(tmp_path, "bottle").meta
    assert meta.layers == ("layer2", "layer3") and meta.grid == (4, 4) and meta.threshold == 1.5
    assert meta.weights_sha256 == "ab" * 32 and meta["n_patches"] == 50
    with pytest.raises(AttributeError):
        meta.threshold = 0.0
    settings = meta.line_settings()
    assert (settings.line, settings.layers, settings.resize, settings.imagesize) == ("bottle", ("layer2", "layer3"), 256, 224)


def test_a_bank_whose_metadata_cannot_be_read_back_is_never_written(tmp_path, patches):
    with pytest.raises(BankError, match="aggregation"):
        write_bank(tmp_path, "bottle", patches, {**META, "aggregation": "median"})
    assert not (tmp_path / "bottle" / CURRENT_FILE).exists()
    assert [p for p in (tmp_path / "bottle").iterdir() if not p.name.startswith(".")] == []


def test_versions_are_listed_rolled_back_and_pruned_never_the_live_one(tmp_path, patches):
    from patchline.bank.versions import list_versions, prune, rollback, versions_table

    made = [write_bank(tmp_path, "bottle", patches, {**META, "threshold": 1.0 + i}).name for i in range(4)]
    versions = list_versions(tmp_path, "bottle")
    assert [v.version for v in versions] == made and [v.live for v in versions] == [False] * 3 + [True]
    assert [v.threshold for v in versions] == [1.0, 2.0, 3.0, 4.0] and versions[0].n_patches == len(patches)
    assert rollback(tmp_path, "bottle", made[1]) == made[3]
    assert load_bank(tmp_path, "bottle").version == made[1]
    table = versions_table("bottle", list_versions(tmp_path, "bottle"))
    assert f"* {made[1]}" in table and "4 version(s)" in table
    assert prune(tmp_path, "bottle", keep=1) == [made[0], made[2]]  # the newest and the live one stay
    assert [v.version for v in list_versions(tmp_path, "bottle")] == [made[1], made[3]]
    with pytest.raises(BankError, match="no version nope"):
        rollback(tmp_path, "bottle", "nope")
    (tmp_path / "bottle" / made[3] / "index.faiss").write_bytes(b"half")  # a damaged version is never made live
    with pytest.raises(BankError, match="damaged or half-written"):
        rollback(tmp_path, "bottle", made[3])
    assert load_bank(tmp_path, "bottle").version == made[1]
