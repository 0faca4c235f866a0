"""Detectors whose export ends in final boxes: RT-DETR, torchvision, MMDeploy ``end2end``.

* ``rtdetr`` (Ultralytics RT-DETR): one output ``(batch, K, 4 + nc)`` (``K`` = 300 queries):
  ``cx cy w h`` normalised to [0, 1] of the input, then ``nc`` class scores (sigmoid, in
  [0, 1]). Decoded as Ultralytics' ``RTDETRPredictor.postprocess``: each query takes its best
  class (score = the highest class score), queries with score strictly above
  ``detection.score_threshold`` are kept, ``x1 = (cx - w/2) W``, ``y1 = (cy - h/2) H``,
  ``x2 = (cx + w/2) W``, ``y2 = (cy + h/2) H`` with ``W x H`` the input size; no NMS (the
  decoder's queries do not duplicate); at most ``max_detections``, highest scores first.
* ``torchvision`` (``torchvision.models.detection`` exported with ``torch.onnx``): outputs
  ``boxes`` ``(K, 4)`` ``x1 y1 x2 y2`` in input pixels, ``scores`` ``(K,)``, ``labels``
  ``(K,)`` int64 for the one image of the call; label 0 is the background, so class index =
  ``label - output.label_offset`` (default 1). One image per inference call.
* ``mmdeploy_end2end`` (MMDeploy's ``end2end.onnx`` of an MMDetection model): outputs
  ``dets`` ``(batch, K, 5)`` ``x1 y1 x2 y2 score`` in input pixels and ``labels``
  ``(batch, K)`` class indices (``label_offset`` default 0).

For all three, rows with score at or below ``score_threshold`` (padding) are dropped.
"""

from __future__ import annotations

import numpy as np

from auditkit.errors import ModelError
from auditkit.models.adapters.detection import (
    NO_DETECTIONS,
    BoxesScoresLabelsAdapter,
    DetectionAdapter,
)
from auditkit.models.adapters.interface import NAN_ERROR, Decoded, Sizes, dim, require_outputs


class RtDetrAdapter(DetectionAdapter):
    convention = "rtdetr"

    def check(self, model_name: str) -> None:
        name, shape = self.single_shape(model_name)
        nc = len(self.card.classes)
        width = dim(shape, 2)
        if len(shape) != 3 or (width is not None and width != 4 + nc):
            raise ModelError(
                f"model output {name!r} has shape {shape}, expected (batch, queries, 4 + {nc}) "
                f"cx cy w h and {nc} class scores for the card's {nc} classes (RT-DETR layout)"
            )

    def decode(self, raw: list[np.ndarray], sizes: Sizes) -> Decoded:
        out = np.asarray(raw[0], dtype=np.float64)
        nc = len(self.card.classes)
        if out.ndim != 3 or out.shape[2] != 4 + nc:
            raise ModelError(f"model output has shape {out.shape}, expected (batch, K, {4 + nc})")
        width, height = self.input_wh()
        scale = np.array([width, height, width, height], dtype=np.float64)
        per_image: list[np.ndarray] = []
        errors: list[str] = []
        for pred in out:
            if not np.isfinite(pred).all():
                per_image.append(NO_DETECTIONS)
                errors.append(NAN_ERROR)
                continue
            cls_scores = pred[:, 4:]
            if cls_scores.size and (cls_scores.min() < -1e-5 or cls_scores.max() > 1 + 1e-5):
                per_image.append(NO_DETECTIONS)
                errors.append(
                    "model output class scores lie outside [0, 1] "
                    f"(min {cls_scores.min():.6g}, max {cls_scores.max():.6g})"
                )
                continue
            cx, cy, w, h = pred[:, 0], pred[:, 1], pred[:, 2], pred[:, 3]
            boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * scale
            best = cls_scores.argmax(axis=1).astype(np.float64)
            det = np.column_stack([boxes, cls_scores.max(axis=1), best])
            per_image.append(self._keep(det))
            errors.append("")
        return self._finish(per_image, errors, sizes)


def _offset(adapter: DetectionAdapter, default: int) -> int:
    offset = adapter.card.output.label_offset
    return default if offset is None else offset


class TorchvisionAdapter(BoxesScoresLabelsAdapter):
    convention = "torchvision"
    one_image_per_call = True

    def check(self, model_name: str) -> None:
        names = self.output_names
        require_outputs(names, self.signature, model_name)
        boxes = self.signature[names[0]]
        if len(boxes) != 2 or dim(boxes, 1) not in (None, 4):
            raise ModelError(
                f"model output {names[0]!r} has shape {boxes}, expected (K, 4) x1 y1 x2 y2 "
                "for one image (torchvision detection)"
            )

    def decode(self, raw: list[np.ndarray], sizes: Sizes) -> Decoded:
        labels = np.asarray(raw[2], dtype=np.float64) - _offset(self, 1)
        return super().decode([raw[0], raw[1], labels], sizes)


class MmdeployAdapter(DetectionAdapter):
    convention = "mmdeploy_end2end"

    @property
    def output_names(self) -> list[str]:
        o = self.card.output
        return [o.output_name("dets"), o.output_name("labels")]

    def check(self, model_name: str) -> None:
        names = self.output_names
        require_outputs(names, self.signature, model_name)
        dets = self.signature[names[0]]
        if len(dets) != 3 or dim(dets, 2) not in (None, 5):
            raise ModelError(
                f"model output {names[0]!r} has shape {dets}, expected (batch, K, 5) "
                "x1 y1 x2 y2 score (MMDeploy end2end)"
            )

    def decode(self, raw: list[np.ndarray], sizes: Sizes) -> Decoded:
        dets = np.asarray(raw[0], dtype=np.float64)
        labels = np.asarray(raw[1], dtype=np.float64)
        if dets.ndim != 3 or dets.shape[2] != 5:
            raise ModelError(f"model output has shape {dets.shape}, expected (batch, K, 5)")
        labels = labels.reshape(dets.shape[0], -1) - _offset(self, 0)
        per_image, errors = [], []
        for d, c in zip(dets, labels, strict=True):
            if not (np.isfinite(d).all() and np.isfinite(c).all()):
                per_image.append(NO_DETECTIONS)
                errors.append(NAN_ERROR)
                continue
            det = np.column_stack([self._scale(d[:, :4]), d[:, 4], c])
            per_image.append(self._keep(det))
            errors.append("")
        return self._finish(per_image, errors, sizes)
