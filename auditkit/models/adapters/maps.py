"""Anomaly (anomalib style) and segmentation models: an image score and a map per image.

* ``anomalib``: outputs ``pred_score`` ``(batch,)`` or ``(batch, 1)`` and ``anomaly_map``
  ``(batch, 1, H, W)`` or ``(batch, H, W)``; optional ``pred_label`` ``(batch,)`` (bool or
  0/1: the decision of a threshold baked into the export) and ``pred_mask`` (like the map,
  bool or 0/1). Output names may be renamed in ``output.names``. The image decision is
  ``pred_label`` when ``maps.threshold_source`` is ``model``, else
  ``pred_score >= operating_threshold``. Summary columns ``pred_score`` and ``pred_label``
  (``-1`` when the model has none).
* ``segmentation_classes``: one output ``(batch, C, H, W)`` of per-pixel class probabilities
  (``kind: probabilities``) or logits (``kind: logits``, softmax over ``C``), ``C`` = the
  card's classes. The defect-probability map is the sum of the positive classes'
  probabilities; the label map is the per-pixel arg-max class. Summary: the highest pixel
  probability of each class.
* ``segmentation_defect_map``: one output ``(batch, 1, H, W)`` or ``(batch, H, W)``: the
  probability that a pixel is defective (``kind: logits``: auditkit applies the sigmoid).
  Summary column ``defect``: the highest pixel probability.

Maps are mapped to original-image pixels (bilinear; label maps nearest), with the letterbox
padding cropped away (:func:`auditkit.models.adapters.geometry.map_to_original`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from auditkit.errors import ModelError
from auditkit.models.adapters.geometry import map_to_original
from auditkit.models.adapters.interface import (
    NAN_ERROR,
    Adapter,
    Decoded,
    Sizes,
    dim,
    probability_errors,
    require_outputs,
    sigmoid,
    softmax,
)


def _planes(values: np.ndarray, name: str) -> np.ndarray:
    """``(batch, 1, H, W)`` or ``(batch, H, W)`` -> ``(batch, H, W)``."""
    if values.ndim == 4 and values.shape[1] == 1:
        return values[:, 0]
    if values.ndim == 3:
        return values
    raise ModelError(f"model output {name!r} has shape {values.shape}, expected (batch, 1, H, W)")


class _MapAdapter(Adapter):
    def _to_original(self, plane: np.ndarray, size: tuple[int, int] | None, nearest: bool) -> Any:
        if size is None:
            return plane.astype(np.uint8 if nearest else np.float32)
        return map_to_original(
            plane.astype(np.uint8 if nearest else np.float32),
            size,
            self.input_wh(),
            self.card.input.resize_mode,
            nearest=nearest,
        )

    def _check_map(self, name: str, model_name: str) -> None:
        shape = self.signature[name]
        if len(shape) not in (3, 4) or (len(shape) == 4 and dim(shape, 1) not in (None, 1)):
            raise ModelError(
                f"model output {name!r} has shape {shape}, expected a map (batch, 1, H, W) "
                "or (batch, H, W)"
            )


class AnomalibAdapter(_MapAdapter):
    convention = "anomalib"

    def _role(self, role: str) -> str:
        return self.card.output.output_name(role)

    @property
    def output_names(self) -> list[str]:
        names = [self._role("pred_score"), self._role("anomaly_map")]
        names += [
            self._role(r) for r in ("pred_label", "pred_mask") if self._role(r) in self.signature
        ]
        return names

    @property
    def columns(self) -> list[str]:
        return ["pred_score", "pred_label"]

    def check(self, model_name: str) -> None:
        require_outputs(
            [self._role("pred_score"), self._role("anomaly_map")], self.signature, model_name
        )
        self._check_map(self._role("anomaly_map"), model_name)
        if (
            self.card.maps.threshold_source == "model"
            and self._role("pred_label") not in self.signature
        ):
            raise ModelError(
                f"the card takes the decision from the model (maps.threshold_source: model) "
                f"but {model_name} has no output {self._role('pred_label')!r}"
            )

    def decode(self, raw: list[np.ndarray], sizes: Sizes) -> Decoded:
        got = dict(zip(self.output_names, raw, strict=True))
        score = np.asarray(got[self._role("pred_score")], dtype=np.float64).reshape(-1)
        amap = _planes(np.asarray(got[self._role("anomaly_map")]), "anomaly_map")
        n = amap.shape[0]
        label_name, mask_name = self._role("pred_label"), self._role("pred_mask")
        label = (
            np.asarray(got[label_name]).reshape(n, -1)[:, 0].astype(np.float64)
            if label_name in got
            else np.full(n, -1.0)
        )
        mask = _planes(np.asarray(got[mask_name]), "pred_mask") if mask_name in got else None
        errors = []
        for i in range(n):
            ok = np.isfinite(score[i]) and np.isfinite(amap[i]).all() and np.isfinite(label[i])
            errors.append("" if ok else NAN_ERROR)
        maps, label_maps = [], []
        for i in range(n):
            size = sizes[i] if sizes is not None else None
            maps.append(self._to_original(amap[i], size, nearest=False))
            if mask is not None:
                label_maps.append(self._to_original(mask[i] > 0.5, size, nearest=True))
        return Decoded(
            scores=np.column_stack([score, label]),
            errors=errors,
            maps=maps,
            label_maps=label_maps if mask is not None else None,
        )


class SegmentationClassesAdapter(_MapAdapter):
    convention = "segmentation_classes"

    @property
    def columns(self) -> list[str]:
        return list(self.card.classes)

    def check(self, model_name: str) -> None:
        name, shape = self.single_shape(model_name)
        self.check_class_axis(name, shape, 4, "(batch, {n}, H, W)")

    def decode(self, raw: list[np.ndarray], sizes: Sizes) -> Decoded:
        out = np.asarray(raw[0], dtype=np.float64)
        if self.card.output.kind == "logits":
            out = softmax(out, axis=1)
        errors = probability_errors(out)
        card = self.card
        positive = [card.classes.index(c) for c in card.positive_classes]
        defect = out[:, positive].sum(axis=1)
        labels = out.argmax(axis=1).astype(np.uint8)
        scores = out.reshape(out.shape[0], out.shape[1], -1).max(axis=2)
        maps, label_maps = [], []
        for i in range(out.shape[0]):
            size = sizes[i] if sizes is not None else None
            maps.append(self._to_original(defect[i], size, nearest=False))
            label_maps.append(self._to_original(labels[i], size, nearest=True))
        return Decoded(scores=scores, errors=errors, maps=maps, label_maps=label_maps)


class SegmentationDefectMapAdapter(_MapAdapter):
    convention = "segmentation_defect_map"

    @property
    def columns(self) -> list[str]:
        return ["defect"]

    def check(self, model_name: str) -> None:
        name, _ = self.single_shape(model_name)
        self._check_map(name, model_name)

    def decode(self, raw: list[np.ndarray], sizes: Sizes) -> Decoded:
        planes = _planes(np.asarray(raw[0], dtype=np.float64), self.output_names[0])
        if self.card.output.kind in ("logits", "sigmoid_logits"):
            planes = sigmoid(planes)
        errors = probability_errors(planes)
        scores = planes.reshape(planes.shape[0], -1).max(axis=1, initial=-np.inf)[:, None]
        maps = [
            self._to_original(planes[i], sizes[i] if sizes is not None else None, nearest=False)
            for i in range(planes.shape[0])
        ]
        return Decoded(scores=scores, errors=errors, maps=maps)


class SegmentationLabelsAdapter(_MapAdapter):
    """``segmentation_labels`` (PaddleSeg's default export, ``--output_op argmax``): one integer
    output ``(batch, H, W)`` or ``(batch, 1, H, W)``, the class index of each pixel (int32 or
    int64). The label map is that output; the defect map is 1 where the class is a positive
    class, else 0; the summary score of a class is 1 when any pixel has it, else 0. A pixel
    value outside the card's classes makes the image an ``error`` row."""

    convention = "segmentation_labels"

    @property
    def columns(self) -> list[str]:
        return list(self.card.classes)

    def check(self, model_name: str) -> None:
        name, _ = self.single_shape(model_name)
        self._check_map(name, model_name)

    def decode(self, raw: list[np.ndarray], sizes: Sizes) -> Decoded:
        values = np.asarray(raw[0])
        if not np.issubdtype(values.dtype, np.integer):
            values = np.asarray(values, dtype=np.float64)
            if not np.isfinite(values).all() or (values != np.round(values)).any():
                raise ModelError(
                    f"model output {self.output_names[0]!r} is not a class-index map "
                    f"(dtype {values.dtype}, non-integer values); PaddleSeg's probability "
                    "export is the segmentation_classes convention"
                )
        planes = _planes(values.astype(np.int64), self.output_names[0])
        card = self.card
        n_cls = len(card.classes)
        positive = [card.classes.index(c) for c in card.positive_classes]
        n = planes.shape[0]
        flat = planes.reshape(n, -1)
        errors = [""] * n
        scores = np.zeros((n, n_cls), dtype=np.float64)
        maps, label_maps = [], []
        for i in range(n):
            size = sizes[i] if sizes is not None else None
            bad = (flat[i] < 0) | (flat[i] >= n_cls)
            if bad.any():
                errors[i] = (
                    f"model output has class index {int(flat[i][bad][0])}, not one of the "
                    f"card's {n_cls} classes (0..{n_cls - 1})"
                )
                plane = np.zeros(planes.shape[1:], dtype=np.int64)
            else:
                plane = planes[i]
                scores[i, np.unique(plane)] = 1.0
            defect = np.isin(plane, positive).astype(np.float32)
            maps.append(self._to_original(defect, size, nearest=False))
            label_maps.append(self._to_original(plane, size, nearest=True))
        return Decoded(scores=scores, errors=errors, maps=maps, label_maps=label_maps)
