"""The SDK's MxTools messages under the SDK's package path (patchline.mindx.mxpi_types)."""

from patchline.mindx.mxpi_types import *  # noqa: F401,F403
