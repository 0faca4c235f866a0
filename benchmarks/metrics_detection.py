"""COCO mAP: auditkit (faster-coco-eval engine) against pycocotools, in one run.

Generates a deterministic detection set (2,000 images, 120,000 detections by default: boxes of
mixed sizes, 5 classes, some images without ground truth), then times, from the same
DataFrames to the 12 COCO statistics and the per-class APs:

  * auditkit: ``auditkit.metrics.detection.coco_metrics``;
  * pycocotools: build the COCO dicts, ``COCO``/``loadRes``, ``COCOeval`` evaluate, accumulate,
    summarize (the peer's usual path; its prints are swallowed).

Prints both times, the ratio (goal: auditkit at least 4x faster) and the largest absolute
difference over all values (must be 0, at most 1e-12). Usage:

    python benchmarks/metrics_detection.py [--images 2000] [--detections 120000] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from typing import Any

import numpy as np
import pandas as pd

from auditkit.metrics.detection import coco_metrics

STAT_KEYS = [
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "ar_1",
    "ar_10",
    "ar_100",
    "ar_small",
    "ar_medium",
    "ar_large",
]
CLASSES = ["scratch", "dent", "stain", "pit", "crack"]


def generate(
    n_images: int, n_detections: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Ground truth: 0-9 boxes per image (1 image in 10 without); detections: jittered copies of
    ground truth (some with the wrong class) plus false positives, ``n_detections`` in all."""
    rng = np.random.default_rng(seed)
    ids = [f"img-{i:05d}" for i in range(n_images)]
    n_gt = rng.integers(0, 10, n_images)
    n_gt[rng.random(n_images) < 0.1] = 0
    g_img = np.repeat(np.arange(n_images), n_gt)
    m = g_img.size
    side = rng.choice([12.0, 24.0, 48.0, 80.0, 160.0], m) * rng.uniform(0.6, 1.4, (2, m))
    gx, gy = rng.uniform(0, 1200, (2, m))
    g_cls = rng.integers(0, len(CLASSES), m)
    gt = pd.DataFrame(
        {
            "sample_id": np.asarray(ids, dtype=object)[g_img],
            "class": np.asarray(CLASSES, dtype=object)[g_cls],
            "x1": gx,
            "y1": gy,
            "x2": gx + side[0],
            "y2": gy + side[1],
        }
    )
    # true positives: ~1.3 jittered detections per GT box
    n_tp = min(n_detections, int(1.3 * m))
    src = rng.integers(0, m, n_tp)
    w = side[0][src]
    h = side[1][src]
    jit = rng.normal(0, 0.12, (4, n_tp))
    tx1 = gx[src] + jit[0] * w
    ty1 = gy[src] + jit[1] * h
    tcls = np.where(rng.random(n_tp) < 0.9, g_cls[src], rng.integers(0, len(CLASSES), n_tp))
    tp = {
        "img": g_img[src],
        "cls": tcls,
        "score": np.clip(rng.beta(5, 2, n_tp), 0, 1),
        "x1": tx1,
        "y1": ty1,
        "x2": tx1 + w * (1 + jit[2]).clip(0.1),
        "y2": ty1 + h * (1 + jit[3]).clip(0.1),
    }
    n_fp = n_detections - n_tp
    fx, fy = rng.uniform(0, 1200, (2, n_fp))
    fw, fh = rng.uniform(4, 200, (2, n_fp))
    fp = {
        "img": rng.integers(0, n_images, n_fp),
        "cls": rng.integers(0, len(CLASSES), n_fp),
        "score": rng.beta(2, 5, n_fp),
        "x1": fx,
        "y1": fy,
        "x2": fx + fw,
        "y2": fy + fh,
    }
    both = {k: np.concatenate([tp[k], fp[k]]) for k in tp}
    order = rng.permutation(n_detections)
    dt = pd.DataFrame(
        {
            "sample_id": np.asarray(ids, dtype=object)[both["img"][order]],
            "class": np.asarray(CLASSES, dtype=object)[both["cls"][order]],
            "score": both["score"][order],
            "x1": both["x1"][order],
            "y1": both["y1"][order],
            "x2": both["x2"][order],
            "y2": both["y2"][order],
        }
    )
    return gt, dt, ids


def pycocotools_metrics(gt: pd.DataFrame, dt: pd.DataFrame, ids: list[str]) -> dict[str, Any]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    img = {s: i + 1 for i, s in enumerate(ids)}
    cat = {c: k + 1 for k, c in enumerate(CLASSES)}

    def boxes(df: pd.DataFrame) -> list[tuple[int, int, list[float]]]:
        c = df[["x1", "y1", "x2", "y2"]].to_numpy(dtype=float).tolist()
        return [
            (img[s], cat[k], [x1, y1, x2 - x1, y2 - y1])
            for s, k, (x1, y1, x2, y2) in zip(
                df["sample_id"].tolist(), df["class"].tolist(), c, strict=True
            )
        ]

    anns = [
        {"id": n + 1, "image_id": i, "category_id": k, "bbox": b, "area": b[2] * b[3]}
        | {"iscrowd": 0}
        for n, (i, k, b) in enumerate(boxes(gt))
    ]
    res = [
        {"image_id": i, "category_id": k, "bbox": b, "score": s}
        for (i, k, b), s in zip(boxes(dt), dt["score"].tolist(), strict=True)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = {
            "images": [{"id": i + 1, "width": 0, "height": 0} for i in range(len(ids))],
            "categories": [{"id": k, "name": c} for c, k in cat.items()],
            "annotations": anns,
        }
        cg.createIndex()
        cd = cg.loadRes(res)
        ev = COCOeval(cg, cd, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out: dict[str, Any] = {k: float(v) for k, v in zip(STAT_KEYS, ev.stats, strict=True)}
    p = ev.eval["precision"]
    for k, name in enumerate(CLASSES):
        s = p[:, :, k, 0, -1]
        out[f"ap[{name}]"] = float(np.mean(s[s > -1])) if (s > -1).any() else -1.0
    return out


def flatten(m: dict[str, Any]) -> dict[str, float]:
    out = {k: (-1.0 if m[k] is None else float(m[k])) for k in STAT_KEYS}
    for name, v in m["ap_per_class"].items():
        out[f"ap[{name}]"] = -1.0 if v is None else float(v)
    return out


def run(images: int, detections: int, seed: int) -> dict[str, float]:
    """Time both on the same data; the seconds, the speed-up and the largest value difference."""
    gt, dt, ids = generate(images, detections, seed)
    print(f"{len(ids):,} images, {len(gt):,} ground-truth boxes, {len(dt):,} detections")

    t0 = time.perf_counter()
    ours = coco_metrics(gt, dt, image_ids=ids, classes=CLASSES)
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    ref = pycocotools_metrics(gt, dt, ids)
    t_ref = time.perf_counter() - t0

    flat = flatten(ours)
    diff = max(abs(flat[k] - ref[k]) for k in ref)
    print(f"auditkit coco_metrics : {t_ours:8.3f} s   mAP {ours['map']:.6f}")
    print(f"pycocotools COCOeval  : {t_ref:8.3f} s   mAP {ref['map']:.6f}")
    print(f"ratio (pycocotools / auditkit): {t_ref / t_ours:.2f}x  (goal >= 4x)")
    print(f"max |difference| over {len(ref)} values: {diff:.3g}  (must be <= 1e-12)")
    return {"ours_s": t_ours, "peer_s": t_ref, "speedup": t_ref / t_ours, "max_abs": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--detections", type=int, default=120_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run(args.images, args.detections, args.seed)


if __name__ == "__main__":
    main()
