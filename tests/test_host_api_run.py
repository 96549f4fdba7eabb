"""`patchline run --host-api`: the shipped pipeline driven through StreamManagerApi (patchline.mindx here),
the PatchCore post-process, judging and sinks on the host — the same verdicts as `patchline run`."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mindx_support import run_app

from patchline.app.host_run import run_host_api
from patchline.app.run import run_pipeline
from patchline.app.run_settings import RunSettings, SnapshotSinkOptions
from patchline.app.sinks import Sink
from patchline.errors import ConfigError
from pipeline_support import LINE, REPO, prepare_trained_line

SHIPPED = REPO / "pipeline" / "folder_layer2_layer3.pipeline"
TIMING = {"timestamp", "latency_ms", "queue_ms", "processing_ms"}


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    return prepare_trained_line(tmp_path_factory.getbasetemp() / "pipeline-line")


class Collect(Sink):
    def __init__(self):
        self.payloads = []

    def verdict(self, verdict):
        self.payloads.append({k: v for k, v in verdict.payload.items() if k not in TIMING})


def _both(line, monkeypatch, runner_options=None, host_options=None) -> tuple[list, list]:
    monkeypatch.chdir(line.workdir)
    settings = RunSettings(SHIPPED, (str(line.frames),), line=LINE, quiet=True)
    runner, host = Collect(), Collect()
    assert run_pipeline(dataclasses.replace(settings, **(runner_options or {})), [runner]) == 0
    assert run_host_api(dataclasses.replace(settings, **(host_options or {})), [host]) == 0
    return runner.payloads, host.payloads


def test_host_api_gives_the_runners_verdicts_on_the_shipped_pipeline(line, monkeypatch):
    runner, host = _both(line, monkeypatch)
    assert len(host) == len(runner) == len(line.expected) + 1
    for want, got in zip(runner, host):
        want, got = dict(want), dict(got)
        assert got.keys() == want.keys()
        want_score, got_score = want.pop("score"), got.pop("score")
        if want_score is not None:
            assert abs(got_score - want_score) <= 1e-4 * max(1.0, abs(want_score))
        else:
            assert got_score is None
        assert got == want  # verdict, region, frame id, source, line, bank version, the corrupt file's reason
    by_source = {p["source"]: p for p in host}
    assert by_source[line.corrupt]["verdict"] == "error" and line.corrupt in by_source[line.corrupt]["reason"]
    for name, want in line.expected.items():
        assert abs(by_source[name]["score"] - want["score"]) <= 1e-4 * abs(want["score"])  # = evaluate's


def test_host_api_keeps_defect_snapshots_from_the_crops_pixels(line, monkeypatch, tmp_path):
    runner, host = _both(line, monkeypatch, {"snapshots": SnapshotSinkOptions(tmp_path / "runner")},
                         {"snapshots": SnapshotSinkOptions(tmp_path / "snaps")})
    defects = [p for p in host if p["verdict"] == "defect"]
    assert defects and all(p.get("snapshot") for p in defects)
    assert [bool(p.get("snapshot")) for p in host] == [bool(p.get("snapshot")) for p in runner]  # names hold the time
    kept = sorted(tmp_path.joinpath("snaps").rglob("*.jpg"))
    assert len(kept) == len(defects)
    assert all(cv2.imread(str(path)) is not None for path in kept)


def test_host_api_through_the_cli_publishes_what_the_runner_publishes(line, mosquitto_broker, mqtt_collector):
    collector = mqtt_collector(mosquitto_broker.url, ["patchline/#"])
    exe = shutil.which("patchline", path=str(REPO / ".venv" / "bin")) or "patchline"
    done = subprocess.run([exe, "run", str(SHIPPED), "--source", "frames", "--line", LINE, "--camera", "cam7",
                           "--host-api", "--mqtt", mosquitto_broker.url, "--spool", "spool"],
                          cwd=line.workdir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--host-api (patchline.mindx" in done.stdout
    collector.wait_for(lambda _: len(collector.payloads("cam7/verdict")) >= len(line.expected) + 1)
    scores = {p["source"]: p["score"] for p in collector.payloads("cam7/verdict") if p["score"] is not None}
    for name, want in line.expected.items():
        assert abs(scores[name] - want["score"]) <= 1e-4 * abs(want["score"])


@pytest.mark.parametrize("case, sentence", [
    ("camera", "a camera runs in the stream itself"),
    ("two_streams", "a file with one stream"),
    ("no_postprocess", "needs exactly one"),
    ("no_source", "give one --source FOLDER"),
    ("station", "does not run the inspection station"),
])
def test_host_api_refuses_what_it_cannot_cut_in_one_sentence(line, tmp_path, case, sentence):
    data = json.loads(SHIPPED.read_text())
    (stream,) = data.values()
    sources = ["--source", str(line.frames)]
    if case == "camera":
        sources = ["--source", "rtsp://127.0.0.1:1/none"]
    elif case == "two_streams":
        data["second"] = json.loads(json.dumps(stream))
    elif case == "no_postprocess":
        stream["mxpi_tensorinfer1"]["next"] = "appsink0"
        for name in ("mxpi_classpostprocessor0", "mxpi_dataserialize0"):
            del stream[name]
    elif case == "no_source":
        sources = []
    elif case == "station":
        sources += ["--modbus", "127.0.0.1:15020"]
    path = tmp_path / "file.pipeline"
    path.write_text(json.dumps(data))
    done = subprocess.run([sys.executable, "-m", "patchline", "run", str(path), *sources, "--line", LINE, "--host-api",
                           "--quiet"], cwd=line.workdir, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert sentence in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_host_api_settings_refuse_a_camera_before_anything_opens():
    with pytest.raises(ConfigError, match="--host-api sends a folder"):
        RunSettings(SHIPPED, ("rtsp://127.0.0.1:1/cam",), host_api=True).check()


def test_a_streaming_app_sending_jpeg_bytes_gets_evaluates_scores(line, tmp_path):
    """SDK sample style (tests/mindx_apps/stream_scores.py): JPEG files' bytes by SendData, decode → resize →
    crop → models → PatchCore on the stream; scores = evaluate's code path on the same JPEG files."""
    from patchline.bank.store import load_bank
    from patchline.core.scoring import aggregate
    from patchline.extractors.image_scores import score_images
    from patchline.extractors.onnx import OnnxFeatureExtractor
    from patchline.settings import settings_from_mapping

    jpegs = tmp_path / "jpeg"
    jpegs.mkdir()
    names = sorted(line.expected)[:6]
    for name in names:
        image = cv2.imread(str(line.frames / name))
        cv2.imwrite(str(jpegs / (name[:-4] + ".jpg")), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    paths = sorted(jpegs.iterdir())
    assert all(p.read_bytes()[:2] == b"\xff\xd8" for p in paths)
    out = tmp_path / "results.json"
    run_app("stream_scores.py", LINE, "models/efficientnet_lite0_224_layer2.onnx",
            "models/efficientnet_lite0_224_layer3.onnx", str(out), *map(str, paths), cwd=line.workdir)
    results = json.loads(out.read_text())
    bank = load_bank(line.workdir / "faiss-index-precision", LINE)
    m = bank.meta
    settings = settings_from_mapping({k: m.get(k) for k in ("line", "backbone", "layers", "resize", "imagesize",
                                                             "patchsize", "target_dim", "aggregation")})
    models = line.workdir / "models"
    extractor = OnnxFeatureExtractor(models / "efficientnet_lite0_224_layer2.onnx",
                                     models / "efficientnet_lite0_224_layer3.onnx", m["layers"])
    want = aggregate(score_images(paths, bank, extractor, settings), m["aggregation"])
    for path, score in zip(paths, want):
        (item,) = results[str(path)]["MxpiClass"]
        assert abs(item["confidence"] - float(score)) <= 1e-4 * max(1.0, abs(float(score)))
    assert np.isfinite(want).all()


def test_host_api_finds_models_beside_a_pipeline_file_run_from_elsewhere(line, monkeypatch, tmp_path):
    """A line's pipeline kept beside its models/: the device stream (created from JSON text, no folder of its
    own) opens the models the file names, as the runner does, whatever the working directory."""
    kept = line.workdir / "kept.pipeline"
    kept.write_text(SHIPPED.read_text())
    monkeypatch.setenv("PATCHLINE_MODELS", str(line.workdir / "models"))
    monkeypatch.chdir(tmp_path)
    host = Collect()
    settings = RunSettings(kept, (str(line.frames),), line=LINE, banks_root=line.workdir / "faiss-index-precision",
                           quiet=True)
    assert run_host_api(settings, [host]) == 0
    assert sum(p["verdict"] != "error" for p in host.payloads) == len(line.expected)
