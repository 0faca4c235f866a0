"""PaddleDetection exports (Paddle2ONNX): with NMS (``multiclass_nms3``) and GFL heads
without it (PP-PicoDet, GFL).

* ``paddle_nms``: two outputs, as PaddleDetection's ``export_model.py`` writes them
  (``multiclass_nms3_0.tmp_0``, ``multiclass_nms3_0.tmp_2``): ``bbox`` ``(N, 6)``, the rows
  ``class score x1 y1 x2 y2`` of every image of the batch one after another, and ``bbox_num``
  ``(batch,)`` int32, how many rows belong to each image. Found by shape (a rank-2 output of
  width 6 and a rank-1 output) unless ``output.names`` names ``bbox``/``bbox_num``. Rows of
  class -1 (Paddle's placeholder row when an image has no box) and rows with score at or below
  ``score_threshold`` are dropped. Counts that do not add up to ``N`` make every image of the
  batch an ``error`` row. The auxiliary inputs ``im_shape`` and ``scale_factor`` are fed as the
  input size and 1 (:func:`auditkit.models.adapters.interface.auxiliary_inputs`), so boxes are
  in input pixels.
* ``gfl_raw``: ``2 L`` outputs, graph order: the class scores of each head level
  ``(1, A_l, nc)`` (sigmoid already applied), then the box distributions of each level
  ``(1, A_l, 4 (reg_max + 1))`` (logits), levels by increasing stride (PP-PicoDet: 8, 16, 32,
  64); the two interleaved level by level are read too. Decoded as PaddleDetection's
  ``PicoDetPostProcess``: level ``l`` of stride ``s`` has ``ceil(H / s) x ceil(W / s)``
  anchors, row-major, centred at ``((j + 0.5) s, (i + 0.5) s)``;
  each side's distance (left, top, right, bottom) is the expectation ``sum_k k softmax(d)_k``
  over its ``reg_max + 1`` bins, times ``s``; the box is ``(cx - l, cy - t, cx + r, cy + b)``
  in input pixels. Each level keeps its 1000 anchors of highest best-class score
  (Paddle's ``nms_top_k``); every (anchor, class) of those with score strictly above
  ``score_threshold`` is a candidate (an anchor may give boxes of several classes),
  class-wise NMS at ``nms_iou``, at most ``max_detections``, highest scores first.
  Strides: ``detection.strides``, or each level's from its anchor count and the input size.
  One image per inference call (the export reshapes with batch 1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from auditkit.errors import ModelError
from auditkit.models.adapters.detection import NO_DETECTIONS, DetectionAdapter
from auditkit.models.adapters.interface import (
    NAN_ERROR,
    Decoded,
    Signature,
    Sizes,
    dim,
    require_outputs,
    softmax,
)
from auditkit.models.adapters.nms import batched_nms, nms
from auditkit.models.card import ModelCard

#: strides tried when a level's stride is read from its anchor count
CANDIDATE_STRIDES = (4, 8, 16, 32, 64, 128, 256)
#: anchors per level kept before NMS, by their best class score (``nms_top_k`` of
#: PaddleDetection's ``PicoDetPostProcess``)
NMS_TOP_K = 1000


def paddle_nms_outputs(signature: Signature, card: ModelCard | None) -> tuple[str, str] | None:
    """``(bbox, bbox_num)`` output names: the card's ``output.names``, else the one rank-2
    output of width 6 and the one rank-1 output; None when the graph has no such pair."""
    if card is not None and {"bbox", "bbox_num"} <= set(card.output.names):
        return card.output.output_name("bbox"), card.output.output_name("bbox_num")
    boxes = [n for n, s in signature.items() if len(s) == 2 and dim(s, 1) == 6]
    counts = [n for n, s in signature.items() if len(s) == 1]
    if len(boxes) == 1 and len(counts) == 1:
        return boxes[0], counts[0]
    return None


def _gfl_grouping(
    signature: Signature, scores: list[str], dists: list[str], card: ModelCard | None
) -> bool:
    """Whether ``scores`` and ``dists`` read as per-level class scores and box distributions
    (the rule in :func:`gfl_outputs`)."""
    if len(scores) < 2 or len(scores) != len(dists):
        return False
    shapes = [signature[n] for n in scores + dists]
    if any(len(s) != 3 for s in shapes):
        return False
    score_w = {dim(signature[n], 2) for n in scores}
    dist_w = {dim(signature[n], 2) for n in dists}
    if len(score_w) != 1 or len(dist_w) != 1:
        return False
    (sw,), (dw,) = score_w, dist_w
    if dw is None or dw % 4 or dw < 8:
        return False
    if card is not None and card.classes and sw not in (None, len(card.classes)):
        return False
    for a, b in zip(scores, dists, strict=True):
        na, nb = dim(signature[a], 1), dim(signature[b], 1)
        if na is not None and nb is not None and na != nb:
            return False
    return True


def gfl_outputs(signature: Signature, card: ModelCard | None) -> tuple[list[str], list[str]] | None:
    """``(score outputs, distribution outputs)`` by level when the outputs read as a GFL head
    without NMS: ``2 L >= 4`` rank-3 outputs, the class scores of each level (one width: the
    card's class count when there is a card) then the box distributions of each level (one
    width divisible by 4, at least 8), or the two interleaved level by level; a level's score
    and distribution outputs have the same anchor count. None otherwise."""
    names = list(signature)
    half = len(names) // 2
    if len(names) % 2:
        return None
    for scores, dists in ((names[:half], names[half:]), (names[0::2], names[1::2])):
        if _gfl_grouping(signature, scores, dists, card):
            return scores, dists
    return None


def level_stride(anchors: int, height: int, width: int) -> int | None:
    """The stride ``s`` with ``ceil(height / s) * ceil(width / s) == anchors``, if one."""
    found = [
        s for s in CANDIDATE_STRIDES if math.ceil(height / s) * math.ceil(width / s) == anchors
    ]
    return found[0] if len(found) == 1 else None


class PaddleNmsAdapter(DetectionAdapter):
    convention = "paddle_nms"

    @property
    def output_names(self) -> list[str]:
        names = paddle_nms_outputs(self.signature, self.card)
        if names is None:
            return [self.card.output.output_name("bbox"), self.card.output.output_name("bbox_num")]
        return list(names)

    def check(self, model_name: str) -> None:
        names = self.output_names
        require_outputs(names, self.signature, model_name)
        bbox, num = (self.signature[n] for n in names)
        if len(bbox) != 2 or dim(bbox, 1) not in (None, 6) or len(num) != 1:
            raise ModelError(
                f"model outputs {names[0]!r} {bbox} and {names[1]!r} {num}, expected (N, 6) "
                "class score x1 y1 x2 y2 and (batch,) counts (PaddleDetection multiclass_nms3)"
            )

    def decode(self, raw: list[np.ndarray], sizes: Sizes) -> Decoded:
        rows = np.asarray(raw[0], dtype=np.float64).reshape(-1, 6)
        counts = np.asarray(raw[1]).reshape(-1).astype(np.int64)
        batch = len(sizes) if sizes is not None else len(counts)
        if len(counts) != batch:
            raise ModelError(
                f"model output {self.output_names[1]!r} has {len(counts)} counts for a batch of "
                f"{batch} images"
            )
        if counts.min(initial=0) < 0 or int(counts.sum()) != len(rows):
            reason = (
                f"model output counts {counts.tolist()} do not add up to the {len(rows)} rows "
                f"of {self.output_names[0]!r}"
            )
            return self._finish([NO_DETECTIONS] * batch, [reason] * batch, sizes)
        per_image, errors = [], []
        for part in np.split(rows, np.cumsum(counts)[:-1]):
            if not np.isfinite(part).all():
                per_image.append(NO_DETECTIONS)
                errors.append(NAN_ERROR)
                continue
            part = part[part[:, 0] != -1]  # Paddle's placeholder row of an image with no box
            det = np.column_stack([self._scale(part[:, 2:6]), part[:, 1], part[:, 0]])
            per_image.append(self._keep(det))
            errors.append("")
        return self._finish(per_image, errors, sizes)


class GflRawAdapter(DetectionAdapter):
    convention = "gfl_raw"
    one_image_per_call = True

    def _grouping(self, model_name: str) -> tuple[list[str], list[str]]:
        found = gfl_outputs(self.signature, None)
        if found is None:
            shapes = ", ".join(f"{n} {s}" for n, s in self.signature.items())
            raise ModelError(
                f"the outputs of {model_name} ({shapes}) are not a GFL head without NMS: "
                "expected the class scores (1, anchors, classes) of each level, then the box "
                "distributions (1, anchors, 4 (reg_max + 1)) of each level"
            )
        return found

    @property
    def output_names(self) -> list[str]:
        """Score outputs by level, then distribution outputs by level."""
        found = gfl_outputs(self.signature, None)
        return [*found[0], *found[1]] if found is not None else list(self.signature)

    def check(self, model_name: str) -> None:
        scores, _ = self._grouping(model_name)
        levels = len(scores)
        first = self.signature[scores[0]]
        nc = len(self.card.classes)
        width = dim(first, 2)
        if width is not None and width != nc:
            raise ModelError(
                f"model output {scores[0]!r} has shape {first}, i.e. {width} classes, but the "
                f"card declares {nc} classes"
            )
        strides = self.card.detection.strides
        if strides is not None and len(strides) != levels:
            raise ModelError(
                f"the card's detection.strides {strides} name {len(strides)} levels, the model "
                f"has {levels} (outputs: {', '.join(self.signature)})"
            )
        shapes = [self.signature[n] for n in scores]
        height, width_px = self.card.input.height, self.card.input.width
        for k, shape in enumerate(shapes[:levels]):
            anchors = dim(shape, 1)
            if anchors is None:
                continue
            self._stride(k, anchors, height, width_px)

    def _stride(self, k: int, anchors: int, height: int, width: int) -> int:
        strides = self.card.detection.strides
        if strides is not None:
            s = strides[k]
            want = math.ceil(height / s) * math.ceil(width / s)
            if want != anchors:
                raise ModelError(
                    f"head level {k} has {anchors} anchors, but stride {s} at the card's input "
                    f"{height}x{width} gives {want}"
                )
            return s
        found = level_stride(anchors, height, width)
        if found is None:
            raise ModelError(
                f"cannot tell the stride of head level {k} ({anchors} anchors at the card's "
                f"input {height}x{width}); set detection.strides in the card"
            )
        return found

    def _decode_one(self, scores: list[np.ndarray], dists: list[np.ndarray]) -> np.ndarray:
        height, width = self.card.input.height, self.card.input.width
        boxes, cls_scores = [], []
        for k, (score, dist) in enumerate(zip(scores, dists, strict=True)):
            anchors = score.shape[0]
            s = self._stride(k, anchors, height, width)
            fh, fw = math.ceil(height / s), math.ceil(width / s)
            cols, rows = np.meshgrid(np.arange(fw), np.arange(fh))
            cx, cy = (cols.ravel() + 0.5) * s, (rows.ravel() + 0.5) * s
            bins = dist.shape[1] // 4
            prob = softmax(dist.reshape(anchors, 4, bins), axis=2)
            d = (prob * np.arange(bins)).sum(axis=2) * s  # (anchors, 4): left top right bottom
            boxes.append(np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], 1))
            cls_scores.append(score)
            if anchors > NMS_TOP_K:  # Paddle's nms_top_k: the level's best anchors only
                best = np.argsort(-score.max(axis=1), kind="stable")[:NMS_TOP_K]
                boxes[-1], cls_scores[-1] = boxes[-1][best], score[best]
        all_boxes, all_scores = np.concatenate(boxes), np.concatenate(cls_scores)
        spec = self.card.detection
        anchor, cls = np.nonzero(all_scores > spec.score_threshold)
        b, sc, c = all_boxes[anchor], all_scores[anchor, cls], cls.astype(np.float64)
        top = spec.max_detections
        if spec.class_agnostic_nms:
            kept = nms(b, sc, spec.nms_iou, top)
        else:
            kept = batched_nms(b, sc, c, spec.nms_iou, top)
        return np.column_stack([b[kept], sc[kept], c[kept]]) if len(kept) else NO_DETECTIONS

    def decode(self, raw: list[np.ndarray], sizes: Sizes) -> Decoded:
        arrays: list[Any] = [np.asarray(r, dtype=np.float64) for r in raw]
        levels = len(arrays) // 2
        scores, dists = arrays[:levels], arrays[levels:]
        nc = len(self.card.classes)
        for a, d in zip(scores, dists, strict=True):
            if a.ndim != 3 or d.ndim != 3 or a.shape[:2] != d.shape[:2] or a.shape[2] != nc:
                raise ModelError(
                    f"model outputs have shapes {a.shape} and {d.shape}, expected (1, A, {nc}) "
                    "and (1, A, 4 (reg_max + 1)) per head level"
                )
        per_image, errors = [], []
        for i in range(scores[0].shape[0]):
            image_scores = [a[i] for a in scores]
            image_dists = [d[i] for d in dists]
            if not all(np.isfinite(x).all() for x in image_scores + image_dists):
                per_image.append(NO_DETECTIONS)
                errors.append(NAN_ERROR)
                continue
            low = min(x.min(initial=0.0) for x in image_scores)
            high = max(x.max(initial=0.0) for x in image_scores)
            if low < -1e-5 or high > 1 + 1e-5:
                per_image.append(NO_DETECTIONS)
                errors.append(
                    f"model output class scores lie outside [0, 1] (min {low:.6g}, max {high:.6g})"
                )
                continue
            per_image.append(self._decode_one(image_scores, image_dists))
            errors.append("")
        return self._finish(per_image, errors, sizes)
