"""Per-line settings: the seed's MVTec table and validation messages that name the field."""

from pathlib import Path

import pytest

from patchline.errors import ConfigError
from patchline.settings import LineSettings, load_category_table, settings_from_mapping

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mvtec.yaml"


def test_the_mvtec_table_carries_the_seed_values_for_all_15_categories():
    table = load_category_table(CONFIG).categories
    assert len(table) == 15
    sizes = {name: (s.resize, s.imagesize) for name, s in table.items()}
    assert sizes["bottle"] == (256, 224) and sizes["cable"] == (336, 320) and sizes["capsule"] == (328, 320)
    assert sizes["grid"] == (320, 320) and sizes["pill"] == (284, 280) and sizes["screw"] == (368, 320)
    assert sizes["tile"] == (332, 320)
    layer3 = {n for n, s in table.items() if s.layers == ("layer3",)}
    assert layer3 == {"cable", "capsule", "carpet", "transistor"}
    ratios = {n: s.coreset_ratio for n, s in table.items()}
    assert ratios["capsule"] == ratios["carpet"] == 0.04 and ratios["metal_nut"] == 0.02
    assert ratios["hazelnut"] == 0.009 and ratios["bottle"] == 0.01
    assert all(s.backbone == "wide_resnet101_2" and s.aggregation == "auto" for s in table.values())


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
