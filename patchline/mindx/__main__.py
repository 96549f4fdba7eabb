"""python -m patchline.mindx APP.py [args]: run a MindX SDK host application unchanged.

With the SDK installed (its StreamManagerApi importable) the application runs on the SDK;
otherwise StreamManagerApi and MxpiDataType_pb2 come from patchline.mindx (patchline's runner on
the CPU). The application runs as __main__ with sys.argv = [APP.py, args…] and its folder first on
sys.path, as `python APP.py` would run it.
"""

from __future__ import annotations

import logging
import runpy
import sys
from pathlib import Path

from patchline.mindx import SDK_MODULES, sdk_available

USAGE = "usage: python -m patchline.mindx APP.py [args…]"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    app = Path(argv[0])
    if not app.is_file():
        print(f"patchline.mindx: {app} is not a file.\n{USAGE}", file=sys.stderr)
        return 2
    if not sdk_available():
        sys.path.insert(0, str(SDK_MODULES))
    sys.path.insert(0, str(app.resolve().parent))
    sys.argv = [str(app), *argv[1:]]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    runpy.run_path(str(app), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
