"""Rubric format ``auditkit.rubric/v1``: standards as versioned data.

A rubric lists criteria; each says which metric it reads, the requirement (operator, threshold
and where the threshold comes from), how much evidence it needs, its severity, and which clause
of which reference it evidences. The decision rule (DOMAIN.md §3) is stated once in ``defaults``
and may be overridden per criterion. docs/rubric-format.md describes every field.

This version covers metric criteria on the rates and latency in ``metrics.json``; evidence and
attestation criteria, intersections and Holm adjustment are planned (issue "Rubrics and CI gates").
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from auditkit.errors import RubricError
from auditkit.resources import rubrics_dir

RUBRIC_SCHEMA = "auditkit.rubric/v1"

Provenance = Literal[
    "standard", "regulation", "contract", "declared_ifu", "organisation", "regulator"
]
DecisionRule = Literal["guarded_acceptance", "simple_acceptance", "guarded_rejection"]
Outcome = Literal["PASS", "FAIL", "INCONCLUSIVE", "ERROR"]

# Metric names a rubric may use, and what kind of number each is. Rates are binomial (k of n,
# with an interval); quantiles carry order-statistic bounds; values have no interval.
METRICS: dict[str, Literal["rate", "quantile", "value"]] = {
    "escape_rate": "rate",
    "overkill_rate": "rate",
    "detection_rate": "rate",
    "precision": "rate",
    "false_call_share": "rate",
    "accuracy": "rate",
    "f1": "value",
    "latency_p50_ms": "quantile",
    "latency_p90_ms": "quantile",
    "latency_p99_ms": "quantile",
    "throughput_ips": "value",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Statistics(_Strict):
    decision_rule: DecisionRule = "guarded_acceptance"
    confidence_level: float = Field(default=0.95, gt=0.5, lt=1)
    interval: Literal["clopper_pearson", "wilson", "jeffreys"] = "clopper_pearson"
    sided: Literal["one", "two"] = "one"
    multiplicity: Literal["none"] = "none"


class StatisticsOverride(_Strict):
    decision_rule: DecisionRule | None = None


class Applicability(_Strict):
    task: Literal["classification"] = "classification"
    positive_label: str = "defect"
    unit_of_analysis: Literal["part", "image"] = "part"
    slice_keys: list[str] = Field(default_factory=list)


class ThresholdPolicy(_Strict):
    provenance_default: Provenance = "organisation"
    note: str = ""


class Defaults(_Strict):
    statistics: Statistics = Field(default_factory=Statistics)
    on_insufficient_sample: Literal["inconclusive", "fail"] = "inconclusive"


class VerdictPolicy(_Strict):
    """The roll-up of DOMAIN.md §3; written out so the report can print it."""

    reject_if: list[str] = Field(default_factory=lambda: ["any blocker FAIL"])
    hold_if: list[str] = Field(default_factory=lambda: ["any blocker INCONCLUSIVE or ERROR"])
    conditional_if: list[str] = Field(default_factory=lambda: ["any major FAIL"])

    @model_validator(mode="after")
    def _only_default(self) -> VerdictPolicy:
        if self.model_dump() != VerdictPolicy.model_construct().model_dump():
            raise ValueError("only the default verdict policy is supported in this version")
        return self


class Reference(_Strict):
    key: str
    citation: str
    note: str = ""


class MapsTo(_Strict):
    ref: str
    clause: str
    relation: Literal["evidences", "supports", "informative"] = "supports"


class MetricSpec(_Strict):
    name: str
    slice_by: list[str] | None = Field(default=None, max_length=1)
    aggregate: Literal["overall", "each"] = "overall"

    @model_validator(mode="after")
    def _check(self) -> MetricSpec:
        if self.name not in METRICS:
            raise ValueError(f"unknown metric {self.name!r}; known: {', '.join(sorted(METRICS))}")
        if self.aggregate == "each" and not self.slice_by:
            raise ValueError("aggregate 'each' needs slice_by")
        if self.slice_by and self.aggregate != "each":
            raise ValueError("slice_by needs aggregate 'each'")
        return self


class Requirement(_Strict):
    op: Literal["<=", ">="]
    threshold: float | None = None
    threshold_ref: str | None = Field(default=None, pattern=r"^(declared|site)\.[A-Za-z0-9_]+$")
    threshold_provenance: Provenance | None = None
    statistic: Literal["point", "upper_bound", "lower_bound"] = "upper_bound"
    statistics: StatisticsOverride | None = None

    @model_validator(mode="after")
    def _one_threshold(self) -> Requirement:
        if (self.threshold is None) == (self.threshold_ref is None):
            raise ValueError("give exactly one of threshold or threshold_ref")
        return self


class SampleRule(_Strict):
    min_n: int = Field(default=1, ge=1)
    counts: Literal["defective", "good", "all", "measurements"] = "all"
    on_insufficient: Literal["inconclusive", "fail"] | None = None


class Criterion(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    title: str
    kind: Literal["metric"] = "metric"
    maps_to: list[MapsTo] = Field(default_factory=list)
    metric: MetricSpec
    requirement: Requirement
    sample: SampleRule = Field(default_factory=SampleRule)
    severity: Literal["blocker", "major", "minor", "info"]
    rationale: str = ""


class Rubric(_Strict):
    schema_: str = Field(alias="schema")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    title: str
    description: str = ""
    status: Literal["draft", "approved", "retired"] = "draft"
    applicability: Applicability = Field(default_factory=Applicability)
    threshold_policy: ThresholdPolicy = Field(default_factory=ThresholdPolicy)
    defaults: Defaults = Field(default_factory=Defaults)
    verdict_policy: VerdictPolicy = Field(default_factory=VerdictPolicy)
    references: list[Reference] = Field(default_factory=list)
    criteria: list[Criterion] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Rubric:
        if self.schema_ != RUBRIC_SCHEMA:
            raise ValueError(f"schema must be {RUBRIC_SCHEMA!r}, got {self.schema_!r}")
        ids = [c.id for c in self.criteria]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate criterion id(s): {', '.join(duplicates)}")
        keys = {r.key for r in self.references}
        for criterion in self.criteria:
            for mapping in criterion.maps_to:
                if mapping.ref not in keys:
                    raise ValueError(
                        f"criterion {criterion.id}: maps_to ref {mapping.ref!r} "
                        "is not in references"
                    )
        return self


class LoadedRubric(BaseModel):
    """A validated rubric with the file it came from and that file's SHA-256."""

    model_config = ConfigDict(frozen=True)

    rubric: Rubric
    path: Path
    sha256: str


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at a pydantic error location, as deep as it resolves."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == key), None)
            if match is None:
                match = next((k for k, _ in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            match = node.value[key] if key < len(node.value) else None
        else:
            match = None
        if match is None:
            break
        node = match
        line = node.start_mark.line + 1
    return line


def resolve_rubric_path(name_or_path: str) -> Path:
    """A rubric given by file path, or by name of a shipped rubric (``rubrics/NAME.yaml``)."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"} or candidate.exists():
        return candidate
    shipped = rubrics_dir() / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    names = ", ".join(shipped_rubrics()) or "none"
    raise RubricError(f"no rubric file or shipped rubric named {name_or_path!r} (shipped: {names})")


def shipped_rubrics() -> list[str]:
    return sorted(p.stem for p in rubrics_dir().glob("*.yaml"))


def load_rubric(name_or_path: str) -> LoadedRubric:
    """Read and validate a rubric; any problem is one :class:`RubricError` line with file,
    line and field."""
    path = resolve_rubric_path(name_or_path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RubricError(f"rubric file not found: {path}") from None
    except IsADirectoryError:
        raise RubricError(f"expected a rubric file, got a folder: {path}") from None
    try:
        text = data.decode("utf-8")
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RubricError(f"{path}{where}: not valid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise RubricError(f"{path}: a rubric must be a YAML mapping")
    try:
        rubric = Rubric.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(node, loc)
        where = f":{line}" if line else ""
        message = err["msg"].removeprefix("Value error, ")
        raise RubricError(f"{path}{where}: {field}: {message}") from None
    return LoadedRubric(rubric=rubric, path=path, sha256=hashlib.sha256(data).hexdigest())


def json_schema() -> dict[str, Any]:
    schema = Rubric.model_json_schema(by_alias=True)
    schema["$id"] = RUBRIC_SCHEMA
    return schema
