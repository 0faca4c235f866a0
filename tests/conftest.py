"""Shared fixtures: a tiny ONNX classifier built with onnx.helper and a tiny labelled data set.

The model is small and its weights fixed, so tests do not depend on the bundled sample models
and run in milliseconds.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

CLASSES = ["good", "scratch", "pit"]
SMALL_RUN = Path(__file__).parent / "fixtures" / "run_small"
SIZE = 8


def write_tiny_model(path: Path, *, n_classes: int = len(CLASSES), nan: bool = False) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(SIZE * SIZE, n_classes)).astype(np.float32)
    if nan:
        weights[:, 0] = np.nan
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, SIZE, SIZE])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", n_classes])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def card_dict(**overrides: object) -> dict[str, object]:
    card: dict[str, object] = {
        "schema": "auditkit.card/v1",
        "name": "tiny",
        "version": "0.0.1",
        "vendor": "tests",
        "task": "classification",
        "input": {
            "name": "input",
            "layout": "NCHW",
            "color": "L",
            "height": SIZE,
            "width": SIZE,
            "resize": "bilinear",
            "mean": [0.5],
            "std": [0.25],
        },
        "output": {"name": "probs", "kind": "probabilities"},
        "classes": CLASSES,
        "positive_classes": CLASSES[1:],
        "operating_threshold": 0.5,
        "declared": {"escape_rate": 0.05},
    }
    card.update(overrides)
    return card


@pytest.fixture()
def tiny_model(tmp_path: Path) -> Path:
    model = write_tiny_model(tmp_path / "tiny.onnx")
    (tmp_path / "tiny.card.yaml").write_text(yaml.safe_dump(card_dict()))
    return model


def write_dataset(root: Path, n: int = 24, *, corrupt: int = 0, missing: int = 0) -> Path:
    """n small PNGs with labels and metadata; the first `corrupt` files are not PNGs and the
    next `missing` rows point at files that do not exist."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = ["sample_id,part_id,path,label,line,lighting"]
    for i in range(n):
        name = f"images/img{i:03d}.png"
        if i < corrupt:
            (root / name).write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
        elif i < corrupt + missing:
            pass
        else:
            pixels = rng.integers(0, 256, size=(16, 16), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(root / name)
        label = CLASSES[i % 3]
        rows.append(
            f"s{i},p{i // 2},{name},{label},L{i % 2 + 1},{'dim' if i % 4 == 0 else 'nominal'}"
        )
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def copy_small_run(dest: Path) -> Path:
    """A copy of ``fixtures/run_small`` whose verdicts.json is what its metrics and rubric give.

    The fixture's own verdicts.json was written for the render tests (it names criteria its
    rubric.yaml lacks); ``auditkit report`` refuses to sign verdicts that do not follow from
    the evidence, so the tests that sign the fixture judge it again first.
    """
    from auditkit.report.recompute import recompute
    from auditkit.run import dumps

    shutil.copytree(SMALL_RUN, dest)
    names = ("metrics.json", "verdicts.json", "run.json", "rubric.yaml")
    document, _ = recompute({name: (dest / name).read_bytes() for name in names})
    assert document is not None, "fixtures/run_small cannot be judged"
    (dest / "verdicts.json").write_bytes(dumps(document))
    return dest


@pytest.fixture
def pdftotext() -> str:
    """pdftotext's path. The report tests read the rendered pages with it, so its absence is
    a failure, not a skip: poppler-utils is a test dependency (tools/system-deps.sh)."""
    exe = shutil.which("pdftotext")
    if exe is None:
        pytest.fail("pdftotext not found: install poppler-utils (`make test` does, as root)")
    return exe


#: tests that read the rendered pages use this marker (or module ``pytestmark``)
needs_pdftotext = pytest.mark.usefixtures("pdftotext")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The report oracle's full matrix (about 85 reports, 6 minutes on 2 cores) is deselected,
    not skipped, unless ``AUDITKIT_ORACLE_MATRIX=1``: ``.ci/run`` runs it after `make test`."""
    if os.environ.get("AUDITKIT_ORACLE_MATRIX") == "1":
        return
    matrix = [item for item in items if item.get_closest_marker("matrix")]
    if matrix:
        config.hook.pytest_deselected(items=matrix)
        items[:] = [item for item in items if not item.get_closest_marker("matrix")]
