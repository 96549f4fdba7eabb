"""Faults found by fault-injection runs: each ends in one sentence (or a kept bank), never a
traceback or a silent wrong verdict. Real files, real faiss banks, real OpenCV decoding."""

from __future__ import annotations

import json
import struct
import time
import zlib

import cv2
import numpy as np
import pytest

from patchline.bank import live as live_bank
from patchline.bank.store import write_bank
from patchline.core.preprocess import decode_image
from patchline.errors import ConfigError, PatchlineError
from patchline.mqtt.outbox import Message, Outbox
from patchline.pipeline.config import load_pipeline, parse_pipeline
from patchline.pipeline.frame import Frame
from patchline.plugins.image_ops import ImageDecoder

pytestmark = pytest.mark.runtime  # runs in the runtime-only install too (scripts/runtime_check.sh)

META = {"backbone": "efficientnet_lite0", "layers": ["layer2"], "resize": 64, "imagesize": 64, "patchsize": 3,
        "target_dim": None, "grid": [8, 8], "aggregation": "max", "threshold": 1.0, "pixel_threshold": 1.0}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_a_huge_image_is_refused_in_a_sentence_not_an_opencv_assertion():
    # a real PNG header for a 40000 × 40000 gray image (the pixels never need to exist)
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 0))
    png = b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b"")
    with pytest.raises(PatchlineError, match="too large to decode") as info:
        decode_image(png, "huge.png")
    assert "Assertion" not in str(info.value) and "cv::" not in str(info.value)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5000), (5000, 20)])
def test_a_sliver_of_a_frame_is_an_error_not_a_defect(shape):
    ok, png = cv2.imencode(".png", np.full(shape, 128, np.uint8))
    frame = Frame("s", 0, "tiny.png", time.time(), data=png.tobytes())
    decoder = ImageDecoder("mxpi_imagedecoder0", {"outputDataFormat": "RGB"}, None)
    with pytest.raises(PatchlineError, match="too small"):
        decoder.process(frame)


def test_pipeline_json_nested_without_end_is_one_sentence(tmp_path):
    path = tmp_path / "deep.pipeline"
    path.write_text("[" * 50000 + "]" * 50000)
    with pytest.raises(ConfigError, match="nests its JSON too deeply"):
        load_pipeline(path)


def test_an_rtsp_source_must_be_an_rtsp_url():
    stream = {"mxpi_rtspsrc0": {"factory": "mxpi_rtspsrc", "props": {"rtspUrl": "http://cam/stream"},
                                "next": "appsink0"},
              "appsink0": {"factory": "appsink"}}
    with pytest.raises(ConfigError, match="prop 'rtspUrl'.*rtsp://"):
        parse_pipeline({"cam": stream}, "cam.pipeline")


def test_verdicts_counted_as_dropped_at_close_are_no_longer_queued():
    outbox = Outbox(max_verdicts=10, max_alarms=10)
    for i in range(3):
        outbox.add_verdict(Message(i, "verdict", "patchline/l/c/verdict", json.dumps({"frame_id": i}).encode()))
    verdicts, alarms, lost = outbox.drop_undelivered()
    assert (verdicts, alarms, lost) == (3, 0, 0)
    assert outbox.counts["dropped_verdicts"] == 3 and outbox.pending() == 0


def test_the_bank_watcher_keeps_the_old_bank_through_a_bad_one_and_takes_the_next_good_one(tmp_path):
    patches = np.random.default_rng(0).normal(size=(50, 40)).astype(np.float32)
    first = write_bank(tmp_path, "line", patches, META).name
    live = live_bank.LiveBank(tmp_path, "line", {}, {"layer2": 40}, interval=0.05)
    try:
        # a new version whose bank.json has a threshold that is not a number
        bad = write_bank(tmp_path, "line", patches, META)
        meta = json.loads((bad / "bank.json").read_text())
        meta["threshold"] = "high"
        (bad / "bank.json").write_text(json.dumps(meta))
        time.sleep(0.5)
        assert live.state.version == first  # kept, and the watcher still runs
        good = write_bank(tmp_path, "line", patches, META).name
        deadline = time.monotonic() + 5
        while live.state.version != good and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live.state.version == good
        # CURRENT pointed back at the first folder: the folder name is the version
        (tmp_path / "line" / "CURRENT").write_text(first + "\n")
        deadline = time.monotonic() + 5
        while live.state.version != first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live.state.version == first
    finally:
        live.close()


@pytest.mark.parametrize("model_path", ["../../etc/passwd", "/etc/passwd", "models/../../secret.onnx"])
def test_a_pipeline_file_may_not_name_files_outside_the_models_folder(tmp_path, monkeypatch, model_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="prop 'modelPath'.*outside the models folder"):
        parse_pipeline({"s": _model_stream(model_path)}, "s.pipeline", check_files=False)


def _model_stream(model_path: str) -> dict:
    return {"appsrc0": {"factory": "appsrc", "next": "mxpi_imagedecoder0"},
            "mxpi_imagedecoder0": {"factory": "mxpi_imagedecoder", "props": {"outputDataFormat": "RGB"},
                                   "next": "mxpi_imagenormalize0"},
            "mxpi_imagenormalize0": {"factory": "mxpi_imagenormalize",
                                     "props": {"alpha": "123.675,116.28,103.53", "beta": "58.395,57.12,57.375"},
                                     "next": "mxpi_tensorinfer0"},
            "mxpi_tensorinfer0": {"factory": "mxpi_tensorinfer", "props": {"modelPath": model_path},
                                  "next": "appsink0"},
            "appsink0": {"factory": "appsink"}}


def test_a_relative_model_path_resolves_beside_the_pipeline_file_before_the_working_directory(tmp_path, monkeypatch):
    line_dir, elsewhere = tmp_path / "line", tmp_path / "elsewhere"
    (line_dir / "models").mkdir(parents=True)
    (elsewhere / "models").mkdir(parents=True)
    (line_dir / "models" / "m_224_layer2.onnx").write_bytes(b"beside the file")
    (elsewhere / "models" / "m_224_layer2.onnx").write_bytes(b"in the working directory")
    monkeypatch.setenv("PATCHLINE_MODELS", str(tmp_path))
    monkeypatch.chdir(elsewhere)
    pipeline = line_dir / "line.pipeline"
    pipeline.write_text(json.dumps({"s": _model_stream("models/m_224_layer2.om")}))
    parsed = load_pipeline(pipeline).streams["s"].elements["mxpi_tensorinfer0"].parsed
    assert parsed["modelPath"] == str(line_dir / "models" / "m_224_layer2.onnx")
    (line_dir / "models" / "m_224_layer2.onnx").unlink()  # not beside the file: the working directory's, as MindX
    parsed = load_pipeline(pipeline).streams["s"].elements["mxpi_tensorinfer0"].parsed
    assert parsed["modelPath"] == "models/m_224_layer2.onnx"
    pipeline.write_text(json.dumps({"s": _model_stream("../../../etc/passwd")}))  # relative to the file: still confined
    with pytest.raises(ConfigError, match="outside the models folder"):
        load_pipeline(pipeline)
