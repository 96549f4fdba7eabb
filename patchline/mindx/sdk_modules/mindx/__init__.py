"""The SDK's `mindx` package, as far as its applications import it (`mindx.sdk.MxpiDataType_pb2`)."""
