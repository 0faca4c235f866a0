"""Classifier: one output ``(batch, classes)`` of probabilities, logits or sigmoid scores.

* ``probabilities``: softmax outputs, used as they are (checked to lie in [0, 1]);
* ``logits``: auditkit applies the softmax over classes;
* ``sigmoid``: independent per-class probabilities (multi-label), used as they are;
* ``sigmoid_logits``: auditkit applies the sigmoid per class.

A one-column sigmoid output ``(batch, 1)`` with two card classes is the probability of the
second class: scores ``[1 - p, p]``.
"""

from __future__ import annotations

import numpy as np

from auditkit.errors import ModelError
from auditkit.models.adapters.interface import (
    Adapter,
    Decoded,
    Sizes,
    dim,
    probability_errors,
    sigmoid,
    softmax,
)


class ClassifierAdapter(Adapter):
    convention = "classifier"

    @property
    def columns(self) -> list[str]:
        return list(self.card.classes)

    def _binary_sigmoid(self) -> bool:
        shape = self.signature.get(self.single_output(), [])
        return (
            self.card.output.kind in ("sigmoid", "sigmoid_logits")
            and len(self.card.classes) == 2
            and dim(shape, 1) == 1
        )

    def check(self, model_name: str) -> None:
        name = self.single_output()
        if name not in self.signature:
            raise ModelError(
                f"card output {name!r} is not an output of {model_name} "
                f"(model outputs: {', '.join(self.signature)})"
            )
        if not self._binary_sigmoid():
            self.check_class_axis(name, self.signature[name], 2, "(batch, {n})")

    def decode(self, raw: list[np.ndarray], sizes: Sizes) -> Decoded:
        scores = np.asarray(raw[0], dtype=np.float64)
        n = len(self.card.classes)
        if self._binary_sigmoid() and scores.ndim == 2 and scores.shape[1] == 1:
            p = sigmoid(scores) if self.card.output.kind == "sigmoid_logits" else scores
            scores = np.concatenate([1.0 - p, p], axis=1)
        if scores.ndim != 2 or scores.shape[1] != n:
            raise ModelError(f"model output has shape {scores.shape}, expected (batch, {n})")
        kind = self.card.output.kind
        if kind == "logits":
            scores = softmax(scores, axis=1)
        elif kind == "sigmoid_logits":
            scores = sigmoid(scores)
        errors = probability_errors(scores)
        return Decoded(scores=scores, errors=errors)
