"""The adapter interface: one adapter per output convention turns raw ONNX outputs into
predictions (docs/model-conventions.md).

An adapter names the outputs it reads, checks the graph's outputs against the card before
anything is replayed (:meth:`Adapter.check`, a one-line :class:`ModelError`), and decodes one
batch of raw outputs (:meth:`Adapter.decode`) into :class:`Decoded`: a fixed number of summary
scores per image (``columns``; the class probabilities of a classifier, the best box score per
class of a detector, ...), a per-image error (NaN/Inf outputs, probabilities outside [0, 1]),
and, for the tasks that have them, detections and maps in original-image pixels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from auditkit.errors import ModelError
from auditkit.models.card import ModelCard

#: per-image ``(width, height)`` of the original images; None: keep input coordinates
Sizes = Sequence[tuple[int, int]] | None
#: output name -> static shape (int, or a str/None for a symbolic dimension)
Signature = dict[str, list[Any]]
#: output name -> element type, as NumPy names it (``float32``, ``int64``); onnxruntime's
#: ``tensor(int64)`` is accepted too
Dtypes = dict[str, str] | None
#: the auxiliary inputs of PaddleDetection exports, fed by :func:`auxiliary_inputs`
PADDLE_AUXILIARY_INPUTS = ("im_shape", "scale_factor")

NAN_ERROR = "model output contains NaN or infinity"
#: tolerance of the [0, 1] check on declared probabilities (float32 rounding of a softmax)
PROBABILITY_TOLERANCE = 1e-5


@dataclass
class Decoded:
    """One batch's predictions.

    ``scores``: ``(batch, len(columns))`` float64. ``errors``: per image, ``""`` or the reason
    its outputs are unusable. ``detections``: per image ``(k, 6)`` ``x1 y1 x2 y2 score class``
    (class as an index into the card's classes). ``maps``: per image a 2-D float32 anomaly or
    defect-probability map. ``label_maps``: per image a 2-D uint8 predicted mask (0/1) or class
    index map.
    """

    scores: np.ndarray
    errors: list[str]
    detections: list[np.ndarray] | None = None
    maps: list[np.ndarray] | None = None
    label_maps: list[np.ndarray] | None = field(default=None)


def is_integer(dtypes: Dtypes, name: str) -> bool:
    """Whether output ``name`` is declared with an integer element type."""
    if not dtypes or name not in dtypes:
        return False
    kind = dtypes[name].removeprefix("tensor(").removesuffix(")")
    return kind.startswith(("int", "uint"))


def auxiliary_inputs(
    names: Sequence[str], batch: int, input_hw: tuple[int, int]
) -> dict[str, np.ndarray]:
    """Feeds for PaddleDetection's auxiliary inputs among ``names``: ``im_shape`` = the model
    input's ``(height, width)`` and ``scale_factor`` = ``(1, 1)`` per image, float32
    ``(batch, 2)``. With a scale factor of 1 the model's boxes stay in input pixels, and
    auditkit maps them to the original image by the card's ``resize_mode`` (as for every
    other detector) instead of the model dividing by the resize ratio."""
    feeds: dict[str, np.ndarray] = {}
    if "im_shape" in names:
        feeds["im_shape"] = np.tile(np.asarray(input_hw, dtype=np.float32), (batch, 1))
    if "scale_factor" in names:
        feeds["scale_factor"] = np.ones((batch, 2), dtype=np.float32)
    return feeds


def finite_rows(*arrays: np.ndarray) -> np.ndarray:
    """Per leading row: True when every value of every array is finite."""
    ok = np.ones(arrays[0].shape[0], dtype=bool)
    for a in arrays:
        ok &= np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
    return ok


def probability_errors(values: np.ndarray) -> list[str]:
    """Per leading row: ``""``, or why declared probabilities are not probabilities."""
    flat = values.reshape(values.shape[0], -1).astype(np.float64)
    errors = [""] * flat.shape[0]
    finite = np.isfinite(flat).all(axis=1)
    for i in np.flatnonzero(~finite):
        errors[i] = NAN_ERROR
    if flat.shape[1]:  # whole-batch reductions: a loop over rows cost 0.5 ms per batch of 32
        low, high = flat.min(axis=1), flat.max(axis=1)
        outside = finite & ((low < -PROBABILITY_TOLERANCE) | (high > 1 + PROBABILITY_TOLERANCE))
        for i in np.flatnonzero(outside):
            errors[i] = (
                f"model output declared as probabilities lies outside [0, 1] "
                f"(min {low[i]:.6g}, max {high[i]:.6g})"
            )
    return errors


def nan_errors(*arrays: np.ndarray) -> list[str]:
    return ["" if ok else NAN_ERROR for ok in finite_rows(*arrays)]


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    exp = np.exp(shifted)
    out: np.ndarray = exp / exp.sum(axis=axis, keepdims=True)
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out


def require_outputs(names: Sequence[str], signature: Signature, model_name: str) -> None:
    missing = [n for n in names if n not in signature]
    if missing:
        raise ModelError(
            f"output(s) {', '.join(missing)} named by the card are not outputs of {model_name} "
            f"(model outputs: {', '.join(signature)})"
        )


def dim(shape: list[Any], axis: int) -> int | None:
    """A static dimension, or None when symbolic or absent."""
    if -len(shape) <= axis < len(shape):
        value = shape[axis]
        return value if isinstance(value, int) and value > 0 else None
    return None


class Adapter(ABC):
    """Turns one convention's raw outputs into predictions."""

    convention: str = ""
    #: the export decodes only the first image of a batch (torchvision, PP-PicoDet heads):
    #: replay feeds one image per inference call
    one_image_per_call: bool = False

    def __init__(self, card: ModelCard, signature: Signature, dtypes: Dtypes = None) -> None:
        self.card = card
        self.signature = signature
        self.dtypes = dtypes

    @property
    def output_names(self) -> list[str]:
        """The outputs to fetch from the session, in the order :meth:`decode` expects
        (default: the one output of a single-output convention)."""
        return [self.single_output()]

    @property
    @abstractmethod
    def columns(self) -> list[str]:
        """Names of the summary score columns."""

    @abstractmethod
    def check(self, model_name: str) -> None:
        """Refuse (``ModelError``) outputs that disagree with the card, naming both values."""

    @abstractmethod
    def decode(self, raw: list[np.ndarray], sizes: Sizes) -> Decoded:
        """Raw outputs of one batch (in :attr:`output_names` order) -> predictions."""

    def input_wh(self) -> tuple[int, int]:
        return self.card.input.width, self.card.input.height

    def single_shape(self, model_name: str) -> tuple[str, list[Any]]:
        """The single output's name and static shape; refused when it is not in the graph."""
        name = self.single_output()
        require_outputs([name], self.signature, model_name)
        return name, self.signature[name]

    def check_class_axis(self, name: str, shape: list[Any], rank: int, layout: str) -> None:
        """Refuse an output whose axis 1 is not the card's class count (naming both)."""
        n = len(self.card.classes)
        got = dim(shape, 1)
        if len(shape) != rank or (got is not None and got != n):
            raise ModelError(
                f"model output {name!r} has shape {shape}, expected {layout.format(n=n)} for "
                f"the card's {n} classes (model: {got if got is not None else '?'} classes, "
                f"card: {n})"
            )

    def single_output(self) -> str:
        if self.card.output.name is not None:
            return self.card.output.name
        if len(self.signature) == 1:
            return next(iter(self.signature))
        raise ModelError(
            f"the model has {len(self.signature)} outputs ({', '.join(self.signature)}): "
            "name the one to read in the card's output.name"
        )
