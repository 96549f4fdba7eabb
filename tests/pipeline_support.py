"""Shared by the pipeline tests: a small real-texture MVTec-layout dataset, and a line trained,
exported and evaluated on it with the real CLI — built once per test session."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
CATEGORY = "brick"
LINE = "brick"
IMAGESIZE = 224  # the shipped pipeline files use models/efficientnet_lite0_224_*.onnx
RESIZE = 256


def make_texture_dataset(root: Path, category: str = CATEGORY, n_train: int = 20, n_good: int = 5,
                         n_defect: int = 5, size: tuple[int, int] = (272, 304), seed: int = 0) -> Path:
    """<root>/<category>/{train/good, test/good, test/defect, ground_truth/defect} from crops of a
    scikit-image texture, defects from patchline.synthetic with exact masks. Frames are not square,
    so crop offsets and regions in frame pixels are exercised."""
    import skimage.data

    from patchline.synthetic import KINDS, make_defect

    rng = np.random.default_rng(seed)
    texture = getattr(skimage.data, category)()
    texture = np.repeat(texture[:, :, None], 3, axis=2) if texture.ndim == 2 else texture[:, :, :3]
    h, w = size

    def crop() -> np.ndarray:
        y, x = rng.integers(0, texture.shape[0] - h), rng.integers(0, texture.shape[1] - w)
        return np.ascontiguousarray(texture[y:y + h, x:x + w])

    def write(path: Path, image: np.ndarray) -> None:
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)

    folder = root / category
    for sub in ("train/good", "test/good", "test/defect", "ground_truth/defect"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_train):
        write(folder / "train" / "good" / f"{i:03d}.png", crop())
    for i in range(n_good):
        write(folder / "test" / "good" / f"{i:03d}.png", crop())
    for i in range(n_defect):
        image, mask = make_defect(crop(), KINDS[i % len(KINDS)], rng)
        write(folder / "test" / "defect" / f"{i:03d}.png", image)
        write(folder / "ground_truth" / "defect" / f"{i:03d}_mask.png", mask.astype(np.uint8) * 255)
    return folder


def cli_has_run() -> bool:
    from patchline.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return "run" in sub.choices


def patchline(*args: str) -> list[str]:
    """The command line of `patchline ARGS` with this interpreter (`run` via patchline.run until the CLI has it)."""
    if args and args[0] == "run" and not cli_has_run():
        return [sys.executable, "-m", "patchline.run", *args[1:]]
    return [sys.executable, "-m", "patchline.cli", *args]


def check_run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def train(workdir: Path) -> subprocess.CompletedProcess:
    """`patchline train` the line on the dataset's good images (efficientnet_lite0, ImageNet weights, layer2+layer3)."""
    return check_run(patchline("train", "--line", LINE, "--images", str(workdir / "data" / CATEGORY / "train" / "good"),
                               "--backbone", "efficientnet_lite0", "--layer", "layer2,layer3", "--resize", str(RESIZE),
                               "--imagesize", str(IMAGESIZE), "--quiet"), workdir)


def bank_meta(workdir: Path) -> dict:
    line_dir = workdir / "faiss-index-precision" / LINE
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
        make_texture_dataset(base / "data")
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
