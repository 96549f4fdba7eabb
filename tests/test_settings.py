"""Per-line settings: the reference project's MVTec table and validation messages that name the field."""

from pathlib import Path

import pytest

import yaml

from patchline.core.scoring import AGGREGATIONS
from patchline.errors import ConfigError
from patchline.evaluation.reference_layout import COLUMNS, load_reference_results, reference_layout_table
from patchline.settings import LineSettings, load_category_table, settings_from_mapping

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mvtec.yaml"


def test_the_mvtec_table_carries_the_reference_projects_values_for_all_15_categories():
    table = load_category_table(CONFIG).categories
    assert len(table) == 15
    sizes = {name: (s.resize, s.imagesize) for name, s in table.items()}
    assert sizes == {  # the reference project's §6.1, every category
        "bottle": (256, 224), "cable": (336, 320), "capsule": (328, 320), "carpet": (336, 320),
        "grid": (320, 320), "hazelnut": (256, 224), "leather": (256, 224), "metal_nut": (256, 224),
        "pill": (284, 280), "screw": (368, 320), "tile": (332, 320), "toothbrush": (256, 224),
        "transistor": (336, 320), "wood": (256, 224), "zipper": (256, 224)}
    layer3 = {n for n, s in table.items() if s.layers == ("layer3",)}
    assert layer3 == {"cable", "capsule", "carpet", "transistor"}
    ratios = {n: s.coreset_ratio for n, s in table.items()}
    assert ratios == {**{n: 0.01 for n in table}, "capsule": 0.04, "carpet": 0.04, "hazelnut": 0.009,
                      "metal_nut": 0.02}  # §6.2
    # the file says each value itself: no category leans on the defaults
    raw = yaml.safe_load(CONFIG.read_text())["categories"]
    assert all(set(v) == {"resize", "imagesize", "layers", "coreset_ratio"} for v in raw.values())
    assert all(s.backbone == "wide_resnet101_2" and s.aggregation == "auto" for s in table.values())


def test_the_reference_auroc_table_is_carried_and_laid_out_beside_patchlines():
    reference = load_reference_results(CONFIG)
    assert len(reference) == 16 and all(len(row) == len(COLUMNS) for row in reference.values())
    categories = [name for name in reference if name != "Mean"]
    for column in COLUMNS[:-1]:  # the reference project's Mean row is the mean of its 15 rows (its rounding aside)
        assert abs(sum(reference[n][column] for n in categories) / 15 - reference["Mean"][column]) < 1e-4
    assert reference["screw"]["instance_auroc_px"] == 0.271981964 and reference["wood"]["instance_auroc_dx"] == 0.996491228
    report = {"category": "screw", "image_auroc": {a: 0.5 for a in AGGREGATIONS} | {"var": 0.9, "topk5": 0.95},
              "aggregation": "topk5", "chosen_auroc": 0.95}
    lines = reference_layout_table([report], reference).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    reference_row = [c.strip() for c in lines[2].strip("|").split("|")]
    ours = [c.strip() for c in lines[3].strip("|").split("|")]
    assert reference_row[:3] == ["screw", "reference", "0.9822"] and ours[:2] == ["screw", "patchline"]
    assert ours[head.index("instance_auroc_dx")] == "0.9000" and ours[head.index("instance_auroc_topK5")] == "0.9500"
    assert ours[head.index("instance_auroc_best")] == "0.9500" and ours[-2:] == ["topk5", "0.9500"]


def test_a_malformed_reference_table_is_refused_naming_the_row(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("categories: {}\nseed_image_auroc: {columns: [instance_auroc_max], rows: {bottle: [1.5]}}\n")
    with pytest.raises(ConfigError, match="seed_image_auroc.rows.bottle"):  # the section's old name is still read
        load_reference_results(bad)
    bad.write_text("categories: {}\nreference_image_auroc: {columns: [instance_auroc_max], rows: {bottle: [1.5]}}\n")
    with pytest.raises(ConfigError, match="reference_image_auroc.rows.bottle"):
        load_reference_results(bad)


@pytest.mark.parametrize("values,field", [
    ({"resize": 200, "imagesize": 224}, "imagesize \\(224\\) is larger than resize \\(200\\)"),
    ({"layers": ["layer4"]}, "layers must be"),
    ({"coreset_ratio": 0}, "coreset_ratio"),
    ({"patchsize": 2}, "patchsize must be odd"),
    ({"aggregation": "median"}, "aggregation"),
    ({"resize": "big"}, "resize must be a positive integer"),
    ({"colour": "red"}, "unknown setting 'colour'"),
])
def test_bad_settings_are_refused_naming_the_field(values, field):
    with pytest.raises(ConfigError, match=field):
        settings_from_mapping({"line": "l", **values})


def test_unknown_category_is_refused():
    with pytest.raises(ConfigError, match="unknown category 'bottel'"):
        load_category_table(CONFIG).get("bottel")


def test_overrides_are_validated_again():
    s = LineSettings(line="x")
    assert s.replace(imagesize=None).imagesize == 224
    with pytest.raises(ConfigError, match="imagesize"):
        s.replace(imagesize=512)


def test_python_dash_m_patchline_shows_the_commands():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "patchline", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "train" in done.stdout and "run" in done.stdout
