"""Running the SDK-style host applications in tests/mindx_apps through `python -m patchline.mindx`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

APPS = Path(__file__).resolve().parent / "mindx_apps"


def run_app(app: str, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run tests/mindx_apps/<app> with `args` in `cwd`; assert it ended with status 0 and no traceback."""
    done = subprocess.run([sys.executable, "-m", "patchline.mindx", str(APPS / app), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0, f"{app} exit {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done
