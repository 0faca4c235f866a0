"""Non-maximum suppression in NumPy (no torch, no torchvision).

:func:`nms` is the greedy rule of ``torchvision.ops.nms``: boxes in descending score order
(ties in input order); each box is kept unless its IoU with an already kept box is strictly
above ``iou_threshold``. :func:`batched_nms` applies it per class (boxes of different classes
never suppress each other) by shifting each class's boxes apart, as torchvision's
``batched_nms`` does. IoU on continuous coordinates: ``|A ∩ B| / |A ∪ B|``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def _iou_one(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    iw = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    ih = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    inter = iw.clip(0) * ih.clip(0)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: npt.ArrayLike, scores: npt.ArrayLike, iou_threshold: float) -> npt.NDArray[np.int64]:
    """Indices of the kept boxes, highest score first (see the module docstring)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(-s, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if not rest.size:
            break
        order = rest[_iou_one(b[i], b[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(
    boxes: npt.ArrayLike, scores: npt.ArrayLike, classes: npt.ArrayLike, iou_threshold: float
) -> npt.NDArray[np.int64]:
    """Class-wise NMS: indices of the kept boxes, highest score first."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not b.size:
        return np.zeros(0, dtype=np.int64)
    c = np.asarray(classes, dtype=np.float64).ravel()
    lo, hi = float(b.min()), float(b.max())
    shifted = b - lo + (c * (hi - lo + 1.0))[:, None]
    return nms(shifted, scores, iou_threshold)
