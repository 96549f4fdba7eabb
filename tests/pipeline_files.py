"""Small pipeline files the framework tests write."""

from __future__ import annotations

import json
from pathlib import Path


def write_decoder_pipeline(path: Path) -> Path:
    """A one-stream pipeline file at `path`: appsrc0 → mxpi_imagedecoder0 (RGB) → appsink0. Returns `path`."""
    path.write_text(json.dumps({"s": {
        "appsrc0": {"factory": "appsrc", "next": "mxpi_imagedecoder0"},
        "mxpi_imagedecoder0": {"factory": "mxpi_imagedecoder", "props": {"outputDataFormat": "RGB"},
                               "next": "appsink0"},
        "appsink0": {"factory": "appsink"},
    }}))
    return path
