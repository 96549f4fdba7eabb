"""The MindX SDK's Python host API (StreamManagerApi, MxpiDataType_pb2) on patchline's runner.

Where the SDK is installed its own modules are used (`sdk_available()`); elsewhere
`python -m patchline.mindx APP.py [args]` runs an SDK application unchanged on this runner, with
`StreamManagerApi` and `MxpiDataType_pb2` importable from patchline/mindx/sdk_modules/.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SDK_MODULES = Path(__file__).resolve().parent / "sdk_modules"


def sdk_available() -> bool:
    """True when the real SDK's StreamManagerApi is importable (an Ascend box with the SDK's environment)."""
    spec = importlib.util.find_spec("StreamManagerApi")
    return spec is not None and spec.origin is not None and Path(spec.origin).resolve().parent != SDK_MODULES
