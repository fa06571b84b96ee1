#!/usr/bin/python3
"""An HTTP MJPEG camera for the tests, as cheap IP cameras serve it.

Run with Debian's /usr/bin/python3 (it has `gi`). GStreamer encodes a live
test pattern to JPEG (videotestsrc is-live=true ! jpegenc ! appsink); every
client of http://127.0.0.1:PORT/stream.mjpg gets the frames as they come in
a multipart/x-mixed-replace response (no timestamps, like the real ones).
"""

import argparse
import http.server
import threading

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

BOUNDARY = "streetwatchframe"


class Latest:
    """The newest JPEG and a condition to wait for the next one."""

    def __init__(self):
        self.cond = threading.Condition()
        self.jpeg = None
        self.seq = 0

    def put(self, data):
        with self.cond:
            self.jpeg = data
            self.seq += 1
            self.cond.notify_all()

    def next_after(self, seq, timeout=5.0):
        with self.cond:
            self.cond.wait_for(lambda: self.seq > seq, timeout)
            return self.seq, self.jpeg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--size", default="320x240")
    args = ap.parse_args()
    w, h = args.size.split("x")

    Gst.init(None)
    latest = Latest()
    pipeline = Gst.parse_launch(
        f"videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,width={w},height={h},framerate={args.fps}/1 "
        f"! jpegenc quality=80 ! appsink name=sink emit-signals=true sync=false max-buffers=1 drop=true"
    )

    def on_sample(sink):
        buf = sink.emit("pull-sample").get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        if ok:
            latest.put(bytes(info.data))
            buf.unmap(info)
        return Gst.FlowReturn.OK

    pipeline.get_by_name("sink").connect("new-sample", on_sample)
    pipeline.set_state(Gst.State.PLAYING)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/stream.mjpg":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header(
                "Content-Type", f"multipart/x-mixed-replace;boundary={BOUNDARY}"
            )
            self.end_headers()
            seq = 0
            try:
                while True:
                    seq, jpeg = latest.next_after(seq)
                    if jpeg is None:
                        continue
                    self.wfile.write(
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    )
                    self.wfile.write(jpeg)
                    self.wfile.write(b"\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"READY http://127.0.0.1:{args.port}/stream.mjpg", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
