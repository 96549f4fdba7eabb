"""Flow elements: queue (a bounded buffer), tee (fan-out), mxpi_skipframe (keep one frame in N+1),
mxpi_parallel2serial (several inputs, e.g. cameras, into one), mxpi_distributor (route by channel)."""

from __future__ import annotations

from patchline.pipeline.elements import Element, Prop, Where, name_list, non_negative_int, one_of, positive_int, validate_props


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


class ParallelToSerial(Element):
    """Several inputs (`next` links from each, e.g. one decoder per camera) out through one, in
    arrival order — MindX's mxpi_parallel2serial in its default asynchronous mode (status 0).

    Merging cameras lets the models take frames of different cameras in one batch. With
    dataSource (the upstream producers, comma-separated) it re-mounts each frame's output of those
    elements under its own name, so a model after it reads one key whatever camera the frame came
    from; without it, the producers nearest upstream of each input are used (none: frames pass).
    """

    FACTORY = "mxpi_parallel2serial"
    PROPS = {
        "dataSource": Prop(parse=name_list, help="upstream element names, comma-separated"),
        "status": Prop(default="0", parse=one_of("0"),
                       help="0 (asynchronous: each frame on as it arrives; the synchronous mode 1 is not implemented)"),
        "removeParentData": Prop(default="0", parse=one_of("0", "1"),
                                 ignored="a frame's earlier outputs are dropped with the frame anyway"),
    }
    inputs = None  # any number of input links

    def __init__(self, name, props, context):
        super().__init__(name, props, context)
        self.keys = tuple(props.get("dataSource") or ())

    def process(self, frame):
        for key in self.keys:
            if key in frame.meta:
                frame.meta[self.name] = frame.meta[key]
                break
        return frame


class Distributor(Element):
    """Sends each frame down the `next` link of its channel: channelIds "0,1" sends channel 0 to the
    first link and channel 1 to the second (MindX's mxpi_distributor by channel id). Frames of other
    channels are dropped (counted as skipped), as the SDK does with distributeAll "no"."""

    FACTORY = "mxpi_distributor"
    PROPS = {
        "channelIds": Prop(parse=name_list, help="channel ids, comma-separated, one per `next` link, e.g. 0,1"),
        "classIds": Prop(help="not implemented: patchline distributes by channelIds"),
        "distributeAll": Prop(default="no", parse=one_of("no")),
        "dataSource": Prop(ignored="frames are routed by their channel"),
    }
    fans_out = True

    @classmethod
    def validate(cls, props, where: Where, options) -> dict:
        parsed = validate_props(cls.PROPS, props, where)
        if parsed["classIds"] is not None:
            raise where.error("distributing by class is not implemented (frames here carry verdicts, not "
                              "object classes); use channelIds.", "classIds")
        if parsed["channelIds"] is None:
            raise where.error("is required: the channel id of each `next` link, e.g. 0,1.", "channelIds")
        try:
            parsed["channelIds"] = tuple(int(c) for c in parsed["channelIds"])
        except ValueError:
            raise where.error(f"must be whole numbers, e.g. 0,1; got {props['channelIds']!r}.", "channelIds") from None
        if len(set(parsed["channelIds"])) != len(parsed["channelIds"]):
            raise where.error(f"names a channel twice: {props['channelIds']!r}.", "channelIds")
        return parsed

    def __init__(self, name, props, context):
        super().__init__(name, props, context)
        self.ports = {channel: i for i, channel in enumerate(props["channelIds"])}

    def process(self, frame):
        return frame if frame.channel in self.ports else None

    def route(self, frame) -> list[int]:
        """The index of the `next` link this frame goes to."""
        return [self.ports[frame.channel]]
