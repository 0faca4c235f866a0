"""What an ONNX model file is, read from the graph: ``auditkit model inspect``.

:func:`inspect_model` gives inputs and outputs (names, shapes, dtypes), opsets, producer,
``metadata_props``, the detected output convention, the parameter count, an estimate of the
compute per image, the file's SHA-256 and size, and, with a card, every disagreement between
card and graph.

Counting rules (stated in the output, docs/model-conventions.md):

* **parameters**: the number of elements of every tensor stored in the graph, as an
  initializer or as the ``value`` of a ``Constant`` node (Paddle2ONNX keeps the weights there),
  in the main graph and its subgraphs, except what is graph structure rather than a weight:
  ``int64`` tensors (ONNX requires shapes, axes and indices to be ``int64``; no exporter stores
  weights so), 0-d scalars (the ``* 0.5`` or ``+ 2`` of an exported expression; a weight has
  at least one axis), and tensors read only as settings (Resize ``roi``/``scales``/``sizes``,
  Upsample ``scales``, Pad ``pads``/``axes``). Counted separately as ``parameters_by_source``
  (``initializers``, ``constant_nodes``).
* **FLOPs per image**: ``2 x MACs`` (one multiply-add = 2 FLOPs) of the ``Conv``, ``Gemm`` and
  ``MatMul`` nodes, with the batch dimension set to 1 and shapes from ONNX shape inference.
  Dynamic input dimensions (symbolic, or ``-1`` as Paddle2ONNX writes them) are fixed first:
  batch 1, height and width from ``input_size`` (``--input-size HxW``) or else the card's
  input, channels from the card. ``Conv``: MACs = ``prod(output shape) x (C_in / group) x
  prod(kernel)``; ``Gemm``: ``M x N x K``; ``MatMul``: ``prod(output shape) x K``. Biases,
  activations, pooling and normalisation are not counted. Nodes whose shapes cannot be
  inferred are listed in ``flops_uncounted`` and summarised per op type in
  ``flops_uncounted_by_op``.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from auditkit.errors import ModelError, first_line
from auditkit.models.adapters import detect_convention, make_adapter, task_of
from auditkit.models.card import InputSpec, ModelCard
from auditkit.models.contract import check_input, read_model_bytes

COUNTED_OPS = ("Conv", "Gemm", "MatMul")


def _dims(type_proto: Any) -> list[Any]:
    """Static dims as int, symbolic ones as their name (or "?")."""
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return []
    out: list[Any] = []
    for d in type_proto.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        else:
            out.append(d.dim_param or "?")
    return out


def _dtype(type_proto: Any) -> str:
    from onnx import helper

    elem = type_proto.tensor_type.elem_type
    try:
        return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem)))
    except (KeyError, TypeError, ValueError):
        return f"onnx-type-{elem}"


def _load(path: Path) -> tuple[Any, bytes]:
    import onnx

    data = read_model_bytes(path)
    try:
        return onnx.load_from_string(data), data
    except Exception as exc:  # protobuf raises DecodeError and others
        raise ModelError(f"cannot read ONNX model {path.name}: {first_line(exc, 200)}") from None


def _graph_inputs(model: Any) -> list[Any]:
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


_INT64 = 7  # onnx.TensorProto.INT64


def _subgraphs(graph: Any) -> list[Any]:
    """The graph and every subgraph of its nodes (If, Loop, Scan bodies), depth first."""
    out = [graph]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == 5:  # GRAPH
                out += _subgraphs(attr.g)
            elif attr.type == 10:  # GRAPHS
                for g in attr.graphs:
                    out += _subgraphs(g)
    return out


#: inputs that are graph settings, not weights, by op type and input position (ONNX spec):
#: Resize ``roi``/``scales``/``sizes``, Upsample ``scales``, Pad ``pads``/``axes``
STRUCTURAL_INPUTS = {"Resize": {1, 2, 3}, "Upsample": {1}, "Pad": {1, 3}}


def _structural(graphs: list[Any]) -> set[str]:
    """Tensor names every consumer of which reads as a setting (:data:`STRUCTURAL_INPUTS`)."""
    uses: dict[str, list[bool]] = {}
    for g in graphs:
        for node in g.node:
            positions = STRUCTURAL_INPUTS.get(node.op_type, set())
            for k, name in enumerate(node.input):
                uses.setdefault(name, []).append(k in positions)
    return {name for name, flags in uses.items() if all(flags)}


def _tensor_elements(tensor: Any, settings: set[str], name: str | None = None) -> int:
    """Elements of a stored tensor, 0 for one that is no weight (module docstring)."""
    dims = list(tensor.dims)
    if tensor.data_type == _INT64 or not dims or (name or tensor.name) in settings:
        return 0
    return int(np.prod(dims, dtype=np.int64))


def _constant_elements(node: Any, settings: set[str]) -> int:
    """Elements of a ``Constant`` node's value (tensor, sparse tensor or float list)."""
    if node.output[0] in settings:
        return 0
    total = 0
    for attr in node.attribute:
        if attr.name == "value":
            total += _tensor_elements(attr.t, settings, node.output[0])
        elif attr.name == "sparse_value":
            total += _tensor_elements(attr.sparse_tensor.values, settings, node.output[0])
        elif attr.name == "value_floats":
            total += len(attr.floats)
    return total


def parameters_by_source(model: Any) -> dict[str, int]:
    """``{"initializers", "constant_nodes"}``: elements of stored weights (module docstring)."""
    graphs = _subgraphs(model.graph)
    settings = _structural(graphs)
    inits = sum(_tensor_elements(t, settings) for g in graphs for t in g.initializer)
    consts = sum(
        _constant_elements(n, settings) for g in graphs for n in g.node if n.op_type == "Constant"
    )
    return {"initializers": int(inits), "constant_nodes": int(consts)}


def parameter_count(model: Any) -> int:
    """Elements of the stored weight tensors (the rule in the module docstring)."""
    return sum(parameters_by_source(model).values())


def parse_input_size(text: str) -> tuple[int, int]:
    """``"HxW"`` (``640x640``, ``480X640``) -> ``(height, width)``; else a one-line error."""
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) == 2 and all(p.isdigit() and int(p) > 0 for p in parts):
        return int(parts[0]), int(parts[1])
    raise ModelError(f"input size must be HxW in pixels, e.g. 640x640, got {text!r}")


def _dynamic(d: Any) -> bool:
    return not d.HasField("dim_value") or d.dim_value <= 0


def _fix_input_dims(
    model: Any, card: ModelCard | None, input_size: tuple[int, int] | None = None
) -> None:
    """Batch 1; other dynamic dims of a rank-4 image input from ``input_size`` and the card
    (the card's input, or the only rank-4 input when there is no card)."""
    inputs = _graph_inputs(model)
    images = [v for v in inputs if len(v.type.tensor_type.shape.dim) == 4]
    for value in inputs:
        dims = value.type.tensor_type.shape.dim
        wanted: list[int | None] = [None] * len(dims)
        if dims:
            wanted[0] = 1
        is_image = (
            value.name == card.input.name if card is not None else images == [value]
        ) and len(dims) in (3, 4)
        if is_image:
            spec = card.input if card is not None else None
            height, width = input_size or ((spec.height, spec.width) if spec else (None, None))
            channels = spec.channels if spec else None
            nhwc = spec is not None and spec.layout == "NHWC"
            # a rank-3 image input (one image, no batch axis) has no batch to set
            wanted[len(dims) - 3 :] = (
                [height, width, channels] if nhwc else [channels, height, width]
            )
        for d, want in zip(dims, wanted, strict=True):
            if want is not None and _dynamic(d):
                d.Clear()
                d.dim_value = want


def flops_per_image(
    model: Any, card: ModelCard | None = None, input_size: tuple[int, int] | None = None
) -> dict[str, Any]:
    """``{"flops", "macs", "by_op", "uncounted", "uncounted_by_op"}`` per image (rules in the
    module docstring); ``input_size`` is ``(height, width)``."""
    import onnx

    work = onnx.ModelProto()
    work.CopyFrom(model)
    _fix_input_dims(work, card, input_size)
    try:
        inferred = onnx.shape_inference.infer_shapes(work, data_prop=True)
    except Exception:  # an invalid graph: count nothing rather than fail the inspection
        inferred = work
    graph = inferred.graph
    shapes: dict[str, list[Any]] = {}
    for v in [*graph.input, *graph.value_info, *graph.output]:
        shapes[v.name] = _dims(v.type)
    for init in graph.initializer:
        shapes[init.name] = [int(d) for d in init.dims]

    def static(name: str) -> list[int] | None:
        dims = shapes.get(name)
        if not dims or not all(isinstance(d, int) and d > 0 for d in dims):
            return None
        return [int(d) for d in dims]

    by_op = dict.fromkeys(COUNTED_OPS, 0)
    uncounted: list[str] = []
    uncounted_by_op: dict[str, int] = {}
    for node in graph.node:
        if node.op_type not in COUNTED_OPS:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        y = static(node.output[0])
        a = static(node.input[0])
        b = static(node.input[1]) if len(node.input) > 1 else None
        label = node.name or f"{node.op_type}->{node.output[0]}"
        macs: int | None = None
        if node.op_type == "Conv" and y is not None and b is not None:
            macs = int(np.prod(y, dtype=np.int64)) * int(np.prod(b[1:], dtype=np.int64))
        elif node.op_type == "Gemm" and a is not None and y is not None:
            k = a[0] if attrs.get("transA", 0) else a[-1]
            macs = int(np.prod(y, dtype=np.int64)) * int(k)
        elif node.op_type == "MatMul" and a is not None and y is not None:
            macs = int(np.prod(y, dtype=np.int64) if y else 1) * int(a[-1])
        if macs is None:
            uncounted.append(label)
            uncounted_by_op[node.op_type] = uncounted_by_op.get(node.op_type, 0) + 1
        else:
            by_op[node.op_type] += macs
    macs_total = int(sum(by_op.values()))
    return {
        "output_shapes": {o.name: _dims(o.type) for o in graph.output},
        "flops": 2 * macs_total,
        "macs": macs_total,
        "by_op": {op: 2 * m for op, m in by_op.items()},
        "uncounted": uncounted,
        "uncounted_by_op": uncounted_by_op,
        "input_size": _image_input_hw(inferred, card),
        "rule": "FLOPs = 2 x multiply-adds of Conv, Gemm and MatMul at batch 1; "
        "biases, activations, pooling and normalisation not counted",
    }


def _image_input_hw(model: Any, card: ModelCard | None) -> list[Any] | None:
    """``[height, width]`` the image input was counted at (a name where still dynamic)."""
    if card is not None:
        inputs = [v for v in _graph_inputs(model) if v.name == card.input.name]
    else:
        inputs = [v for v in _graph_inputs(model) if len(_dims(v.type)) == 4]
    if len(inputs) != 1 or len(_dims(inputs[0].type)) not in (3, 4):
        return None
    dims = _dims(inputs[0].type)
    first = len(dims) - 3  # 1 after a batch axis, 0 without one
    nhwc = card is not None and card.input.layout == "NHWC"
    return dims[first : first + 2] if nhwc else dims[first + 1 : first + 3]


def metadata_classes(meta: dict[str, str]) -> list[str] | None:
    """Class names from ``metadata_props``: Ultralytics ``names`` (``{0: 'a', ...}``) or a
    JSON/Python list under ``classes`` or ``names``."""
    for key in ("names", "classes"):
        raw = meta.get(key)
        if raw is None:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                continue
        if isinstance(value, dict):
            return [str(value[k]) for k in sorted(value, key=lambda k: int(k))]
        if isinstance(value, list):
            return [str(v) for v in value]
    return None


def complexity(path: Path, card: ModelCard | None = None) -> dict[str, Any]:
    """Parameters, FLOPs per image and file size of a model file (for run.json)."""
    model, data = _load(path)
    flops = flops_per_image(model, card)
    return {
        "parameters": parameter_count(model),
        "parameters_by_source": parameters_by_source(model),
        "flops_per_image": flops["flops"],
        "flops_uncounted_nodes": len(flops["uncounted"]),
        "file_bytes": len(data),
        "rule": flops["rule"],
    }


def inspect_model(
    path: Path, card: ModelCard | None = None, input_size: tuple[int, int] | None = None
) -> dict[str, Any]:
    """Everything ``auditkit model inspect`` shows, as a JSON-ready dict (module docstring);
    ``input_size`` ``(height, width)`` overrides the card's for the FLOPs count."""
    model, data = _load(path)
    inputs = [
        {"name": v.name, "shape": _dims(v.type), "dtype": _dtype(v.type)}
        for v in _graph_inputs(model)
    ]
    outputs = [
        {"name": v.name, "shape": _dims(v.type), "dtype": _dtype(v.type)}
        for v in model.graph.output
    ]
    meta = {p.key: p.value for p in model.metadata_props}
    signature = {o["name"]: list(o["shape"]) for o in outputs}
    flops = flops_per_image(model, card, input_size)
    dtypes = {o["name"]: o["dtype"] for o in outputs}
    convention = _convention(signature, flops["output_shapes"], card, path.name, dtypes)
    report: dict[str, Any] = {
        "path": str(path),
        "sha256": hashlib.sha256(data).hexdigest(),
        "file_bytes": len(data),
        "ir_version": int(model.ir_version),
        "opsets": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        "producer": {"name": model.producer_name, "version": model.producer_version},
        "metadata_props": meta,
        "inputs": inputs,
        "outputs": outputs,
        "convention": convention,
        "parameters": parameter_count(model),
        "parameters_by_source": parameters_by_source(model),
        "flops_per_image": flops["flops"],
        "flops_input_size": flops["input_size"],
        "flops_by_op": flops["by_op"],
        "flops_uncounted": flops["uncounted"],
        "flops_uncounted_by_op": flops["uncounted_by_op"],
        "flops_rule": flops["rule"],
        "metadata_classes": metadata_classes(meta),
        "disagreements": card_disagreements(card, inputs, signature, meta, path.name, dtypes)
        if card is not None
        else [],
    }
    return report


def _convention(
    signature: dict[str, list[Any]],
    inferred: dict[str, list[Any]],
    card: ModelCard | None,
    model_name: str,
    dtypes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The convention from the declared output shapes, else from the shapes ONNX shape
    inference gives (an exporter may leave static sizes symbolic)."""
    try:
        found = detect_convention(signature, card, model_name, dtypes)
        source = "card" if card is not None and card.output.convention else "graph"
        return {"name": found, "task": task_of(found), "from": source}
    except ModelError as exc:
        problem = str(exc)
    # the declared batch dimension with the inferred sizes after it
    merged = {
        name: [shape[0], *inferred[name][1:]]
        if shape and name in inferred and len(inferred[name]) == len(shape)
        else shape
        for name, shape in signature.items()
    }
    if merged != signature:
        try:
            found = detect_convention(merged, card, model_name, dtypes)
            return {"name": found, "task": task_of(found), "from": "graph (shape inference)"}
        except ModelError:
            pass
    return {"name": None, "task": None, "from": None, "problem": problem}


def card_disagreements(
    card: ModelCard,
    inputs: list[dict[str, Any]],
    signature: dict[str, list[Any]],
    meta: dict[str, str],
    model_name: str,
    dtypes: dict[str, str] | None = None,
) -> list[str]:
    """Every way the card and the graph disagree (input, outputs and class count, and what
    :func:`metadata_disagreements` finds), one line each naming both values."""
    found: list[str] = []
    try:
        check_input(card.input, {i["name"]: i["shape"] for i in inputs}, model_name)
    except ModelError as exc:
        found.append(str(exc))
    try:
        make_adapter(card, signature, model_name, dtypes)
    except ModelError as exc:
        found.append(str(exc))
    found += metadata_disagreements(card, meta)
    return found


def metadata_disagreements(card: ModelCard, meta: dict[str, str]) -> list[str]:
    """Every way the card disagrees with what the model's ``metadata_props`` declare, one line
    each naming both values: the class names and their order (``names``/``classes``), the
    input size (Ultralytics ``imgsz``, height x width) and the preprocessing (a JSON object
    under ``preprocessing``: :func:`preprocessing_disagreements`). Keys a model does not
    declare are not compared. ``replay`` and ``audit`` refuse a model with any (exit 5)."""
    found: list[str] = []
    names = metadata_classes(meta)
    if names is not None:
        if len(names) != len(card.classes):
            found.append(
                f"metadata_props name {len(names)} classes ({', '.join(names)}), the card "
                f"{len(card.classes)} ({', '.join(card.classes)})"
            )
        elif names != list(card.classes):
            found.append(
                f"metadata_props class names {names} differ from the card's {list(card.classes)}"
            )
    size = meta.get("imgsz")
    if size:
        try:
            hw = [int(v) for v in ast.literal_eval(size)]
        except (ValueError, SyntaxError, TypeError):
            hw = []
        if len(hw) == 2 and hw != [card.input.height, card.input.width]:
            found.append(
                f"metadata_props imgsz is {hw[0]}x{hw[1]} (height x width), the card "
                f"declares {card.input.height}x{card.input.width}"
            )
    declared = meta.get("preprocessing")
    if declared:
        try:
            value = json.loads(declared)
        except ValueError:
            value = None
        if isinstance(value, dict):
            found += preprocessing_disagreements(card.input, value)
    return found


def preprocessing_disagreements(spec: InputSpec, declared: dict[str, Any]) -> list[str]:
    """Where a model's declared preprocessing differs from the card's input spec, one line per
    field: ``color``, ``layout``, ``filter`` (or ``resize`` as a filter name), the size
    (``resize`` as ``[height, width]``, or ``height``/``width``), ``resize_mode``,
    ``pad_value``, ``mean`` and ``std`` (a single value stands for every channel; equal within
    1e-6) and ``scale`` (the card's is 1/255). Unknown keys are ignored."""
    found: list[str] = []

    def differ(field: str, model: Any, card: Any) -> None:
        found.append(
            f"metadata_props preprocessing {field} is {model!r}, the card declares {card!r}"
        )

    for key, ours in (
        ("color", spec.color),
        ("layout", spec.layout),
        ("filter", spec.resize),
        ("resize_mode", spec.resize_mode),
    ):
        if key in declared and str(declared[key]) != ours:
            differ(key, declared[key], ours)
    resize = declared.get("resize")
    if isinstance(resize, str) and resize != spec.resize:
        differ("resize", resize, spec.resize)
    size = resize if isinstance(resize, list) else None
    if size is None and "height" in declared and "width" in declared:
        size = [declared["height"], declared["width"]]
    if size is not None and _numbers(size) != [float(spec.height), float(spec.width)]:
        differ("size (height, width)", size, [spec.height, spec.width])
    for key, ours_values in (("mean", spec.mean), ("std", spec.std)):
        if key in declared and not _same_values(declared[key], ours_values):
            differ(key, declared[key], ours_values)
    if "pad_value" in declared and not _same_values(declared["pad_value"], [spec.pad_value]):
        differ("pad_value", declared["pad_value"], spec.pad_value)
    if "scale" in declared and not _same_values(declared["scale"], [1 / 255]):
        differ("scale", declared["scale"], 1 / 255)
    return found


def _numbers(values: Any) -> list[float] | None:
    items = values if isinstance(values, list) else [values]
    try:
        return [float(v) for v in items]
    except (TypeError, ValueError):
        return None


def _same_values(declared: Any, ours: list[float]) -> bool:
    """Equal within 1e-6 (relative) once a single value is broadcast over the channels."""
    theirs = _numbers(declared)
    if theirs is None or not theirs:
        return False
    if len(theirs) != len(ours) and 1 not in (len(theirs), len(ours)):
        return False
    a, b = np.broadcast_arrays(np.asarray(theirs), np.asarray(ours, dtype=np.float64))
    return bool(np.allclose(a, b, rtol=1e-6, atol=1e-9))
