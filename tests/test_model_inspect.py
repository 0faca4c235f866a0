"""``auditkit model inspect``: parameter count and FLOPs of hand-built graphs by hand arithmetic,
and the card/graph disagreements (exit 5 naming both values)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from auditkit.models.card import ModelCard
from auditkit.models.inspect import inspect_model
from tests.onnx_builders import card, constant_model
from tests.test_cli import assert_one_line_error, run_cli


def conv_gemm_matmul(path: Path, *, spatial: tuple[object, object] = (8, 8)) -> Path:
    """x (N,3,8,8) -> Conv 3->4, 3x3, pad 1 -> Flatten (N,256) -> Gemm 256->10 -> MatMul 10->2."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def w(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["c"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "gw", "gb"], ["g"]),
        helper.make_node("MatMul", ["g", "mw"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, *spatial])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        initializer=[
            w("cw", 4, 3, 3, 3),
            w("cb", 4),
            w("gw", 256, 10),
            w("gb", 10),
            w("mw", 10, 2),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.producer_name = "hand"
    onnx.save(model, path)
    return path


def test_parameters_and_flops_by_hand(tmp_path: Path) -> None:
    report = inspect_model(conv_gemm_matmul(tmp_path / "m.onnx"))
    # parameters: conv 4*3*3*3 + 4, gemm 256*10 + 10, matmul 10*2
    assert report["parameters"] == 108 + 4 + 2560 + 10 + 20
    # MACs: conv 4*8*8 outputs x 3*3*3 = 6912; gemm 1*10 x 256 = 2560; matmul 1*2 x 10 = 20
    assert report["flops_by_op"] == {"Conv": 2 * 6912, "Gemm": 2 * 2560, "MatMul": 2 * 20}
    assert report["flops_per_image"] == 2 * (6912 + 2560 + 20)
    assert report["convention"]["name"] == "classifier"
    assert report["inputs"] == [{"name": "x", "shape": ["N", 3, 8, 8], "dtype": "float32"}]
    assert report["opsets"] == {"ai.onnx": 17} and report["producer"]["name"] == "hand"
    assert report["file_bytes"] == (tmp_path / "m.onnx").stat().st_size


def test_symbolic_input_size_is_taken_from_the_card(tmp_path: Path) -> None:
    path = conv_gemm_matmul(tmp_path / "m.onnx", spatial=("H", "W"))
    assert inspect_model(path)["flops_by_op"]["Conv"] == 0  # unknown without a size
    assert len(inspect_model(path)["flops_uncounted"]) >= 1
    c = ModelCard.model_validate(
        card(
            "classification",
            ["good", "bad"],
            input={"name": "x", "color": "RGB"},
            output={"name": "y"},
        )
    )
    assert inspect_model(path, c)["flops_per_image"] == 2 * (6912 + 2560 + 20)


def test_grouped_convolution_counts_input_channels_per_group(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], group=2)],
        "grouped",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])],
        initializer=[numpy_helper.from_array(np.ones((4, 2, 3, 3), np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "g.onnx")
    report = inspect_model(tmp_path / "g.onnx")
    # 4 x 4 x 4 outputs, each 2 (input channels per group) x 3 x 3 multiply-adds
    assert report["flops_per_image"] == 2 * 64 * 18
    assert report["parameters"] == 72


def test_cli_lists_every_disagreement_and_exits_5(tmp_path: Path) -> None:
    raw = np.zeros((1, 6, 20), dtype=np.float32)
    model = constant_model(
        tmp_path / "det.onnx",
        {"output0": raw},
        input_shape=("N", 1, 64, 64),
        metadata={"names": "{0: 'scratch', 1: 'pit'}", "imgsz": "[64, 64]"},
    )
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(card("detection", ["scratch", "pit"], size=64)))
    result = run_cli("model", "inspect", str(model), "--card", str(good), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["convention"]["name"] == "ultralytics_raw"
    assert report["metadata_classes"] == ["scratch", "pit"] and report["disagreements"] == []

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(card("detection", ["scratch", "pit", "crack"], size=32)))
    result = run_cli("model", "inspect", str(model), "--card", str(bad))
    assert "axis 2: 64 != 32" in result.stdout
    assert "metadata_props name 2 classes (scratch, pit), the card 3" in result.stdout
    assert (
        "metadata_props imgsz is 64x64 (height x width), the card declares 32x32" in result.stdout
    )
    assert_one_line_error(result, 5, "the card disagrees with the model: model input 'images'")
    assert "(and 3 more)" in result.stderr
    assert "6 rows, i.e. 2 classes, but the card declares 3 classes" in result.stdout


def test_replay_refuses_a_card_with_another_class_count(tmp_path: Path) -> None:
    from tests.conftest import write_dataset

    model = constant_model(
        tmp_path / "det.onnx",
        {"output0": np.zeros((1, 6, 20), np.float32)},
        input_shape=("N", 1, 8, 8),
    )
    card_path = tmp_path / "det.card.yaml"
    card_path.write_text(
        yaml.safe_dump(
            card("detection", ["scratch", "pit", "crack"], output={"convention": "ultralytics_raw"})
        )
    )
    manifest = write_dataset(tmp_path / "data", n=4)
    result = run_cli("replay", str(manifest), "--model", str(model), "--out", str(tmp_path / "r"))
    assert_one_line_error(result, 5, "has 6 rows, i.e. 2 classes, but the card declares 3 classes")


def test_symbolic_output_sizes_are_read_by_shape_inference(tmp_path: Path) -> None:
    model = constant_model(
        tmp_path / "sym.onnx",
        {"output0": np.zeros((1, 6, 20), np.float32)},
        output_shapes={"output0": ["N", "rows", "anchors"]},
    )
    report = inspect_model(model)
    assert report["outputs"][0]["shape"] == ["N", "rows", "anchors"]
    assert report["convention"] == {
        "name": "ultralytics_raw",
        "task": "detection",
        "from": "graph (shape inference)",
    }


def test_unreadable_model_file_is_one_line_exit_5(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    assert_one_line_error(
        run_cli("model", "inspect", str(bad)), 5, "cannot read ONNX model bad.onnx"
    )
    missing = run_cli("model", "inspect", str(tmp_path / "none.onnx"))
    assert_one_line_error(missing, 5, "model file not found")
