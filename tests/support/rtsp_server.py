#!/usr/bin/python3
"""A real RTSP peer for the tests: GStreamer's RTSP server on a loopback port.

Run with Debian's /usr/bin/python3 (it has `gi`). Serves one mount, /cam:

  --source test         videotestsrc is-live=true ! x264enc tune=zerolatency ! rtph264pay
  --source FILE.mp4     filesrc ! qtdemux ! h264parse ! rtph264pay, looped

Prints "READY rtsp://127.0.0.1:PORT/cam" on stdout once the server listens, then
runs until killed (SIGTERM/SIGINT end it cleanly).
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


class LoopingFileFactory(GstRtspServer.RTSPMediaFactory):
    """A file mount whose media seeks back to the start at end of stream."""

    def __init__(self, launch):
        super().__init__()
        self.set_launch(launch)
        self.set_shared(True)
        self.connect("media-configure", self._configure)

    def _configure(self, _factory, media):
        pipeline = media.get_element()
        bus = pipeline.get_bus() if hasattr(pipeline, "get_bus") else None
        if bus is None:
            return

        def on_message(_bus, msg):
            if msg.type == Gst.MessageType.EOS:
                pipeline.seek_simple(
                    Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0
                )
            return True

        bus.add_signal_watch()
        bus.connect("message", on_message)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--source", default="test", help="'test' or an H.264 .mp4 file")
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--size", default="320x240", help="WxH of the test pattern")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    if args.source == "test":
        w, h = args.size.split("x")
        launch = (
            f"( videotestsrc is-live=true pattern=ball "
            f"! video/x-raw,width={w},height={h},framerate={args.fps}/1 "
            f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} "
            f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(True)
    else:
        launch = (
            f'( filesrc location="{args.source}" ! qtdemux ! h264parse '
            f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        factory = LoopingFileFactory(launch)

    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        sys.exit(1)

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}/cam", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
