"""The one decoder path against an independent reference of the card's resize filter.

A replay spike found a "faster" decoder whose bilinear resize was a 2×2 box at exactly half size
instead of Pillow's antialiased triangle filter: accuracy fell from 97.4 % to 49.5 % with no
error. This test pins ``preprocess`` to a NumPy implementation of the triangle (bilinear)
filter with support scaled by the downscale factor, as the card's ``resize: bilinear`` means,
to within one grey level (Pillow rounds to 8 bits between its two passes).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from auditkit.models.card import InputSpec
from auditkit.models.preprocess import preprocess


def _triangle_weights(n_in: int, n_out: int) -> np.ndarray:
    """Resampling matrix (n_out × n_in) of the antialiased bilinear filter."""
    scale = n_in / n_out
    support = max(scale, 1.0)  # the triangle's half-width grows with the downscale factor
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        center = (i + 0.5) * scale
        x = np.arange(n_in) + 0.5
        w = np.clip(1.0 - np.abs(x - center) / support, 0.0, None)
        weights[i] = w / w.sum()
    return weights


def _reference(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = _triangle_weights(pixels.shape[0], height)
    cols = _triangle_weights(pixels.shape[1], width)
    return rows @ pixels.astype(np.float64) @ cols.T


def test_bilinear_preprocess_matches_the_triangle_filter() -> None:
    rng = np.random.default_rng(7)
    spec = InputSpec(name="x", height=64, width=64, resize="bilinear", mean=[0.5], std=[0.25])
    for shape in [(128, 128), (128, 96), (100, 140)]:
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        got = preprocess(Image.fromarray(pixels, "L"), spec)[0] * 0.25 + 0.5  # back to [0, 1]
        expected = _reference(pixels, 64, 64) / 255.0
        assert np.abs(got - expected).max() <= 1.01 / 255.0


def test_a_box_filter_would_be_caught() -> None:
    """The spike's silent failure: a 2×2 box at half size differs by far more than one level."""
    rng = np.random.default_rng(8)
    pixels = rng.integers(0, 256, size=(128, 128), dtype=np.uint8)
    box = pixels.reshape(64, 2, 64, 2).mean(axis=(1, 3)) / 255.0
    expected = _reference(pixels, 64, 64) / 255.0
    assert np.abs(box - expected).max() > 10 / 255.0
