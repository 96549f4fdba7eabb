"""Every environment variable and default folder patchline reads, in one place.

    PATCHLINE_BANKS        banks root            (default ./faiss-index-precision)
    PATCHLINE_MODELS       converted checkpoints and exported models (default ./models)
    PATCHLINE_WEIGHTS      backbone weights patchline downloaded itself (default $XDG_CACHE_HOME/patchline/weights,
                           i.e. ~/.cache/patchline/weights)
    PATCHLINE_SPOOL        alarm spool root      (default ./patchline-spool)
    PATCHLINE_ORT_THREADS  ONNX Runtime intra-op threads per model (default: the CPU count; 1 in the pipeline)

The MQTT credentials ($PATCHLINE_MQTT_USERNAME / $PATCHLINE_MQTT_PASSWORD) are read where the
broker settings are built (patchline/mqtt/broker.py), so they never pass through another module.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def banks_root() -> Path:
    """Banks root: $PATCHLINE_BANKS or ./faiss-index-precision."""
    return Path(os.environ.get("PATCHLINE_BANKS", "faiss-index-precision"))


def models_dir() -> Path:
    """Where converted checkpoints and exported models live: $PATCHLINE_MODELS or ./models."""
    return Path(os.environ.get("PATCHLINE_MODELS", "models"))


def weights_cache() -> Path:
    """Where weights patchline fetched itself are kept: $PATCHLINE_WEIGHTS, else
    $XDG_CACHE_HOME/patchline/weights (~/.cache/patchline/weights)."""
    if os.environ.get("PATCHLINE_WEIGHTS"):
        return Path(os.environ["PATCHLINE_WEIGHTS"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "patchline" / "weights"


def spool_root() -> Path:
    """Alarm spool root: $PATCHLINE_SPOOL or ./patchline-spool (one folder per line inside)."""
    return Path(os.environ.get("PATCHLINE_SPOOL", "patchline-spool"))


def ort_threads(default: int | None = None) -> int:
    """Intra-op threads per ONNX Runtime session: $PATCHLINE_ORT_THREADS, else `default`, else the CPU count."""
    value = os.environ.get("PATCHLINE_ORT_THREADS")
    return max(1, int(value)) if value else max(1, default or os.cpu_count() or 1)


def project_file(relative: str) -> Path:
    """A shipped file named as in a checkout (e.g. "configs/mvtec.yaml", "pipeline/elpv_mono.pipeline").

    The working directory's copy wins (an operator's edited settings); otherwise the copy shipped
    inside the package (patchline/resources/, also what the checkout's top-level links point at).
    Returns the local path unchanged when neither exists, so the caller's message names it.
    """
    local = Path(relative)
    if local.is_file():
        return local
    shipped = Path(str(resources.files("patchline").joinpath("resources", *Path(relative).parts)))
    return shipped if shipped.is_file() else local
