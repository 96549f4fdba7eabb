"""`python -m patchline.cli …`: the same as the `patchline` command."""

import sys

from patchline.cli import main

sys.exit(main())
