"""`import mindx.sdk.MxpiDataType_pb2` for SDK applications run by `python -m patchline.mindx`."""
