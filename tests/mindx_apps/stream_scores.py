"""A MindX SDK host application that streams encoded images: each file's bytes sent with SendData
(or SendDataWithUniqueId), decoded, resized, cropped, run through both models and the PatchCore
post-process on the stream, the serialized JSON read back. Imports only the SDK's modules.

usage: stream_scores.py LINE MODEL_LAYER2 MODEL_LAYER3 OUT.json [--unique] IMAGE...
"""
import json
import sys

from StreamManagerApi import MxDataInput, StreamManagerApi

STREAM = b"line"


def pipeline(line, layer2, layer3):
    return {STREAM.decode(): {
        "stream_config": {"deviceId": "0"},
        "appsrc0": {"props": {"blocksize": "409600"}, "factory": "appsrc", "next": "mxpi_imagedecoder0"},
        "mxpi_imagedecoder0": {"props": {"handleMethod": "opencv", "outputDataFormat": "RGB"},
                               "factory": "mxpi_imagedecoder", "next": "mxpi_imageresize0"},
        "mxpi_imageresize0": {"props": {"handleMethod": "opencv", "resizeType": "Resizer_KeepAspectRatio_Short",
                                        "scaleValue": "256"}, "factory": "mxpi_imageresize",
                              "next": "mxpi_imagecrop0"},
        "mxpi_imagecrop0": {"props": {"cropHeight": "224", "cropWidth": "224"}, "factory": "mxpi_imagecrop",
                            "next": "mxpi_imagenormalize0"},
        "mxpi_imagenormalize0": {"props": {"alpha": "123.675,116.28,103.53", "beta": "58.395,57.12,57.375",
                                           "dataType": "FLOAT32"},
                                 "factory": "mxpi_imagenormalize", "next": "mxpi_tensorinfer0"},
        "mxpi_tensorinfer0": {"props": {"dataSource": "mxpi_imagenormalize0", "modelPath": layer2},
                              "factory": "mxpi_tensorinfer", "next": "mxpi_tensorinfer1"},
        "mxpi_tensorinfer1": {"props": {"dataSource": "mxpi_tensorinfer0", "modelPath": layer3},
                              "factory": "mxpi_tensorinfer", "next": "mxpi_classpostprocessor0"},
        "mxpi_classpostprocessor0": {"props": {"dataSource": "mxpi_tensorinfer1", "funcLanguage": "python",
                                               "pythonModule": "patchline.plugins.patchcore_postprocess",
                                               "className": "PatchCorePostProcess", "line": line},
                                     "factory": "mxpi_classpostprocessor", "next": "mxpi_dataserialize0"},
        "mxpi_dataserialize0": {"props": {"outputDataKeys": "mxpi_classpostprocessor0,ReservedFrameInfo"},
                                "factory": "mxpi_dataserialize", "next": "appsink0"},
        "appsink0": {"props": {"blocksize": "4096000"}, "factory": "appsink"},
    }}


def main():
    line, layer2, layer3, out = sys.argv[1:5]
    unique = "--unique" in sys.argv[5:]
    images = [a for a in sys.argv[5:] if a != "--unique"]
    api = StreamManagerApi()
    if api.InitManager() != 0:
        return 1
    ret = api.CreateMultipleStreams(json.dumps(pipeline(line, layer2, layer3)).encode())
    if ret != 0:
        print("Failed to create Stream, ret=%s" % ret)
        return 1
    results = {}
    for path in images:
        data_input = MxDataInput()
        with open(path, "rb") as f:
            data_input.data = f.read()
        if unique:
            unique_id = api.SendDataWithUniqueId(STREAM, 0, data_input)
            if unique_id < 0:
                return 1
            result = api.GetResultWithUniqueId(STREAM, unique_id, 10000)
        else:
            if api.SendData(STREAM, 0, data_input) != 0:
                return 1
            result = api.GetResult(STREAM, 0, 10000)
        if result.errorCode != 0:
            results[path] = {"errorCode": result.errorCode, "errorMsg": result.data.decode()}
            continue
        results[path] = json.loads(result.data.decode())
    api.DestroyAllStreams()
    with open(out, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
