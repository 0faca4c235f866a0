"""The model card: what the vendor declares about a deployed model.

A card is YAML (``auditkit.card/v1``). It says how to feed the model (preprocessing is part of
the deployed model: a different resize filter can silently halve accuracy), how to read its
output, which classes are defects, the operating threshold, and the vendor's declared claims,
which a rubric may use as thresholds (``threshold_ref: declared.escape_rate``).

The task (``classification``, ``detection``, ``anomaly``, ``segmentation``) and the output
``convention`` say how raw outputs become predictions (docs/model-conventions.md); a card
without ``convention`` has it detected from the graph (:mod:`auditkit.models.adapters`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from auditkit.errors import ModelError, not_utf8_place

CARD_SCHEMA = "auditkit.card/v1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    """How an image becomes the model's input tensor.

    The tensor is ``((pixels / 255) - mean) / std`` after converting to ``color`` and resizing to
    ``width`` x ``height`` with ``resize`` (Pillow's filter of that name). ``resize_mode``
    ``stretch`` (default) resizes to the input size whatever the aspect ratio; ``letterbox``
    (Ultralytics) scales by ``min(width / w0, height / h0)``, keeps the aspect ratio and pads
    the rest with ``pad_value`` (0–255, before normalisation), centred.
    """

    name: str
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    color: Literal["L", "RGB"] = "L"
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    resize: Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"] = "bilinear"
    mean: list[float] = Field(default_factory=lambda: [0.0])
    std: list[float] = Field(default_factory=lambda: [1.0])
    dtype: Literal["float32"] = "float32"
    resize_mode: Literal["stretch", "letterbox"] = "stretch"
    pad_value: float = Field(default=114.0, ge=0, le=255)

    @property
    def channels(self) -> int:
        return 1 if self.color == "L" else 3


#: output conventions per task (docs/model-conventions.md)
CONVENTIONS: dict[str, tuple[str, ...]] = {
    "classification": ("classifier",),
    "detection": (
        "ultralytics_raw",
        "nms_included",
        "boxes_scores_labels",
        "rtdetr",
        "torchvision",
        "mmdeploy_end2end",
        "paddle_nms",
        "gfl_raw",
    ),
    "anomaly": ("anomalib",),
    "segmentation": ("segmentation_classes", "segmentation_defect_map", "segmentation_labels"),
}
Convention = Literal[
    "classifier",
    "ultralytics_raw",
    "nms_included",
    "boxes_scores_labels",
    "rtdetr",
    "torchvision",
    "mmdeploy_end2end",
    "paddle_nms",
    "gfl_raw",
    "anomalib",
    "segmentation_classes",
    "segmentation_defect_map",
    "segmentation_labels",
]


class OutputSpec(_Strict):
    """Which outputs hold the predictions and how to read them.

    ``kind``: ``probabilities`` (softmax already applied; for a defect map, values in [0, 1]),
    ``logits`` (auditkit applies softmax over classes, or the sigmoid for a one-channel map),
    ``sigmoid`` (independent per-class probabilities, multi-label) or ``sigmoid_logits``
    (auditkit applies the sigmoid per class). ``name`` is the output of single-output
    conventions (default: the model's only output). ``names`` maps roles to output names for
    multi-output conventions: ``boxes``/``scores``/``labels``, ``dets``/``labels``
    (MMDeploy), ``bbox``/``bbox_num`` (PaddleDetection NMS) and ``pred_score``/
    ``anomaly_map``/``pred_label``/``pred_mask`` (default: those names; PaddleDetection's are
    found by shape). ``label_offset`` is subtracted from a detector's class labels to index the
    card's classes (default: 1 for ``torchvision``, whose label 0 is the background, else 0).
    """

    name: str | None = None
    kind: Literal["probabilities", "logits", "sigmoid", "sigmoid_logits"] = "probabilities"
    convention: Convention | None = None
    names: dict[str, str] = Field(default_factory=dict)
    #: detection boxes in input pixels (default) or normalised to [0, 1] of the input size
    box_units: Literal["pixels", "normalized"] = "pixels"
    label_offset: int | None = Field(default=None, ge=0)

    def output_name(self, role: str) -> str:
        return self.names.get(role, role)


class DetectionSpec(_Strict):
    """How a detector's raw boxes become detections, and how the inspection view matches them.

    ``score_threshold``: boxes with a score strictly above it are kept (before NMS, as
    Ultralytics' ``conf``); low by default so that COCO mAP sees the whole ranking. A box with
    a score at or above the card's ``operating_threshold`` rejects the image. ``nms_iou``:
    class-wise NMS drops a box whose IoU with a higher-scoring kept box of its class is
    strictly above it. ``match_iou``: the IoU at which a detection finds a ground-truth defect
    in the inspection view (escape/overkill).
    """

    nms_iou: float = Field(default=0.45, gt=0, le=1)
    score_threshold: float = Field(default=0.001, ge=0, le=1)
    max_detections: int = Field(default=300, ge=1)
    match_iou: float = Field(default=0.5, gt=0, le=1)
    class_agnostic_nms: bool = False
    #: GFL/PP-PicoDet heads without NMS: the stride of each head level (default: read from
    #: each level's anchor count and the input size)
    strides: list[int] | None = None


class MapSpec(_Strict):
    """Anomaly and segmentation maps: ``pixel_threshold`` makes a predicted mask
    (``map >= pixel_threshold``) when the model outputs none; ``threshold_source`` ``model``
    takes the image decision from the model's own ``pred_label`` (a threshold baked into the
    export), ``card`` from ``pred_score >= operating_threshold``."""

    pixel_threshold: float = 0.5
    threshold_source: Literal["card", "model"] = "card"


class DeclaredClaims(_Strict):
    """Performance the vendor declares (AI Act Art. 13(3)(b)(ii), 15(3)); rates are fractions."""

    model_config = ConfigDict(extra="allow", frozen=True)

    escape_rate: float | None = Field(default=None, ge=0, le=1)
    overkill_rate: float | None = Field(default=None, ge=0, le=1)
    accuracy: float | None = Field(default=None, ge=0, le=1)
    p99_latency_ms: float | None = Field(default=None, gt=0)


class ModelCard(_Strict):
    schema_: str = Field(alias="schema")
    name: str
    version: str
    vendor: str
    task: Literal["classification", "detection", "anomaly", "segmentation"] = "classification"
    description: str = ""
    input: InputSpec
    output: OutputSpec = Field(default_factory=OutputSpec)
    #: empty: read from the model's ``metadata_props`` (``names`` or ``classes``) when loaded
    classes: list[str] = Field(default_factory=list)
    good_class: str = "good"
    #: default: every class but ``good_class``
    positive_classes: list[str] = Field(default_factory=list)
    operating_threshold: float
    declared: DeclaredClaims = Field(default_factory=DeclaredClaims)
    detection: DetectionSpec = Field(default_factory=DetectionSpec)
    maps: MapSpec = Field(default_factory=MapSpec)

    @model_validator(mode="before")
    @classmethod
    def _default_positive_classes(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("classes") and not data.get("positive_classes"):
            good = data.get("good_class", "good")
            data = {**data, "positive_classes": [c for c in data["classes"] if c != good]}
        return data

    @model_validator(mode="after")
    def _check(self) -> ModelCard:
        if self.schema_ != CARD_SCHEMA:
            raise ValueError(f"schema must be {CARD_SCHEMA!r}, got {self.schema_!r}")
        if self.classes and not self.positive_classes:
            raise ValueError("no positive class: every class is the good class")
        if not self.classes and self.positive_classes:
            raise ValueError("positive_classes needs classes")
        unknown = set(self.positive_classes) - set(self.classes)
        if unknown:
            raise ValueError(f"positive_classes not in classes: {sorted(unknown)}")
        if self.good_class in self.positive_classes:
            raise ValueError(f"good_class {self.good_class!r} cannot be a positive class")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes has duplicates")
        # no classes: they come from the model's metadata_props when it is loaded
        if self.task == "classification" and len(self.classes) == 1:
            raise ValueError("a classifier needs at least 2 classes")
        if self.task == "classification" and self.output.name is None:
            raise ValueError("output.name is required for a classifier")
        conv = self.output.convention
        if conv is not None and conv not in CONVENTIONS[self.task]:
            raise ValueError(
                f"output convention {conv!r} does not fit task {self.task!r} "
                f"(expected one of {', '.join(CONVENTIONS[self.task])})"
            )
        # anomaly scores need not be probabilities (raw anomalib scores are unbounded)
        if self.task != "anomaly" and not 0.0 <= self.operating_threshold <= 1.0:
            raise ValueError(
                f"operating_threshold must lie in [0, 1] for task {self.task!r}, "
                f"got {self.operating_threshold}"
            )
        n = self.input.channels
        if len(self.input.mean) not in (1, n) or len(self.input.std) not in (1, n):
            raise ValueError(f"mean/std need 1 or {n} values")
        if any(s == 0 for s in self.input.std):
            raise ValueError("std values must be non-zero")
        return self

    def with_classes(self, names: list[str]) -> ModelCard:
        """This card with ``classes`` (and the default ``positive_classes``) filled in."""
        data = self.model_dump(by_alias=True)
        data.update(classes=list(names), positive_classes=[])
        return ModelCard.model_validate(data)

    def defect_score_rule(self) -> str:
        positives = ", ".join(self.positive_classes)
        rule = {
            "classification": f"defect score = sum of class probabilities over {positives}",
            "detection": f"defect score = highest box score of classes {positives}",
            "anomaly": "defect score = the model's pred_score",
            "segmentation": "defect score = highest pixel defect probability",
        }[self.task]
        if self.task == "classification" and self.output.kind in ("sigmoid", "sigmoid_logits"):
            rule = f"defect score = highest class probability over {positives}"
        if self.task == "anomaly" and self.maps.threshold_source == "model":
            return f"{rule}; reject when the model's pred_label is set"
        return f"{rule}; reject when score >= {self.operating_threshold}"


def load_card(path: Path) -> ModelCard:
    """Read and validate a model card; every problem is a one-line :class:`ModelError`."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model card not found: {path}") from None
    except UnicodeDecodeError:
        place = not_utf8_place(path.read_bytes())
        raise ModelError(f"model card {path} is not UTF-8: {place}; save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ModelError(f"model card {path} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(raw, dict):
        raise ModelError(f"model card {path} must be a mapping")
    try:
        return ModelCard.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise ModelError(f"model card {path}: {where}: {err['msg']}") from None


def card_beside(model_path: Path) -> Path:
    """The card a model ships with: ``<stem>.card.yaml`` in the model's folder."""
    return model_path.with_name(f"{model_path.stem}.card.yaml")
