"""The model card: what the vendor declares about a deployed model.

A card is YAML (``auditkit.card/v1``). It says how to feed the model (preprocessing is part of
the deployed model: a different resize filter can silently halve accuracy), how to read its
output, which classes are defects, the operating threshold, and the vendor's declared claims,
which a rubric may use as thresholds (``threshold_ref: declared.escape_rate``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from auditkit.errors import ModelError

CARD_SCHEMA = "auditkit.card/v1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    """How an image becomes the model's input tensor.

    The tensor is ``((pixels / 255) - mean) / std`` after converting to ``color`` and resizing to
    ``width`` x ``height`` with ``resize`` (Pillow's filter of that name).
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

    @property
    def channels(self) -> int:
        return 1 if self.color == "L" else 3


class OutputSpec(_Strict):
    """Which output holds the class scores and whether they are probabilities or logits."""

    name: str
    kind: Literal["probabilities", "logits"] = "probabilities"


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
    task: Literal["classification"]
    description: str = ""
    input: InputSpec
    output: OutputSpec
    classes: list[str] = Field(min_length=2)
    good_class: str = "good"
    positive_classes: list[str] = Field(min_length=1)
    operating_threshold: float = Field(ge=0, le=1)
    declared: DeclaredClaims = Field(default_factory=DeclaredClaims)

    @model_validator(mode="after")
    def _check(self) -> ModelCard:
        if self.schema_ != CARD_SCHEMA:
            raise ValueError(f"schema must be {CARD_SCHEMA!r}, got {self.schema_!r}")
        unknown = set(self.positive_classes) - set(self.classes)
        if unknown:
            raise ValueError(f"positive_classes not in classes: {sorted(unknown)}")
        if self.good_class in self.positive_classes:
            raise ValueError(f"good_class {self.good_class!r} cannot be a positive class")
        n = self.input.channels
        if len(self.input.mean) not in (1, n) or len(self.input.std) not in (1, n):
            raise ValueError(f"mean/std need 1 or {n} values")
        if any(s == 0 for s in self.input.std):
            raise ValueError("std values must be non-zero")
        return self

    def defect_score_rule(self) -> str:
        return (
            f"defect score = sum of class probabilities over {', '.join(self.positive_classes)}; "
            f"reject when score >= {self.operating_threshold}"
        )


def load_card(path: Path) -> ModelCard:
    """Read and validate a model card; every problem is a one-line :class:`ModelError`."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model card not found: {path}") from None
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
