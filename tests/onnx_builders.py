"""ONNX graphs with known outputs, built with onnx.helper, for the output-convention tests.

Each output is a constant broadcast over the batch (``C + 0 * mean(input)``), so a test knows
exactly what the model says, whatever the image, and can check auditkit's decoding by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

_ONNX_TYPES = {"float32": 1, "int32": 6, "int64": 7, "bool": 9}


def constant_model(
    path: Path,
    outputs: dict[str, np.ndarray],
    *,
    input_name: str = "images",
    input_shape: tuple[Any, ...] = ("N", 1, 8, 8),
    metadata: dict[str, str] | None = None,
    output_shapes: dict[str, list[Any]] | None = None,
) -> Path:
    """A model whose output ``name`` is ``outputs[name]`` (shape ``(1, ...)``, broadcast to the
    batch) for any input; dtype float32, int32, int64 or bool as the array's."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # an image without a batch axis (rank 3) reduces to a scalar, broadcast as a batch of 1
    axes = [1, 2, 3] if len(input_shape) == 4 else list(range(len(input_shape)))
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["mean"], keepdims=0, axes=axes),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    inits = [numpy_helper.from_array(np.zeros(1, dtype=np.float32), "zero")]
    graph_outputs = []
    for k, (name, value) in enumerate(outputs.items()):
        rank = value.ndim
        shape_name, const_name = f"shape{k}", f"const{k}"
        inits.append(numpy_helper.from_array(np.array([-1] + [1] * (rank - 1)), shape_name))
        inits.append(numpy_helper.from_array(value.astype(np.float32), const_name))
        nodes.append(helper.make_node("Reshape", ["nothing", shape_name], [f"b{k}"]))
        target = name if value.dtype == np.float32 else f"f{k}"
        nodes.append(helper.make_node("Add", [const_name, f"b{k}"], [target]))
        if value.dtype != np.float32:
            nodes.append(
                helper.make_node("Cast", [target], [name], to=_ONNX_TYPES[value.dtype.name])
            )
        shape = (output_shapes or {}).get(name, ["N", *value.shape[1:]])
        graph_outputs.append(
            helper.make_tensor_value_info(name, _ONNX_TYPES[value.dtype.name], shape)
        )
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))],
        graph_outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, val in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, val
    onnx.save(model, path)
    return path


def card(task: str, classes: list[str], *, size: int = 8, **extra: Any) -> dict[str, Any]:
    """A card dict for a constant model of ``size x size`` grayscale input ``images``."""
    out: dict[str, Any] = {
        "schema": "auditkit.card/v1",
        "name": f"const-{task}",
        "version": "0.0.1",
        "vendor": "tests",
        "task": task,
        "input": {"name": "images", "height": size, "width": size, "mean": [0.0], "std": [1.0]},
        "classes": classes,
        "positive_classes": [c for c in classes if c != "good"],
        "operating_threshold": 0.5,
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _save(graph: Any, path: Path, producer: str = "") -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.producer_name = producer
    onnx.save(model, path)
    return path


def _constant(name: str, value: np.ndarray) -> Any:
    """A ``Constant`` node holding ``value`` (how Paddle2ONNX stores weights)."""
    from onnx import helper, numpy_helper

    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))


def paddle_classifier(
    path: Path,
    weights: dict[str, np.ndarray],
    *,
    dynamic: str = "symbolic",
    input_name: str = "x",
    output_name: str = "softmax_0.tmp_0",
) -> Path:
    """A classifier as Paddle2ONNX writes one: every weight in a ``Constant`` node, no
    initializer, input ``(N, 3, H, W)`` with dynamic batch and size (``dynamic``:
    ``symbolic`` as ``p2o.DynamicDimension.k`` names, or ``minus_one`` as ``-1`` values).

    ``x -> Conv(conv_w, conv_b, 3x3, pad 1) -> Relu -> Resize(scales 1) -> GlobalAveragePool ->
    Reshape(Constant int64 [-1, C]) -> MatMul(fc_w) -> Add(fc_b) -> Mul(0-d 1.0) -> Softmax``,
    output ``softmax_0.tmp_0``."""
    from onnx import TensorProto, helper

    channels = weights["conv_w"].shape[0]
    nodes = [_constant(k, v.astype(np.float32)) for k, v in weights.items()]
    nodes += [
        # graph structure, not weights: a Reshape target, Resize scales, a 0-d scale factor
        _constant("shape", np.array([-1, channels], dtype=np.int64)),
        _constant("scales", np.ones(4, dtype=np.float32)),
        _constant("one", np.array(1.0, dtype=np.float32)),
        helper.make_node(
            "Conv", [input_name, "conv_w", "conv_b"], ["c"], kernel_shape=[3, 3], pads=[1] * 4
        ),
        helper.make_node("Relu", ["c"], ["r0"]),
        helper.make_node("Resize", ["r0", "", "scales"], ["r"], mode="nearest"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Reshape", ["p", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "fc_w"], ["m"]),
        helper.make_node("Add", ["m", "fc_b"], ["l0"]),
        helper.make_node("Mul", ["l0", "one"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [output_name], axis=1),
    ]
    if dynamic == "symbolic":
        dims: list[Any] = [f"p2o.DynamicDimension.{k}" for k in range(3)]
        in_shape = [dims[0], 3, dims[1], dims[2]]
    else:
        in_shape = [-1, 3, -1, -1]
    graph = helper.make_graph(
        nodes,
        "paddle",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, in_shape)],
        [
            helper.make_tensor_value_info(
                output_name, TensorProto.FLOAT, [in_shape[0], weights["fc_w"].shape[1]]
            )
        ],
    )
    return _save(graph, path, producer="PaddlePaddle")


def paddle_nms_model(
    path: Path,
    rows: np.ndarray,
    image_of_row: np.ndarray,
    counts: np.ndarray,
    *,
    input_shape: tuple[Any, ...] = (-1, 3, -1, -1),
) -> Path:
    """A PaddleDetection export with NMS as ``export_model.py`` + Paddle2ONNX write it: inputs
    ``image``, ``im_shape`` ``(N, 2)`` (h, w), ``scale_factor`` ``(N, 2)`` (y, x); outputs
    ``multiclass_nms3_0.tmp_0`` ``(-1, 6)`` rows ``class score x1 y1 x2 y2`` and
    ``multiclass_nms3_0.tmp_2`` ``(-1,)`` int32 boxes per image.

    The rows are ``rows`` (in input pixels, for the batch the test feeds), scaled back as
    PaddleDetection's ``BBoxPostProcess`` does: coordinates divided by the row's image's
    ``scale_factor`` (x by ``scale_factor[1]``, y by ``[0]``), then clipped to
    ``im_shape / scale_factor``; class -1 placeholder rows pass as they are (all zeros)."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(rows.astype(np.float32), "rows"),
        numpy_helper.from_array(image_of_row.astype(np.int64), "idx"),
        numpy_helper.from_array(counts.astype(np.int32), "counts"),
        numpy_helper.from_array(np.array([1, 0, 1, 0], dtype=np.int64), "xyxy"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "s0"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "s2"),
        numpy_helper.from_array(np.array([6], dtype=np.int64), "s6"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "ax1"),
        numpy_helper.from_array(np.zeros(1, dtype=np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("Gather", ["scale_factor", "idx"], ["sf"], axis=0),
        helper.make_node("Gather", ["im_shape", "idx"], ["ims"], axis=0),
        helper.make_node("Gather", ["sf", "xyxy"], ["div"], axis=1),
        helper.make_node("Gather", ["ims", "xyxy"], ["lim_in"], axis=1),
        helper.make_node("Div", ["lim_in", "div"], ["lim"]),
        helper.make_node("Slice", ["rows", "s0", "s2", "ax1"], ["head"]),
        helper.make_node("Slice", ["rows", "s2", "s6", "ax1"], ["xy"]),
        helper.make_node("Div", ["xy", "div"], ["scaled"]),
        helper.make_node("Max", ["scaled", "zero"], ["low"]),
        helper.make_node("Min", ["low", "lim"], ["clipped"]),
        helper.make_node("Concat", ["head", "clipped"], ["joined"], axis=1),
        helper.make_node("ReduceMean", ["image"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["joined", "nothing"], ["multiclass_nms3_0.tmp_0"]),
        helper.make_node("Identity", ["counts"], ["multiclass_nms3_0.tmp_2"]),
    ]
    graph = helper.make_graph(
        nodes,
        "ppdet",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, list(input_shape)),
            helper.make_tensor_value_info("im_shape", TensorProto.FLOAT, [-1, 2]),
            helper.make_tensor_value_info("scale_factor", TensorProto.FLOAT, [-1, 2]),
        ],
        [
            helper.make_tensor_value_info("multiclass_nms3_0.tmp_0", TensorProto.FLOAT, [-1, 6]),
            helper.make_tensor_value_info("multiclass_nms3_0.tmp_2", TensorProto.INT32, [-1]),
        ],
        initializer=inits,
    )
    return _save(graph, path, producer="PaddlePaddle")


def paddle_nms_per_image(
    path: Path, rows: np.ndarray, *, input_shape: tuple[Any, ...] = (-1, 1, -1, -1)
) -> Path:
    """Like :func:`paddle_nms_model`, for any batch: every image gets the same ``rows``
    ``(K, 6)`` (scaled and clipped by its own ``im_shape`` / ``scale_factor``), the rows of
    all images one after another and ``bbox_num`` ``K`` per image."""
    from onnx import TensorProto, helper, numpy_helper

    k = len(rows)
    inits = [
        numpy_helper.from_array(rows.astype(np.float32), "rows"),
        numpy_helper.from_array(np.array([k], dtype=np.int32), "k32"),
        numpy_helper.from_array(np.array([k], dtype=np.int64), "k64"),
        numpy_helper.from_array(np.array(k, dtype=np.int64), "k_scalar"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero_i"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "one_i"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "one_1"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "s0"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "s2"),
        numpy_helper.from_array(np.array([6], dtype=np.int64), "s6"),
        numpy_helper.from_array(np.array([1, 0, 1, 0], dtype=np.int64), "xyxy"),
        numpy_helper.from_array(np.zeros(1, dtype=np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("Shape", ["image"], ["shp"]),
        helper.make_node("Slice", ["shp", "s0", "one_1"], ["b"]),  # [B]
        helper.make_node("Concat", ["b", "one_1"], ["tiles"], axis=0),
        helper.make_node("Tile", ["rows", "tiles"], ["tiled"]),  # (B K, 6)
        helper.make_node("Mul", ["b", "k64"], ["n1"]),
        helper.make_node("Squeeze", ["n1"], ["n"]),
        helper.make_node("Range", ["zero_i", "n", "one_i"], ["r"]),
        helper.make_node("Div", ["r", "k_scalar"], ["idx"]),  # image of each row
        helper.make_node("Expand", ["k32", "b"], ["multiclass_nms3_0.tmp_2"]),
        helper.make_node("Gather", ["scale_factor", "idx"], ["sf"], axis=0),
        helper.make_node("Gather", ["im_shape", "idx"], ["ims"], axis=0),
        helper.make_node("Gather", ["sf", "xyxy"], ["div"], axis=1),
        helper.make_node("Gather", ["ims", "xyxy"], ["lim_in"], axis=1),
        helper.make_node("Div", ["lim_in", "div"], ["lim"]),
        helper.make_node("Slice", ["tiled", "s0", "s2", "one_1"], ["head"]),
        helper.make_node("Slice", ["tiled", "s2", "s6", "one_1"], ["xy"]),
        helper.make_node("Div", ["xy", "div"], ["scaled"]),
        helper.make_node("Max", ["scaled", "zero"], ["low"]),
        helper.make_node("Min", ["low", "lim"], ["clipped"]),
        helper.make_node("Concat", ["head", "clipped"], ["multiclass_nms3_0.tmp_0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "ppdet",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, list(input_shape)),
            helper.make_tensor_value_info("im_shape", TensorProto.FLOAT, [-1, 2]),
            helper.make_tensor_value_info("scale_factor", TensorProto.FLOAT, [-1, 2]),
        ],
        [
            helper.make_tensor_value_info("multiclass_nms3_0.tmp_0", TensorProto.FLOAT, [-1, 6]),
            helper.make_tensor_value_info("multiclass_nms3_0.tmp_2", TensorProto.INT32, [-1]),
        ],
        initializer=inits,
    )
    return _save(graph, path, producer="PaddlePaddle")
