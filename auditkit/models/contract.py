"""The model file and its input contract, checked against the card without onnxruntime.

Shared by the onnxruntime session (:mod:`auditkit.models.onnx_model`) and ``auditkit model
inspect`` (:mod:`auditkit.models.inspect`), which reads the graph with ``onnx`` alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auditkit.errors import ModelError
from auditkit.models.card import InputSpec


def read_model_bytes(path: Path) -> bytes:
    """The model file's bytes; a missing file or a folder is a one-line :class:`ModelError`."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelError(f"expected an ONNX file, got a folder: {path}") from None


def check_input(spec: InputSpec, inputs: dict[str, list[Any]], model_name: str) -> None:
    """Refuse (one line, naming both values) a model input that is not the card's: missing,
    not of rank 4 (or 3: one image without a batch axis, as torchvision detection exports
    take it), or of another static size, channel count or layout."""
    if spec.name not in inputs:
        raise ModelError(
            f"card input {spec.name!r} is not an input of {model_name} "
            f"(model inputs: {', '.join(inputs)})"
        )
    shape = inputs[spec.name]
    if len(shape) not in (3, 4):
        raise ModelError(
            f"model input {spec.name!r} has rank {len(shape)}, expected 4 ({spec.layout}) "
            f"or 3 ({spec.layout[1:]}, one image)"
        )
    expected = (
        (spec.channels, spec.height, spec.width)
        if spec.layout == "NCHW"
        else (spec.height, spec.width, spec.channels)
    )
    first = len(shape) - 3  # 1 after a batch axis, 0 without one
    for axis, (got, want) in enumerate(zip(shape[first:], expected, strict=True), start=first):
        if isinstance(got, int) and got > 0 and got != want:
            raise ModelError(
                f"model input {spec.name!r} has shape {shape}, but the card declares "
                f"{spec.layout} {expected} (axis {axis}: {got} != {want})"
            )
