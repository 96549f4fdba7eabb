"""The stream's end: mxpi_dataserialize picks the result, appsink hands it to the host."""

from __future__ import annotations

from patchline.pipeline.stream_graph import RESERVED_KEYS
from patchline.pipeline.elements import Element, Prop, name_list, positive_int


def _fallback(frame) -> dict:
    """The result of a frame no post-process described: its identity, and the reason when it failed."""
    result = {"frame_id": frame.frame_id, "timestamp": frame.iso_time(), **frame.timing_fields(),
              "source": frame.source}
    if frame.error is not None:
        result.update(verdict="error", reason=frame.error)
    return result


def reserved_value(frame, key: str):
    """The SDK's reserved metadata of a frame: ReservedFrameInfo (channel, frame id, end of stream) as
    the SDK writes it; ReservedVisionList is accepted but None (patchline keeps no SDK vision list)."""
    if key == "ReservedFrameInfo":
        return {"channelId": int(frame.channel), "frameId": int(frame.frame_id), "isEos": False}
    return None


class DataSerialize(Element):
    """The result of the elements named in outputDataKeys: one key → its payload, several → {key: payload}.
    The SDK's reserved keys (ReservedFrameInfo, ReservedVisionList) give the frame's own metadata."""

    FACTORY = "mxpi_dataserialize"
    PROPS = {"outputDataKeys": Prop(required=True, parse=name_list, help="element names, comma-separated")}
    handles_errors = True

    def __init__(self, name, props, context):
        super().__init__(name, props, context)
        self.keys = props["outputDataKeys"]

    def process(self, frame):
        if len(self.keys) == 1 and self.keys[0] not in RESERVED_KEYS:
            frame.result = frame.meta.get(self.keys[0]) or _fallback(frame)
        else:
            frame.result = {key: reserved_value(frame, key) if key in RESERVED_KEYS else frame.meta.get(key)
                            for key in self.keys}
        return frame


class AppSink(Element):
    """Hands each frame's result to the host (`context.on_result`), as a MindX host's GetResult would."""

    FACTORY = "appsink"
    PROPS = {"blocksize": Prop(parse=positive_int, ignored="results are handed over whole")}
    handles_errors = True

    def process(self, frame):
        if self.context.on_sink is not None:
            self.context.on_sink(self.name, frame)
        else:
            self.context.on_result(frame.result if frame.result is not None else _fallback(frame))
        return None
