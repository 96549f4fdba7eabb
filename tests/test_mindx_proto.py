"""patchline's MxpiDataType_pb2 against the SDK's MxpiDataType.proto (Ascend/VisionSDK,
mxTools/src/include/MxTools/Proto/MxpiDataType.proto): the field numbers below were written from
that file by hand; messages built with patchline's module carry exactly those numbers on the wire."""

from __future__ import annotations

import numpy as np
import pytest

from patchline.mindx import mxpi_types as MxpiDataType

pytestmark = pytest.mark.runtime

# message → {field: number}, from the SDK's .proto
SDK_FIELDS = {
    "MxpiFrame": {"frameInfo": 1, "visionList": 2},
    "MxpiFrameInfo": {"channelId": 1, "frameId": 2, "isEos": 3},
    "MxpiVisionList": {"visionVec": 1},
    "MxpiVision": {"headerVec": 1, "visionInfo": 2, "visionData": 3},
    "MxpiMetaHeader": {"parentName": 1, "memberId": 2, "dataSource": 3},
    "MxpiVisionInfo": {"format": 1, "width": 2, "height": 3, "widthAligned": 4, "heightAligned": 5,
                       "resizeType": 6, "keepAspectRatioScaling": 7, "preprocessInfo": 8},
    "MxpiVisionPreProcess": {"widthSrc": 1, "heightSrc": 2, "cropLeft": 3, "cropRight": 4, "cropTop": 5,
                             "cropBottom": 6, "pasteLeft": 7, "pasteRight": 8, "pasteTop": 9, "pasteBottom": 10,
                             "interpolation": 11, "elementName": 12},
    "MxpiVisionData": {"dataPtr": 1, "dataSize": 2, "deviceId": 3, "memType": 4, "freeFunc": 5, "dataStr": 6,
                       "dataType": 7, "matPtr": 8},
    "MxpiObjectList": {"objectVec": 1},
    "MxpiObject": {"headerVec": 1, "x0": 2, "y0": 3, "x1": 4, "y1": 5, "classVec": 6, "imageMask": 7},
    "MxpiImageMaskList": {"imageMaskVec": 1},
    "MxpiImageMask": {"headerVec": 1, "className": 2, "shape": 3, "dataType": 4, "dataStr": 5},
    "MxpiClass": {"headerVec": 1, "classId": 2, "className": 3, "confidence": 4},
    "MxpiClassList": {"classVec": 1},
    "MxpiAttributeList": {"attributeVec": 1},
    "MxpiAttribute": {"headerVec": 1, "attrId": 2, "attrName": 3, "attrValue": 4, "confidence": 5},
    "MxpiTrackLetList": {"trackLetVec": 1},
    "MxpiTrackLet": {"headerVec": 1, "trackId": 2, "age": 3, "hits": 4, "trackFlag": 5},
    "MxpiTensorPackageList": {"tensorPackageVec": 1},
    "MxpiTensorPackage": {"headerVec": 1, "tensorVec": 2},
    "MxpiTensor": {"tensorDataPtr": 1, "tensorDataSize": 2, "deviceId": 3, "memType": 4, "freeFunc": 5,
                   "tensorShape": 6, "dataStr": 7, "tensorDataType": 8},
    "MxpiFeatureVectorList": {"featureVec": 1},
    "MxpiFeatureVector": {"headerVec": 1, "featureValues": 2},
    "MxpiPoseList": {"poseVec": 1},
    "MxpiPose": {"headerVec": 1, "keyPointVec": 2, "score": 3},
    "MxpiKeyPoint": {"x": 1, "y": 2, "name": 3, "score": 4},
    "MxpiKeyPointAndAngleList": {"keyPointAndAngleVec": 1},
    "MxpiKeyPointAndAngle": {"headerVec": 1, "keyPointsVec": 2, "angleYaw": 3, "anglePitch": 4, "angleRoll": 5},
    "MxpiTextObjectList": {"objectVec": 1},
    "MxpiTextObject": {"headerVec": 1, "x0": 2, "y0": 3, "x1": 4, "y1": 5, "x2": 6, "y2": 7, "x3": 8, "y3": 9,
                       "confidence": 10, "text": 11},
    "MxpiTextsInfoList": {"textsInfoVec": 1},
    "MxpiTextsInfo": {"headerVec": 1, "text": 2},
    "MxpiCustomDataList": {"dataVec": 1},
    "MxpiCustomData": {"headerVec": 1, "map": 2},
}
SDK_ENUMS = {"MxpiMemoryType": {"MXPI_MEMORY_HOST": 0, "MXPI_MEMORY_DEVICE": 1, "MXPI_MEMORY_DVPP": 2,
                                "MXPI_MEMORY_HOST_MALLOC": 3, "MXPI_MEMORY_HOST_NEW": 4},
             "MxpiDataType": {"MXPI_DATA_TYPE_UINT8": 0, "MXPI_DATA_TYPE_FLOAT32": 1}}


def test_every_message_has_the_sdks_fields_and_numbers():
    file = MxpiDataType.DESCRIPTOR
    assert file.package == "MxTools" and file.name == "MxpiDataType.proto"
    assert set(file.message_types_by_name) == set(SDK_FIELDS)
    for name, fields in SDK_FIELDS.items():
        descriptor = file.message_types_by_name[name]
        assert {f.name: f.number for f in descriptor.fields} == fields, name
        assert descriptor.full_name == f"MxTools.{name}"
    for name, values in SDK_ENUMS.items():
        assert {v.name: v.number for v in file.enum_types_by_name[name].values} == values


def wire_fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) of each top-level field of serialized protobuf bytes."""
    out, i = [], 0

    def varint():
        nonlocal i
        value, shift = 0, 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, wire, varint()))
        elif wire == 2:
            size = varint()
            out.append((number, wire, data[i:i + size]))
            i += size
        elif wire == 5:
            out.append((number, wire, data[i:i + 4]))
            i += 4
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    return out


def test_a_tensor_package_list_carries_the_sdks_field_numbers_on_the_wire():
    array = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    message = MxpiDataType.MxpiTensorPackageList()
    package = message.tensorPackageVec.add()
    package.headerVec.add(dataSource="appsrc0", memberId=0)
    tensor = package.tensorVec.add(tensorDataType=0, deviceId=0, memType=MxpiDataType.MXPI_MEMORY_HOST)
    tensor.tensorShape.extend(array.shape)
    tensor.dataStr = array.tobytes()
    tensor.tensorDataSize = len(tensor.dataStr)
    ((number, wire, package_bytes),) = wire_fields(message.SerializeToString())
    assert (number, wire) == (1, 2)  # tensorPackageVec = 1
    header, tensor_field = wire_fields(package_bytes)
    assert header[0] == 1 and tensor_field[0] == 2  # headerVec = 1, tensorVec = 2
    assert wire_fields(header[2]) == [(3, 2, b"appsrc0")]  # dataSource = 3
    fields = {number: value for number, _, value in wire_fields(tensor_field[2])}
    assert fields[2] == 24 and fields[7] == array.tobytes()  # tensorDataSize = 2, dataStr = 7
    assert list(fields[6]) == [1, 2, 3]  # tensorShape = 6 (packed)
    again = MxpiDataType.MxpiTensorPackageList()
    again.ParseFromString(message.SerializeToString())
    got = again.tensorPackageVec[0].tensorVec[0]
    assert np.array_equal(np.frombuffer(got.dataStr, np.float32).reshape(tuple(got.tensorShape)), array)


def test_class_and_vision_lists_round_trip():
    classes = MxpiDataType.MxpiClassList()
    classes.classVec.add(classId=1, className="defect", confidence=2.5)
    assert wire_fields(wire_fields(classes.SerializeToString())[0][2]) == [(2, 0, 1), (3, 2, b"defect"),
                                                                           (4, 5, np.float32(2.5).tobytes())]
    vision = MxpiDataType.MxpiVisionList()
    vision.visionVec.add().visionData.dataStr = b"\xff\xd8jpeg"
    again = MxpiDataType.MxpiVisionList.FromString(vision.SerializeToString())
    assert again.visionVec[0].visionData.dataStr == b"\xff\xd8jpeg"
    custom = MxpiDataType.MxpiCustomData()
    custom.map["line"] = "brick"
    assert MxpiDataType.MxpiCustomData.FromString(custom.SerializeToString()).map["line"] == "brick"
