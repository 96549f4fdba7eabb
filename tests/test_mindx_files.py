"""Pipeline files written for the MindX SDK, the way its own samples are: element names
<factory><N>, every prop a string, `next` / `nextMeta`, appsrcN / appsinkN."""

from __future__ import annotations

import json

import pytest

from patchline.errors import ConfigError
from patchline.pipeline.config import parse_pipeline

pytestmark = pytest.mark.runtime  # runs in the runtime-only install too (scripts/runtime_check.sh)


def sdk_stream(**changes) -> dict:
    """One SDK-style stream: appsrc → decode → resize → crop → normalize → tensorinfer → post → serialize → sink."""
    stream = {
        "stream_config": {"deviceId": "0"},
        "appsrc0": {"props": {"blocksize": "409600"}, "factory": "appsrc", "next": "mxpi_imagedecoder0"},
        "mxpi_imagedecoder0": {"props": {"handleMethod": "opencv", "outputDataFormat": "RGB"},
                               "factory": "mxpi_imagedecoder",
                               "next": "mxpi_imageresize0"},
        "mxpi_imageresize0": {"props": {"handleMethod": "opencv", "resizeType": "Resizer_KeepAspectRatio_Short",
                                        "scaleValue": "256"},
                              "factory": "mxpi_imageresize", "next": "mxpi_imagecrop0"},
        "mxpi_imagecrop0": {"props": {"cropHeight": "224", "cropWidth": "224"}, "factory": "mxpi_imagecrop",
                            "next": "mxpi_imagenormalize0"},
        "mxpi_imagenormalize0": {"props": {"alpha": "123.675,116.28,103.53", "beta": "58.395,57.12,57.375",
                                           "dataType": "FLOAT32"},
                                 "factory": "mxpi_imagenormalize", "next": "mxpi_tensorinfer0"},
        "mxpi_tensorinfer0": {"props": {"dataSource": "mxpi_imagenormalize0",
                                        "modelPath": "models/efficientnet_lite0_224_layer2.om"},
                              "factory": "mxpi_tensorinfer", "next": "mxpi_classpostprocessor0"},
        "mxpi_classpostprocessor0": {"props": {"dataSource": "mxpi_tensorinfer0", "funcLanguage": "python",
                                               "pythonModule": "patchline.plugins.patchcore_postprocess",
                                               "className": "PatchCorePostProcess", "line": "bottle"},
                                     "factory": "mxpi_classpostprocessor", "next": "mxpi_dataserialize0"},
        "mxpi_dataserialize0": {"props": {"outputDataKeys": "mxpi_classpostprocessor0"},
                                "factory": "mxpi_dataserialize", "next": "appsink0"},
        "appsink0": {"props": {"blocksize": "4096000"}, "factory": "appsink"},
    }
    for name, props in changes.items():
        stream[name]["props"].update(props)
    return stream


def test_an_sdk_file_loads_as_written():
    config = parse_pipeline({"detection": sdk_stream()}, "sdk.pipeline", check_files=False)
    assert config.streams["detection"].order[0] == "appsrc0"


def test_every_error_of_a_file_is_reported_at_once():
    stream = sdk_stream(mxpi_imageresize0={"resizeType": "Resizer_KeepAspectRatio_Long"},
                        mxpi_tensorinfer0={"waitTime": "5"})
    stream["mxpi_imagecrop0"]["props"]["cropHeight"] = 224  # a number, not a string
    stream["mxpi_imagenormalize0"]["props"]["alpha"] = "0,0,0"
    with pytest.raises(ConfigError) as info:
        parse_pipeline({"detection": stream}, "sdk.pipeline", check_files=False)
    lines = str(info.value).splitlines()
    assert lines[0] == "4 problems:"
    expected = [("mxpi_imageresize0", "resizeType"), ("mxpi_imagecrop0", "cropHeight"),
                ("mxpi_imagenormalize0", "alpha"), ("mxpi_tensorinfer0", "waitTime")]
    for element, prop in expected:  # one line each, naming stream, element and prop
        assert sum(f"stream 'detection', element '{element}', prop '{prop}'" in line for line in lines[1:]) == 1


def test_errors_of_several_streams_are_reported_together():
    bad_a = sdk_stream(mxpi_imagecrop0={"cropWidth": "200"})
    bad_b = sdk_stream(mxpi_imageresize0={"scaleValue": "big"})
    with pytest.raises(ConfigError) as info:
        parse_pipeline({"cam_a": bad_a, "cam_b": bad_b}, "sdk.pipeline", check_files=False)
    message = str(info.value)
    assert "2 problems" in message and "stream 'cam_a'" in message and "stream 'cam_b'" in message


def test_a_factory_patchline_does_not_implement_is_refused_naming_it_and_what_is_supported():
    stream = sdk_stream()
    stream["mxpi_objectpostprocessor0"] = {"props": {}, "factory": "mxpi_objectpostprocessor", "next": "appsink0"}
    with pytest.raises(ConfigError) as info:
        parse_pipeline({"detection": stream}, "sdk.pipeline", check_files=False)
    message = str(info.value)
    assert "unknown factory 'mxpi_objectpostprocessor'" in message and "mxpi_tensorinfer" in message
    assert json.dumps(message).count("\\n") == 0  # the one problem, no noise from the links it breaks


def test_a_plain_sdk_resize_stretches_to_the_crop_or_the_model_size():
    # MindX: resizeType defaults to Resizer_Stretch; omitted sizes come from the model's input
    from patchline.pipeline.elements import StreamContext
    from patchline.plugins.image_ops import ImageCrop, ImageResize

    stream = sdk_stream()
    stream["mxpi_imageresize0"]["props"] = {"resizeHeight": "224", "resizeWidth": "224"}
    resize = parse_pipeline({"detection": stream}, "sdk.pipeline", check_files=False) \
        .streams["detection"].elements["mxpi_imageresize0"]
    assert resize.parsed["resizeType"] == "Resizer_Stretch"

    stream["mxpi_imageresize0"]["props"] = {}
    parsed = parse_pipeline({"detection": stream}, "sdk.pipeline", check_files=False).streams["detection"].elements
    context = StreamContext(stream="detection", camera="c", pipeline_path="sdk.pipeline")
    element = ImageResize("mxpi_imageresize0", parsed["mxpi_imageresize0"].parsed, context)
    assert element.resize is None and context.geometry.resize_type == "stretch"
    ImageCrop("mxpi_imagecrop0", parsed["mxpi_imagecrop0"].parsed, context)
    assert element.resize == 224 and context.geometry.resize == 224  # the crop after it said the size


def test_props_without_effect_here_are_accepted_and_listed_once(caplog):
    stream = sdk_stream(mxpi_tensorinfer0={"deviceId": "0", "waitingTime": "5"},
                        mxpi_imageresize0={"deviceId": "0"})
    with caplog.at_level("WARNING", logger="patchline.pipeline.config"):
        config = parse_pipeline({"detection": stream}, "sdk.pipeline", check_files=False)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # one warning for the whole file, naming every such prop
    assert "element 'mxpi_tensorinfer0': deviceId" in warnings[0] and "waitingTime" in warnings[0]
    assert "element 'mxpi_imageresize0': deviceId" in warnings[0] and "blocksize" in warnings[0]
    assert len(config.ignored) == 4  # appsrc0, appsink0 (blocksize), the resize, the model
    stream["mxpi_imagecrop0"]["props"]["status"] = "2"  # a common prop still has its values checked
    with pytest.raises(ConfigError, match="prop 'status'"):
        parse_pipeline({"detection": stream}, "sdk.pipeline", check_files=False)


@pytest.mark.parametrize("element, props, prop, words", [
    ("mxpi_imagedecoder0", {"outputDataFormat": None}, "outputDataFormat", "MindX then decodes to BGR"),
    ("mxpi_imagedecoder0", {"outputDataFormat": "BGR"}, "outputDataFormat", "trained on RGB"),
    ("mxpi_imagenormalize0", {"alpha": None}, "alpha", "MindX then uses 0,0,0"),
    ("mxpi_imagenormalize0", {"beta": None}, "beta", "MindX then uses 1,1,1"),
    ("mxpi_imagenormalize0", {"format": "BGR888"}, "format", "bad value 'BGR888'"),
])
def test_sdk_defaults_that_would_feed_the_models_wrong_pixels_are_refused_naming_them(element, props, prop, words):
    # left out, these props take MindX's defaults, which would not give the backbones their input
    stream = sdk_stream()
    for key, value in props.items():
        if value is None:
            stream[element]["props"].pop(key, None)
        else:
            stream[element]["props"][key] = value
    with pytest.raises(ConfigError) as info:
        parse_pipeline({"detection": stream}, "sdk.pipeline", check_files=False)
    assert f"element '{element}', prop '{prop}'" in str(info.value) and words in str(info.value)


def test_the_sdks_reserved_metadata_keys_are_accepted_by_dataserialize():
    stream = sdk_stream(mxpi_dataserialize0={"outputDataKeys": "mxpi_classpostprocessor0,ReservedFrameInfo"})
    config = parse_pipeline({"detection": stream}, "sdk.pipeline", check_files=False)
    assert config.streams["detection"].elements["mxpi_dataserialize0"].parsed["outputDataKeys"] == \
        ("mxpi_classpostprocessor0", "ReservedFrameInfo")
    stream = sdk_stream(mxpi_dataserialize0={"outputDataKeys": "mxpi_tensorinfer0,ReservedVisionList"})
    parse_pipeline({"detection": stream}, "sdk.pipeline", check_files=False)
    stream = sdk_stream(mxpi_dataserialize0={"outputDataKeys": "mxpi_tensorinfer0,ReservedSomething"})
    with pytest.raises(ConfigError, match="names 'ReservedSomething', which is not an element"):
        parse_pipeline({"detection": stream}, "sdk.pipeline", check_files=False)


def test_reserved_frame_info_in_the_serialized_result_is_the_sdks():
    from patchline.pipeline.elements import StreamContext
    from patchline.pipeline.frame import Frame
    from patchline.plugins.sinks import DataSerialize

    element = DataSerialize("mxpi_dataserialize0", {"outputDataKeys": ("mxpi_tensorinfer0", "ReservedFrameInfo")},
                            StreamContext("s", "cam", "p"))
    frame = Frame("s", 7, "a.png", 0.0, channel=2, meta={"mxpi_tensorinfer0": {"x": 1}})
    assert element.process(frame).result == {"mxpi_tensorinfer0": {"x": 1},
                                             "ReservedFrameInfo": {"channelId": 2, "frameId": 7, "isEos": False}}


def test_an_unknown_key_does_not_hide_the_elements_prop_problems():
    stream = sdk_stream()
    stream["mxpi_imagecrop0"]["extra"] = "x"  # an unknown element key …
    stream["mxpi_imagecrop0"]["props"]["cropHeight"] = 224  # … a prop that is not a string …
    stream["mxpi_imagecrop0"]["props"]["cropWidth"] = "wide"  # … and a bad prop value, all on one element
    stream["mxpi_imageresize0"]["nexxt"] = "y"  # another element's unknown key
    stream["mxpi_imageresize0"]["props"]["scaleValue"] = "big"
    with pytest.raises(ConfigError) as info:
        parse_pipeline({"detection": stream}, "sdk.pipeline", check_files=False)
    lines = str(info.value).splitlines()
    assert lines[0] == "5 problems:"
    text = "\n".join(lines)
    assert "element 'mxpi_imagecrop0': key 'extra' is not allowed" in text
    assert "element 'mxpi_imagecrop0', prop 'cropHeight': every prop value must be a string (write \"224\")" in text
    assert "element 'mxpi_imagecrop0', prop 'cropWidth': bad value 'wide'" in text
    assert "element 'mxpi_imageresize0': key 'nexxt' is not allowed" in text
    assert "element 'mxpi_imageresize0', prop 'scaleValue': bad value 'big'" in text


def test_an_unknown_factory_and_a_bad_link_are_both_reported():
    stream = sdk_stream()
    stream["mxpi_imagecrop0"]["factory"] = "mxpi_nosuch"
    stream["mxpi_imagecrop0"]["next"] = 5
    with pytest.raises(ConfigError) as info:
        parse_pipeline({"detection": stream}, "sdk.pipeline", check_files=False)
    text = str(info.value)
    assert "unknown factory 'mxpi_nosuch'" in text and "'next' must be an element name" in text
