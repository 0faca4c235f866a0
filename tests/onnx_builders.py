"""ONNX graphs with known outputs, built with onnx.helper, for the output-convention tests.

Each output is a constant broadcast over the batch (``C + 0 * mean(input)``), so a test knows
exactly what the model says, whatever the image, and can check auditkit's decoding by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

_ONNX_TYPES = {"float32": 1, "int64": 7, "bool": 9}


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
    batch) for any input; dtype float32, int64 or bool as the array's."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", [input_name], ["mean"], keepdims=0, axes=[1, 2, 3]),
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
