#!/usr/bin/python3
"""A small local RTSP test server: serves a video file (or a test pattern) on loopback, looping.

Run it with Debian's Python, which has GStreamer's introspection bindings (python3-gi,
gir1.2-gst-rtsp-server-1.0); the project's virtual environment does not need them:

    /usr/bin/python3 tools/rtsp_server.py --port 8554 --path line1 --file clip.mp4

The file is decoded once into memory and re-encoded to H.264 at a steady frame rate, so the
stream loops forever without the seek tricks a file source needs, and a client that joins late
or reconnects gets a key frame within a few frames. When it is listening it prints one line,
`READY rtsp://127.0.0.1:<port>/<path>`, on stdout. SIGTERM or SIGINT stops it cleanly.
RTP travels interleaved over the RTSP TCP connection only, so no UDP port is ever opened.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

ENCODE = ("x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bframes=0 "
          "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1")


def decode_file(path: str) -> tuple[list[bytes], Gst.Caps]:
    """Decode every frame of `path` to raw I420; returns the frame bytes and their caps."""
    pipeline = Gst.parse_launch(
        "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=I420 ! appsink name=sink sync=false")
    # Set as a property, not in the launch string, so any file name is taken literally.
    pipeline.get_by_name("src").set_property("location", path)
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    frames: list[bytes] = []
    caps = None
    while True:
        sample = sink.emit("try-pull-sample", 10 * Gst.SECOND)
        if sample is None:
            break
        caps = sample.get_caps()
        buf = sample.get_buffer()
        frames.append(buf.extract_dup(0, buf.get_size()))
    bus_error = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if bus_error is not None or not frames:
        reason = bus_error.parse_error()[0].message if bus_error is not None else "no video frames"
        raise SystemExit(f"rtsp_server: cannot read {path}: {reason}")
    return frames, caps


class LoopingFactory(GstRtspServer.RTSPMediaFactory):
    """Feeds the decoded frames through appsrc in a loop at `fps` frames per second."""

    def __init__(self, frames: list[bytes], caps: Gst.Caps, fps: int):
        super().__init__()
        self.frames, self.fps = frames, fps
        s = caps.get_structure(0)
        self.caps = Gst.Caps.from_string(
            f"video/x-raw,format=I420,width={s.get_value('width')},height={s.get_value('height')},"
            f"framerate={fps}/1")
        self.duration = Gst.SECOND // fps

    def do_create_element(self, url):
        launch = (f"( appsrc name=src is-live=true do-timestamp=true format=time ! videoconvert ! "
                  f"{ENCODE.format(gop=max(1, self.fps // 2))} )")
        return Gst.parse_launch(launch)

    def do_configure(self, media):
        # A live source paced by a timer and stamped on arrival: a client sees a steady
        # frame rate, and frames pushed before PLAYING (or after a pause) are never "late".
        src = media.get_element().get_by_name("src")
        src.set_property("caps", self.caps)
        state = {"n": 0}

        def push():
            buf = Gst.Buffer.new_wrapped(self.frames[state["n"] % len(self.frames)])
            buf.duration = self.duration
            state["n"] += 1
            src.emit("push-buffer", buf)
            return True

        timer = GLib.timeout_add(max(1, 1000 // self.fps), push)
        media.connect("unprepared", lambda *_: GLib.source_remove(timer))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Serve a video file or a test pattern over RTSP on 127.0.0.1, looping.")
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--path", default="stream", help="mount path, e.g. line1/cam1")
    ap.add_argument("--file", help="H.264 (or any decodable) MP4/MKV; default: a generated test pattern")
    ap.add_argument("--fps", type=int, default=10, help="frames per second of the served stream")
    args = ap.parse_args(argv)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    if args.file:
        frames, caps = decode_file(args.file)
        factory = LoopingFactory(frames, caps, args.fps)
    else:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate={args.fps}/1 "
            f"! videoconvert ! {ENCODE.format(gop=max(1, args.fps // 2))} )")
    factory.set_shared(True)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    path = "/" + args.path.strip("/")
    server.get_mount_points().add_factory(path, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}{path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
