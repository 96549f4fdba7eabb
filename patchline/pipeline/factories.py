"""Factory name (as written in a pipeline file) → the element class that implements it.

Classes are imported on first use, so reading a pipeline file loads no model runtime.
"""

from __future__ import annotations

import importlib

FACTORIES = {
    "appsrc": "patchline.plugins.sources:AppSrc",
    "mxpi_rtspsrc": "patchline.plugins.sources:RtspSrc",
    "appsink": "patchline.plugins.sinks:AppSink",
    "mxpi_videodecoder": "patchline.plugins.image_ops:VideoDecoder",
    "mxpi_imagedecoder": "patchline.plugins.image_ops:ImageDecoder",
    "mxpi_imageresize": "patchline.plugins.image_ops:ImageResize",
    "mxpi_imagecrop": "patchline.plugins.image_ops:ImageCrop",
    "mxpi_opencvcentercrop": "patchline.plugins.image_ops:OpencvCenterCrop",
    "mxpi_imagenormalize": "patchline.plugins.image_ops:ImageNormalize",
    "mxpi_tensorinfer": "patchline.plugins.tensorinfer:TensorInfer",
    "mxpi_classpostprocessor": "patchline.plugins.postprocessor:ClassPostProcessor",
    "mxpi_dataserialize": "patchline.plugins.sinks:DataSerialize",
    "mxpi_skipframe": "patchline.plugins.flow:SkipFrame",
    "queue": "patchline.plugins.flow:Queue",
    "tee": "patchline.plugins.flow:Tee",
    "mxpi_parallel2serial": "patchline.plugins.flow:ParallelToSerial",
    "mxpi_distributor": "patchline.plugins.flow:Distributor",
}


# The sources `--source` puts in place of a file's own source element.
SOURCE_OVERRIDES = {
    "rtsp": "patchline.plugins.sources:RtspSrc",
    "folder": "patchline.plugins.sources:FolderSource",
}


def _load(spec: str):
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def element_class(factory: str):
    """The class for `factory`; KeyError when the runner does not implement it."""
    return _load(FACTORIES[factory])


def source_override_class(kind: str):
    """The source class for `--source` of `kind` ("rtsp" or "folder")."""
    return _load(SOURCE_OVERRIDES[kind])
