"""The built wheel carries the reference project's settings tables and the line pipelines, and finds them
when it runs outside a checkout (a plant PC gets the wheel, not the repository). Built offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = [*(f"configs/{p.name}" for p in sorted((REPO / "configs").glob("*.yaml"))), *(f"pipeline/{p.name}" for p in sorted((REPO / "pipeline").glob("*.pipeline")))]


def test_the_wheel_ships_configs_and_pipelines_and_resolves_them_outside_the_checkout(tmp_path):
    source = tmp_path / "source"  # built from a copy, so the checkout gets no build/ folder
    shutil.copytree(REPO / "patchline", source / "patchline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    # Offline: the venv's own setuptools builds it (no isolated build environment to download), and
    # PIP_NO_INDEX makes any attempt to reach an index fail here rather than pass on a networked machine.
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)],
                           capture_output=True, text=True, timeout=600, env={**os.environ, "PIP_NO_INDEX": "1"})
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("patchline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for relative in SHIPPED:
        assert f"patchline/resources/{relative}" in names, relative
    assert "patchline/__main__.py" in names and "patchline/core/coreset/greedy.py" in names

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "plant-pc"
    elsewhere.mkdir()
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(site)!r})
        # the checkout's editable install must not answer: only the unpacked wheel may
        sys.meta_path = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "").lower()
                         and "editable" not in getattr(f, "__name__", "").lower()]
        import patchline
        assert patchline.__file__.startswith({str(site)!r}), patchline.__file__
        from patchline.paths import project_file
        from patchline.pipeline.config import load_pipeline
        from patchline.settings import load_category_table
        for relative in {SHIPPED!r}:
            path = project_file(relative)
            assert str(path).startswith({str(site)!r}) and path.is_file(), (relative, path)
            if relative.endswith(".yaml"):  # every shipped line config loads and validates
                assert load_category_table(path).categories, relative
        table = load_category_table(project_file("configs/mvtec.yaml"))
        assert "bottle" in table.categories
        assert load_category_table(project_file("configs/elpv.yaml")).get("elpv-mono").backbone == "efficientnet_lite0"
        assert load_category_table(project_file("configs/elpv-poly.tuned.yaml")).get("elpv-poly").backbone == "mobilenet_v2"
        config = load_pipeline(project_file("pipeline/elpv_mono.pipeline"), check_files=False)
        print("ok", len(table.categories), sorted(config.streams))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=elsewhere, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok 15")
