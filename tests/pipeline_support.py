"""Shared by the pipeline tests: a small real-texture MVTec-layout dataset, and a line trained,
exported and evaluated on it with the real CLI — built once per test session."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sample_data import make_texture_dataset

REPO = Path(__file__).resolve().parents[1]
CATEGORY = "brick"
LINE = "brick"
IMAGESIZE = 224  # the shipped pipeline files use models/efficientnet_lite0_224_*.onnx
RESIZE = 256


def make_dataset(root: Path) -> Path:
    """<root>/<category>/{train/good, test/good, test/defect, ground_truth/defect}: texture crops with
    synthetic defects and exact masks. Frames are not square, so crop offsets and regions in frame
    pixels are exercised."""
    make_texture_dataset(root, (CATEGORY,), n_train=20, n_test_good=5, n_test_defect=5, size=(272, 304),
                         seed=0, defect_folder="defect")
    return root / CATEGORY


def patchline(*args: str) -> list[str]:
    """The command line of `patchline ARGS` with this interpreter."""
    return [sys.executable, "-m", "patchline.cli", *args]


def check_run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def train(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    """`patchline train` the line on the dataset's good images (efficientnet_lite0, ImageNet weights, layer2+layer3),
    searched through the graph index, so the pipeline's parity with `evaluate` (exact search) covers it; `extra`:
    more train options (e.g. --aggregation two-sided)."""
    return check_run(patchline("train", "--line", LINE, "--images", str(workdir / "data" / CATEGORY / "train" / "good"),
                               "--backbone", "efficientnet_lite0", "--layer", "layer2,layer3", "--resize", str(RESIZE),
                               "--imagesize", str(IMAGESIZE), "--search", "hnsw", "--quiet", *extra), workdir)


def bank_meta(workdir: Path) -> dict:
    return bank_meta_at(workdir / "faiss-index-precision")


def bank_meta_at(banks: Path) -> dict:
    """The live bank.json of LINE under a banks root."""
    line_dir = banks / LINE
    version = (line_dir / "CURRENT").read_text().strip()
    return json.loads((line_dir / version / "bank.json").read_text())


@dataclass
class TrainedLine:
    """A trained, exported and evaluated line; `frames` holds its test images plus one corrupt file."""

    workdir: Path
    frames: Path
    expected: dict  # frame file name → {"score": evaluate's score for the bank's aggregation, "label": 0/1}
    corrupt: str
    aggregation: str
    version: str


def prepare_trained_line(base: Path) -> TrainedLine:
    """train → export → evaluate with the real CLI in `base` (once per session: reused when done)."""
    marker = base / "ready.json"
    if not marker.is_file():
        if base.exists():
            shutil.rmtree(base)
        base.mkdir(parents=True)
        make_dataset(base / "data")
        train(base)
        check_run(patchline("export", "--backbone", "efficientnet_lite0", "--imagesize", str(IMAGESIZE),
                            "--out", "models"), base)
        check_run(patchline("evaluate", "--dataset", "data", "--category", CATEGORY, "--out", "results",
                            "--overlays", "0", "--quiet"), base)
        meta = bank_meta(base)
        frames = base / "frames"
        frames.mkdir()
        expected = {}
        with open(base / "results" / CATEGORY / "scores.csv") as handle:
            for row in csv.DictReader(handle):
                source = Path(row["image"])
                name = f"{source.parent.name}_{source.name}"  # defect_000.png, good_000.png
                shutil.copy(base / source, frames / name)
                expected[name] = {"score": float(row[meta["aggregation"]]), "label": int(row["label"])}
        corrupt = "e_corrupt.png"  # sorts between the defect and the good images
        (frames / corrupt).write_bytes((frames / "good_000.png").read_bytes()[:60])  # a truncated PNG
        marker.write_text(json.dumps({"expected": expected, "corrupt": corrupt, "aggregation": meta["aggregation"],
                                      "version": meta["version"]}))
    info = json.loads(marker.read_text())
    return TrainedLine(base, base / "frames", info["expected"], info["corrupt"], info["aggregation"], info["version"])
