"""Train the two bundled example classifiers (steel-v1, steel-v2) and export them to ONNX.

Needs PyTorch (CPU) in its own environment; auditkit itself never imports torch::

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy pillow pyyaml onnx
    /tmp/torchvenv/bin/python sample_data/train_models.py --data /tmp/steel-train-seed7

The training images come from the same generator as ``sample_data/steel`` but with another seed
(7 by default), so the committed sample is data the models never saw. The two models differ on
purpose, to give an audit something to find:

* ``steel-v1`` is trained on data in which dim lighting is rare (most dim images dropped), so its
  escape rate is clearly worse under ``lighting == dim``.
* ``steel-v2`` is trained on all the data with dim images weighted up, and runs at a lower
  operating threshold: fewer escapes under dim light, a little more overkill.

Training is deterministic on one thread (fixed seeds, fixed data order).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import yaml
from PIL import Image
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from auditkit.sample.generator import generate  # noqa: E402

CLASSES = ["good", "scratch", "pit", "inclusion", "crack"]
SIDE = 64
MEAN = 0.5
STD = 0.25
INPUT_NAME = "image"
OUTPUT_NAME = "probs"
VENDOR = "Example Vision Systems"

MODELS = {
    "steel-v1": {
        "version": "1.0.0",
        "keep_dim": 0.15,  # fraction of dim-lit training images kept
        "dim_weight": 1.0,
        "threshold": 0.5,
        "description": (
            "Steel strip surface defect classifier, first release. Trained on nominal line "
            "lighting."
        ),
        "declared": {
            "escape_rate": 0.02,
            "overkill_rate": 0.05,
            "accuracy": 0.97,
            "p99_latency_ms": 5.0,
        },
    },
    "steel-v2": {
        "version": "2.0.0",
        "keep_dim": 1.0,
        "dim_weight": 3.0,
        "threshold": 0.3,
        "description": (
            "Steel strip surface defect classifier, second release. Retrained with dim-light "
            "images; operating threshold lowered to reduce escapes."
        ),
        "declared": {
            "escape_rate": 0.015,
            "overkill_rate": 0.06,
            "accuracy": 0.97,
            "p99_latency_ms": 5.0,
        },
    },
}


def load_images(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Preprocess every image exactly as the model card declares; return (x, y, is_dim)."""
    import csv

    with (root / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    x = np.empty((len(rows), 1, SIDE, SIDE), dtype=np.float32)
    for i, row in enumerate(rows):
        with Image.open(root / row["path"]) as image:
            small = image.convert("L").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
        x[i, 0] = (np.asarray(small, dtype=np.float32) / np.float32(255.0) - MEAN) / STD
    y = np.array([CLASSES.index(r["label"]) for r in rows], dtype=np.int64)
    dim = np.array([r["lighting"] == "dim" for r in rows])
    return x, y, dim


class SteelNet(nn.Module):
    """Three conv blocks (16/32/64), global average + max pooling, a linear head."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(block(1, 16), block(16, 32), block(32, 64))
        self.head = nn.Linear(128, len(CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)


class WithSoftmax(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


def train(x: np.ndarray, y: np.ndarray, weights: np.ndarray, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    net = SteelNet()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    steps_per_epoch = (len(x) + 63) // 64
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=3e-3, total_steps=epochs * steps_per_epoch
    )
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    wt = torch.from_numpy(weights.astype(np.float32))
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    for epoch in range(epochs):
        net.train()
        order = torch.from_numpy(gen.permutation(len(x)))
        total, correct, t0 = 0.0, 0, time.perf_counter()
        for start in range(0, len(x), 64):
            idx = order[start : start + 64]
            xb = xt[idx]
            # Flips keep the rolling direction horizontal; the labels do not change.
            if gen.random() < 0.5:
                xb = torch.flip(xb, dims=(3,))
            if gen.random() < 0.5:
                xb = torch.flip(xb, dims=(2,))
            logits = net(xb)
            loss = (loss_fn(logits, yt[idx]) * wt[idx]).sum() / wt[idx].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yt[idx]).sum())
        print(
            f"  epoch {epoch + 1:2d}/{epochs}  loss {total / len(x):.4f}  "
            f"train acc {correct / len(x):.4f}  ({time.perf_counter() - t0:.1f}s)",
            flush=True,
        )
    net.eval()
    return net


def export(net: nn.Module, name: str, spec: dict, out_dir: Path) -> Path:
    wrapped = WithSoftmax(net).eval()
    path = out_dir / f"{name}.onnx"
    dummy = torch.zeros(1, 1, SIDE, SIDE)
    torch.onnx.export(
        wrapped,
        (dummy,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    model = onnx.load(str(path))
    preprocessing = {
        "color": "L",
        "resize": [SIDE, SIDE],
        "filter": "bilinear",
        "scale": 1 / 255,
        "mean": [MEAN],
        "std": [STD],
        "layout": "NCHW",
    }
    meta = {
        "classes": json.dumps(CLASSES),
        "preprocessing": json.dumps(preprocessing),
        "auditkit.card": f"{name}.card.yaml",
        "auditkit.card.name": name,
        "auditkit.card.version": spec["version"],
        "good_class": "good",
        "operating_threshold": str(spec["threshold"]),
    }
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value
    model.producer_name = VENDOR
    model.producer_version = spec["version"]
    model.doc_string = spec["description"]
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def write_card(name: str, spec: dict, out_dir: Path) -> Path:
    card = {
        "schema": "auditkit.card/v1",
        "name": name,
        "version": spec["version"],
        "vendor": VENDOR,
        "task": "classification",
        "description": spec["description"],
        "input": {
            "name": INPUT_NAME,
            "layout": "NCHW",
            "color": "L",
            "height": SIDE,
            "width": SIDE,
            "resize": "bilinear",
            "mean": [MEAN],
            "std": [STD],
        },
        "output": {"name": OUTPUT_NAME, "kind": "probabilities"},
        "classes": CLASSES,
        "good_class": "good",
        "positive_classes": CLASSES[1:],
        "operating_threshold": spec["threshold"],
        "declared": spec["declared"],
    }
    path = out_dir / f"{name}.card.yaml"
    path.write_text(
        "# Synthetic example model card (Apache-2.0). Made by sample_data/train_models.py.\n"
        + yaml.safe_dump(card, sort_keys=False),
        encoding="utf-8",
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/steel-train-seed7"))
    parser.add_argument("--n", type=int, default=8000, help="training images to generate")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (not 2026!)")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--out", type=Path, default=REPO / "sample_data" / "models")
    parser.add_argument("--only", choices=sorted(MODELS), action="append")
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if not (args.data / "manifest.csv").exists():
        print(f"generating {args.n} training images (seed {args.seed}) into {args.data}")
        generate(args.n, args.seed, args.data)
    x, y, dim = load_images(args.data)
    print(f"loaded {len(x)} images ({int(dim.sum())} dim)")
    args.out.mkdir(parents=True, exist_ok=True)
    for offset, (name, spec) in enumerate(MODELS.items()):
        if args.only and name not in args.only:
            continue
        pick = np.random.default_rng(100 + offset).random(len(x))
        keep = ~dim | (pick < spec["keep_dim"])
        weights = np.where(dim, spec["dim_weight"], 1.0)[keep]
        print(f"{name}: training on {int(keep.sum())} images ({int((dim & keep).sum())} dim)")
        net = train(x[keep], y[keep], weights, args.epochs, seed=1000 + offset)
        print(f"  wrote {export(net, name, spec, args.out)}")
        print(f"  wrote {write_card(name, spec, args.out)}")


if __name__ == "__main__":
    main()
