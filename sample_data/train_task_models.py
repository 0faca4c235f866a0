"""Train the bundled detector (steel-det) and anomaly model (steel-anomaly); export both to ONNX.

Needs PyTorch (CPU) in its own environment; auditkit itself never imports torch::

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy pillow pyyaml onnx scipy
    /tmp/torchvenv/bin/python sample_data/train_task_models.py

Training images come from the sample generator with seed 7 (never 2026, the seed of the
bundled sample sets), with box and mask ground truth (:mod:`auditkit.sample.layouts`), kept in
memory. Deterministic on one thread (fixed seeds, fixed data order).

* ``steel-det``: a small anchor-free grid detector (stride 8 on a 64 x 64 input: 64 cells),
  exported in the **Ultralytics raw layout**: output ``output0`` ``(batch, 4 + 4, 64)``, per
  cell ``cx, cy, w, h`` in input pixels and the sigmoid scores of ``scratch, pit, inclusion,
  crack``. auditkit runs the class-wise NMS. Decoding inside the graph (YOLOv5 style):
  ``cx = (gx + 2 sigmoid(tx) - 0.5) * 8``, ``w = 16 (2 sigmoid(tw))^2``.
* ``steel-anomaly``: a small fully convolutional segmenter trained on the defect masks,
  exported with **anomalib's output names**: ``anomaly_map`` ``(batch, 1, 64, 64)`` (per-pixel
  defect probability), ``pred_score`` ``(batch,)`` (the highest 4 x 4 average of the map) and
  ``pred_label`` ``(batch,)`` (``pred_score >= 0.5``, a threshold baked into the export).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
import yaml
from PIL import Image
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from auditkit.sample.layouts import DEFECTS, records  # noqa: E402

SIDE = 64
STRIDE = 8
GRID = SIDE // STRIDE
MEAN, STD = 0.5, 0.25
VENDOR = "Example Vision Systems"


def load(n: int, seed: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray] | None], np.ndarray]:
    """Inputs preprocessed exactly as the cards declare (Pillow bilinear 128 -> 64), the box
    (class, x1 y1 x2 y2 in input pixels) of each image, and masks at 64 x 64 (mean > 0.5)."""
    x = np.empty((n, 1, SIDE, SIDE), dtype=np.float32)
    boxes: list[tuple[int, np.ndarray] | None] = []
    masks = np.zeros((n, SIDE, SIDE), dtype=np.float32)
    for i, r in enumerate(records(n, seed)):
        small = Image.fromarray(r.pixels, "L").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
        x[i, 0] = (np.asarray(small, dtype=np.float32) / np.float32(255.0) - MEAN) / STD
        scale = SIDE / r.pixels.shape[1]
        box = r.box
        boxes.append(None if box is None else (DEFECTS.index(r.label), np.array(box) * scale))
        masks[i] = r.mask.reshape(SIDE, 2, SIDE, 2).mean(axis=(1, 3)) > 0.5
    return x, boxes, masks


def block(cin: int, cout: int, pool: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Detector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            block(1, 16), block(16, 32), block(32, 48), block(48, 64, pool=False)
        )
        self.head = nn.Conv2d(64, 4 + len(DEFECTS), 1)
        gy, gx = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij")
        self.register_buffer("gx", gx.reshape(1, -1).float())
        self.register_buffer("gy", gy.reshape(1, -1).float())

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten(2)  # (B, 8, 64)

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(raw)
        cx = (self.gx + 2 * t[:, 0] - 0.5) * STRIDE
        cy = (self.gy + 2 * t[:, 1] - 0.5) * STRIDE
        w = 16 * (2 * t[:, 2]) ** 2
        h = 16 * (2 * t[:, 3]) ** 2
        return torch.cat([torch.stack([cx, cy, w, h], dim=1), t[:, 4:]], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.raw(x))  # Ultralytics raw (B, 4 + nc, N)


def _giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GIoU of boxes given as cx cy w h, row by row."""
    a1, a2 = a[:, :2] - a[:, 2:] / 2, a[:, :2] + a[:, 2:] / 2
    b1, b2 = b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2
    inter = (torch.min(a2, b2) - torch.max(a1, b1)).clamp(min=0).prod(dim=1)
    union = a[:, 2:].prod(dim=1) + b[:, 2:].prod(dim=1) - inter
    hull = (torch.max(a2, b2) - torch.min(a1, b1)).prod(dim=1)
    return inter / union - (hull - union) / hull


def detector_targets(boxes: list[tuple[int, np.ndarray] | None]) -> tuple[np.ndarray, ...]:
    """Per image and cell: class targets (B, nc, N), box targets (B, 4, N) and a positive mask;
    a box is assigned to the cell holding its centre and the two nearest neighbours."""
    n = len(boxes)
    cls = np.zeros((n, len(DEFECTS), GRID * GRID), dtype=np.float32)
    box = np.zeros((n, 4, GRID * GRID), dtype=np.float32)
    pos = np.zeros((n, GRID * GRID), dtype=bool)
    for i, item in enumerate(boxes):
        if item is None:
            continue
        c, (x1, y1, x2, y2) = item
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        gx, gy = min(int(cx // STRIDE), GRID - 1), min(int(cy // STRIDE), GRID - 1)
        fx, fy = cx / STRIDE - gx, cy / STRIDE - gy
        cells = [(gx, gy), (gx + (1 if fx > 0.5 else -1), gy), (gx, gy + (1 if fy > 0.5 else -1))]
        for ux, uy in cells:
            if 0 <= ux < GRID and 0 <= uy < GRID:
                k = uy * GRID + ux
                cls[i, c, k] = 1.0
                box[i, :, k] = (cx, cy, max(w, 1.0), max(h, 1.0))
                pos[i, k] = True
    return cls, box, pos


def fit(
    net: nn.Module,
    gen: np.random.Generator,
    n: int,
    epochs: int,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
) -> nn.Module:
    """AdamW with a one-cycle schedule, batches of 64 in a fresh permutation each epoch;
    ``batch_loss(indices)`` gives a batch's loss (it may draw from ``gen``)."""
    opt = torch.optim.AdamW(net.parameters(), lr=4e-3, weight_decay=1e-4)
    steps = epochs * ((n + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=steps)
    for epoch in range(epochs):
        net.train()
        order = torch.from_numpy(gen.permutation(n))
        total, t0 = 0.0, time.perf_counter()
        for start in range(0, n, 64):
            idx = order[start : start + 64]
            loss = batch_loss(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        print(
            f"  epoch {epoch + 1:2d}/{epochs} loss {total / n:.4f} "
            f"({time.perf_counter() - t0:.1f}s)",
            flush=True,
        )
    return net.eval()


def train_detector(x: np.ndarray, boxes: list, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    net = Detector()
    cls_t, box_t, pos_t = (torch.from_numpy(a) for a in detector_targets(boxes))
    xt = torch.from_numpy(x)
    # positives are 3 cells of 64 in half the images: weight them up
    bce = nn.BCEWithLogitsLoss(reduction="sum", pos_weight=torch.tensor(4.0))

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        raw = net.raw(xt[idx])
        pred = net.decode(raw)
        pos = pos_t[idx]
        loss_cls = bce(raw[:, 4:], cls_t[idx]) / max(int(pos.sum()), 1)
        p = pred[:, :4].permute(0, 2, 1)[pos]
        t = box_t[idx][:, :4].permute(0, 2, 1)[pos]
        loss_box = (1 - _giou(p, t)).mean() if len(p) else raw.sum() * 0
        return loss_cls + 2.0 * loss_box

    return fit(net, gen, len(x), epochs, batch_loss)


class Segmenter(nn.Module):
    """Encoder to 1/4 resolution, one skip from 1/2, bilinear upsampling to the input."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = block(1, 16)  # 32
        self.enc2 = block(16, 24)  # 16
        self.mid = block(24, 32, pool=False)  # 16
        self.up = nn.Sequential(
            nn.Conv2d(32 + 16, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 1, 1),
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        m = self.mid(self.enc2(e1))
        m = nn.functional.interpolate(m, scale_factor=2.0, mode="bilinear", align_corners=False)
        out = self.up(torch.cat([m, e1], dim=1))  # 32 x 32
        return nn.functional.interpolate(
            out, size=(SIDE, SIDE), mode="bilinear", align_corners=False
        )


class AnomalibExport(nn.Module):
    def __init__(self, net: Segmenter) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        amap = torch.sigmoid(self.net.logits(x))
        score = nn.functional.avg_pool2d(amap, 4, stride=1).amax(dim=(1, 2, 3))
        return score, amap, score >= 0.5


def train_segmenter(x: np.ndarray, masks: np.ndarray, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    net = Segmenter()
    xt, mt = torch.from_numpy(x), torch.from_numpy(masks[:, None])
    bce = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(4.0))

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        xb, mb = xt[idx], mt[idx]
        if gen.random() < 0.5:
            xb, mb = torch.flip(xb, dims=(3,)), torch.flip(mb, dims=(3,))
        logits = net.logits(xb)
        prob = torch.sigmoid(logits)
        dice = 1 - (2 * (prob * mb).sum() + 1) / (prob.sum() + mb.sum() + 1)
        return bce(logits, mb) + dice

    return fit(net, gen, len(x), epochs, batch_loss)


def _finish(path: Path, meta: dict[str, str], version: str, description: str) -> None:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = VENDOR
    model.producer_version = version
    model.doc_string = description
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _static_output(path: Path, name: str, dims: list[int]) -> None:
    """Declare the output's static dimensions after the batch (the TorchScript exporter leaves
    those of a Concat symbolic), so its layout can be read from the graph."""
    model = onnx.load(str(path))
    out = next(o for o in model.graph.output if o.name == name)
    for d, value in zip(out.type.tensor_type.shape.dim[1:], dims, strict=True):
        d.Clear()
        d.dim_value = value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _card(name: str, body: dict, out: Path) -> Path:
    card = {
        "schema": "auditkit.card/v1",
        "name": name,
        "version": "1.0.0",
        "vendor": VENDOR,
        **body,
    }
    path = out / f"{name}.card.yaml"
    path.write_text(
        "# Synthetic example model card (Apache-2.0). Made by sample_data/train_task_models.py.\n"
        + yaml.safe_dump(card, sort_keys=False),
        encoding="utf-8",
    )
    return path


INPUT = {
    "name": "image",
    "layout": "NCHW",
    "color": "L",
    "height": SIDE,
    "width": SIDE,
    "resize": "bilinear",
    "mean": [MEAN],
    "std": [STD],
}


def export_detector(net: nn.Module, out: Path) -> Path:
    path = out / "steel-det.onnx"
    torch.onnx.export(
        net,
        (torch.zeros(1, 1, SIDE, SIDE),),
        str(path),
        input_names=["image"],
        output_names=["output0"],
        dynamic_axes={"image": {0: "batch"}, "output0": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    description = "Steel surface defect detector (synthetic example), Ultralytics raw output."
    names = {k: name for k, name in enumerate(DEFECTS)}
    meta = {
        "names": repr(names),
        "imgsz": f"[{SIDE}, {SIDE}]",
        "stride": str(STRIDE),
        "task": "detect",
        "auditkit.card": "steel-det.card.yaml",
    }
    _finish(path, meta, "1.0.0", description)
    _static_output(path, "output0", [4 + len(DEFECTS), GRID * GRID])
    _card(
        "steel-det",
        {
            "task": "detection",
            "description": description,
            "input": {**INPUT, "resize_mode": "letterbox", "pad_value": 114},
            "output": {"name": "output0", "convention": "ultralytics_raw"},
            "classes": list(DEFECTS),
            "good_class": "good",
            "positive_classes": list(DEFECTS),
            "operating_threshold": 0.3,
            "detection": {
                "nms_iou": 0.45,
                "score_threshold": 0.001,
                "max_detections": 100,
                "match_iou": 0.3,
            },
            "declared": {"escape_rate": 0.05, "overkill_rate": 0.05},
        },
        out,
    )
    return path


def export_anomaly(net: nn.Module, out: Path) -> Path:
    path = out / "steel-anomaly.onnx"
    names = ["pred_score", "anomaly_map", "pred_label"]
    torch.onnx.export(
        AnomalibExport(net).eval(),
        (torch.zeros(1, 1, SIDE, SIDE),),
        str(path),
        input_names=["image"],
        output_names=names,
        dynamic_axes={"image": {0: "batch"}, **{n: {0: "batch"} for n in names}},
        opset_version=17,
        dynamo=False,
    )
    description = "Steel surface anomaly model (synthetic example), anomalib output names."
    _finish(
        path,
        {
            "task": "segmentation",
            "auditkit.card": "steel-anomaly.card.yaml",
            "image_threshold": "0.5",
            "pixel_threshold": "0.5",
        },
        "1.0.0",
        description,
    )
    _card(
        "steel-anomaly",
        {
            "task": "anomaly",
            "description": description,
            "input": INPUT,
            "output": {"convention": "anomalib"},
            "classes": ["good", "anomalous"],
            "good_class": "good",
            "positive_classes": ["anomalous"],
            # chosen on the training data: escape about 8 %, overkill about 0.5 % there; the
            # export's own pred_label uses 0.5
            "operating_threshold": 0.15,
            "maps": {"pixel_threshold": 0.5, "threshold_source": "card"},
            "declared": {"escape_rate": 0.05, "overkill_rate": 0.05},
        },
        out,
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="training images to generate")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (not 2026!)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--det-epochs", type=int, default=16)
    parser.add_argument("--out", type=Path, default=REPO / "sample_data" / "models")
    parser.add_argument("--only", choices=["steel-det", "steel-anomaly"], action="append")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    x, boxes, masks = load(args.n, args.seed)
    print(
        f"{len(x)} training images ({sum(b is not None for b in boxes)} with a defect), "
        f"{time.perf_counter() - t0:.0f}s"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.only or "steel-det" in args.only:
        print("steel-det")
        net = train_detector(x, boxes, args.det_epochs, 2001)
        print(f"  wrote {export_detector(net, args.out)}")
    if not args.only or "steel-anomaly" in args.only:
        print("steel-anomaly")
        net = train_segmenter(x, masks, args.epochs, 2002)
        print(f"  wrote {export_anomaly(net, args.out)}")
    print(json.dumps({"seconds": round(time.perf_counter() - t0)}))


if __name__ == "__main__":
    main()
