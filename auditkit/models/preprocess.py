"""Image file → the model's input tensor, exactly as the card declares (part of the deployed
model). Kept apart from :mod:`auditkit.models.onnx_model` so that decode worker processes
(``--decode-processes``) import Pillow and NumPy only, not onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from auditkit.data.images import exact_depth, open_regular
from auditkit.models.adapters.geometry import Letterbox
from auditkit.models.card import InputSpec

_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def preprocess(image: Image.Image, spec: InputSpec) -> np.ndarray:
    """One image → the model's input for one sample, exactly as the card declares.

    ``convert(color)`` → ``resize((width, height), filter)`` → float32 → ``(x/255 − mean)/std``,
    laid out CHW or HWC per ``spec.layout`` (without the batch axis). With ``resize_mode``
    ``letterbox`` the image is resized keeping its aspect ratio and pasted, centred, on a
    canvas of ``pad_value`` (:class:`auditkit.models.adapters.geometry.Letterbox`). A 16-bit
    greyscale image is read on the same 8-bit scale, ``v * 255 / 65535``, without rounding
    (:func:`auditkit.data.images.exact_depth`); 32-bit integer or float pixels are refused.
    """
    image = exact_depth(image)
    # 16-bit grey arrives as float pixels on the 8-bit scale (mode F): resized as floats, its
    # channel repeated for an RGB card after resizing (what converting grey to RGB does)
    converted = image if image.mode == "F" else image.convert(spec.color)
    if spec.resize_mode == "letterbox":
        box = Letterbox.of(converted.width, converted.height, spec.width, spec.height)
        if converted.size != (box.new_w, box.new_h):
            converted = converted.resize((box.new_w, box.new_h), _RESAMPLING[spec.resize])
        fill = round(spec.pad_value)
        canvas = Image.new(
            converted.mode,
            (spec.width, spec.height),
            fill if converted.mode in ("L", "F") else (fill,) * 3,
        )
        canvas.paste(converted, (box.left, box.top))
        converted = canvas
    elif converted.size != (spec.width, spec.height):
        converted = converted.resize((spec.width, spec.height), _RESAMPLING[spec.resize])
    pixels = np.asarray(converted, dtype=np.float32) / np.float32(255.0)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.shape[2] != spec.channels:
        pixels = np.repeat(pixels, spec.channels, axis=2)
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    pixels = (pixels - mean) / std
    if spec.layout == "NCHW":
        pixels = np.transpose(pixels, (2, 0, 1))
    return np.ascontiguousarray(pixels, dtype=np.float32)


def decode_file(path: str | Path, spec: InputSpec) -> np.ndarray:
    """Read, decode and preprocess one image file; raises OSError/ValueError when unreadable."""
    return decode_file_sized(path, spec)[0]


def decode_file_sized(path: str | Path, spec: InputSpec) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`decode_file` and the original image's ``(width, height)`` (to map boxes and maps
    back to original-image pixels)."""
    with open_regular(path) as handle, Image.open(handle) as image:
        image.load()
        return preprocess(image, spec), image.size
