"""Deterministic synthetic steel-surface inspection images (the bundled sample data).

:func:`generate` writes ``out_dir/images/<sample_id>.png`` (8-bit grayscale, 128x128) and
``out_dir/manifest.csv`` with the columns ``sample_id, part_id, path, label, line, shift, camera,
lighting, supplier``.

Each *part* (the decision unit) is drawn from its own random stream, derived with
:class:`numpy.random.SeedSequence` from ``(seed, part index)``: part ``i`` is the same whatever
``n`` is, so a larger sample extends a smaller one, and parts can be rendered in any order or in
parallel. A part has one or two camera views (cam-A and cam-B) of the same surface and defect;
each view gets its own crop offset, exposure, vignetting and sensor noise, and cam-B is slightly
blurred. Images are numbered in part order; if the last part has two views but only one image is
left to make, only its first view is written.

The surface is rolled steel: streaks along the rolling direction (horizontal), low-frequency
mottling, an occasional benign stain or dust speck. Defects (``scratch``, ``pit``, ``inclusion``,
``crack``) darken (rarely brighten) the surface. Built-in effects an audit should find: dim
lighting strongly lowers defect contrast (and exposure), the night shift lowers it mildly.
"""

from __future__ import annotations

import csv
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

SIZE = 128
_MARGIN = 6  # the surface is rendered larger, so the two views can be cropped at different offsets
_SURF = SIZE + 2 * _MARGIN

CLASSES = ("good", "scratch", "pit", "inclusion", "crack")
_CLASS_P = (0.50, 0.15, 0.13, 0.12, 0.10)
_LINES = ("L1", "L2", "L3")
_LINE_P = (0.40, 0.35, 0.25)
_SUPPLIERS = ("S1", "S2", "S3")
_SUPPLIER_P = (0.50, 0.30, 0.20)
_DIM_P = {"L1": 0.30, "L2": 0.33, "L3": 0.45}  # L3 has the older lamps
_NIGHT_P = 0.40
_TWO_VIEW_P = 0.25

# Defect contrast multipliers (the built-in "realistic" effects).
_DIM_CONTRAST = 0.48
_NIGHT_CONTRAST = 0.85
_DIM_GAIN = (0.50, 0.62)
_NIGHT_GAIN = 0.95

#: a pixel belongs to the defect's mask when the drawn defect's depth (peak about 1) is at
#: least this: the defect's visible extent, faint or not
MASK_DEPTH = 0.2

COLUMNS = (
    "sample_id",
    "part_id",
    "path",
    "label",
    "line",
    "shift",
    "camera",
    "lighting",
    "supplier",
)

_YY, _XX = np.mgrid[0:_SURF, 0:_SURF].astype(np.float32)
_VY, _VX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


@dataclass(frozen=True)
class PartMeta:
    part_id: str
    label: str
    line: str
    shift: str
    lighting: str
    supplier: str
    cameras: tuple[str, ...]


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Linear interpolation from ``n_in`` grid knots spread over ``n_out`` samples."""
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    frac = pos - lo
    mat = np.zeros((n_out, n_in), dtype=np.float32)
    mat[np.arange(n_out), lo] = 1.0 - frac
    mat[np.arange(n_out), lo + 1] = frac
    return mat


def _smoothstep_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Like :func:`_interp_matrix` with a smoothstep weight (no visible grid ridges)."""
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    t = pos - lo
    t = t * t * (3.0 - 2.0 * t)
    mat = np.zeros((n_out, n_in), dtype=np.float32)
    mat[np.arange(n_out), lo] = 1.0 - t
    mat[np.arange(n_out), lo + 1] = t
    return mat


_MOTTLE = {k: _smoothstep_matrix(_SURF, k) for k in (4, 6, 9, 14)}


def _lowfreq(rng: np.random.Generator, knots: int) -> np.ndarray:
    """Smooth random field over the surface, about unit standard deviation."""
    grid = rng.standard_normal((knots, knots), dtype=np.float32)
    mat = _MOTTLE[knots]
    out: np.ndarray = mat @ grid @ mat.T
    return out


def _pair(values: np.ndarray) -> tuple[float, float]:
    """Two draws as Python floats (NumPy float64 scalars would promote float32 arrays)."""
    return float(values[0]), float(values[1])


def _part_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def _draw_meta(rng: np.random.Generator, index: int) -> PartMeta:
    label = str(rng.choice(CLASSES, p=_CLASS_P))
    line = str(rng.choice(_LINES, p=_LINE_P))
    shift = "night" if rng.random() < _NIGHT_P else "day"
    lighting = "dim" if rng.random() < _DIM_P[line] else "nominal"
    supplier = str(rng.choice(_SUPPLIERS, p=_SUPPLIER_P))
    if rng.random() < _TWO_VIEW_P:
        cameras: tuple[str, ...] = ("cam-A", "cam-B")
    else:
        cameras = ("cam-A",) if rng.random() < 0.5 else ("cam-B",)
    return PartMeta(f"p{index:06d}", label, line, shift, lighting, supplier, cameras)


# --------------------------------------------------------------------------- surface


def _surface(rng: np.random.Generator, supplier: str) -> np.ndarray:
    """Reflectance of the bare rolled steel, around 1.0."""
    streak_len = int(rng.integers(15, 41))
    noise = rng.standard_normal((_SURF, _SURF + streak_len), dtype=np.float32)
    streaks = ndimage.uniform_filter1d(noise, streak_len, axis=1)[:, streak_len // 2 :][:, :_SURF]
    streaks *= np.float32(np.sqrt(streak_len))  # back to ~unit std
    rows = ndimage.gaussian_filter1d(rng.standard_normal(_SURF, dtype=np.float32), 0.8)
    rows *= np.float32(1.6)
    streak_amp = {"S1": 0.018, "S2": 0.026, "S3": 0.014}[supplier] * rng.uniform(0.8, 1.25)
    row_amp = streak_amp * rng.uniform(0.5, 1.0)
    mottle = _lowfreq(rng, 4) * np.float32(rng.uniform(0.02, 0.05))
    mottle += _lowfreq(rng, 9) * np.float32(rng.uniform(0.008, 0.02))
    surf = 1.0 + streak_amp * streaks + row_amp * rows[:, None] + mottle
    # Benign nuisances: stains and dust (also on good parts: a source of overkill).
    if rng.random() < 0.12:
        cy, cx = _pair(rng.uniform(10, _SURF - 10, 2))
        ry, rx = _pair(rng.uniform(8, 25, 2))
        blob = np.exp(-(((_YY - cy) / ry) ** 2 + ((_XX - cx) / rx) ** 2))
        surf += np.float32(rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.05)) * blob
    for _ in range(int(rng.poisson(0.3))):
        cy, cx = _pair(rng.uniform(3, _SURF - 3, 2))
        y0, x0 = int(cy) - 3, int(cx) - 3
        r2 = (_YY[y0 : y0 + 7, x0 : x0 + 7] - cy) ** 2 + (_XX[y0 : y0 + 7, x0 : x0 + 7] - cx) ** 2
        surf[y0 : y0 + 7, x0 : x0 + 7] += rng.uniform(0.08, 0.2) * np.exp(-r2 / np.float32(0.7))
    return np.asarray(surf, dtype=np.float32)


# --------------------------------------------------------------------------- defects


def _splat(ys: np.ndarray, xs: np.ndarray, ws: np.ndarray, sigma: float) -> np.ndarray:
    """Bilinear splat of weighted points, blurred to a line of width ~sigma; peak about 1."""
    acc = np.zeros(_SURF * _SURF, dtype=np.float32)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    fy = (ys - y0).astype(np.float32)
    fx = (xs - x0).astype(np.float32)
    for dy, dx, w in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        yy = y0 + dy
        xx = x0 + dx
        ok = (yy >= 0) & (yy < _SURF) & (xx >= 0) & (xx < _SURF)
        np.add.at(acc, yy[ok] * _SURF + xx[ok], (w * ws)[ok])
    img = ndimage.gaussian_filter(acc.reshape(_SURF, _SURF), sigma)
    # Points are 0.5 px apart: a straight line then peaks at about 2 / (sqrt(2 pi) sigma).
    peak = 2.0 / (np.sqrt(2.0 * np.pi) * max(sigma, 0.5))
    return np.asarray(np.minimum(img / np.float32(peak), 1.0), dtype=np.float32)


def _resample_path(ys: np.ndarray, xs: np.ndarray, step: float = 0.5) -> tuple[np.ndarray, ...]:
    seg = np.hypot(np.diff(ys), np.diff(xs))
    dist = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.arange(0.0, dist[-1] + 1e-9, step)
    return np.interp(t, dist, ys), np.interp(t, dist, xs), t / max(dist[-1], 1e-9)


def _scratch(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    length = rng.uniform(40, 110)
    angle = rng.uniform(0, np.pi)
    cy, cx = _pair(rng.uniform(_MARGIN + 15, _SURF - _MARGIN - 15, 2))
    dy, dx = np.sin(angle) * length / 2, np.cos(angle) * length / 2
    bend = rng.normal(0, 0.06 * length)
    t = np.linspace(0, 1, 200)
    # Quadratic Bezier from one end to the other, the middle pulled sideways by `bend`.
    py = cy - dy + 2 * dy * t + 4 * bend * np.cos(angle) * t * (1 - t)
    px = cx - dx + 2 * dx * t - 4 * bend * np.sin(angle) * t * (1 - t)
    ys, xs, u = _resample_path(py, px)
    # Fades in and out at the ends, and the tool pressure varies along the way.
    ws = np.clip(np.minimum(u, 1 - u) * 12, 0, 1) * (0.75 + 0.25 * np.sin(u * rng.uniform(3, 12)))
    depth = _splat(ys, xs, ws, rng.uniform(0.5, 0.8))
    contrast = rng.uniform(0.22, 0.5)
    if rng.random() < 0.25:  # a polished scratch that reflects the light
        contrast = -contrast * 0.8
    return depth, contrast


def _pit(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    k = min(int(rng.geometric(0.45)), 6)
    cy0, cx0 = _pair(rng.uniform(_MARGIN + 12, _SURF - _MARGIN - 12, 2))
    depth = np.zeros((_SURF, _SURF), dtype=np.float32)
    for i in range(k):
        cy, cx = (cy0, cx0) if i == 0 else _pair(rng.normal((cy0, cx0), 9))
        rho = rng.uniform(1.2, 3.2) * (1.0 if i == 0 else 0.8)
        # Only a window around the pit: the blob is negligible beyond ~4 rho.
        half = int(4 * rho) + 2
        y0, y1 = max(int(cy) - half, 0), min(int(cy) + half + 1, _SURF)
        x0, x1 = max(int(cx) - half, 0), min(int(cx) + half + 1, _SURF)
        if y0 >= y1 or x0 >= x1:
            continue
        r2 = (_YY[y0:y1, x0:x1] - cy) ** 2 + (_XX[y0:y1, x0:x1] - cx) ** 2
        core = np.minimum(1.4 * np.exp(-r2 / np.float32(2 * rho * rho)), 1.0)
        rim = 0.25 * np.exp(-((np.sqrt(r2) - 1.8 * rho) ** 2) / np.float32(0.8))
        depth[y0:y1, x0:x1] = np.maximum(depth[y0:y1, x0:x1], core - rim)
    return depth, rng.uniform(0.3, 0.6)


def _inclusion(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    angle = rng.normal(0, 0.25)  # stretched along the rolling direction
    length = rng.uniform(20, 50)
    width = rng.uniform(4.5, 10)
    cy, cx = _pair(rng.uniform(_MARGIN + 15, _SURF - _MARGIN - 15, 2))
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = ((_XX - cx) * cos + (_YY - cy) * sin) / np.float32(length / 2)
    v = (-(_XX - cx) * sin + (_YY - cy) * cos) / np.float32(width / 2)
    rough = _lowfreq(rng, 14)
    field = 1.0 - (u * u + v * v) + 0.3 * rough
    depth = 1.0 / (1.0 + np.exp(-np.clip(field * 6.0, -30, 30)))
    if rng.random() < 0.25:  # a stringer: broken into fragments along its length
        gaps = 0.5 + 0.5 * np.cos(u * np.float32(rng.uniform(3, 5)) + np.float32(rng.uniform(0, 6)))
        depth *= np.clip(gaps * 1.6, 0, 1)
    depth *= 0.75 + 0.25 * np.clip(_lowfreq(rng, 14), -1, 1)
    return np.asarray(depth, dtype=np.float32), rng.uniform(0.18, 0.4)


def _crack(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    def walk(y: float, x: float, theta: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
        # Jagged but going somewhere: the heading wanders around a slowly drifting direction.
        kicks = rng.normal(0, 0.45, steps)
        wander = np.empty(steps)
        level = 0.0
        for i in range(steps):
            level = 0.8 * level + kicks[i]
            wander[i] = level
        thetas = theta + wander + np.cumsum(rng.normal(0, 0.04, steps))
        ys = y + np.cumsum(np.sin(thetas) * 1.2)
        xs = x + np.cumsum(np.cos(thetas) * 1.2)
        return np.concatenate([[y], ys]), np.concatenate([[x], xs])

    cy, cx = _pair(rng.uniform(_MARGIN + 25, _SURF - _MARGIN - 25, 2))
    theta = rng.uniform(0, 2 * np.pi)
    steps = int(rng.integers(35, 70))
    parts_y, parts_x, parts_w = [], [], []
    for branches, direction in ((1, theta), (0, theta + np.pi)):  # grows both ways
        wy, wx = walk(cy, cx, direction, steps)
        ys, xs, u = _resample_path(wy, wx)
        parts_y.append(ys)
        parts_x.append(xs)
        parts_w.append(1.0 - 0.7 * u)
        for _ in range(int(rng.integers(branches, branches + 2))):
            j = int(rng.integers(len(wy) // 4, len(wy)))
            side = rng.choice([-1.0, 1.0])
            by, bx = walk(wy[j], wx[j], direction + side * rng.uniform(0.5, 1.2), steps // 2)
            ys, xs, u = _resample_path(by, bx)
            parts_y.append(ys)
            parts_x.append(xs)
            parts_w.append(0.8 * (1.0 - 0.8 * u))
    depth = _splat(
        np.concatenate(parts_y),
        np.concatenate(parts_x),
        np.concatenate(parts_w),
        rng.uniform(0.5, 0.75),
    )
    return depth, rng.uniform(0.4, 0.7)


_DEFECTS = {"scratch": _scratch, "pit": _pit, "inclusion": _inclusion, "crack": _crack}


# --------------------------------------------------------------------------- rendering


def _render_part(
    meta: PartMeta, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The part's views and, per view, its defect mask (boolean; all False for a good part)."""
    base = {"S1": 150.0, "S2": 138.0, "S3": 162.0}[meta.supplier] * rng.uniform(0.93, 1.07)
    surf = _surface(rng, meta.supplier)
    depth = np.zeros((_SURF, _SURF), dtype=np.float32)
    if meta.label != "good":
        depth, contrast = _DEFECTS[meta.label](rng)
        # Most defects are clear; a few are faint (the nominal escapes of a good model).
        severity = rng.uniform(0.45, 0.75) if rng.random() < 0.12 else rng.uniform(0.85, 1.2)
        contrast *= severity
        if meta.lighting == "dim":
            contrast *= _DIM_CONTRAST
        if meta.shift == "night":
            contrast *= _NIGHT_CONTRAST
        surf = surf * (1.0 - np.float32(contrast) * depth)
    views, masks = [], []
    for camera in meta.cameras:
        gain = rng.uniform(*_DIM_GAIN) if meta.lighting == "dim" else rng.uniform(0.92, 1.06)
        if meta.shift == "night":
            gain *= _NIGHT_GAIN
        oy, ox = (int(v) for v in rng.integers(0, 2 * _MARGIN + 1, 2))
        masks.append(depth[oy : oy + SIZE, ox : ox + SIZE] >= MASK_DEPTH)
        view = surf[oy : oy + SIZE, ox : ox + SIZE] * np.float32(base * gain)
        vy, vx = _pair(rng.normal(SIZE / 2, 8, 2))
        strength = rng.uniform(0.12, 0.22) if camera == "cam-A" else rng.uniform(0.2, 0.32)
        r2 = ((_VY - vy) ** 2 + (_VX - vx) ** 2) / np.float32((SIZE / 2) ** 2)
        view = view * (1.0 - np.float32(strength) * r2 * 0.5)
        if camera == "cam-B":
            view = ndimage.gaussian_filter(view, rng.uniform(0.8, 1.1))
        # Sensor: read noise plus shot noise, then 8-bit quantisation.
        sigma = np.sqrt(0.8 + 0.006 * np.clip(view, 0, None))
        view = view + sigma * rng.standard_normal((SIZE, SIZE), dtype=np.float32)
        views.append(np.clip(np.rint(view), 0, 255).astype(np.uint8))
    return views, masks


def render_part(seed: int, index: int) -> tuple[PartMeta, list[np.ndarray]]:
    """Metadata and the 8-bit views of part ``index`` for ``seed`` (independent of ``n``)."""
    meta, views, _ = render_part_truth(seed, index)
    return meta, views


def render_part_truth(seed: int, index: int) -> tuple[PartMeta, list[np.ndarray], list[np.ndarray]]:
    """:func:`render_part` and, per view, the defect's mask: the pixels where the drawn defect's
    depth is at least :data:`MASK_DEPTH` (boolean, all False for a good part). The random draws
    are the same, so the images are those of :func:`render_part`."""
    rng = _part_rng(seed, index)
    meta = _draw_meta(rng, index)
    views, masks = _render_part(meta, rng)
    return meta, views, masks


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """The defect's box, its drawn extent: ``x1, y1, x2, y2`` in pixels with ``x2 - x1`` the
    mask's width (corners of the outermost mask pixels); None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(pixels: np.ndarray) -> bytes:
    """A minimal 8-bit grayscale PNG: the "Sub" filter on every row, Huffman-only deflate.

    For noisy sensor images this is smaller than Pillow's ``optimize=True`` and ten times faster,
    and the bytes depend only on the pixels (no timestamps, no library version).
    """
    height, width = pixels.shape
    raw = np.empty((height, width + 1), dtype=np.uint8)
    raw[:, 0] = 1  # filter type Sub: each byte minus the one to its left (mod 256)
    raw[:, 1] = pixels[:, 0]
    raw[:, 2:] = pixels[:, 1:] - pixels[:, :-1]
    packer = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    idat = packer.compress(raw.tobytes()) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def generate(n: int, seed: int, out_dir: Path) -> Path:
    """Write ``n`` images and ``manifest.csv`` under ``out_dir``; return the manifest's path.

    Files of the same name are overwritten; other files already in ``out_dir`` are left alone.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out_dir = Path(out_dir)
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    index = 0
    while len(rows) < n:
        meta, views = render_part(seed, index)
        for camera, pixels in zip(meta.cameras, views, strict=True):
            if len(rows) >= n:
                break
            sample_id = f"s{len(rows):06d}"
            rel = f"images/{sample_id}.png"
            (out_dir / rel).write_bytes(encode_png(pixels))
            rows.append(
                {
                    "sample_id": sample_id,
                    "part_id": meta.part_id,
                    "path": rel,
                    "label": meta.label,
                    "line": meta.line,
                    "shift": meta.shift,
                    "camera": camera,
                    "lighting": meta.lighting,
                    "supplier": meta.supplier,
                }
            )
        index += 1
    manifest = out_dir / "manifest.csv"
    with manifest.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return manifest
