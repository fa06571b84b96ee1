#!/usr/bin/python3
"""Scenario clips with ground truth, composed from the real photos and video.

Each tests/scenarios/NAME.toml is a recipe and its ground truth: a background
(a real video or a real photo held still), real objects cut out of real photos
or video frames (a polygon traced in source pixels, or the pixels that differ
from the source video's median background) pasted at a known place from a
known time (or moved along a known path: a walker), lit as the recipe says
(a cloud's shadow), and what the daemon must report. This script renders
every recipe into an H.264 MP4 (yuv420p) and copies the recipe beside it:

    /usr/bin/python3 tests/support/make_scenarios.py --media ~/.cache/streetwatch/media \\
        --recipes tests/scenarios --out ~/.cache/streetwatch/media/scenarios

Run with Debian's /usr/bin/python3 (python3-numpy, python3-pil); ffmpeg must be
on PATH. Deterministic: the same recipe and media give the same frames.
deploy/setup.sh test-assets runs it when a recipe or this script changes.

Before writing anything it checks that the ground truth is what the recipe
draws: every [[truth.object]] box is the tight box of its pasted pixels (a
moving object's at every point of its path), its times are the overlay's,
and every [[truth.count]] step is the number of those objects standing
(bottom centre) in the zone. `--print-truth` prints the
boxes the recipe actually draws; `--stills T,T…` also saves those frames as PNG.
"""

import argparse
import math
import os
import subprocess
import sys
import tomllib
from collections import deque

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# A pixel is foreground when one channel differs from the median background by
# more than this (0..255); person cut-outs and the occlusion of pasted objects
# by passers-by both use it.
FOREGROUND_THRESHOLD = 35
# Every n-th frame of a video goes into its median background.
MEDIAN_STEP = 10
# Truth boxes must match the drawn pixels to this (fraction of the frame).
BOX_TOLERANCE = 0.004


class RecipeError(Exception):
    """A recipe that cannot be rendered, or whose ground truth is not what it draws."""


def fail(name, message):
    raise RecipeError(f"{name}: {message}")


# ---------------------------------------------------------------------------
# Sources


def probe(path):
    """(width, height, frames per second) of a video's first stream."""
    out = subprocess.run(
        [
            "ffprobe", "-v", "error", "-select_streams", "v:0",
            "-show_entries", "stream=width,height,r_frame_rate", "-of", "csv=p=0", path,
        ],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    w, h, rate = out.split(",")[:3]
    num, _, den = rate.partition("/")
    return int(w), int(h), float(num) / float(den or 1)


def video_frames(path, limit=None):
    """Yields the frames of a video (at most `limit`) as HxWx3 uint8 RGB arrays."""
    w, h, _ = probe(path)
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", path]
    if limit is not None:
        cmd += ["-frames:v", str(limit)]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    n = w * h * 3
    try:
        while True:
            buf = proc.stdout.read(n)
            if len(buf) < n:
                break
            yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.wait()


class Media:
    """Source photos and videos, loaded once."""

    def __init__(self, folder):
        self.folder = folder
        self._images = {}
        self._videos = {}

    def path(self, name):
        p = os.path.join(self.folder, name)
        if not os.path.isfile(p):
            raise RecipeError(f"{p} is missing (deploy/setup.sh media test-assets fetch it)")
        return p

    def image(self, name):
        if name not in self._images:
            self._images[name] = np.asarray(Image.open(self.path(name)).convert("RGB"))
        return self._images[name]

    def video(self, name, wanted_frames=()):
        """(frames by index for `wanted_frames`, median background) of a source video.

        Decodes the video once per set of frames: ask for all of them at once.
        """
        have = self._videos.get(name)
        if have is None or not set(wanted_frames) <= set(have[0]):
            frames, samples = {}, []
            for i, f in enumerate(video_frames(self.path(name))):
                if i in wanted_frames:
                    frames[i] = f.copy()
                if i % MEDIAN_STEP == 0:
                    samples.append(f)
            missing = set(wanted_frames) - set(frames)
            if missing:
                raise RecipeError(f"{name} has no frame {sorted(missing)}")
            median = np.median(np.stack(samples), axis=0).astype(np.uint8)
            have = (frames, median)
            self._videos[name] = have
        return have


# ---------------------------------------------------------------------------
# Masks


def dilate(m, r):
    out = m.copy()
    h, w = m.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            src = m[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
            out[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)] |= src
    return out


def erode(m, r):
    return ~dilate(~m, r)


def largest_component(m):
    """The largest 4-connected blob of `m`."""
    h, w = m.shape
    label = np.zeros((h, w), np.int32)
    best, best_size, n = 0, 0, 0
    for y, x in zip(*np.nonzero(m)):
        if label[y, x]:
            continue
        n += 1
        label[y, x] = n
        queue, size = deque([(y, x)]), 0
        while queue:
            cy, cx = queue.popleft()
            size += 1
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < h and 0 <= nx < w and m[ny, nx] and not label[ny, nx]:
                    label[ny, nx] = n
                    queue.append((ny, nx))
        if size > best_size:
            best, best_size = n, size
    return label == best if best else m


def fill_holes(m):
    """`m` with every background region not reachable from the border filled."""
    h, w = m.shape
    outside = np.zeros_like(m)
    queue = deque()
    for y in range(h):
        for x in range(w):
            if (y in (0, h - 1) or x in (0, w - 1)) and not m[y, x]:
                outside[y, x] = True
                queue.append((y, x))
    while queue:
        cy, cx = queue.popleft()
        for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
            if 0 <= ny < h and 0 <= nx < w and not m[ny, nx] and not outside[ny, nx]:
                outside[ny, nx] = True
                queue.append((ny, nx))
    return ~outside


def foreground(frame, median):
    """Pixels of `frame` that differ from the median background."""
    diff = np.abs(frame.astype(np.int16) - median.astype(np.int16)).max(axis=2)
    return diff > FOREGROUND_THRESHOLD


def silhouette(frame, median):
    """The one object in `frame` (a crop): foreground, closed, opened, largest blob, filled."""
    m = foreground(frame, median)
    m = erode(dilate(m, 1), 1)
    m = dilate(erode(m, 1), 1)
    return fill_holes(largest_component(m))


def polygon_mask(name, where, src, spec):
    """The mask of a traced outline, in source pixels.

    `polygon`: the object's outline. With `key = { hue = [lo, hi], min_saturation,
    min_value }` (degrees, 0..1, 0..1) only the pixels of that colour inside it,
    plus those inside any of the `solid` polygons (see-through objects: a
    barrier's bars and its sign, not the road between them).
    """
    sh, sw = src.shape[:2]

    def draw(poly):
        img = Image.new("L", (sw, sh), 0)
        ImageDraw.Draw(img).polygon([tuple(p) for p in poly], fill=255)
        return np.asarray(img) > 0

    m = draw(spec["polygon"])
    if "key" in spec:
        key = spec["key"]
        hsv = np.asarray(Image.fromarray(src).convert("HSV"), np.float32)
        hue = hsv[..., 0] * (360.0 / 255.0)
        lo, hi = key["hue"]
        coloured = (
            (hue >= lo) & (hue <= hi)
            & (hsv[..., 1] >= 255.0 * float(key.get("min_saturation", 0.0)))
            & (hsv[..., 2] >= 255.0 * float(key.get("min_value", 0.0)))
        )
        for poly in spec.get("solid", []):
            coloured |= draw(poly)
        m &= erode(dilate(coloured, 1), 1)
    elif "solid" in spec:
        fail(name, f"{where}: `solid` only goes with `key`")
    return Image.fromarray(m.astype(np.uint8) * 255)


# ---------------------------------------------------------------------------
# Overlays


class Overlay:
    """One real object cut out of its source, scaled to its place in the clip.

    Either still (`dest`: its box in clip pixels, shown from `appear_s` to
    `remove_s`) or moving (`path = [[t, cx, bottom, height], …]`: where its
    bottom centre is and how tall it is at each time, in clip pixels; in
    between it moves in a straight line; shown from the first time to the last).
    """

    def __init__(self, name, spec, media, size):
        self.id = spec["id"]
        self.behind_foreground = bool(spec.get("behind_foreground", False))
        where = f"overlay {self.id}"
        x0, y0, x1, y1 = (int(v) for v in spec["crop"])
        source = spec["source"]
        mask_spec = spec["mask"]
        if "frame" in spec:
            frames, median = media.video(source, {int(spec["frame"])})
            src = frames[int(spec["frame"])]
        else:
            src, median = media.image(source), None
        sh, sw = src.shape[:2]
        if not (0 <= x0 < x1 <= sw and 0 <= y0 < y1 <= sh):
            fail(name, f"{where}: crop {spec['crop']} is outside {source} ({sw}x{sh})")
        crop = src[y0:y1, x0:x1]
        if mask_spec == "foreground":
            if median is None:
                fail(name, f"{where}: mask = \"foreground\" needs a video frame source")
            mask = silhouette(crop, median[y0:y1, x0:x1])
            mask_img = Image.fromarray(mask.astype(np.uint8) * 255)
        elif isinstance(mask_spec, dict) and "polygon" in mask_spec:
            mask_img = polygon_mask(name, where, src, mask_spec).crop((x0, y0, x1, y1))
        else:
            fail(name, f"{where}: mask must be \"foreground\" or {{ polygon = [[x, y], …] }}")
        self.crop_img = Image.fromarray(np.ascontiguousarray(crop))
        self.mask_img = mask_img
        self.aspect = (x1 - x0) / (y1 - y0)
        self.feather = float(mask_spec.get("feather_px", 0)) if isinstance(mask_spec, dict) else 0.0
        self.size = size
        self._scaled = {}
        w, h = size
        if ("dest" in spec) == ("path" in spec):
            fail(name, f"{where}: give either `dest` (still) or `path` (moving)")
        if "dest" in spec:
            self.appear_s = float(spec["appear_s"])
            self.remove_s = float(spec.get("remove_s", math.inf))
            dx0, dy0, dx1, dy1 = (int(v) for v in spec["dest"])
            if not (0 <= dx0 < dx1 <= w and 0 <= dy0 < dy1 <= h):
                fail(name, f"{where}: dest {spec['dest']} is outside the {w}x{h} frame")
            stretch = ((dx1 - dx0) / (dy1 - dy0)) / self.aspect
            if not 0.95 <= stretch <= 1.05:
                fail(name, f"{where}: dest {spec['dest']} distorts the crop's aspect by {stretch:.3f}")
            self.path = None
            self.still_dest = (dx0, dy0, dx1, dy1)
        else:
            if "appear_s" in spec or "remove_s" in spec:
                fail(name, f"{where}: a moving overlay is shown from its path's first time to its last")
            path = [tuple(float(v) for v in k) for k in spec["path"]]
            if len(path) < 2 or any(len(k) != 4 for k in path):
                fail(name, f"{where}: path needs at least two [t, cx, bottom, height] points")
            if any(b[0] < a[0] for a, b in zip(path, path[1:])):
                fail(name, f"{where}: path times go back")
            self.path = path
            self.appear_s = path[0][0]
            self.remove_s = path[-1][0]

    def visible(self, t):
        return self.appear_s <= t < self.remove_s

    def dest(self, t):
        """The box (clip pixels) the object is drawn in at `t`."""
        if self.path is None:
            return self.still_dest
        path = self.path
        k = 0
        while k + 2 < len(path) and path[k + 1][0] <= t:
            k += 1
        (ta, *a), (tb, *b) = path[k], path[k + 1]
        f = 0.0 if tb == ta else min(max((t - ta) / (tb - ta), 0.0), 1.0)
        cx, bottom, height = (u + f * (v - u) for u, v in zip(a, b))
        dh = max(2, round(height))
        dw = max(2, round(dh * self.aspect))
        x0, y1 = round(cx - dw / 2), round(bottom)
        return (x0, y1 - dh, x0 + dw, y1)

    def scaled(self, dw, dh):
        """(rgb, alpha) of the object at `dw`×`dh` pixels."""
        key = (dw, dh)
        if key not in self._scaled:
            rgb = np.asarray(self.crop_img.resize((dw, dh), Image.LANCZOS), np.float32)
            alpha = self.mask_img.resize((dw, dh), Image.BILINEAR)
            if self.feather > 0:
                alpha = alpha.filter(ImageFilter.GaussianBlur(self.feather))
            alpha = np.asarray(alpha, np.float32)[..., None] / 255.0
            if len(self._scaled) > 64:
                self._scaled.clear()
            self._scaled[key] = (rgb, alpha)
        return self._scaled[key]

    def tight_box(self, t=None):
        """The box of the pasted pixels (alpha ≥ 0.5) at `t`, normalised; None if off the frame."""
        dx0, dy0, dx1, dy1 = self.dest(self.appear_s if t is None else t)
        _, alpha = self.scaled(dx1 - dx0, dy1 - dy0)
        ys, xs = np.nonzero(alpha[..., 0] >= 0.5)
        if len(xs) == 0:
            return None
        w, h = self.size
        box = [
            max(dx0 + xs.min(), 0) / w,
            max(dy0 + ys.min(), 0) / h,
            min(dx0 + xs.max() + 1, w) / w,
            min(dy0 + ys.max() + 1, h) / h,
        ]
        return box if box[0] < box[2] and box[1] < box[3] else None

    def paste(self, frame, t, occluders=None):
        fh, fw = frame.shape[:2]
        x0, y0, x1, y1 = self.dest(t)
        rgb, alpha = self.scaled(x1 - x0, y1 - y0)
        # the part inside the frame (a walker may enter or leave across an edge)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
        if cx0 >= cx1 or cy0 >= cy1:
            return
        rgb = rgb[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        alpha = alpha[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        if occluders is not None:
            alpha = alpha * (~occluders[cy0:cy1, cx0:cx1])[..., None]
        region = frame[cy0:cy1, cx0:cx1].astype(np.float32)
        frame[cy0:cy1, cx0:cx1] = np.clip(
            region * (1.0 - alpha) + rgb * alpha + 0.5, 0, 255
        ).astype(np.uint8)


class Light:
    """A change of light over the whole view (a cloud's shadow): from `from_s` the
    picture's brightness eases to `gain` over `ramp_s` seconds, stays, and eases
    back from `to_s`. `slope` tilts it from left to right (gain ± slope / 2 at
    the edges), so it is not exactly uniform."""

    def __init__(self, name, spec, size):
        self.from_s = float(spec["from_s"])
        self.to_s = float(spec["to_s"])
        self.ramp_s = float(spec.get("ramp_s", 2.0))
        self.gain = float(spec["gain"])
        slope = float(spec.get("slope", 0.0))
        if not (self.ramp_s > 0 and self.from_s + self.ramp_s <= self.to_s):
            fail(name, "[[recipe.light]] needs ramp_s > 0 and from_s + ramp_s <= to_s")
        if not 0.2 <= self.gain <= 2.0 or abs(slope) > 0.5:
            fail(name, "[[recipe.light]] gain must be in [0.2, 2] and |slope| at most 0.5")
        w = size[0]
        self.tilt = (np.arange(w, dtype=np.float32) / max(w - 1, 1) - 0.5) * slope

    def weight(self, t):
        """0 (no shadow) … 1 (full shadow), eased in and out."""
        if t <= self.from_s or t >= self.to_s + self.ramp_s:
            return 0.0
        k = min((t - self.from_s) / self.ramp_s, 1.0, (self.to_s + self.ramp_s - t) / self.ramp_s)
        return 0.5 - 0.5 * math.cos(math.pi * k)

    def apply(self, frame, t):
        k = self.weight(t)
        if k == 0.0:
            return
        g = 1.0 + k * (self.gain - 1.0 + self.tilt)
        frame[:] = np.clip(frame.astype(np.float32) * g[None, :, None] + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# Recipes


def load(path):
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    name = os.path.splitext(os.path.basename(path))[0]
    if doc.get("scenario", {}).get("name") != name:
        fail(name, f"[scenario] name must be {name!r} (the file's name)")
    return name, doc


def point_in_polygon(x, y, poly):
    inside = False
    j = len(poly) - 1
    for i in range(len(poly)):
        xi, yi = poly[i]
        xj, yj = poly[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def check_truth(name, doc, overlays, size):
    """The ground truth must be what the recipe draws."""
    truth = doc.get("truth", {})
    by_id = {o.id: o for o in overlays}
    objects = truth.get("object", [])
    if sorted(o["id"] for o in objects) != sorted(by_id):
        fail(name, "every overlay needs exactly one [[truth.object]] with its id, and no more")
    for obj in objects:
        ov = by_id[obj["id"]]
        if float(obj["appear_s"]) != ov.appear_s or float(obj.get("remove_s", math.inf)) != ov.remove_s:
            fail(name, f"truth {obj['id']}: appear_s/remove_s differ from the overlay's")
        if ov.path is None:
            drawn = ov.tight_box()
            if "box" not in obj or not same_box(obj["box"], drawn):
                fail(name, f"truth {obj['id']}: box {obj.get('box')} but the recipe draws {fmt_box(drawn)}")
            continue
        # a moving object: its box at each point of its path
        truth_path = obj.get("path", [])
        if [k[0] for k in truth_path] != [k[0] for k in ov.path]:
            fail(name, f"truth {obj['id']}: path times differ from the overlay's")
        for t, *want in truth_path:
            drawn = ov.tight_box(t)
            if not same_box(want, drawn):
                fail(name, f"truth {obj['id']}: at {t} s box {want} but the recipe draws {fmt_box(drawn)}")
    zones = {z["id"]: z["polygon"] for z in truth.get("zone", [])}
    for count in truth.get("count", []):
        poly = zones.get(count["zone"])
        if poly is None:
            fail(name, f"[[truth.count]] names zone {count['zone']!r}, which no [[truth.zone]] defines")
        for t, n in count["steps"]:
            inside = [
                o for o in objects
                if o["class"] == count["class"]
                and "box" in o
                and o["appear_s"] <= t + 1e-6 < o.get("remove_s", math.inf)
                and point_in_polygon((o["box"][0] + o["box"][2]) / 2, o["box"][3], poly)
            ]
            if len(inside) != n:
                fail(name, f"[[truth.count]] says {n} {count['class']} in {count['zone']} from "
                     f"{t} s, the recipe has {len(inside)} there")


def same_box(want, drawn):
    return drawn is not None and len(want) == 4 and all(
        abs(a - b) <= BOX_TOLERANCE for a, b in zip(want, drawn)
    )


def fmt_box(b):
    return "None" if b is None else "[" + ", ".join(f"{v:.4f}" for v in b) + "]"


def background_frames(name, recipe, media, size, fps, count):
    bg = recipe["background"]
    if "image" in bg:
        img = Image.open(media.path(bg["image"])).convert("RGB").resize(size, Image.LANCZOS)
        still = np.asarray(img)
        for _ in range(count):
            yield still, None
        return
    source = bg["video"]
    start = round(float(bg.get("start_s", 0)) * fps)
    w, h, rate = probe(media.path(source))
    if (w, h) != size or abs(rate - fps) > 1e-3:
        fail(name, f"{source} is {w}x{h} at {rate:g} fps; the clip must be the same "
             f"({size[0]}x{size[1]} at {fps} fps)")
    _, median = media.video(source)
    n = 0
    for i, f in enumerate(video_frames(media.path(source), limit=start + count)):
        if i < start:
            continue
        yield f, median
        n += 1
        if n == count:
            return
    fail(name, f"{source} has fewer than {start + count} frames at {fps} fps")


def render(name, doc, media, out_dir, stills, print_truth):
    recipe = doc["recipe"]
    size = (int(recipe["width"]), int(recipe["height"]))
    fps = int(recipe["fps"])
    count = round(float(recipe["duration_s"]) * fps)
    if size[0] % 2 or size[1] % 2:
        fail(name, "width and height must be even (yuv420p)")
    # one decode per source video: every frame an overlay is cut from, and its median
    wanted = {}
    for o in recipe.get("overlay", []):
        if "frame" in o:
            wanted.setdefault(o["source"], set()).add(int(o["frame"]))
    if "video" in recipe["background"]:
        wanted.setdefault(recipe["background"]["video"], set())
    for source, frames in wanted.items():
        media.video(source, frames)
    overlays = [Overlay(name, o, media, size) for o in recipe.get("overlay", [])]
    lights = [Light(name, spec, size) for spec in recipe.get("light", [])]
    if print_truth:
        for o in overlays:
            if o.path is None:
                print(f"{name}: {o.id}: box = {fmt_box(o.tight_box())}")
            else:
                points = ", ".join(f"[{k[0]:g}, {fmt_box(o.tight_box(k[0]))[1:]}" for k in o.path)
                print(f"{name}: {o.id}: path = [{points}]")
    check_truth(name, doc, overlays, size)

    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, f".{name}.tmp.mp4")
    enc = subprocess.Popen(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size[0]}x{size[1]}",
            "-framerate", str(fps), "-i", "-",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", str(2 * fps),
            "-pix_fmt", "yuv420p", "-fflags", "+bitexact", "-map_metadata", "-1",
            "-movflags", "+faststart", tmp,
        ],
        stdin=subprocess.PIPE,
    )
    still_frames = {round(t * fps): t for t in stills}
    try:
        for k, (bg, median) in enumerate(background_frames(name, recipe, media, size, fps, count)):
            t = k / fps
            frame = bg.copy()
            occluders = None
            for o in overlays:
                if not o.visible(t):
                    continue
                if o.behind_foreground and median is not None and occluders is None:
                    occluders = dilate(foreground(bg, median), 2)
                o.paste(frame, t, occluders if o.behind_foreground else None)
            for light in lights:
                light.apply(frame, t)
            enc.stdin.write(frame.tobytes())
            if k in still_frames:
                Image.fromarray(frame).save(os.path.join(out_dir, f"{name}_t{still_frames[k]:g}.png"))
    finally:
        enc.stdin.close()
        if enc.wait() != 0:
            fail(name, "ffmpeg could not encode the clip")
    os.replace(tmp, os.path.join(out_dir, f"{name}.mp4"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--media", required=True, help="folder of the source photos and videos")
    ap.add_argument("--recipes", required=True, help="folder of the NAME.toml recipes")
    ap.add_argument("--out", required=True, help="where NAME.mp4 and NAME.toml go")
    ap.add_argument("--only", action="append", default=[], help="render only this scenario")
    ap.add_argument("--stills", default="", help="also save the frames at these times (s), as PNG")
    ap.add_argument("--print-truth", action="store_true", help="print the boxes each overlay draws")
    args = ap.parse_args()
    stills = [float(t) for t in args.stills.split(",") if t]

    media = Media(args.media)
    paths = sorted(
        os.path.join(args.recipes, f) for f in os.listdir(args.recipes) if f.endswith(".toml")
    )
    if not paths:
        sys.exit(f"make_scenarios: no recipes in {args.recipes}")
    try:
        for path in paths:
            name, doc = load(path)
            if args.only and name not in args.only:
                continue
            render(name, doc, media, args.out, stills, args.print_truth)
            with open(path, "rb") as src, open(os.path.join(args.out, f"{name}.toml"), "wb") as dst:
                dst.write(src.read())
    except RecipeError as e:
        sys.exit(f"make_scenarios: {e}")


if __name__ == "__main__":
    main()
