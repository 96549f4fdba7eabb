"""`import MxpiDataType_pb2 as MxpiDataType` for SDK applications run by `python -m patchline.mindx`:
the SDK's MxTools messages (patchline.mindx.mxpi_types)."""

from patchline.mindx.mxpi_types import *  # noqa: F401,F403
from patchline.mindx.mxpi_types import DESCRIPTOR, MESSAGES  # noqa: F401
