"""The MindX SDK's metadata messages (package MxTools, file MxpiDataType.proto), built at import time
from a field table so no protoc step is needed: the same message names, field names, field numbers
and types as the SDK's .proto, so bytes serialized by either side parse in the other.

`python -m patchline.mindx APP.py` makes this module importable as `MxpiDataType_pb2`.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "MxTools"
FILE_NAME = "MxpiDataType.proto"

# (field name, number, type, repeated, message or enum type) per message, in the SDK's order.
# Types: the protobuf scalar names, or "msg" / "enum" with the type named in the last column.
FIELDS: dict[str, list[tuple]] = {
    "MxpiFrame": [("frameInfo", 1, "msg", False, "MxpiFrameInfo"), ("visionList", 2, "msg", False, "MxpiVisionList")],
    "MxpiFrameInfo": [("channelId", 1, "uint32", False, None), ("frameId", 2, "uint32", False, None),
                      ("isEos", 3, "bool", False, None)],
    "MxpiVisionList": [("visionVec", 1, "msg", True, "MxpiVision")],
    "MxpiVision": [("headerVec", 1, "msg", True, "MxpiMetaHeader"), ("visionInfo", 2, "msg", False, "MxpiVisionInfo"),
                   ("visionData", 3, "msg", False, "MxpiVisionData")],
    "MxpiMetaHeader": [("parentName", 1, "string", False, None), ("memberId", 2, "int32", False, None),
                       ("dataSource", 3, "string", False, None)],
    "MxpiVisionInfo": [("format", 1, "uint32", False, None), ("width", 2, "uint32", False, None),
                       ("height", 3, "uint32", False, None), ("widthAligned", 4, "uint32", False, None),
                       ("heightAligned", 5, "uint32", False, None), ("resizeType", 6, "uint32", False, None),
                       ("keepAspectRatioScaling", 7, "float", False, None),
                       ("preprocessInfo", 8, "msg", True, "MxpiVisionPreProcess")],
    "MxpiVisionPreProcess": [(name, i + 1, "uint32", False, None) for i, name in enumerate(
        ("widthSrc", "heightSrc", "cropLeft", "cropRight", "cropTop", "cropBottom", "pasteLeft", "pasteRight",
         "pasteTop", "pasteBottom", "interpolation"))] + [("elementName", 12, "string", False, None)],
    "MxpiVisionData": [("dataPtr", 1, "uint64", False, None), ("dataSize", 2, "int32", False, None),
                       ("deviceId", 3, "uint32", False, None), ("memType", 4, "enum", False, "MxpiMemoryType"),
                       ("freeFunc", 5, "uint64", False, None), ("dataStr", 6, "bytes", False, None),
                       ("dataType", 7, "enum", False, "MxpiDataType"), ("matPtr", 8, "uint64", False, None)],
    "MxpiObjectList": [("objectVec", 1, "msg", True, "MxpiObject")],
    "MxpiObject": [("headerVec", 1, "msg", True, "MxpiMetaHeader"), ("x0", 2, "float", False, None),
                   ("y0", 3, "float", False, None), ("x1", 4, "float", False, None), ("y1", 5, "float", False, None),
                   ("classVec", 6, "msg", True, "MxpiClass"), ("imageMask", 7, "msg", False, "MxpiImageMask")],
    "MxpiImageMaskList": [("imageMaskVec", 1, "msg", True, "MxpiImageMask")],
    "MxpiImageMask": [("headerVec", 1, "msg", True, "MxpiMetaHeader"), ("className", 2, "string", True, None),
                      ("shape", 3, "int32", True, None), ("dataType", 4, "int32", False, None),
                      ("dataStr", 5, "bytes", False, None)],
    "MxpiClass": [("headerVec", 1, "msg", True, "MxpiMetaHeader"), ("classId", 2, "int32", False, None),
                  ("className", 3, "string", False, None), ("confidence", 4, "float", False, None)],
    "MxpiClassList": [("classVec", 1, "msg", True, "MxpiClass")],
    "MxpiAttributeList": [("attributeVec", 1, "msg", True, "MxpiAttribute")],
    "MxpiAttribute": [("headerVec", 1, "msg", True, "MxpiMetaHeader"), ("attrId", 2, "int32", False, None),
                      ("attrName", 3, "string", False, None), ("attrValue", 4, "string", False, None),
                      ("confidence", 5, "float", False, None)],
    "MxpiTrackLetList": [("trackLetVec", 1, "msg", True, "MxpiTrackLet")],
    "MxpiTrackLet": [("headerVec", 1, "msg", True, "MxpiMetaHeader"), ("trackId", 2, "uint32", False, None),
                     ("age", 3, "uint32", False, None), ("hits", 4, "uint32", False, None),
                     ("trackFlag", 5, "int32", False, None)],
    "MxpiTensorPackageList": [("tensorPackageVec", 1, "msg", True, "MxpiTensorPackage")],
    "MxpiTensorPackage": [("headerVec", 1, "msg", True, "MxpiMetaHeader"), ("tensorVec", 2, "msg", True, "MxpiTensor")],
    "MxpiTensor": [("tensorDataPtr", 1, "uint64", False, None), ("tensorDataSize", 2, "int32", False, None),
                   ("deviceId", 3, "uint32", False, None), ("memType", 4, "enum", False, "MxpiMemoryType"),
                   ("freeFunc", 5, "uint64", False, None), ("tensorShape", 6, "int32", True, None),
                   ("dataStr", 7, "bytes", False, None), ("tensorDataType", 8, "int32", False, None)],
    "MxpiFeatureVectorList": [("featureVec", 1, "msg", True, "MxpiFeatureVector")],
    "MxpiFeatureVector": [("headerVec", 1, "msg", True, "MxpiMetaHeader"), ("featureValues", 2, "float", True, None)],
    "MxpiPoseList": [("poseVec", 1, "msg", True, "MxpiPose")],
    "MxpiPose": [("headerVec", 1, "msg", True, "MxpiMetaHeader"), ("keyPointVec", 2, "msg", True, "MxpiKeyPoint"),
                 ("score", 3, "float", False, None)],
    "MxpiKeyPoint": [("x", 1, "float", False, None), ("y", 2, "float", False, None), ("name", 3, "int32", False, None),
                     ("score", 4, "float", False, None)],
    "MxpiKeyPointAndAngleList": [("keyPointAndAngleVec", 1, "msg", True, "MxpiKeyPointAndAngle")],
    "MxpiKeyPointAndAngle": [("headerVec", 1, "msg", True, "MxpiMetaHeader"), ("keyPointsVec", 2, "float", True, None),
                             ("angleYaw", 3, "float", False, None), ("anglePitch", 4, "float", False, None),
                             ("angleRoll", 5, "float", False, None)],
    "MxpiTextObjectList": [("objectVec", 1, "msg", True, "MxpiTextObject")],
    "MxpiTextObject": [("headerVec", 1, "msg", True, "MxpiMetaHeader")]
    + [(name, i + 2, "float", False, None) for i, name in enumerate(("x0", "y0", "x1", "y1", "x2", "y2", "x3", "y3",
                                                                    "confidence"))]
    + [("text", 11, "string", False, None)],
    "MxpiTextsInfoList": [("textsInfoVec", 1, "msg", True, "MxpiTextsInfo")],
    "MxpiTextsInfo": [("headerVec", 1, "msg", True, "MxpiMetaHeader"), ("text", 2, "string", True, None)],
    "MxpiCustomDataList": [("dataVec", 1, "msg", True, "MxpiCustomData")],
    "MxpiCustomData": [("headerVec", 1, "msg", True, "MxpiMetaHeader"), ("map", 2, "map", True, "MapEntry")],
}

ENUMS = {
    "MxpiMemoryType": [("MXPI_MEMORY_HOST", 0), ("MXPI_MEMORY_DEVICE", 1), ("MXPI_MEMORY_DVPP", 2),
                       ("MXPI_MEMORY_HOST_MALLOC", 3), ("MXPI_MEMORY_HOST_NEW", 4)],
    "MxpiDataType": [("MXPI_DATA_TYPE_UINT8", 0), ("MXPI_DATA_TYPE_FLOAT32", 1)],
}

_F = descriptor_pb2.FieldDescriptorProto


def _add_field(message, name: str, number: int, kind: str, repeated: bool, type_name: str | None) -> None:
    field = message.field.add(name=name, number=number, json_name=name,
                              label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if kind == "map":  # map<string, string>: a nested MapEntry message, as protoc writes it
        entry = message.nested_type.add(name="MapEntry")
        entry.options.map_entry = True
        for i, key in enumerate(("key", "value")):
            entry.field.add(name=key, number=i + 1, json_name=key, label=_F.LABEL_OPTIONAL, type=_F.TYPE_STRING)
        field.type, field.type_name = _F.TYPE_MESSAGE, f".{PACKAGE}.{message.name}.MapEntry"
    elif kind in ("msg", "enum"):
        field.type = _F.TYPE_MESSAGE if kind == "msg" else _F.TYPE_ENUM
        field.type_name = f".{PACKAGE}.{type_name}"
    else:
        field.type = getattr(_F, f"TYPE_{kind.upper()}")


def file_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    """MxpiDataType.proto as a FileDescriptorProto (proto3, package MxTools)."""
    proto = descriptor_pb2.FileDescriptorProto(name=FILE_NAME, package=PACKAGE, syntax="proto3")
    for name, values in ENUMS.items():
        enum = proto.enum_type.add(name=name)
        for value_name, number in values:
            enum.value.add(name=value_name, number=number)
    for name, fields in FIELDS.items():
        message = proto.message_type.add(name=name)
        for field in fields:
            _add_field(message, *field)
    return proto


POOL = descriptor_pool.DescriptorPool()  # our own pool: never clashes with the SDK's generated module
POOL.Add(file_descriptor_proto())  # returns None in some protobuf versions: look the file up instead
DESCRIPTOR = POOL.FindFileByName(FILE_NAME)
MESSAGES = {name: message_factory.GetMessageClass(DESCRIPTOR.message_types_by_name[name]) for name in FIELDS}
globals().update(MESSAGES)
for _enum, _values in ENUMS.items():
    globals().update(dict(_values))


def message_class(type_name: str):
    """The class of a message named as the SDK's APIs name it ("MxTools.MxpiTensorPackageList" or
    "MxpiTensorPackageList"); None for a name the SDK does not define."""
    short = type_name[len(PACKAGE) + 1:] if type_name.startswith(PACKAGE + ".") else type_name
    return MESSAGES.get(short)
