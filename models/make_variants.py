#!/usr/bin/env python3
"""Re-package the default detector in every output/input layout streetwatch reads.

The same NanoDet-m 416 weights, wrapped by ONNX graph surgery (the `onnx`
package only), so the detector's decoders and preprocessing can be checked
against the base model on real photos: every variant must find what the base
model finds (tests/detector_variants.rs). deploy/setup.sh test-assets runs it:

    python models/make_variants.py --model nanodet-m-416.onnx \
        --raw nanodet-m-416-raw.onnx --manifest models/nanodet-m-416.toml --out DIR

Writes into DIR, each .onnx with its manifest .toml beside it (except the
Ultralytics one, which carries metadata instead):

  yolov8.onnx       output0 [1, 84, 3549]: cx, cy, w, h, 80 class scores (Ultralytics)
  yolov5.onnx       output  [1, 3549, 85]: cx, cy, w, h, objectness (1), 80 scores
  yolox.onnx        output  [1, 3549, 85]: grid offsets, log w/h in stride units, obj, scores
  end2end.onnx      output  [1, K, 6]: an ONNX NonMaxSuppression inside (class-aware,
                    IoU 0.5, score 0.35): x0, y0, x1, y1, score, class
  tf_od.onnx        detection_boxes/scores/classes/num_detections (TF OD API style)
  nhwc.onnx         input [1, 416, 416, 3]
  rgb.onnx          input in RGB order
  ultralytics.onnx  RGB 0..1, letterbox, no manifest: Ultralytics metadata
                    (names, imgsz, stride, task); output as yolov8
  raw.onnx          the raw GFL head (Identity:0..5), decoded by streetwatch
  dynbatch.onnx     input [N, 3, 416, 416], outputs boxes [N, 3549, 4] and
                    scores [N, 3549, 80]: a symbolic batch, for batching
                    frames of several cameras into one inference

and two models streetwatch must refuse at start-up (tests/model_errors.rs):

  broken_rank.onnx    input [1, 3, 173056] (rank 3: not an image tensor)
  broken_layout.onnx  one output [1, 3549, 84, 1] (no known layout)
"""

import argparse
import os
import shutil
import tomllib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE = 416
STRIDES = (8, 16, 32)
N = sum((SIZE // s) ** 2 for s in STRIDES)  # 3549
C = 80
MEAN = [103.53, 116.28, 123.675]  # BGR
STD = [57.375, 57.12, 58.395]


def const(g, name, array):
    g.initializer.append(numpy_helper.from_array(np.asarray(array), name))
    return name


def load(path):
    return onnx.load(path)


def set_outputs(model, outputs):
    del model.graph.output[:]
    model.graph.output.extend(outputs)


def out_info(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def save(model, path):
    model.producer_name = "streetwatch/models/make_variants.py"
    onnx.checker.check_model(model)
    onnx.save(model, path)


def cxcywh(g, prefix):
    """boxes [1,N,4] x0,y0,x1,y1 -> [1,N,4] cx,cy,w,h (name returned)."""
    g.node.extend([
        helper.make_node("Split", ["boxes", const(g, f"{prefix}_split", np.array([2, 2], np.int64))],
                         [f"{prefix}_p0", f"{prefix}_p1"], axis=2),
        helper.make_node("Add", [f"{prefix}_p0", f"{prefix}_p1"], [f"{prefix}_sum"]),
        helper.make_node("Mul", [f"{prefix}_sum", const(g, f"{prefix}_half", np.float32(0.5))],
                         [f"{prefix}_c"]),
        helper.make_node("Sub", [f"{prefix}_p1", f"{prefix}_p0"], [f"{prefix}_wh"]),
        helper.make_node("Concat", [f"{prefix}_c", f"{prefix}_wh"], [f"{prefix}_cxcywh"], axis=2),
    ])
    return f"{prefix}_cxcywh"


def yolov8(base):
    m = load(base)
    g = m.graph
    set_outputs(m, [])
    box = cxcywh(g, "v8")
    g.node.extend([
        helper.make_node("Concat", [box, "scores"], ["v8_cat"], axis=2),
        helper.make_node("Transpose", ["v8_cat"], ["output0"], perm=[0, 2, 1]),
    ])
    set_outputs(m, [out_info("output0", [1, 4 + C, N])])
    return m


def yolov5(base):
    m = load(base)
    g = m.graph
    set_outputs(m, [])
    box = cxcywh(g, "v5")
    g.node.extend([
        helper.make_node("Concat", [box, const(g, "v5_obj", np.ones((1, N, 1), np.float32)), "scores"],
                         ["output"], axis=2),
    ])
    set_outputs(m, [out_info("output", [1, N, 5 + C])])
    return m


def yolox_grid():
    gx, gy, st = [], [], []
    for s in STRIDES:
        n = SIZE // s
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        gx.append(xs.reshape(-1))
        gy.append(ys.reshape(-1))
        st.append(np.full(n * n, s))
    grid = np.stack([np.concatenate(gx), np.concatenate(gy)], axis=1).astype(np.float32)
    stride = np.concatenate(st).astype(np.float32).reshape(1, N, 1)
    return grid.reshape(1, N, 2), stride


def yolox(base):
    """YOLOX raw head: ((cx/s - gx), (cy/s - gy), log(w/s), log(h/s)), obj, classes."""
    m = load(base)
    g = m.graph
    set_outputs(m, [])
    box = cxcywh(g, "yx")
    grid, stride = yolox_grid()
    g.node.extend([
        helper.make_node("Div", [box, const(g, "yx_stride", stride)], ["yx_scaled"]),
        helper.make_node("Split", ["yx_scaled", const(g, "yx_split_c", np.array([2, 2], np.int64))],
                         ["yx_ctr", "yx_wh2"], axis=2),
        helper.make_node("Sub", ["yx_ctr", const(g, "yx_grid", grid)], ["yx_off"]),
        helper.make_node("Log", ["yx_wh2"], ["yx_logwh"]),
        helper.make_node("Concat", ["yx_off", "yx_logwh", const(g, "yx_obj", np.ones((1, N, 1), np.float32)),
                                    "scores"], ["output"], axis=2),
    ])
    set_outputs(m, [out_info("output", [1, N, 5 + C])])
    return m


def nms(g, prefix):
    """Class-aware ONNX NonMaxSuppression (IoU 0.5, score 0.35, 100 per class).
    Returns (boxes [M,4] x0y0x1y1, scores [M], classes int64 [M])."""
    p = prefix
    g.node.extend([
        helper.make_node("Transpose", ["scores"], [f"{p}_st"], perm=[0, 2, 1]),  # [1,80,N]
        helper.make_node("NonMaxSuppression",
                         ["boxes", f"{p}_st", const(g, f"{p}_max", np.array([100], np.int64)),
                          const(g, f"{p}_iou", np.array([0.5], np.float32)),
                          const(g, f"{p}_thr", np.array([0.35], np.float32))],
                         [f"{p}_sel"], center_point_box=0),  # [M,3] (batch, class, box)
        helper.make_node("Gather", [f"{p}_sel", const(g, f"{p}_i1", np.array(1, np.int64))],
                         [f"{p}_cls"], axis=1),
        helper.make_node("Gather", [f"{p}_sel", const(g, f"{p}_i2", np.array(2, np.int64))],
                         [f"{p}_idx"], axis=1),
        helper.make_node("Squeeze", ["boxes", const(g, f"{p}_ax0", np.array([0], np.int64))], [f"{p}_b2"]),
        helper.make_node("Gather", [f"{p}_b2", f"{p}_idx"], [f"{p}_boxes"], axis=0),  # [M,4]
        helper.make_node("GatherND", [f"{p}_st", f"{p}_sel"], [f"{p}_scores"]),  # [M]
    ])
    return f"{p}_boxes", f"{p}_scores", f"{p}_cls"


def end2end(base):
    m = load(base)
    g = m.graph
    set_outputs(m, [])
    b, s, c = nms(g, "e2e")
    g.node.extend([
        helper.make_node("Unsqueeze", [s, const(g, "e2e_ax1", np.array([1], np.int64))], ["e2e_s1"]),
        helper.make_node("Cast", [c], ["e2e_cf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["e2e_cf", "e2e_ax1"], ["e2e_c1"]),
        helper.make_node("Concat", [b, "e2e_s1", "e2e_c1"], ["e2e_rows"], axis=1),
        helper.make_node("Unsqueeze", ["e2e_rows", const(g, "e2e_ax0b", np.array([0], np.int64))], ["output0"]),
    ])
    set_outputs(m, [out_info("output0", [1, "K", 6])])
    return m


def tf_od(base):
    m = load(base)
    g = m.graph
    set_outputs(m, [])
    b, s, c = nms(g, "tf")
    # x0,y0,x1,y1 in pixels -> ymin,xmin,ymax,xmax in 0..1; classes 1-based floats
    g.node.extend([
        helper.make_node("Gather", [b, const(g, "tf_yx", np.array([1, 0, 3, 2], np.int64))], ["tf_byx"], axis=1),
        helper.make_node("Div", ["tf_byx", const(g, "tf_size", np.float32(SIZE))], ["tf_bn"]),
        helper.make_node("Unsqueeze", ["tf_bn", const(g, "tf_uax0", np.array([0], np.int64))], ["detection_boxes"]),
        helper.make_node("Unsqueeze", [s, "tf_uax0"], ["detection_scores"]),
        helper.make_node("Cast", [c], ["tf_cf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["tf_cf", const(g, "tf_one", np.float32(1.0))], ["tf_c1"]),
        helper.make_node("Unsqueeze", ["tf_c1", "tf_uax0"], ["detection_classes"]),
        helper.make_node("Shape", [s], ["tf_n"]),
        helper.make_node("Cast", ["tf_n"], ["num_detections"], to=TensorProto.FLOAT),
    ])
    set_outputs(m, [
        out_info("detection_boxes", [1, "K", 4]),
        out_info("detection_scores", [1, "K"]),
        out_info("detection_classes", [1, "K"]),
        out_info("num_detections", [1]),
    ])
    return m


def new_input(m, name, shape, nodes):
    """Replace the graph input `input` by `name`, computing `input` with `nodes`."""
    g = m.graph
    old = [i for i in g.input if i.name == "input"]
    for i in old:
        g.input.remove(i)
    g.input.insert(0, helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    for n in reversed(nodes):
        g.node.insert(0, n)


def nhwc(base):
    m = load(base)
    new_input(m, "images", [1, SIZE, SIZE, 3],
              [helper.make_node("Transpose", ["images"], ["input"], perm=[0, 3, 1, 2])])
    return m


def rgb(base):
    m = load(base)
    g = m.graph
    new_input(m, "images", [1, 3, SIZE, SIZE], [
        helper.make_node("Gather", ["images", const(g, "rgb_bgr", np.array([2, 1, 0], np.int64))],
                         ["input"], axis=1),
    ])
    return m


def ultralytics(base, labels):
    """RGB in 0..1 (pixels / 255), letterboxed: normalisation moved into the graph."""
    m = yolov8(base)
    g = m.graph
    mean = (np.array(MEAN, np.float32) / 255.0).reshape(1, 3, 1, 1)
    inv = (255.0 / np.array(STD, np.float32)).reshape(1, 3, 1, 1)
    new_input(m, "images", [1, 3, SIZE, SIZE], [
        helper.make_node("Gather", ["images", const(g, "ul_bgr", np.array([2, 1, 0], np.int64))],
                         ["ul_bgr_x"], axis=1),
        helper.make_node("Sub", ["ul_bgr_x", const(g, "ul_mean", mean)], ["ul_centred"]),
        helper.make_node("Mul", ["ul_centred", const(g, "ul_inv", inv.astype(np.float32))], ["input"]),
    ])
    names = "{" + ", ".join(f"{i}: '{n}'" for i, n in enumerate(labels)) + "}"
    meta = {"names": names, "imgsz": f"[{SIZE}, {SIZE}]", "stride": "32", "task": "detect",
            "description": "NanoDet-m 416 re-packed as an Ultralytics YOLOv8 export (streetwatch test variant)"}
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    return m


def drop_unused_initializers(g):
    used = {x for n in g.node for x in n.input}
    for i in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(i)


def dynbatch(base):
    """The base model with a symbolic batch dimension `N`.

    The graph is batch-agnostic except for its Reshapes, which spell out a
    batch of 1 ([1, 44, -1], [1, 3549, 4, 11], ...): each now copies the
    batch from its input (0 in a Reshape target shape). Resize works on
    scales, Pad pads only H and W, and the constants added or multiplied
    ([1, 3549, ...]) broadcast over any batch; anything else that could pin
    the batch is refused here rather than left to fail at run time."""
    m = load(base)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    for n in g.node:
        assert n.op_type not in ("Expand", "Tile", "ConstantOfShape", "Flatten"), n.op_type
        if n.op_type == "Reshape":
            shape = numpy_helper.to_array(inits[n.input[1]]).copy()
            assert shape[0] == 1, (n.name, shape)
            shape[0] = 0
            n.input[1] = const(g, f"{n.name}_batch", shape)
    drop_unused_initializers(g)
    for v in list(g.input) + list(g.output):
        dim = v.type.tensor_type.shape.dim[0]
        assert dim.dim_value == 1, v.name
        dim.dim_param = "N"
    # Intermediate shapes were inferred for a batch of 1.
    del g.value_info[:]
    return m


def broken_rank(base):
    m = load(base)
    g = m.graph
    new_input(m, "flat", [1, 3, SIZE * SIZE], [
        helper.make_node("Reshape", ["flat", const(g, "br_shape", np.array([1, 3, SIZE, SIZE], np.int64))],
                         ["input"]),
    ])
    return m


def broken_layout(base):
    m = yolov8(base)
    g = m.graph
    set_outputs(m, [])
    g.node.extend([
        helper.make_node("Transpose", ["v8_cat"], ["bl_t"], perm=[0, 1, 2]),
        helper.make_node("Unsqueeze", ["bl_t", const(g, "bl_ax", np.array([3], np.int64))], ["features"]),
    ])
    set_outputs(m, [out_info("features", [1, N, 4 + C, 1])])
    return m


def toml_list(values):
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


def manifest(name, labels, input_name, layout="nchw", color="bgr", fmt=None, extra_output=""):
    mean, std = (MEAN, STD) if color == "bgr" else (MEAN[::-1], STD[::-1])
    lines = [
        f'name = "{name}"',
        "labels = [" + ", ".join(f'"{l}"' for l in labels) + "]",
        "",
        "[input]",
        f'name = "{input_name}"',
        f'layout = "{layout}"',
        f"width = {SIZE}",
        f"height = {SIZE}",
        f'color = "{color}"',
        'resize = "stretch"',
        f"mean = {toml_list(mean)}",
        f"std = {toml_list(std)}",
        "",
        "[output]",
    ]
    if fmt:
        lines.append(f'format = "{fmt}"')
    if extra_output:
        lines.append(extra_output)
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="nanodet-m-416.onnx (boxes + scores)")
    ap.add_argument("--raw", required=True, help="nanodet-m-416-raw.onnx (raw GFL head)")
    ap.add_argument("--manifest", required=True, help="models/nanodet-m-416.toml (labels)")
    ap.add_argument("--out", required=True, help="output folder")
    a = ap.parse_args()
    with open(a.manifest, "rb") as f:
        labels = tomllib.load(f)["labels"]
    assert len(labels) == C, len(labels)
    os.makedirs(a.out, exist_ok=True)

    def write(name, model, toml=None):
        save(model, os.path.join(a.out, f"{name}.onnx"))
        if toml is not None:
            with open(os.path.join(a.out, f"{name}.toml"), "w") as f:
                f.write(toml)

    # formats auto-detected from the shapes need no `format` line: that is tested too
    write("yolov8", yolov8(a.model), manifest("yolov8", labels, "input"))
    write("yolov5", yolov5(a.model), manifest("yolov5", labels, "input", fmt="yolov5"))
    write("yolox", yolox(a.model), manifest("yolox", labels, "input", fmt="yolox"))
    write("end2end", end2end(a.model), manifest("end2end", labels, "input"))
    write("tf_od", tf_od(a.model), manifest("tf_od", labels, "input"))
    write("nhwc", nhwc(a.model), manifest("nhwc", labels, "images", layout="nhwc", fmt="boxes_scores"))
    write("rgb", rgb(a.model), manifest("rgb", labels, "images", color="rgb", fmt="boxes_scores"))
    write("ultralytics", ultralytics(a.model, labels))
    write("dynbatch", dynbatch(a.model), manifest("dynbatch", labels, "input"))
    write("broken_rank", broken_rank(a.model), manifest("broken_rank", labels, "flat"))
    write("broken_layout", broken_layout(a.model), manifest("broken_layout", labels, "input"))
    shutil.copyfile(a.raw, os.path.join(a.out, "raw.onnx"))
    with open(os.path.join(a.out, "raw.toml"), "w") as f:
        f.write(manifest("raw", labels, "input_1:0"))


if __name__ == "__main__":
    main()
