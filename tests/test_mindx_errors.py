"""Error paths of the MindX SDK's host API on patchline's runner: an SDK-style application that does
things wrong gets the SDK's return codes and log lines, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from mindx_support import run_app

pytestmark = pytest.mark.runtime  # runs in the runtime-only install too (scripts/runtime_check.sh)



def test_error_paths_give_the_sdks_return_codes_without_a_traceback(tmp_path):
    done = run_app("error_paths.py", cwd=tmp_path, timeout=120)
    codes = json.loads(done.stdout)
    assert codes == {
        "create_before_init": -1, "init": 0, "bad_json": 6005, "empty": 1004, "unknown_factory": 6005,
        "create": 0, "create_again": 6001, "unknown_stream": 6002, "wrong_appsrc_index": 6006,
        "wrong_appsrc_name": 6006, "negative_index": 1004, "unique_unknown_stream": -1,
        "get_unknown_stream": 6002, "get_unknown_sink": 6011, "get_timeout": 1002, "send": 0, "get": [0, "hello"],
        "mixed_modes": -1, "destroy": 0}
    assert "Stream(nosuch) not exist." in done.stderr and "unknown factory 'mxpi_nosuch'" in done.stderr


def test_the_runner_refuses_a_missing_application(tmp_path):
    done = subprocess.run([sys.executable, "-m", "patchline.mindx", str(tmp_path / "none.py")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "is not a file" in done.stderr and "Traceback" not in done.stderr
