"""A MindX SDK host application in the reference project's style: each image preprocessed on the
host, sent as an MxpiTensorPackageList with SendProtobuf, the layer features read back with
GetResult and metadata keys. Imports only the SDK's modules (run: python -m patchline.mindx).

usage: feature_extractor.py MODEL_LAYER2 MODEL_LAYER3 OUT.npz IMAGE...
"""
import json
import sys

import cv2
import numpy as np

import MxpiDataType_pb2 as MxpiDataType
from StreamManagerApi import InProtobufVector, MxProtobufIn, StreamManagerApi, StringVector

STREAM = b"patchcore"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def preprocess(path, resize=256, size=224):
    image = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    scale = resize / min(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    method = cv2.INTER_AREA if resize < min(h, w) else cv2.INTER_LINEAR
    image = cv2.resize(image, (new_w, new_h), interpolation=method)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    image = image[top:top + size, left:left + size]
    x = image.transpose(2, 0, 1).astype(np.float32) * np.float32(1.0 / 255.0)
    x = (x - MEAN[:, None, None]) / STD[:, None, None]
    return np.ascontiguousarray(x[None], dtype=np.float32)


def send_tensor(api, tensor):
    package_list = MxpiDataType.MxpiTensorPackageList()
    package = package_list.tensorPackageVec.add()
    item = package.tensorVec.add()
    item.deviceId = 0
    item.memType = 0
    item.tensorShape.extend(tensor.shape)
    item.tensorDataType = 0  # float32
    item.dataStr = tensor.tobytes()
    item.tensorDataSize = len(item.dataStr)
    protobuf = MxProtobufIn()
    protobuf.key = b"appsrc0"
    protobuf.type = b"MxTools.MxpiTensorPackageList"
    protobuf.protobuf = package_list.SerializeToString()
    vec = InProtobufVector()
    vec.push_back(protobuf)
    return api.SendProtobuf(STREAM, 0, vec)


def features(result, index):
    package_list = MxpiDataType.MxpiTensorPackageList()
    package_list.ParseFromString(result.metadataVec[index].serializedMetadata)
    tensor = package_list.tensorPackageVec[0].tensorVec[0]
    return np.frombuffer(tensor.dataStr, dtype=np.float32).reshape(tuple(tensor.tensorShape))


def main():
    layer2, layer3, out, images = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    pipeline = {STREAM.decode(): {
        "stream_config": {"deviceId": "0"},
        "appsrc0": {"props": {"blocksize": "409600"}, "factory": "appsrc", "next": "mxpi_tensorinfer0"},
        "mxpi_tensorinfer0": {"props": {"dataSource": "appsrc0", "modelPath": layer2},
                              "factory": "mxpi_tensorinfer", "next": "mxpi_tensorinfer1"},
        "mxpi_tensorinfer1": {"props": {"dataSource": "mxpi_tensorinfer0", "modelPath": layer3},
                              "factory": "mxpi_tensorinfer", "next": "appsink0"},
        "appsink0": {"props": {"blocksize": "4096000"}, "factory": "appsink"},
    }}
    api = StreamManagerApi()
    ret = api.InitManager()
    if ret != 0:
        print("Failed to init Stream manager, ret=%s" % ret)
        return 1
    ret = api.CreateMultipleStreams(json.dumps(pipeline).encode())
    if ret != 0:
        print("Failed to create Stream, ret=%s" % ret)
        return 1
    keys = StringVector()
    for key in (b"mxpi_tensorinfer0", b"mxpi_tensorinfer1"):
        keys.push_back(key)
    found = {}
    for i, path in enumerate(images):
        if send_tensor(api, preprocess(path)) != 0:
            print("Failed to send data to stream.")
            return 1
        result = api.GetResult(STREAM, b"appsink0", keys, 10000)
        if result.errorCode != 0:
            print("GetResult error. errorCode=%d, errorMsg=%s" % (result.errorCode, result.errorMsg))
            return 1
        found["layer2_%d" % i] = features(result, 0)
        found["layer3_%d" % i] = features(result, 1)
    np.savez(out, **found)
    api.DestroyAllStreams()
    return 0


if __name__ == "__main__":
    sys.exit(main())
