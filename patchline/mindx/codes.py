"""The SDK's return codes (MxBase ErrorCodes.h) that its StreamManagerApi gives, and the text its
GetErrorInfo writes for them: ` (Code = 6002, Message = "stream is not exist") `."""

from __future__ import annotations

APP_ERR_OK = 0
APP_PYTHON_INIT_ERROR = -1  # the Python binding's own failure code (and SendDataWithUniqueId's failure)
APP_ERR_COMM_FAILURE = 1001
APP_ERR_COMM_INNER = 1002
APP_ERR_COMM_INVALID_PARAM = 1004
APP_ERR_COMM_NO_EXIST = 1016
APP_ERR_STREAM_EXIST = 6001
APP_ERR_STREAM_NOT_EXIST = 6002
APP_ERR_STREAM_CREATE_FAILED = 6004
APP_ERR_STREAM_INVALID_CONFIG = 6005
APP_ERR_STREAM_INVALID_LINK = 6006
APP_ERR_STREAM_TRANS_MODE_NOT_MATCHED = 6008
APP_ERR_STREAM_TIMEOUT = 6010
APP_ERR_STREAM_ELEMENT_INVALID = 6011
APP_ERR_PLUGIN_TOOLKIT_METADATA_KEY_NOEXIST = 7011

MESSAGES = {
    APP_ERR_OK: "Success",
    APP_ERR_COMM_FAILURE: "General Failed",
    APP_ERR_COMM_INNER: "Internal error",
    APP_ERR_COMM_INVALID_PARAM: "Invalid parameter",
    APP_ERR_COMM_NO_EXIST: "Object, file or other resource doesn't exist",
    APP_ERR_STREAM_EXIST: "stream is exist",
    APP_ERR_STREAM_NOT_EXIST: "stream is not exist",
    APP_ERR_STREAM_CREATE_FAILED: "stream create fail",
    APP_ERR_STREAM_INVALID_CONFIG: "stream invalid config",
    APP_ERR_STREAM_INVALID_LINK: "stream invalid link",
    APP_ERR_STREAM_TRANS_MODE_NOT_MATCHED: "stream trans mode not match",
    APP_ERR_STREAM_TIMEOUT: "stream timeout",
    APP_ERR_STREAM_ELEMENT_INVALID: "stream element invalid",
    APP_ERR_PLUGIN_TOOLKIT_METADATA_KEY_NOEXIST: "plugin toolkit metadata key not exist",
}


def error_info(code: int) -> str:
    """The SDK's GetErrorInfo text for a code."""
    return f' (Code = {code}, Message = "{MESSAGES.get(code, "Error code unknown")}") '
