"""Flow elements: queue (a bounded buffer), tee (fan-out), mxpi_skipframe (keep one frame in N+1)."""

from __future__ import annotations

from patchline.pipeline.elements import Element, Prop, non_negative_int, one_of, positive_int


class Queue(Element):
    """A thread boundary with a bounded buffer; its props size the buffer in front of it.

    max-size-buffers: frames it holds. leaky: GStreamer's 0 = block (never drop), 2 = drop the
    oldest when full; unset = the stream's default (drop oldest for live sources only).
    """

    FACTORY = "queue"
    PROPS = {
        "max-size-buffers": Prop(parse=positive_int, help="frames held, e.g. 8"),
        "leaky": Prop(parse=one_of("0", "2"), help="0 (block) or 2 (drop oldest)"),
    }

    def process(self, frame):
        return frame


class Tee(Element):
    """Sends each frame down every `next` link (each branch gets its own copy of the metadata)."""

    FACTORY = "tee"
    PROPS = {}
    fans_out = True

    def process(self, frame):
        return frame


class SkipFrame(Element):
    """Keeps one frame, then drops the next `frameNum` (MindX's mxpi_skipframe)."""

    FACTORY = "mxpi_skipframe"
    PROPS = {"frameNum": Prop(required=True, parse=non_negative_int, help="frames dropped after each kept one")}

    def __init__(self, name, props, context):
        super().__init__(name, props, context)
        self.skip = props["frameNum"]
        self.count = 0

    def process(self, frame):
        keep = self.count == 0
        self.count = (self.count + 1) % (self.skip + 1)
        return frame if keep else None
