"""Detectors: Ultralytics raw, NMS-included, and separate boxes/scores/labels outputs.

* ``ultralytics_raw``: one output ``(batch, 4 + nc, N)``: for each of ``N`` anchors the box
  centre, width and height (``cx cy w h``, input pixels) and ``nc`` class scores (already
  sigmoid, in [0, 1]). Decoding, as Ultralytics' ``non_max_suppression`` with its defaults:
  each anchor takes its best class (score = the highest class score); anchors with score
  strictly above ``detection.score_threshold`` are kept; boxes become ``x1 = cx - w/2``,
  ``y1 = cy - h/2``, ``x2 = cx + w/2``, ``y2 = cy + h/2``; class-wise NMS at
  ``detection.nms_iou`` (:mod:`auditkit.models.adapters.nms`); at most
  ``detection.max_detections`` boxes, highest scores first.
* ``nms_included``: one output ``(batch, K, 6)``: ``x1 y1 x2 y2 score class`` per row, NMS
  already done by the model; rows with score at or below ``score_threshold`` (padding) dropped.
* ``boxes_scores_labels``: outputs ``boxes`` ``(batch, K, 4)`` ``x1 y1 x2 y2``, ``scores``
  ``(batch, K)``, ``labels`` ``(batch, K)`` class indices (output names from
  ``output.names``); rows with score at or below ``score_threshold`` dropped.

Boxes are then mapped to original-image pixels (:mod:`auditkit.models.adapters.geometry`).
``output.box_units: normalized`` multiplies input-relative coordinates by the input size first.
The summary score of class ``c`` is the highest score of the kept boxes of class ``c`` (0 when
none).
"""

from __future__ import annotations

import numpy as np

from auditkit.errors import ModelError
from auditkit.models.adapters.geometry import boxes_to_original
from auditkit.models.adapters.interface import (
    NAN_ERROR,
    Adapter,
    Decoded,
    Sizes,
    dim,
    require_outputs,
)
from auditkit.models.adapters.nms import batched_nms, nms

#: an image's detections when it has none (a row: four box coordinates, score, class index)
NO_DETECTIONS = np.zeros((0, 6), dtype=np.float64)


class DetectionAdapter(Adapter):
    """What every detection adapter shares: class columns, box scaling and per-image rows."""

    @property
    def columns(self) -> list[str]:
        return list(self.card.classes)

    def _scale(self, boxes: np.ndarray) -> np.ndarray:
        if self.card.output.box_units == "normalized":
            width, height = self.input_wh()
            boxes = boxes * np.array([width, height, width, height], dtype=np.float64)
        return boxes

    def _finish(self, per_image: list[np.ndarray], errors: list[str], sizes: Sizes) -> Decoded:
        n_cls = len(self.card.classes)
        scores = np.zeros((len(per_image), n_cls), dtype=np.float64)
        out: list[np.ndarray] = []
        for i, det in enumerate(per_image):
            if errors[i]:
                out.append(NO_DETECTIONS)
                continue
            det = det.copy()
            if sizes is not None and len(det):
                det[:, :4] = boxes_to_original(
                    det[:, :4], sizes[i], self.input_wh(), self.card.input.resize_mode
                )
            cls = det[:, 5].astype(np.int64)
            bad = (cls < 0) | (cls >= n_cls) | (det[:, 5] != cls)
            if bad.any():
                errors[i] = (
                    f"model output has class index {det[bad, 5][0]:g}, not one of the card's "
                    f"{n_cls} classes (0..{n_cls - 1})"
                )
                out.append(NO_DETECTIONS)
                continue
            np.maximum.at(scores[i], cls, det[:, 4])
            out.append(det)
        return Decoded(scores=scores, errors=errors, detections=out)

    def _keep(self, det: np.ndarray) -> np.ndarray:
        spec = self.card.detection
        det = det[det[:, 4] > spec.score_threshold]
        order = np.argsort(-det[:, 4], kind="stable")[: spec.max_detections]
        return det[order]


class UltralyticsRawAdapter(DetectionAdapter):
    convention = "ultralytics_raw"

    def check(self, model_name: str) -> None:
        name, shape = self.single_shape(model_name)
        nc = len(self.card.classes)
        channels = dim(shape, 1)
        if len(shape) != 3:
            raise ModelError(
                f"model output {name!r} has shape {shape}, expected (batch, 4 + classes, "
                "anchors) for the Ultralytics raw layout"
            )
        if channels is not None and channels != 4 + nc:
            raise ModelError(
                f"model output {name!r} has {channels} rows, i.e. {channels - 4} classes, but "
                f"the card declares {nc} classes (expected 4 + {nc} = {4 + nc} rows)"
            )

    def decode(self, raw: list[np.ndarray], sizes: Sizes) -> Decoded:
        out = np.asarray(raw[0], dtype=np.float64)
        nc = len(self.card.classes)
        if out.ndim != 3 or out.shape[1] != 4 + nc:
            raise ModelError(f"model output has shape {out.shape}, expected (batch, {4 + nc}, N)")
        spec = self.card.detection
        per_image: list[np.ndarray] = []
        errors: list[str] = []
        for pred in out:
            if not np.isfinite(pred).all():
                per_image.append(NO_DETECTIONS)
                errors.append(NAN_ERROR)
                continue
            cls_scores = pred[4:].T  # (N, nc)
            if cls_scores.size and (cls_scores.min() < -1e-5 or cls_scores.max() > 1 + 1e-5):
                per_image.append(NO_DETECTIONS)
                errors.append(
                    "model output class scores lie outside [0, 1] "
                    f"(min {cls_scores.min():.6g}, max {cls_scores.max():.6g})"
                )
                continue
            best = cls_scores.argmax(axis=1) if nc else np.zeros(0, dtype=np.int64)
            score = cls_scores.max(axis=1) if nc else np.zeros(0)
            keep = score > spec.score_threshold
            cx, cy, w, h = pred[:4, keep]
            boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
            boxes = self._scale(boxes)
            s, c = score[keep], best[keep].astype(np.float64)
            top = spec.max_detections
            if spec.class_agnostic_nms:
                kept = nms(boxes, s, spec.nms_iou, top)
            else:
                kept = batched_nms(boxes, s, c, spec.nms_iou, top)
            per_image.append(np.column_stack([boxes[kept], s[kept], c[kept]]))
            errors.append("")
        return self._finish(per_image, errors, sizes)


class NmsIncludedAdapter(DetectionAdapter):
    convention = "nms_included"

    def check(self, model_name: str) -> None:
        name, shape = self.single_shape(model_name)
        if len(shape) != 3 or dim(shape, 2) not in (None, 6):
            raise ModelError(
                f"model output {name!r} has shape {shape}, expected (batch, K, 6) "
                "x1 y1 x2 y2 score class for the NMS-included layout"
            )

    def decode(self, raw: list[np.ndarray], sizes: Sizes) -> Decoded:
        out = np.asarray(raw[0], dtype=np.float64)
        if out.ndim != 3 or out.shape[2] != 6:
            raise ModelError(f"model output has shape {out.shape}, expected (batch, K, 6)")
        per_image, errors = [], []
        for pred in out:
            if not np.isfinite(pred).all():
                per_image.append(NO_DETECTIONS)
                errors.append(NAN_ERROR)
                continue
            det = pred.copy()
            det[:, :4] = self._scale(det[:, :4])
            per_image.append(self._keep(det))
            errors.append("")
        return self._finish(per_image, errors, sizes)


class BoxesScoresLabelsAdapter(DetectionAdapter):
    convention = "boxes_scores_labels"

    @property
    def output_names(self) -> list[str]:
        o = self.card.output
        return [o.output_name("boxes"), o.output_name("scores"), o.output_name("labels")]

    def check(self, model_name: str) -> None:
        names = self.output_names
        require_outputs(names, self.signature, model_name)
        boxes = self.signature[names[0]]
        if dim(boxes, -1) not in (None, 4):
            raise ModelError(
                f"model output {names[0]!r} has shape {boxes}, expected (batch, K, 4) x1 y1 x2 y2"
            )

    def decode(self, raw: list[np.ndarray], sizes: Sizes) -> Decoded:
        boxes = np.asarray(raw[0], dtype=np.float64)
        scores = np.asarray(raw[1], dtype=np.float64)
        labels = np.asarray(raw[2], dtype=np.float64)
        if boxes.ndim == 2:  # (K, 4) without a batch axis: one image
            boxes, scores, labels = boxes[None], scores.reshape(1, -1), labels.reshape(1, -1)
        scores = scores.reshape(boxes.shape[0], -1)
        labels = labels.reshape(boxes.shape[0], -1)
        per_image, errors = [], []
        for b, s, c in zip(boxes, scores, labels, strict=True):
            if not (np.isfinite(b).all() and np.isfinite(s).all() and np.isfinite(c).all()):
                per_image.append(NO_DETECTIONS)
                errors.append(NAN_ERROR)
                continue
            det = np.column_stack([self._scale(b.reshape(-1, 4)), s, c])
            per_image.append(self._keep(det))
            errors.append("")
        return self._finish(per_image, errors, sizes)
