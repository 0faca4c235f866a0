"""Where a model-input pixel lies in the original image: plain resize and letterbox.

``stretch`` (plain resize): the image of ``w0 x h0`` pixels is resized to the input ``W x H``,
so an input coordinate ``x`` is ``x * w0 / W`` in the original (``y * h0 / H`` likewise).

``letterbox`` (Ultralytics ``LetterBox`` / ``scale_boxes``, reproduced exactly): the image is
scaled by ``r = min(W / w0, H / h0)`` to ``round(w0 r) x round(h0 r)`` and pasted at
``left = round((W - round(w0 r)) / 2 - 0.1)``, ``top = round((H - round(h0 r)) / 2 - 0.1)``
(Python's ``round``), the rest padded. Back: ``x0 = (x - padx) / r`` with
``padx = round((W - w0 r) / 2 - 0.1)`` (and ``y`` likewise), then clipped to the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Letterbox:
    """The letterbox of a ``w0 x h0`` image into a ``width x height`` input."""

    gain: float
    new_w: int
    new_h: int
    left: int
    top: int

    @classmethod
    def of(cls, w0: int, h0: int, width: int, height: int) -> Letterbox:
        r = min(width / w0, height / h0)
        new_w, new_h = round(w0 * r), round(h0 * r)
        left = round((width - new_w) / 2 - 0.1)
        top = round((height - new_h) / 2 - 0.1)
        return cls(gain=r, new_w=new_w, new_h=new_h, left=left, top=top)


def boxes_to_original(
    boxes: np.ndarray, size: tuple[int, int], input_wh: tuple[int, int], mode: str
) -> np.ndarray:
    """Boxes ``(k, 4)`` ``x1 y1 x2 y2`` in input pixels -> original-image pixels, clipped to
    ``[0, w0] x [0, h0]`` (the definitions are in the module docstring)."""
    w0, h0 = size
    width, height = input_wh
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    if mode == "letterbox":
        gain = min(width / w0, height / h0)
        padx = round((width - w0 * gain) / 2 - 0.1)
        pady = round((height - h0 * gain) / 2 - 0.1)
        out[:, [0, 2]] = (out[:, [0, 2]] - padx) / gain
        out[:, [1, 3]] = (out[:, [1, 3]] - pady) / gain
    else:
        out[:, [0, 2]] *= w0 / width
        out[:, [1, 3]] *= h0 / height
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w0)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h0)
    return out


def map_to_original(
    values: np.ndarray,
    size: tuple[int, int],
    input_wh: tuple[int, int],
    mode: str,
    *,
    nearest: bool = False,
) -> np.ndarray:
    """A 2-D map over the model input (any resolution: a coarser map is first resized to the
    input size) -> the original image's ``h0 x w0`` pixels: the letterbox padding is cropped
    away, then the map is resized bilinearly (``nearest`` for label maps)."""
    w0, h0 = size
    width, height = input_wh
    src = np.asarray(values)
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    as_float = src.astype(np.float32)
    image = Image.fromarray(as_float, mode="F")
    if image.size != (width, height):
        image = image.resize((width, height), resample)
    if mode == "letterbox":
        box = Letterbox.of(w0, h0, width, height)
        image = image.crop((box.left, box.top, box.left + box.new_w, box.top + box.new_h))
    if image.size != (w0, h0):
        image = image.resize((w0, h0), resample)
    out = np.asarray(image, dtype=np.float32)
    return out.astype(src.dtype) if nearest else out
