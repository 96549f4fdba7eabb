"""A pipeline file is checked when it is loaded: every mistake is one sentence naming stream, element and prop."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from patchline.errors import ConfigError
from patchline.pipeline.config import load_pipeline, parse_pipeline

pytestmark = pytest.mark.runtime  # runs in the runtime-only install too (scripts/runtime_check.sh)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "pipeline").glob("*.pipeline"))
STREAM = "folder_layer2"


@pytest.fixture
def pipeline(tmp_path, monkeypatch):
    """The shipped layer2 folder pipeline as a dict, with its model file present (an empty stand-in)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "efficientnet_lite0_224_layer2.onnx").write_bytes(b"")
    return json.loads((REPO / "pipeline" / "folder_layer2.pipeline").read_text())


def refused(data, *expected, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        parse_pipeline(data, "line.pipeline", **kwargs)
    message = str(info.value)
    for part in expected:
        assert part in message, message
    assert message.count("\n") == 0
    return message


def element(data, name):
    return data[STREAM][name]


def test_shipped_pipeline_files_validate():
    assert {p.name for p in SHIPPED} >= {"folder_layer2.pipeline", "folder_layer2_layer3.pipeline",
                                         "rtsp_camera.pipeline"}
    for path in SHIPPED:
        config = load_pipeline(path, check_files=False)
        for stream in config.streams.values():
            assert stream.sinks, path
            factories = [stream.elements[n].factory for n in stream.order]
            assert factories[-1] == "appsink" and "mxpi_classpostprocessor" in factories


def test_layer3_line_reads_layer2_output(pipeline):
    config = load_pipeline(REPO / "pipeline" / "folder_layer2_layer3.pipeline", check_files=False)
    stream = next(iter(config.streams.values()))
    assert stream.elements["mxpi_tensorinfer1"].parsed["dataSource"] == "mxpi_tensorinfer0"


def test_valid_file_loads(pipeline):
    config = parse_pipeline(pipeline, "line.pipeline")
    assert config.streams[STREAM].source == "appsrc0"


def test_unknown_factory_is_refused(pipeline):
    element(pipeline, "mxpi_imagecrop0")["factory"] = "mxpi_imagecropper"
    refused(pipeline, "stream 'folder_layer2'", "element 'mxpi_imagecrop0'", "unknown factory 'mxpi_imagecropper'")


def test_non_string_prop_is_refused(pipeline):
    element(pipeline, "mxpi_imageresize0")["props"]["scaleValue"] = 256
    refused(pipeline, "element 'mxpi_imageresize0'", "prop 'scaleValue'", 'write "256"')


def test_missing_model_file_is_refused(pipeline):
    element(pipeline, "mxpi_tensorinfer0")["props"]["modelPath"] = "models/wide_resnet50_2_224_layer2.onnx"
    refused(pipeline, "element 'mxpi_tensorinfer0'", "prop 'modelPath'", "does not exist")


def test_om_model_resolves_to_the_onnx_beside_it(pipeline):
    element(pipeline, "mxpi_tensorinfer0")["props"]["modelPath"] = "models/efficientnet_lite0_224_layer2.om"
    parse_pipeline(pipeline, "line.pipeline")
    element(pipeline, "mxpi_tensorinfer0")["props"]["modelPath"] = "models/other_224_layer2.om"
    refused(pipeline, "prop 'modelPath'", "models/other_224_layer2.onnx", "resolved from models/other_224_layer2.om")


def test_plugin_outside_patchline_plugins_needs_allow_plugin(pipeline, tmp_path, monkeypatch):
    (tmp_path / "plant_plugins.py").write_text(textwrap.dedent("""
        class Verdicts:
            def __init__(self, name, props, context):
                pass
            def process(self, frame):
                return {"verdict": "good"}
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    props = element(pipeline, "mxpi_classpostprocessor0")["props"]
    props.update(pythonModule="plant_plugins", className="Verdicts")
    props.pop("line")
    message = refused(pipeline, "element 'mxpi_classpostprocessor0'", "prop 'pythonModule'", "--allow-plugin plant_plugins")
    assert "plant_plugins" not in sys.modules, "the module must not be imported before it is allowed"
    config = parse_pipeline(pipeline, "line.pipeline", allow_plugins=["plant_plugins"])
    assert config.streams[STREAM].elements["mxpi_classpostprocessor0"].parsed["class"].__name__ == "Verdicts"
    assert "outside patchline.plugins" in message


def test_postprocess_props_are_checked(pipeline):
    element(pipeline, "mxpi_classpostprocessor0")["props"].pop("line")
    refused(pipeline, "element 'mxpi_classpostprocessor0'", "prop 'line'", "is required")


def test_dangling_next_is_refused(pipeline):
    element(pipeline, "mxpi_imagenormalize0")["next"] = "mxpi_tensorinfer9"
    refused(pipeline, "element 'mxpi_imagenormalize0'", "'next' names 'mxpi_tensorinfer9'")


@pytest.mark.parametrize("change, prop, words", [
    ({"resizeType": "Resizer_KeepAspectRatio_Long"}, "resizeType", "would not reproduce the training resize"),
    ({"resizeType": "Resizer_Stretch"}, "scaleValue", "is not read by Resizer_Stretch"),
    ({"resizeType": "Resizer_Stretch", "scaleValue": None, "resizeHeight": "256", "resizeWidth": "200"},
     "resizeWidth", "stretches to a square"),
    ({"scaleValue": None}, "scaleValue", "is required"),
    ({"scaleValue": "two hundred"}, "scaleValue", "bad value 'two hundred'"),
    ({"resizeHeight": "256"}, "resizeHeight", "set scaleValue"),
    ({"resizeMode": "fast"}, "resizeMode", "is not a prop"),
])
def test_bad_resize_prop_is_refused(pipeline, change, prop, words):
    props = element(pipeline, "mxpi_imageresize0")["props"]
    for key, value in change.items():
        if value is None:
            props.pop(key)
        else:
            props[key] = value
    refused(pipeline, "element 'mxpi_imageresize0'", f"prop '{prop}'", words)


def test_structure_errors_are_refused(pipeline):
    bad = copy.deepcopy(pipeline)
    element(bad, "appsink0")["latency"] = "0"
    refused(bad, "element 'appsink0'", "key 'latency' is not allowed")
    bad = copy.deepcopy(pipeline)
    bad[STREAM]["sink"] = bad[STREAM].pop("appsink0")
    element(bad, "mxpi_dataserialize0")["next"] = "sink"
    refused(bad, "element 'sink'", "appsink<N>")
    bad = copy.deepcopy(pipeline)
    element(bad, "mxpi_imagenormalize0")["props"]["alpha"] = "0,0,0"
    refused(bad, "prop 'alpha'", "ImageNet")
    bad = copy.deepcopy(pipeline)
    element(bad, "mxpi_dataserialize0")["next"] = "mxpi_imagedecoder0"
    refused(bad, "already gets frames from")


def test_cli_reports_one_sentence_without_traceback(tmp_path):
    path = tmp_path / "bad.pipeline"
    data = json.loads((REPO / "pipeline" / "folder_layer2.pipeline").read_text())
    data[STREAM]["mxpi_imagecrop0"]["props"]["cropHeight"] = 224
    path.write_text(json.dumps(data))
    done = subprocess.run([sys.executable, "-m", "patchline", "run", str(path), "--source", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "element 'mxpi_imagecrop0', prop 'cropHeight'" in done.stderr  # beside the missing models
    assert "2 problems" in done.stderr and "efficientnet_lite0_224_layer2.onnx does not exist" in done.stderr


def test_runtime_never_imports_mindspore_or_torch():
    code = textwrap.dedent("""
        import sys
        import patchline.app.run, patchline.pipeline.config, patchline.pipeline.graph, patchline.pipeline.streams
        from patchline.pipeline.factories import FACTORIES, element_class
        for factory in FACTORIES:
            element_class(factory)
        import patchline.plugins.patchcore_postprocess, patchline.extractors.onnx, patchline.plugins.camera
        import patchline.mqtt.publisher, patchline.mqtt.subscriber, patchline.app.alarms, patchline.bank.meta
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("mindspore", "torch"))
        print(",".join(heavy))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
