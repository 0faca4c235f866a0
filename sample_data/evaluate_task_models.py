"""Sanity check of the bundled detector and anomaly model: replay, metrics and a report.

    .venv/bin/python sample_data/evaluate_task_models.py [--n 400] [--models sample_data/models]

Builds the seed-2026 sample (the images of the bundled sample sets) with its box and mask
ground truth in a temporary folder, replays ``steel-det`` and ``steel-anomaly`` through
auditkit (onnxruntime only), evaluates each against its task's shipped rubric
(``industrial-aoi-detection``, ``anomaly-inspection``), renders an unsigned report, and prints
the task metrics.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from auditkit.audit import run_evaluate, run_metrics, run_report  # noqa: E402
from auditkit.models.card import load_card  # noqa: E402
from auditkit.models.onnx_model import DeployedModel  # noqa: E402
from auditkit.replay.pipeline import ReplaySettings, replay  # noqa: E402
from auditkit.sample.layouts import write_dataset  # noqa: E402

#: each model is judged by the shipped rubric of its task (a classification rubric refuses them)
RUBRIC = {"steel-det": "industrial-aoi-detection", "steel-anomaly": "anomaly-inspection"}
SHOWN = {
    "steel-det": (
        "map",
        "map_50",
        "map_75",
        "ar_100",
        "ap",
        "detection_escape_rate",
        "detection_overkill_rate",
        "box_miss_rate",
        "escape_rate",
        "overkill_rate",
    ),
    "steel-anomaly": (
        "image_auroc",
        "image_f1_max",
        "pixel_auroc",
        "aupro",
        "iou",
        "dice",
        "escape_rate",
        "overkill_rate",
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--models", type=Path, default=REPO / "sample_data" / "models")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(Path(tmp) / "data", args.n, 2026)
        n_boxes = 0 if data.boxes is None else len(data.boxes)
        print(f"data: {len(data.samples)} images, {n_boxes} boxes")
        for name, shown in SHOWN.items():
            model_path = args.models / f"{name}.onnx"
            card_path = args.models / f"{name}.card.yaml"
            model = DeployedModel.load(model_path, load_card(card_path))
            run = Path(tmp) / f"run-{name}"
            replay(data, model, run, ReplaySettings(scenario="offline"), card_path=card_path)
            metrics = run_metrics(run)["metrics"]
            verdicts = run_evaluate(run, RUBRIC[name])
            report = run_report(run, sign=False)
            print(
                f"\n{name} ({model.convention}): verdict {verdicts['verdict']}, "
                f"report {report.pdf.stat().st_size:,} bytes"
            )
            for m in metrics:
                if m["name"] in shown and (not m["slice"] or "class" in m["slice"]):
                    where = f" {m['slice']}" if m["slice"] else ""
                    kn = f" ({m['k']}/{m['n']})" if m.get("k") is not None else ""
                    value = "n/a" if m["value"] is None else f"{m['value']:.4f}"
                    print(f"  {m['name']}{where}: {value}{kn}")


if __name__ == "__main__":
    main()
