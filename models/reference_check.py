#!/usr/bin/env python3
"""Dev check of the decoded NanoDet-m 416 model against known detections.

Runs in the convert venv with onnxruntime==1.31.1 and pillow added (pins in
deploy/versions.env); `deploy/setup.sh check` installs them and runs:

    python models/reference_check.py --model $CACHE/models/nanodet-m-416.onnx \
        --image $CACHE/media/bus.jpg

Preprocessing as the weights need it: BGR, plain resize (no letterbox) to
416x416 with PIL's bilinear filter (which, like fast_image_resize's
convolution Bilinear, antialiases when downscaling; OpenCV's INTER_LINEAR does
not, and shifts scores by ~0.01-0.04), (px - mean) / std per B,G,R channel,
NCHW f32. Post-processing: score >= 0.35, per-class NMS IoU 0.5, boxes scaled
back to source pixels and clipped to the image.

It also decodes the raw model (`nanodet-m-416-raw.onnx` beside --model, if
present) in numpy and compares with the graph's own decoding, and for bus.jpg
compares the detections with the reference values in ASSETS.md. Exit status 1
on any mismatch.
"""

import argparse
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

SIZE = 416
MEAN = np.array([103.53, 116.28, 123.675], dtype=np.float32)  # B, G, R
STD = np.array([57.375, 57.12, 58.395], dtype=np.float32)
STRIDES = (8, 16, 32)

COCO = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
]

# ASSETS.md: ultralytics bus.jpg (810x1080)
BUS_EXPECTED = [
    ("person", 0.820, (56, 390, 229, 898)),
    ("bus", 0.790, (15, 216, 793, 758)),
    ("person", 0.618, (679, 399, 810, 879)),
    ("person", 0.564, (223, 400, 347, 849)),
    ("person", 0.468, (2, 559, 75, 870)),
]


def preprocess(path):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    small = np.asarray(img.resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float32)
    bgr = small[:, :, ::-1]
    x = (bgr - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), w, h


def nms(boxes, scores, iou_thr):
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx1 - xx0, 0, None) * np.clip(yy1 - yy0, 0, None)
        area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        area_r = (boxes[rest, 2] - boxes[rest, 0]) * (boxes[rest, 3] - boxes[rest, 1])
        iou = inter / np.maximum(area_i + area_r - inter, 1e-9)
        order = rest[iou <= iou_thr]
    return keep


def detect(boxes, scores, w, h, score_thr, iou_thr):
    dets = []
    scale = np.array([w / SIZE, h / SIZE, w / SIZE, h / SIZE], dtype=np.float32)
    for c in range(scores.shape[1]):
        m = scores[:, c] >= score_thr
        if not m.any():
            continue
        b, s = boxes[m], scores[m, c]
        for i in nms(b, s, iou_thr):
            bb = b[i] * scale
            bb = np.clip(bb, 0, [w, h, w, h])
            dets.append((COCO[c], float(s[i]), tuple(int(round(v)) for v in bb)))
    dets.sort(key=lambda d: -d[1])
    return dets


def numpy_decode(raw_sess, x):
    """GFL decode of the raw model's outputs, done here in numpy."""
    outs = {o.name: v for o, v in zip(raw_sess.get_outputs(), raw_sess.run(None, {"input_1:0": x}))}
    cls_by, reg_by = {}, {}
    for name, v in outs.items():
        n = v.shape[1]
        s = next(s for s in STRIDES if (SIZE // s) ** 2 == n)
        (cls_by if v.shape[2] == 80 else reg_by)[s] = v[0]
    boxes, scores = [], []
    for s in STRIDES:
        n = SIZE // s
        reg = reg_by[s].reshape(-1, 4, 11).astype(np.float64)
        p = np.exp(reg - reg.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        d = (p * np.arange(11)).sum(-1) * s
        yy, xx = np.mgrid[0:n, 0:n]
        cx, cy = ((xx + 0.5) * s).ravel(), ((yy + 0.5) * s).ravel()
        boxes.append(np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], 1))
        scores.append(cls_by[s])
    return np.concatenate(boxes), np.concatenate(scores)


def main():
    ap = argparse.ArgumentParser(description="NanoDet-m 416 reference check")
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--raw", help="raw model (default: nanodet-m-416-raw.onnx beside --model)")
    ap.add_argument("--score", type=float, default=0.35)
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    ok = True

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    io = [(i.name, i.type, i.shape) for i in sess.get_inputs()] + \
         [(o.name, o.type, o.shape) for o in sess.get_outputs()]
    print("model io:", ", ".join(f"{n} {t} {s}" for n, t, s in io))
    want_io = [("input", "tensor(float)", [1, 3, SIZE, SIZE]),
               ("boxes", "tensor(float)", [1, 3549, 4]),
               ("scores", "tensor(float)", [1, 3549, 80])]
    if io != want_io:
        print("MISMATCH: model io should be", want_io)
        ok = False

    x, w, h = preprocess(args.image)
    boxes, scores = sess.run(["boxes", "scores"], {"input": x})
    t0 = time.perf_counter()
    runs = 10
    for _ in range(runs):
        sess.run(["boxes", "scores"], {"input": x})
    ms = (time.perf_counter() - t0) * 1000 / runs
    print(f"image {os.path.basename(args.image)} {w}x{h}; inference {ms:.1f} ms "
          f"({args.threads} thread{'s' if args.threads != 1 else ''}, onnxruntime {ort.__version__})")

    raw = args.raw or os.path.join(os.path.dirname(args.model), "nanodet-m-416-raw.onnx")
    if os.path.exists(raw):
        rs = ort.InferenceSession(raw, so, providers=["CPUExecutionProvider"])
        nb, ns = numpy_decode(rs, x)
        db, ds = np.abs(nb - boxes[0]).max(), np.abs(ns - scores[0]).max()
        print(f"graph decode vs numpy decode of raw model: max |d boxes| {db:.2e} px, "
              f"max |d scores| {ds:.2e}")
        if db > 1e-2 or ds > 1e-5:
            print("MISMATCH: graph decoding differs from the numpy decoding")
            ok = False

    dets = detect(boxes[0], scores[0], w, h, args.score, args.iou)
    print(f"detections (score >= {args.score}, per-class NMS IoU {args.iou}, source pixels):")
    for name, s, b in dets:
        print(f"  {name:<12} {s:.3f} [{b[0]},{b[1]},{b[2]},{b[3]}]")

    if os.path.basename(args.image) == "bus.jpg" and (w, h) == (810, 1080):
        if len(dets) != len(BUS_EXPECTED):
            print(f"MISMATCH: {len(dets)} detections, expected {len(BUS_EXPECTED)}")
            ok = False
        for (n, s, b), (en, es, eb) in zip(dets, BUS_EXPECTED):
            worst = max(abs(p - q) for p, q in zip(b, eb))
            good = n == en and abs(s - es) <= 0.01 and worst <= 4
            ok &= good
            print(f"  {'ok ' if good else 'BAD'} {en} {es:.3f} {list(eb)}: "
                  f"d score {s - es:+.3f}, max |d box| {worst} px")
        print("reference check:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
