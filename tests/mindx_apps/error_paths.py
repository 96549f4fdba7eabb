"""A MindX SDK host application that does things wrong and prints each return code as JSON.

usage: error_paths.py
"""
import json

from StreamManagerApi import MxDataInput, StreamManagerApi, StringVector

PIPELINE = {"detection": {
    "appsrc0": {"props": {"blocksize": "409600"}, "factory": "appsrc", "next": "appsink0"},
    "appsink0": {"factory": "appsink"},
}}


def main():
    codes = {}
    api = StreamManagerApi()
    codes["create_before_init"] = api.CreateMultipleStreams(json.dumps(PIPELINE).encode())
    codes["init"] = api.InitManager()
    codes["bad_json"] = api.CreateMultipleStreams(b'{"detection": {"appsrc0": ')
    codes["empty"] = api.CreateMultipleStreams(b"")
    codes["unknown_factory"] = api.CreateMultipleStreams(json.dumps(
        {"other": {"appsrc0": {"factory": "appsrc", "next": "mxpi_nosuch0"},
                   "mxpi_nosuch0": {"factory": "mxpi_nosuch", "next": "appsink0"},
                   "appsink0": {"factory": "appsink"}}}).encode())
    codes["create"] = api.CreateMultipleStreams(json.dumps(PIPELINE).encode())
    codes["create_again"] = api.CreateMultipleStreams(json.dumps(PIPELINE).encode())
    data_input = MxDataInput()
    data_input.data = b"hello"
    codes["unknown_stream"] = api.SendData(b"nosuch", 0, data_input)
    codes["wrong_appsrc_index"] = api.SendData(b"detection", 1, data_input)
    codes["wrong_appsrc_name"] = api.SendData(b"detection", b"appsrc7", data_input)
    codes["negative_index"] = api.SendData(b"detection", -1, data_input)
    codes["unique_unknown_stream"] = api.SendDataWithUniqueId(b"nosuch", 0, data_input)
    codes["get_unknown_stream"] = api.GetResult(b"nosuch", 0, 100).errorCode
    keys = StringVector()
    keys.push_back(b"ReservedFrameInfo")
    codes["get_unknown_sink"] = api.GetResult(b"detection", b"appsink3", keys, 100).errorCode
    codes["get_timeout"] = api.GetResult(b"detection", 0, 100).errorCode
    codes["send"] = api.SendData(b"detection", 0, data_input)
    result = api.GetResult(b"detection", 0, 3000)
    codes["get"] = [result.errorCode, result.data.decode()]
    codes["mixed_modes"] = api.SendDataWithUniqueId(b"detection", 0, data_input)
    codes["destroy"] = api.DestroyAllStreams()
    print(json.dumps(codes))


if __name__ == "__main__":
    main()
