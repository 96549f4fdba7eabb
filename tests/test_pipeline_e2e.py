"""The whole loop as an operator runs it: train → export → evaluate → `patchline run` → MQTT.

Real MindSpore (training, evaluate), real ONNX Runtime (pipeline), real faiss, real Mosquitto.
"""

from __future__ import annotations

import csv
import json
import shutil
import signal
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from pipeline_support import LINE, REPO, bank_meta, bank_meta_at, check_run, patchline, prepare_trained_line, train

LAYER2_LAYER3 = REPO / "pipeline" / "folder_layer2_layer3.pipeline"
VERDICT_FIELDS = {"frame_id", "camera", "channel", "line", "timestamp", "score", "threshold", "verdict", "aggregation",
                  "bank_version", "latency_ms", "queue_ms", "processing_ms", "source"}


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    return prepare_trained_line(tmp_path_factory.getbasetemp() / "pipeline-line")


def verdicts_of(messages):
    return [p for topic, p, _ in messages if topic.endswith("/verdict")]


def test_folder_gives_one_verdict_per_image_with_evaluate_scores(line, tmp_path, mosquitto_broker, mqtt_collector):
    collector = mqtt_collector(mosquitto_broker.url, [f"patchline/{LINE}/#"])
    names = sorted([*line.expected, line.corrupt])
    done = check_run(patchline("run", str(LAYER2_LAYER3), "--source", str(line.frames), "--mqtt", mosquitto_broker.url,
                               "--line", LINE, "--camera", "cam1", "--spool", str(tmp_path / "spool")),
                     line.workdir, timeout=180)
    collector.wait_for(lambda m: len(verdicts_of(m)) >= len(names), timeout=20)
    time.sleep(0.5)  # anything extra would arrive now
    verdicts = collector.payloads("cam1/verdict")
    assert sorted(v["source"] for v in verdicts) == names, "exactly one verdict per image"
    assert [v["frame_id"] for v in sorted(verdicts, key=lambda v: v["source"])] == list(range(len(names)))
    by_source = {v["source"]: v for v in verdicts}

    broken = by_source.pop(line.corrupt)
    assert broken["verdict"] == "error" and "not a readable image" in broken["reason"]
    assert broken["frame_id"] < max(v["frame_id"] for v in by_source.values()), "the stream went on after it"

    alarms = collector.payloads("cam1/alarm")
    flagged = sorted(s for s, v in by_source.items() if v["verdict"] == "defect")
    assert sorted(a["source"] for a in alarms) == flagged, "alarms exactly for defect verdicts"

    worst = 0.0
    for source, v in by_source.items():
        assert VERDICT_FIELDS <= set(v), v
        assert abs(v["queue_ms"] + v["processing_ms"] - v["latency_ms"]) < 0.01 and v["processing_ms"] > 0
        assert v["line"] == LINE and v["camera"] == "cam1" and v["timestamp"].endswith("Z")
        assert v["aggregation"] == line.aggregation and v["bank_version"] == line.version
        assert v["verdict"] == ("defect" if v["score"] > v["threshold"] else "good")
        assert ("region" in v) == (v["verdict"] == "defect")
        expected = line.expected[source]["score"]
        worst = max(worst, abs(v["score"] - expected) / abs(expected))
    print(f"\nmax relative score difference, pipeline (ONNX Runtime) vs evaluate (MindSpore): {worst:.2e}")
    assert worst < 1e-4
    defects_found = sum(by_source[s]["verdict"] == "defect" for s, e in line.expected.items() if e["label"] == 1)
    assert defects_found >= 3, "the synthetic defects are found"
    for v in alarms:
        x0, y0, x1, y1 = v["region"]["bbox"]
        assert 0 <= x0 < x1 <= 304 and 0 <= y0 < y1 <= 272 and v["region"]["area"] > 0  # frame pixels

    status = collector.wait_for(lambda m: [p for t, p, r in m if t.endswith("cam1/status") and p["state"] == "offline"])
    assert status[-1]["bank_version"] == line.version
    assert any(p["version"] == line.version for p in collector.payloads(f"{LINE}/bank"))
    assert "1 error" in done.stdout and f"{len(names)} results" in done.stdout


def test_a_two_sided_bank_gives_the_pipeline_the_scores_evaluate_gives(line, tmp_path, mosquitto_broker, mqtt_collector):
    work = tmp_path / "work"
    shutil.copytree(line.workdir, work, ignore=shutil.ignore_patterns("results", "frames", "patchline-spool"))
    train(work, "--aggregation", "two-sided")
    meta = bank_meta(work)
    assert meta["aggregation"] == "two-sided" and set(meta["score_reference"]) == {"high", "low"}
    check_run(patchline("evaluate", "--dataset", "data", "--category", LINE, "--out", "results", "--overlays", "0",
                        "--quiet"), work)
    with open(work / "results" / LINE / "scores.csv") as handle:
        expected = {f"{Path(r['image']).parent.name}_{Path(r['image']).name}": float(r["two-sided"])
                    for r in csv.DictReader(handle)}
    collector = mqtt_collector(mosquitto_broker.url, [f"patchline/{LINE}/#"])
    check_run(patchline("run", str(LAYER2_LAYER3), "--source", str(line.frames), "--mqtt", mosquitto_broker.url,
                        "--line", LINE, "--camera", "cam1", "--spool", str(tmp_path / "spool")), work, timeout=180)
    collector.wait_for(lambda m: len(verdicts_of(m)) >= len(expected) + 1, timeout=20)
    verdicts = {v["source"]: v for v in collector.payloads("cam1/verdict") if v["source"] in expected}
    assert set(verdicts) == set(expected)
    for source, v in verdicts.items():
        assert v["aggregation"] == "two-sided" and v["bank_version"] == meta["version"]
        # z units (spreads of the good images' scores): ONNX Runtime against MindSpore
        assert abs(v["score"] - expected[source]) < 1e-3, (source, v["score"], expected[source])
        assert v["verdict"] == ("defect" if v["score"] > meta["threshold"] else "good")


def test_a_bank_of_other_layers_is_refused_at_start(line, tmp_path):
    done = subprocess.run(patchline("run", str(REPO / "pipeline" / "folder_layer2.pipeline"), "--source",
                                    str(line.frames), "--line", LINE, "--spool", str(tmp_path / "spool")),
                          cwd=line.workdir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "layers" in done.stderr and "layer3" in done.stderr


def test_retraining_switches_a_running_pipeline_to_the_new_bank(line, tmp_path, mosquitto_broker, mqtt_collector,
                                                                 rtsp_server):
    work = tmp_path / "work"
    shutil.copytree(line.workdir, work, ignore=shutil.ignore_patterns("results", "frames", "patchline-spool"))
    camera = rtsp_server(frames=sorted(line.frames.glob("good_*.png")), path="cam1", fps=10)
    collector = mqtt_collector(mosquitto_broker.url, [f"patchline/{LINE}/#"])
    old = bank_meta(work)["version"]
    proc = subprocess.Popen(patchline("run", str(LAYER2_LAYER3), "--source", camera.url, "--mqtt", mosquitto_broker.url,
                                      "--line", LINE, "--camera", "cam1", "--spool", str(tmp_path / "spool")),
                            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        collector.wait_for(lambda m: any(v["bank_version"] == old for v in verdicts_of(m)), timeout=90)
        train(work)
        new = bank_meta(work)["version"]
        assert new != old
        collector.wait_for(lambda m: any(v["bank_version"] == new for v in verdicts_of(m)), timeout=30)
        collector.wait_for(lambda m: any(t.endswith(f"{LINE}/bank") and p["version"] == new for t, p, _ in m), timeout=10)
        assert proc.poll() is None, "the pipeline kept running: no restart"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    versions = [v["bank_version"] for v in collector.payloads("cam1/verdict")]
    first_new = versions.index(new)
    assert set(versions[:first_new]) == {old} and set(versions[first_new:]) == {new}, "one switch, never back"
    assert all(v["verdict"] != "error" for v in collector.payloads("cam1/verdict"))


def test_evaluation_can_score_with_the_exported_models(line):
    from patchline.bank.store import load_bank
    from patchline.core.scoring import aggregate
    from patchline.extractors.image_scores import score_images
    from patchline.extractors.onnx import OnnxFeatureExtractor
    from patchline.settings import settings_from_mapping

    bank = load_bank(line.workdir / "faiss-index-precision", LINE)
    m = bank.meta
    settings = settings_from_mapping({k: m.get(k) for k in ("line", "backbone", "layers", "resize", "imagesize",
                                                             "patchsize", "target_dim", "aggregation")})
    models = line.workdir / "models"
    extractor = OnnxFeatureExtractor(models / "efficientnet_lite0_224_layer2.onnx",
                                     models / "efficientnet_lite0_224_layer3.onnx", m["layers"])
    names = sorted(line.expected)
    scores = aggregate(score_images([line.frames / n for n in names], bank, extractor, settings), m["aggregation"])
    for name, score in zip(names, scores):
        expected = line.expected[name]["score"]
        assert abs(score - expected) / abs(expected) < 1e-4, name


def test_batched_and_one_at_a_time_runs_give_the_same_verdicts(line, monkeypatch):
    from patchline.pipeline.config import load_pipeline
    from patchline.pipeline.streams import StreamManager
    from patchline.plugins.tensorinfer import TensorInfer

    assert bank_meta(line.workdir)["search"]["kind"] == "hnsw"
    monkeypatch.chdir(line.workdir)  # model paths in the file are relative
    sizes: list[int] = []
    run_batch = TensorInfer.process_batch
    monkeypatch.setattr(TensorInfer, "process_batch", lambda self, frames: sizes.append(len(frames)) or run_batch(self, frames))
    runs, largest = {}, {}
    for max_batch in (1, 8):
        sizes.clear()
        payloads = []
        manager = StreamManager(load_pipeline(LAYER2_LAYER3), str(line.frames), "cam",
                                {"line": LINE, "banks_root": "faiss-index-precision", "max_batch": max_batch},
                                payloads.append)
        manager.start()
        assert manager.wait(120)
        manager.close()
        runs[max_batch] = {p["source"]: (p["verdict"], p["score"], p.get("region")) for p in payloads}
        largest[max_batch] = max(sizes)
    assert largest == {1: 1, 8: largest[8]} and largest[8] > 1, largest  # the folder's frames did queue up
    assert runs[1].keys() == runs[8].keys() and len(runs[1]) == len(line.expected) + 1
    for source, (verdict, score, region) in runs[1].items():
        assert runs[8][source][0] == verdict and runs[8][source][2] == region
        assert score is None or abs(runs[8][source][1] - score) <= 1e-5 * abs(score)


def two_camera_pipeline(distribute: bool = False) -> dict:
    """Two cameras merged by mxpi_parallel2serial into one layer2 / layer3 / post-process chain, in the
    MindX SDK's schema (props all strings, `name:port` links); with `distribute`, the verdicts then
    split by channel through mxpi_distributor into two sinks."""
    stream = {
        "stream_config": {"deviceId": "0"},
        "appsrc0": {"props": {"blocksize": "409600"}, "factory": "appsrc", "next": "mxpi_imagedecoder0"},
        "appsrc1": {"props": {"blocksize": "409600"}, "factory": "appsrc", "next": "mxpi_imagedecoder1"},
        "mxpi_imagedecoder0": {"props": {"outputDataFormat": "RGB"}, "factory": "mxpi_imagedecoder",
                               "next": "mxpi_parallel2serial0:0"},
        "mxpi_imagedecoder1": {"props": {"outputDataFormat": "RGB"}, "factory": "mxpi_imagedecoder",
                               "next": "mxpi_parallel2serial0:1"},
        "mxpi_parallel2serial0": {"props": {}, "factory": "mxpi_parallel2serial", "next": "mxpi_imageresize0"},
        "mxpi_imageresize0": {"props": {"resizeType": "Resizer_KeepAspectRatio_Short", "scaleValue": "256"},
                              "factory": "mxpi_imageresize", "next": "mxpi_opencvcentercrop0"},
        "mxpi_opencvcentercrop0": {"props": {"cropHeight": "224", "cropWidth": "224"},
                                   "factory": "mxpi_opencvcentercrop", "next": "mxpi_imagenormalize0"},
        "mxpi_imagenormalize0": {"props": {"alpha": "123.675,116.28,103.53", "beta": "58.395,57.12,57.375",
                                           "format": "RGB888", "dataType": "FLOAT32"},
                                 "factory": "mxpi_imagenormalize",
                                 "next": "mxpi_tensorinfer0"},
        "mxpi_tensorinfer0": {"props": {"modelPath": "models/efficientnet_lite0_224_layer2.om"},
                              "factory": "mxpi_tensorinfer", "next": "mxpi_tensorinfer1"},
        "mxpi_tensorinfer1": {"props": {"dataSource": "mxpi_tensorinfer0",
                                        "modelPath": "models/efficientnet_lite0_224_layer3.om"},
                              "factory": "mxpi_tensorinfer", "next": "mxpi_classpostprocessor0"},
        "mxpi_classpostprocessor0": {"props": {"funcLanguage": "python", "line": LINE,
                                               "pythonModule": "patchline.plugins.patchcore_postprocess",
                                               "className": "PatchCorePostProcess"},
                                     "factory": "mxpi_classpostprocessor", "next": "mxpi_dataserialize0"},
        "mxpi_dataserialize0": {"props": {"outputDataKeys": "mxpi_classpostprocessor0"},
                                "factory": "mxpi_dataserialize", "next": "appsink0"},
        "appsink0": {"props": {"blocksize": "4096000"}, "factory": "appsink"},
    }
    if distribute:
        stream["mxpi_dataserialize0"]["next"] = "mxpi_distributor0"
        stream["mxpi_distributor0"] = {"props": {"channelIds": "1,0"}, "factory": "mxpi_distributor",
                                       "next": ["appsink0", "appsink1"]}
        stream["appsink1"] = {"props": {"blocksize": "4096000"}, "factory": "appsink"}
    return {"line": stream}


def test_two_cameras_merged_into_one_model_chain_each_keep_their_verdicts(line, tmp_path, mosquitto_broker,
                                                                         mqtt_collector):
    names = sorted(line.expected)
    folders = [tmp_path / "cam_a", tmp_path / "cam_b"]
    for i, folder in enumerate(folders):
        folder.mkdir()
        for name in names[i::2]:
            shutil.copy(line.frames / name, folder / name)
    path = tmp_path / "two_cameras.pipeline"
    path.write_text(json.dumps(two_camera_pipeline()))
    collector = mqtt_collector(mosquitto_broker.url, [f"patchline/{LINE}/#"])
    done = check_run(patchline("run", str(path), "--source", str(folders[0]), "--source", str(folders[1]),
                               "--mqtt", mosquitto_broker.url, "--spool", str(tmp_path / "spool")),
                     line.workdir, timeout=180)
    collector.wait_for(lambda m: len(verdicts_of(m)) >= len(names), timeout=20)
    for camera, channel, folder in (("line-0", 0, folders[0]), ("line-1", 1, folders[1])):
        verdicts = collector.payloads(f"{camera}/verdict")
        assert sorted(v["source"] for v in verdicts) == sorted(p.name for p in folder.iterdir())
        for v in verdicts:  # merged, batched with the other camera's frames, scored as evaluate scores it
            assert v["camera"] == camera and v["channel"] == channel
            assert abs(v["score"] - line.expected[v["source"]]["score"]) <= 1e-4 * abs(v["score"])
        assert collector.payloads(f"{camera}/status")
    assert "cameras line-0, line-1" in done.stdout and f"{len(names)} results" in done.stdout


def test_a_distributor_sends_each_camera_to_its_own_sink(line, tmp_path, monkeypatch):
    from patchline.pipeline.config import parse_pipeline
    from patchline.pipeline.streams import StreamManager

    folders = [tmp_path / "cam_a", tmp_path / "cam_b"]
    for i, folder in enumerate(folders):
        folder.mkdir()
        for name in sorted(line.expected)[i:6:2]:
            shutil.copy(line.frames / name, folder / name)
    config = parse_pipeline(two_camera_pipeline(distribute=True), tmp_path / "d.pipeline", check_files=False)
    results = []
    monkeypatch.chdir(line.workdir)  # model paths are relative to it
    manager = StreamManager(config, [str(f) for f in folders], "line",
                            {"banks_root": str(line.workdir / "faiss-index-precision")}, results.append)
    manager.start()
    assert manager.wait(120)
    manager.close()
    stream = manager.streams["line"]
    by_sink = {name: stream.nodes[name].processed for name in ("appsink0", "appsink1")}
    assert by_sink == {"appsink0": 3, "appsink1": 3}  # channelIds "1,0": channel 1 → appsink0
    assert sorted(r["channel"] for r in results) == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("limit", [1, 4])
def test_max_frames_stops_at_exactly_that_many_results(line, tmp_path, limit):
    done = check_run(patchline("run", str(LAYER2_LAYER3), "--source", str(line.frames), "--line", LINE,
                               "--max-frames", str(limit), "--quiet"), line.workdir, timeout=120)
    results = [json.loads(row) for row in done.stdout.splitlines() if row.startswith("{")]
    assert len(results) == limit


def test_swapped_layer_models_are_refused_at_start_in_one_sentence(line, tmp_path):
    data = json.loads(LAYER2_LAYER3.read_text())
    stream = next(iter(data.values()))
    layer2, layer3 = (stream[k]["props"]["modelPath"] for k in ("mxpi_tensorinfer0", "mxpi_tensorinfer1"))
    stream["mxpi_tensorinfer0"]["props"]["modelPath"], stream["mxpi_tensorinfer1"]["props"]["modelPath"] = layer3, layer2
    path = tmp_path / "swapped.pipeline"
    path.write_text(json.dumps(data))
    done = subprocess.run(patchline("run", str(path), "--source", str(line.frames), "--line", LINE),
                          cwd=line.workdir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "swapped" in done.stderr and "layer3.onnx takes layer2" in done.stderr


def test_a_folder_of_every_kind_of_bad_file_gives_a_verdict_or_an_error_for_each(line, tmp_path):
    from test_hardening import _png_chunk

    folder = tmp_path / "mixed"
    folder.mkdir()
    good = sorted(line.expected)[:2]
    for name in good:
        shutil.copy(line.frames / name, folder / f"a_{name}")
    rgb = cv2.imread(str(line.frames / good[0]), cv2.IMREAD_COLOR)
    cv2.imwrite(str(folder / "b_gray.png"), cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "c_sixteen_bit.png"), rgb.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "d_rgba.png"), cv2.cvtColor(rgb, cv2.COLOR_BGR2BGRA))
    ok, jpeg = cv2.imencode(".jpg", rgb)
    (folder / "e_truncated.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 3])
    (folder / "f_empty.png").write_bytes(b"")
    (folder / "g_text.png").write_text("not an image at all\n")
    cv2.imwrite(str(folder / "h_one_pixel.png"), np.zeros((1, 1), np.uint8))
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 0))
    (folder / "i_huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
                                        + _png_chunk(b"IEND", b""))
    done = check_run(patchline("run", str(LAYER2_LAYER3), "--source", str(folder), "--line", LINE, "--quiet"),
                     line.workdir, timeout=120)
    results = {r["source"]: r for r in map(json.loads, (row for row in done.stdout.splitlines() if row.startswith("{")))}
    files = sorted(p.name for p in folder.iterdir())
    assert sorted(results) == files, "one result per file, nothing lost"
    readable = [f"a_{good[0]}", f"a_{good[1]}", "b_gray.png", "c_sixteen_bit.png", "d_rgba.png"]
    for name in readable:
        assert results[name]["verdict"] in ("good", "defect"), results[name]
    # the same picture as gray, 16-bit or RGBA scores as its 8-bit colour file (within rounding)
    base = results[f"a_{good[0]}"]["score"]
    for name in ("c_sixteen_bit.png", "d_rgba.png"):
        assert abs(results[name]["score"] - base) <= 1e-3 * base
    reasons = {"e_truncated.jpg": "not a readable image", "f_empty.png": "not a readable image",
               "g_text.png": "not a readable image", "h_one_pixel.png": "too small", "i_huge.png": "too large"}
    for name, words in reasons.items():
        assert results[name]["verdict"] == "error" and words in results[name]["reason"], results[name]
    assert "Traceback" not in done.stderr


def test_a_file_deleted_before_it_is_read_is_an_error_frame(tmp_path):
    from patchline.pipeline.elements import StreamContext
    from patchline.plugins.sources import FolderSource

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((64, 64), 10 * i, np.uint8))
    source = FolderSource("appsrc0", {"folder": str(tmp_path)}, StreamContext("s", "c", "p"))
    (tmp_path / "1.png").unlink()  # gone between the listing and the read
    frames = list(source.frames(threading.Event()))
    assert [f.error is None for f in frames] == [True, False, True]
    assert "cannot read frame 1.png" in frames[1].error


def test_a_rollback_during_a_run_switches_between_two_frames_and_every_frame_is_judged(line, tmp_path):
    from patchline.bank.versions import rollback

    banks = tmp_path / "banks"
    shutil.copytree(line.workdir / "faiss-index-precision", banks)
    live = (banks / LINE / "CURRENT").read_text().strip()
    older = "20200101T000000Z"  # an earlier version: the same bank under an older name
    shutil.copytree(banks / LINE / live, banks / LINE / older)
    meta = json.loads((banks / LINE / older / "bank.json").read_text())
    meta["version"] = older
    (banks / LINE / older / "bank.json").write_text(json.dumps(meta))
    frames = tmp_path / "frames"
    frames.mkdir()
    good = [n for n in sorted(line.expected) if line.expected[n]["label"] == 0]
    for i in range(240):
        shutil.copy(line.frames / good[i % len(good)], frames / f"{i:04d}.png")
    proc = subprocess.Popen(patchline("run", str(LAYER2_LAYER3), "--source", str(frames), "--line", LINE, "--banks",
                                      str(banks), "--quiet"), cwd=line.workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    results = []
    for row in proc.stdout:
        results.append(json.loads(row))
        if len(results) == 20:
            rollback(banks, LINE, older)
    proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
    assert sorted(r["source"] for r in results) == sorted(p.name for p in frames.iterdir()), "every frame judged"
    versions = [r["bank_version"] for r in sorted(results, key=lambda r: r["frame_id"])]
    switch = versions.index(older)
    assert switch >= 20 and set(versions[:switch]) == {live} and set(versions[switch:]) == {older}, \
        "one switch at a frame boundary, never back; each verdict names the version that judged it"


def test_a_bank_with_symmetric_copies_is_recorded_and_the_pipeline_scores_it_as_evaluate_does(line, tmp_path):
    banks, results = tmp_path / "banks", tmp_path / "results"
    check_run(patchline("train", "--line", LINE, "--images", str(line.workdir / "data" / LINE / "train" / "good"),
                        "--backbone", "efficientnet_lite0", "--layer", "layer2,layer3", "--resize", "256",
                        "--imagesize", "224", "--symmetries", "hflip,vflip", "--banks", str(banks), "--quiet"),
              line.workdir)
    meta = bank_meta_at(banks)
    plain = bank_meta(line.workdir)
    assert meta["symmetries"] == ["hflip", "vflip"] and plain["symmetries"] == []
    assert meta["n_patches"] == plain["n_patches"], "as many bank patches as without the copies"
    assert meta["training"]["n_patches_before_coreset"] == 3 * plain["training"]["n_patches_before_coreset"]
    assert "symmetric copies" in meta["threshold_policy"]["scheme"]
    check_run(patchline("evaluate", "--dataset", "data", "--category", LINE, "--banks", str(banks), "--out",
                        str(results), "--overlays", "0", "--quiet"), line.workdir)
    with open(results / LINE / "scores.csv") as handle:
        expected = {f"{Path(r['image']).parent.name}_{Path(r['image']).name}": float(r[meta["aggregation"]])
                    for r in csv.DictReader(handle)}
    done = check_run(patchline("run", str(LAYER2_LAYER3), "--source", str(line.frames), "--line", LINE, "--banks",
                               str(banks), "--quiet"), line.workdir)
    verdicts = [json.loads(row) for row in done.stdout.splitlines() if row.startswith("{")]
    scored = {v["source"]: v["score"] for v in verdicts if v["verdict"] != "error"}
    assert sorted(scored) == sorted(expected)
    assert max(abs(scored[k] - expected[k]) / abs(expected[k]) for k in expected) < 1e-4
    assert all(v["bank_version"] == meta["version"] for v in verdicts if v["verdict"] != "error")


def test_moving_the_threshold_during_a_run_switches_between_two_frames_and_rollback_undoes_it(line, tmp_path):
    from patchline.bank.store import load_bank
    from patchline.bank.versions import rollback
    from patchline.core.calibration import moved_threshold

    banks = tmp_path / "banks"
    shutil.copytree(line.workdir / "faiss-index-precision", banks)
    live = load_bank(banks, LINE).meta
    frames = tmp_path / "frames"
    frames.mkdir()
    names = sorted(line.expected)
    for i in range(240):
        shutil.copy(line.frames / names[i % len(names)], frames / f"{i:04d}.png")
    proc = subprocess.Popen(patchline("run", str(LAYER2_LAYER3), "--source", str(frames), "--line", LINE, "--banks",
                                      str(banks), "--quiet"), cwd=line.workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    results, moved = [], None
    for row in proc.stdout:
        results.append(json.loads(row))
        if len(results) == 20:
            moved = subprocess.run(patchline("threshold", LINE, "--false-alarm-rate", "0.3", "--banks", str(banks)),
                                   capture_output=True, text=True, timeout=60)
    proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
    assert moved.returncode == 0, moved.stderr
    new = load_bank(banks, LINE).meta  # checksums and every field verified
    assert new.version != live.version and new["threshold_policy"]["moved_from"] == live.version
    want = moved_threshold(live["calibration_scores"], live.aggregation, false_alarm_rate=0.3)
    assert new.threshold == want["threshold"] < live.threshold and new.n_patches == live.n_patches
    assert f"threshold {live.threshold:.4f} → {new.threshold:.4f}" in moved.stdout and "promises: false alarms <=" in moved.stdout
    ordered = sorted(results, key=lambda r: r["frame_id"])
    versions = [r["bank_version"] for r in ordered]
    switch = versions.index(new.version)
    assert switch >= 20 and set(versions[:switch]) == {live.version} and set(versions[switch:]) == {new.version}
    assert all(r["threshold"] == pytest.approx(new.threshold) for r in ordered[switch:]), "the verdicts use the new threshold"
    assert rollback(banks, LINE, live.version) == new.version and load_bank(banks, LINE).meta.threshold == live.threshold


@pytest.mark.parametrize("shifted", [False, True])
def test_drift_is_flagged_for_a_shifted_stream_and_not_for_a_normal_one(line, tmp_path, mosquitto_broker,
                                                                        mqtt_collector, shifted):
    frames = tmp_path / "frames"
    frames.mkdir()
    good = [n for n in sorted(line.expected) if line.expected[n]["label"] == 0]
    for i in range(30):
        image = cv2.imread(str(line.frames / good[i % len(good)]), cv2.IMREAD_COLOR)
        if shifted:  # a lamp dimming and a lens gone soft
            image = cv2.GaussianBlur((image * 0.5).astype(np.uint8), (9, 9), 3)
        cv2.imwrite(str(frames / f"{i:03d}.png"), image)
    collector = mqtt_collector(mosquitto_broker.url, [f"patchline/{LINE}/#"])
    check_run(patchline("run", str(LAYER2_LAYER3), "--source", str(frames), "--mqtt", mosquitto_broker.url,
                        "--line", LINE, "--camera", "cam9", "--drift-window", "10", "--spool", str(tmp_path / "spool"),
                        "--quiet"), line.workdir, timeout=180)
    collector.wait_for(lambda m: len(verdicts_of(m)) >= 30, timeout=20)
    statuses = collector.wait_for(lambda m: [p for t, p, r in m if t.endswith("cam9/status") and "drift" in p])
    assert statuses[-1]["drift"]["window"] == 10 and "calibrated_median" in statuses[-1]["drift"]
    time.sleep(0.5)
    drift = collector.payloads("cam9/drift")
    if shifted:
        assert drift and drift[0]["drift"] is True and drift[0]["reasons"], drift
        assert any(p["state"] == "drift" for p in collector.payloads("cam9/status"))
    else:
        assert drift == [] and all(p["state"] != "drift" for p in collector.payloads("cam9/status"))


def test_add_grows_the_live_bank_and_the_added_images_score_lower(line, tmp_path):
    from patchline.bank.store import load_bank
    from patchline.core.scoring import aggregate
    from patchline.extractors.image_scores import score_images
    from patchline.extractors.onnx import OnnxFeatureExtractor

    banks = tmp_path / "banks"
    shutil.copytree(line.workdir / "faiss-index-precision", banks)
    before = load_bank(banks, LINE)
    new = tmp_path / "new_good"
    new.mkdir()
    added = [n for n in sorted(line.expected) if line.expected[n]["label"] == 0][:3]
    for name in added:
        shutil.copy(line.frames / name, new / name)
    done = check_run(patchline("train", "--line", LINE, "--add", str(new), "--banks", str(banks), "--quiet"),
                     line.workdir, timeout=300)
    after = load_bank(banks, LINE)
    assert after.version != before.version and f"grew from {before.version}" in done.stdout
    assert after.meta.n_patches > before.meta.n_patches and after.meta.threshold == before.meta.threshold
    assert after.meta["training"]["added"]["n_images"] == 3
    settings = after.meta.line_settings()
    extractor = OnnxFeatureExtractor(line.workdir / "models" / "efficientnet_lite0_224_layer2.onnx",
                                     line.workdir / "models" / "efficientnet_lite0_224_layer3.onnx", settings.layers)
    paths = [new / n for n in added]
    old_scores = aggregate(score_images(paths, before, extractor, settings), settings.aggregation)
    new_scores = aggregate(score_images(paths, after, extractor, settings), settings.aggregation)
    assert (new_scores < old_scores).all(), (old_scores, new_scores)


def test_operator_feedback_on_a_false_alarm_stops_it_alarming(line, tmp_path):
    banks = tmp_path / "banks"
    shutil.copytree(line.workdir / "faiss-index-precision", banks)
    flagged = next(n for n in sorted(line.expected) if line.expected[n]["score"] > bank_meta(line.workdir)["threshold"])
    folder = tmp_path / "again"
    folder.mkdir()
    shutil.copy(line.frames / flagged, folder / flagged)

    def verdict() -> dict:
        done = check_run(patchline("run", str(LAYER2_LAYER3), "--source", str(folder), "--line", LINE, "--banks",
                                   str(banks), "--quiet"), line.workdir, timeout=120)
        return json.loads(done.stdout.splitlines()[0])

    assert verdict()["verdict"] == "defect"
    done = check_run(patchline("feedback", LINE, "--false-alarm", str(folder / flagged), "--banks", str(banks),
                               "--quiet"), line.workdir, timeout=300)
    assert "operator" not in done.stderr and "grew from" in done.stdout
    again = verdict()
    assert again["verdict"] == "good" and again["bank_version"] in done.stdout


def test_feedback_over_mqtt_grows_the_bank_and_a_client_without_rights_is_refused_by_the_broker(line, tmp_path):
    import os
    import queue

    from conftest import MosquittoBroker

    from patchline.bank.versions import list_versions
    from patchline.mqtt.broker import BrokerSettings, connect_now, make_client
    from patchline.mqtt.subscriber import Subscriber

    # the plant's broker: only named users may touch patchline/#, anonymous clients nothing
    auth = tmp_path / "auth"
    auth.mkdir()
    passwd, acl = auth / "passwd", auth / "acl"
    for i, user in enumerate(("operator", "listener")):
        subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [str(passwd), user, f"{user}-pw"],
                       check=True, capture_output=True)
    acl.write_text("user operator\ntopic readwrite patchline/#\nuser listener\ntopic readwrite patchline/#\n")
    broker = MosquittoBroker(tmp_path / "mosquitto", listener_options=(f"password_file {passwd}", f"acl_file {acl}"))
    try:
        banks = tmp_path / "banks"
        shutil.copytree(line.workdir / "faiss-index-precision", banks)
        before = [v.version for v in list_versions(banks, LINE)]
        flagged = next(n for n in sorted(line.expected) if line.expected[n]["score"] > bank_meta(line.workdir)["threshold"])
        replies: queue.Queue = queue.Queue()
        operator = BrokerSettings.from_url(broker.url, "operator", "operator-pw")
        listener = subprocess.Popen(patchline("feedback", LINE, "--listen", "--mqtt", broker.url, "--mqtt-username",
                                              "listener", "--banks", str(banks), "--image-root", str(line.frames),
                                              "--count", "1", "--timeout", "120"),
                                    cwd=line.workdir, stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, "PATCHLINE_MQTT_PASSWORD": "listener-pw"})
        for row in listener.stderr:  # subscribed
            if "listening for feedback" in row:
                break
        reply_sub = Subscriber(operator, f"patchline/{LINE}/feedback/reply",
                               lambda _t, raw, _r: replies.put(json.loads(raw))).start()
        message = json.dumps({"false_alarm": [flagged], "id": "f1"}).encode()  # the alarm's source: a frame name
        for settings, request_id in ((BrokerSettings.from_url(broker.url), "anonymous"), (operator, "operator")):
            client = make_client(settings, f"console-{request_id}")
            connect_now(client, settings)
            client.loop_start()
            client.publish(f"patchline/{LINE}/feedback", message.replace(b'"f1"', f'"{request_id}"'.encode()),
                           qos=1).wait_for_publish(5)
            client.loop_stop()
            client.disconnect()
        reply = replies.get(timeout=120)
        listener.wait(timeout=60)
        reply_sub.close()
        assert reply["id"] == "operator", "the anonymous client's message never reached the listener"
        assert reply["version"] not in before and reply["images"] == 1
        assert [v.version for v in list_versions(banks, LINE)] == before + [reply["version"]]
        assert listener.returncode == 0
    finally:
        broker.stop()
