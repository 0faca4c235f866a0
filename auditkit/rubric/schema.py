"""Rubric format ``auditkit.rubric/v1``: standards as versioned data.

A rubric lists criteria; each says what it reads (a metric of ``metrics.json``, a piece of
evidence of the run, or nothing for an attestation), the requirement (operator, threshold and
where the threshold comes from), how much evidence it needs, its severity, and which clause of
which reference it evidences. The decision rule (DOMAIN.md §3) is stated once in ``defaults``
and may be overridden per criterion. docs/rubric-format.md describes every field.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from auditkit.errors import RubricError, not_utf8_place
from auditkit.resources import rubrics_dir

RUBRIC_SCHEMA = "auditkit.rubric/v1"

Provenance = Literal[
    "standard", "regulation", "contract", "declared_ifu", "organisation", "regulator"
]
DecisionRule = Literal["guarded_acceptance", "simple_acceptance", "guarded_rejection"]
Interval = Literal["clopper_pearson", "wilson", "jeffreys"]
Sided = Literal["one", "two"]
Multiplicity = Literal["none", "holm"]
OnInsufficient = Literal["inconclusive", "fail"]
#: ATTESTED: an attestation criterion (printed "attested, not verified"); SKIPPED: a baseline
#: criterion without ``--baseline``. Neither changes the verdict.
Outcome = Literal["PASS", "FAIL", "INCONCLUSIVE", "ERROR", "ATTESTED", "SKIPPED"]
Counts = Literal["defective", "good", "rejected", "all", "measurements", "parts", "images", "boxes"]
#: the model card's ``task``; a rubric names the task(s) it judges (``applicability.task``)
Task = Literal["classification", "detection", "anomaly", "segmentation"]
TASKS: tuple[Task, ...] = ("classification", "detection", "anomaly", "segmentation")
Aggregate = Literal["overall", "each", "worst", "difference", "ratio", "homogeneity"]
Statistic = Literal["point", "upper_bound", "lower_bound", "p_value"]
Severity = Literal["blocker", "major", "minor", "info"]
#: inputs a criterion may be conditional on (``requires``): ``baseline`` = ``--baseline RUN``
Input = Literal["baseline"]
#: rate: k/n with an exact (binomial) interval recomputed from k and n; quantile: order-statistic
#: bounds; estimate: a value with the interval metrics.json gives it (cluster bootstrap by part);
#: value: no interval (judged on the point); paired: candidate minus baseline
MetricKind = Literal["rate", "quantile", "estimate", "value", "paired"]


@dataclass(frozen=True)
class MetricInfo:
    """What a metric name is: its kind, the units its ``n`` counts (None: no ``n``), whether it
    is measured per slice, the tasks whose runs write it (None: every task), and the params a
    criterion may give (``required`` ones must be given) to choose among its entries."""

    kind: MetricKind
    counts: Counts | None
    sliceable: bool = False
    tasks: frozenset[str] | None = None
    params: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    #: an estimate judged on its point value unless the criterion names a bound (``f1``, a
    #: value before it had an interval: rubrics written then keep their meaning)
    point_default: bool = False


_RATE_COUNTS: dict[str, Counts] = {
    "escape_rate": "defective",
    "overkill_rate": "good",
    "detection_rate": "defective",
    "precision": "rejected",
    "false_call_share": "rejected",
    "accuracy": "all",
}
_SLICED_RATES = ("escape_rate", "overkill_rate", "detection_rate", "accuracy")
_DET = frozenset({"detection"})
_PIX = frozenset({"anomaly", "segmentation"})
#: Metric names a criterion of kind ``metric`` may read (docs/metrics.md, CONTRACTS.md energy).
METRIC_INFO: dict[str, MetricInfo] = {
    # metrics.json has these four per slice (auditkit.metrics.compute.SLICE_RATES)
    **{
        name: MetricInfo("rate", c, sliceable=name in _SLICED_RATES)
        for name, c in _RATE_COUNTS.items()
    },
    **{
        name: MetricInfo("value", None)
        for name in ("f2", "balanced_accuracy", "kappa", "roc_auc", "pr_auc")
    },
    **{f"latency_p{q}_ms": MetricInfo("quantile", "measurements") for q in (50, 90, 99)},
    "throughput_ips": MetricInfo("value", None),
    # written by the energy work (CONTRACTS.md); absent from a run without it: a data gap
    **{
        name: MetricInfo("value", None)
        for name in (
            "energy_wh_per_1000_inspections",
            "energy_j_per_image",
            "gco2e_per_1000_inspections",
            "idle_power_w",
            "mean_power_w",
        )
    },
    # candidate minus baseline on the same parts; needs --baseline
    "escape_rate_change": MetricInfo("paired", "defective"),
    "overkill_rate_change": MetricInfo("paired", "good"),
    # F1 of the part decisions at the operating threshold, cluster-bootstrap interval
    "f1": MetricInfo("estimate", None, sliceable=True, point_default=True),
    # the certified zero-escape operating point (docs/metrics.md): overkill at the highest
    # threshold whose upper escape bound meets params.target
    "overkill_at_escape_target": MetricInfo(
        "rate", "good", sliceable=True, params=frozenset({"target"}), required=frozenset({"target"})
    ),
    # escaped parts per million at the stated production prevalence
    "escaped_ppm": MetricInfo("estimate", None),
    # detection: box-matched inspection rates at the card's match IoU
    "detection_escape_rate": MetricInfo("rate", "defective", sliceable=True, tasks=_DET),
    "detection_overkill_rate": MetricInfo("rate", "good", sliceable=True, tasks=_DET),
    "box_miss_rate": MetricInfo("rate", "boxes", tasks=_DET),
    "recall_at_iou": MetricInfo("rate", "boxes", tasks=_DET, params=frozenset({"iou"})),
    "false_calls_per_image": MetricInfo("estimate", "images", tasks=_DET),
    "map_50": MetricInfo("estimate", None, sliceable=True, tasks=_DET),
    "map_50_95": MetricInfo("estimate", None, sliceable=True, tasks=_DET),
    **{
        name: MetricInfo("estimate", None, sliceable=True, tasks=_DET, params=frozenset({"class"}))
        for name in ("ap", "ap_50")
    },
    # anomaly and segmentation
    "image_auroc": MetricInfo("estimate", None, sliceable=True, tasks=frozenset({"anomaly"})),
    "image_f1_max": MetricInfo("value", None, tasks=frozenset({"anomaly"})),
    "pixel_auroc": MetricInfo("estimate", None, sliceable=True, tasks=_PIX),
    "aupro": MetricInfo("estimate", None, sliceable=True, tasks=_PIX),
    **{
        name: MetricInfo("estimate", None, sliceable=True, tasks=_PIX, params=frozenset({"class"}))
        for name in ("iou", "dice")
    },
}
#: metrics whose slices are per class (``slice_by: [class]``, or ``params.class`` alone or
#: with metadata columns in ``slice_by``)
CLASS_SLICED = frozenset({"ap", "ap_50", "iou", "dice"})
#: rates counted like another rate of ``RATE_DEFINITIONS`` (for differences between slices)
RATE_ALIAS = {
    "detection_escape_rate": "escape_rate",
    "detection_overkill_rate": "overkill_rate",
    "overkill_at_escape_target": "overkill_rate",
}
#: Backward-compatible view: metric name -> kind.
METRICS: dict[str, MetricKind] = {name: info.kind for name, info in METRIC_INFO.items()}

#: Evidence checks a criterion of kind ``evidence`` may name in ``metric.name``, with the
#: ``params`` each accepts and whether it needs a numeric ``requirement``.
EVIDENCE_CHECKS: dict[str, tuple[frozenset[str], bool]] = {
    "model_sha256": (frozenset({"expected"}), False),
    "unreadable_share": (frozenset(), True),
    "runtime_parity": (frozenset({"min_compared"}), True),
    "rubric_approved_before_run": (frozenset(), False),
    "energy_measured": (frozenset(), False),
    "metrics_reported": (frozenset({"names", "with_interval"}), False),
}
# slice columns that are not metadata columns of the samples table
DEFECT_CLASS = "defect_class"

_POLICY_RULE = re.compile(
    r"^any (blocker|major|minor|info) "
    r"(PASS|FAIL|INCONCLUSIVE|ERROR)( or (PASS|FAIL|INCONCLUSIVE|ERROR))*$"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Statistics(_Strict):
    """How every bound is computed and how outcomes are decided (DOMAIN.md §3)."""

    decision_rule: DecisionRule = "guarded_acceptance"
    confidence_level: float = Field(default=0.95, gt=0.5, lt=1)
    interval: Interval = "clopper_pearson"
    sided: Sided = "one"
    multiplicity: Multiplicity = "none"

    @model_validator(mode="after")
    def _check(self) -> Statistics:
        if self.multiplicity == "holm" and self.interval != "clopper_pearson":
            raise ValueError(
                "[multiplicity] multiplicity holm uses exact binomial tests: "
                "it needs interval clopper_pearson"
            )
        return self


class StatisticsOverride(_Strict):
    """Per-criterion override of ``defaults.statistics``; unset fields inherit."""

    decision_rule: DecisionRule | None = None
    confidence_level: float | None = Field(default=None, gt=0.5, lt=1)
    interval: Interval | None = None
    sided: Sided | None = None
    multiplicity: Multiplicity | None = None


class Applicability(_Strict):
    #: the task(s) of the models this rubric judges, checked against the run (exit 5)
    task: Task | list[Task] = "classification"
    #: production prevalence of defective parts (for escaped ppm) when neither ``--prevalence``
    #: nor ``--param prevalence=P`` gives one
    production_prevalence: float | None = Field(default=None, gt=0, lt=1)
    positive_label: str = "defect"
    unit_of_analysis: Literal["part", "image"] = "part"
    slice_keys: list[str] = Field(default_factory=list)
    note: str = ""

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(self.task) if isinstance(self.task, list) else (self.task,)

    @model_validator(mode="after")
    def _some_task(self) -> Applicability:
        if isinstance(self.task, list) and not self.task:
            raise ValueError("[task] task lists no task")
        return self


class ThresholdPolicy(_Strict):
    provenance_default: Provenance = "organisation"
    note: str = ""


class Defaults(_Strict):
    statistics: Statistics = Field(default_factory=Statistics)
    on_insufficient_sample: OnInsufficient = "inconclusive"


class VerdictPolicy(_Strict):
    """The roll-up: each rule reads ``any <severity> <OUTCOME>[ or <OUTCOME>...]``; the first
    list with a matching rule, in the order reject, hold, conditional, gives the verdict;
    otherwise ACCEPT. The default is DOMAIN.md §3's."""

    reject_if: list[str] = Field(default_factory=lambda: ["any blocker FAIL"])
    hold_if: list[str] = Field(default_factory=lambda: ["any blocker INCONCLUSIVE or ERROR"])
    conditional_if: list[str] = Field(default_factory=lambda: ["any major FAIL"])

    @model_validator(mode="after")
    def _grammar(self) -> VerdictPolicy:
        for rule in (*self.reject_if, *self.hold_if, *self.conditional_if):
            if not _POLICY_RULE.match(rule):
                raise ValueError(
                    f"verdict rule {rule!r}: expected 'any <blocker|major|minor|info> "
                    "<PASS|FAIL|INCONCLUSIVE|ERROR>[ or <OUTCOME>...]'"
                )
        return self


class Approval(_Strict):
    """Who approved the rubric and when (EU AI Act Art. 9(8): thresholds fixed before testing)."""

    approved_by: str
    approved_at: datetime

    @model_validator(mode="after")
    def _aware(self) -> Approval:
        if self.approved_at.tzinfo is None:
            raise ValueError(
                "[approved_at] approved_at needs a time zone, e.g. 2026-01-31T09:00:00Z"
            )
        return self


class Reference(_Strict):
    key: str
    citation: str
    note: str = ""


class MapsTo(_Strict):
    ref: str
    clause: str = Field(min_length=1)
    relation: Literal["evidences", "supports", "informative"] = "supports"


class MetricSpec(_Strict):
    """What a criterion reads. For ``kind: evidence`` the name is an evidence check."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    filter: dict[str, list[str]] = Field(default_factory=dict)
    slice_by: list[str] | None = Field(default=None, min_length=1)
    intersect: bool = False
    aggregate: Aggregate | None = None

    @property
    def resolved_aggregate(self) -> Aggregate:
        return self.aggregate or ("each" if self.slice_by else "overall")

    def slicings(self) -> list[list[str]]:
        """The slicings judged: one per column, or one intersection of all of them."""
        cols = self.slice_by or []
        if not cols:
            return []
        return [list(cols)] if self.intersect else [[c] for c in cols]

    @model_validator(mode="after")
    def _shape(self) -> MetricSpec:
        if self.name not in METRIC_INFO and self.name not in EVIDENCE_CHECKS:
            known = ", ".join([*sorted(METRIC_INFO), *EVIDENCE_CHECKS])
            raise ValueError(f"[name] unknown metric {self.name!r}; known: {known}")
        aggregate = self.resolved_aggregate
        if aggregate == "overall" and self.slice_by:
            raise ValueError("[aggregate] slice_by needs an aggregate other than 'overall'")
        if aggregate != "overall" and not self.slice_by:
            raise ValueError(f"[aggregate] aggregate {aggregate!r} needs slice_by")
        if self.intersect and len(self.slice_by or []) < 2:
            raise ValueError("[intersect] intersect needs at least two slice_by columns")
        unknown = sorted(set(self.filter) - set(self.slice_by or []))
        if unknown:
            raise ValueError(
                f"[filter] filter column(s) {', '.join(unknown)} must be among slice_by "
                "(a filter chooses which slices are judged)"
            )
        if self.slice_by and len(set(self.slice_by)) != len(self.slice_by):
            raise ValueError("[slice_by] slice_by repeats a column")
        return self


def _check_params(metric: MetricSpec) -> None:
    """The values of a metric criterion's params (names are checked by the caller)."""
    p = metric.params
    method = p.get("method", "auto")
    if method not in ("auto", "chi2", "fisher", "monte_carlo"):
        raise ValueError(
            "[metric.params.method] homogeneity method: auto, chi2, fisher or monte_carlo"
        )
    target = p.get("target", 0.5)
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target < 1:
        raise ValueError("[metric.params.target] target: an escape rate strictly between 0 and 1")
    iou = p.get("iou", 0.5)
    if isinstance(iou, bool) or not isinstance(iou, (int, float)) or not 0 < iou <= 1:
        raise ValueError("[metric.params.iou] iou: a number in (0, 1]")
    if "class" in p and (not isinstance(p["class"], str) or not p["class"]):
        raise ValueError("[metric.params.class] class: a class name of the model card")


class Requirement(_Strict):
    op: Literal["<=", ">="]
    threshold: float | None = None
    threshold_ref: str | None = Field(default=None, pattern=r"^(declared|site)\.[A-Za-z0-9_]+$")
    threshold_provenance: Provenance | None = None
    statistic: Statistic | None = None
    statistics: StatisticsOverride | None = None

    @model_validator(mode="after")
    def _one_threshold(self) -> Requirement:
        if (self.threshold is None) == (self.threshold_ref is None):
            raise ValueError("give exactly one of threshold or threshold_ref")
        if self.statistic == "upper_bound" and self.op != "<=":
            raise ValueError("[statistic] statistic upper_bound goes with op '<='")
        if self.statistic == "lower_bound" and self.op != ">=":
            raise ValueError("[statistic] statistic lower_bound goes with op '>='")
        return self


class SampleRule(_Strict):
    min_n: int = Field(default=1, ge=0)
    counts: Counts | None = None
    per_slice: bool = True
    on_insufficient: OnInsufficient | None = None


class Criterion(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    title: str
    kind: Literal["metric", "evidence", "attestation"] = "metric"
    maps_to: list[MapsTo] = Field(default_factory=list)
    metric: MetricSpec | None = None
    requirement: Requirement | None = None
    sample: SampleRule = Field(default_factory=SampleRule)
    severity: Severity
    rationale: str = ""
    #: inputs the criterion applies with only: without them it is SKIPPED and does not hold
    #: the verdict (a blocker that is SKIPPED without being conditional makes it at best HOLD)
    requires: list[Input] = Field(
        default_factory=list,
        description="Inputs this criterion applies with only (baseline: --baseline RUN). "
        "Without them it is SKIPPED and does not hold the verdict; a blocker that is not "
        "evaluated and not conditional makes the verdict at best HOLD.",
    )

    @property
    def statistic(self) -> Statistic | None:
        """The statistic compared with the threshold (explicit, or the natural one)."""
        req = self.requirement
        if req is None:
            return None
        if req.statistic:
            return req.statistic
        if self.kind == "evidence":
            return "point"
        assert self.metric is not None
        if self.metric.resolved_aggregate == "homogeneity":
            return "p_value"
        if self.metric.resolved_aggregate == "ratio" or METRICS[self.metric.name] == "value":
            return "point"
        if METRIC_INFO[self.metric.name].point_default:
            return "point"
        return "upper_bound" if req.op == "<=" else "lower_bound"

    @model_validator(mode="after")
    def _kind(self) -> Criterion:
        if self.kind == "attestation":
            if self.metric is not None or self.requirement is not None:
                raise ValueError("[kind] an attestation criterion has no metric or requirement")
            return self
        if self.metric is None:
            raise ValueError(f"[kind] a {self.kind} criterion needs metric")
        if self.kind == "evidence":
            return self._evidence(self.metric)
        return self._metric(self.metric)

    def _evidence(self, metric: MetricSpec) -> Criterion:
        if metric.name not in EVIDENCE_CHECKS:
            raise ValueError(
                f"[metric.name] unknown evidence check {metric.name!r}; "
                f"known: {', '.join(EVIDENCE_CHECKS)}"
            )
        allowed, numeric = EVIDENCE_CHECKS[metric.name]
        extra = sorted(set(metric.params) - allowed)
        if extra:
            raise ValueError(
                f"[metric.params] evidence {metric.name}: unknown params {', '.join(extra)}"
            )
        if metric.slice_by or metric.filter:
            raise ValueError("[metric] an evidence criterion has no slice_by or filter")
        if metric.name == "metrics_reported":
            names = metric.params.get("names")
            if not isinstance(names, list) or not names:
                raise ValueError("[metric.params.names] metrics_reported needs a list of names")
            unknown = sorted(str(n) for n in names if n not in METRIC_INFO)
            if unknown:
                raise ValueError(f"[metric.params.names] unknown metric(s) {', '.join(unknown)}")
        if numeric and self.requirement is None:
            raise ValueError(
                f"[requirement] evidence {metric.name} needs a requirement (op and threshold)"
            )
        if not numeric and self.requirement is not None:
            raise ValueError(f"[requirement] evidence {metric.name} takes no requirement")
        if self.requirement is not None and self.statistic != "point":
            raise ValueError(
                "[requirement.statistic] an evidence requirement compares the recorded "
                "value: statistic point"
            )
        return self

    def _metric(self, metric: MetricSpec) -> Criterion:
        info = METRIC_INFO.get(metric.name)
        if info is None:
            raise ValueError(
                f"[metric.name] unknown metric {metric.name!r}; "
                f"known: {', '.join(sorted(METRIC_INFO))}"
            )
        if self.requirement is None:
            raise ValueError("[requirement] a metric criterion needs requirement")
        allowed = set(info.params) | (
            {"method"} if metric.resolved_aggregate == "homogeneity" else set()
        )
        extra = sorted(set(metric.params) - allowed)
        if extra:
            raise ValueError(
                f"[metric.params] metric {metric.name}: unknown params {', '.join(extra)}"
                + (f" (it takes {', '.join(sorted(allowed))})" if allowed else "")
            )
        absent = sorted(info.required - set(metric.params))
        if absent:
            raise ValueError(
                f"[metric.params] metric {metric.name} needs params {', '.join(absent)}"
            )
        _check_params(metric)
        aggregate = metric.resolved_aggregate
        if aggregate != "overall" and not info.sliceable:
            raise ValueError(
                f"[metric.aggregate] metric {metric.name} is not measured per slice: "
                "aggregate overall"
            )
        if aggregate in ("difference", "ratio", "homogeneity") and info.kind != "rate":
            raise ValueError(
                f"[metric.aggregate] aggregate {aggregate} compares rates between slices; "
                f"{metric.name} is not a rate: aggregate each or worst"
            )
        cols = metric.slice_by or []
        if DEFECT_CLASS in cols and (
            metric.name not in ("escape_rate", "detection_escape_rate") or len(cols) > 1
        ):
            raise ValueError(
                "[metric.slice_by] defect_class slices exist for escape_rate and "
                "detection_escape_rate alone (not intersected)"
            )
        # a class-sliced metric: slice_by [class] (each class), or one class (params.class)
        # per metadata slice (entries sliced {"class": c, column: value})
        if metric.name in CLASS_SLICED and "class" in cols and cols != ["class"]:
            raise ValueError(
                f"[metric.slice_by] {metric.name}: slice_by [class] alone, or params.class "
                "with metadata columns in slice_by"
            )
        if metric.name in CLASS_SLICED and "class" in metric.params and "class" in cols:
            raise ValueError(
                "[metric.params.class] give params.class or slice_by [class], not both"
            )
        if metric.name in CLASS_SLICED and cols and "class" not in cols + list(metric.params):
            raise ValueError(
                f"[metric.params.class] {metric.name} is measured per class: with slice_by "
                f"[{', '.join(cols)}] give params.class (the class judged in each slice)"
            )
        if "class" in cols and metric.name not in CLASS_SLICED:
            raise ValueError(
                f"[metric.slice_by] class slices exist for {', '.join(sorted(CLASS_SLICED))}"
            )
        statistic = self.statistic
        if aggregate == "homogeneity" and (statistic != "p_value" or self.requirement.op != ">="):
            raise ValueError(
                "[requirement.statistic] aggregate homogeneity: statistic p_value with op '>='"
            )
        if statistic == "p_value" and aggregate != "homogeneity":
            raise ValueError(
                "[requirement.statistic] statistic p_value goes with aggregate homogeneity"
            )
        if statistic in ("upper_bound", "lower_bound") and (
            info.kind == "value" or aggregate == "ratio"
        ):
            raise ValueError(
                f"[requirement.statistic] {metric.name} ({aggregate}) has no interval: "
                "statistic point"
            )
        if self.sample.counts and info.counts and self.sample.counts != info.counts:
            raise ValueError(
                f"[sample.counts] {metric.name} counts {info.counts} units, "
                f"not {self.sample.counts}"
            )
        return self


class Rubric(_Strict):
    schema_: str = Field(alias="schema")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    title: str
    description: str = ""
    status: Literal["draft", "approved", "retired"] = "draft"
    approval: Approval | None = None
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
        keys = [r.key for r in self.references]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate reference key")
        for criterion in self.criteria:
            for mapping in criterion.maps_to:
                if mapping.ref not in keys:
                    raise ValueError(
                        f"criterion {criterion.id}: maps_to ref {mapping.ref!r} "
                        "is not in references"
                    )
        tasks = set(self.applicability.tasks)
        for i, criterion in enumerate(self.criteria):
            info = METRIC_INFO.get(criterion.metric.name) if criterion.metric else None
            if criterion.kind == "metric" and info and info.tasks and not tasks & info.tasks:
                raise ValueError(
                    f"[criteria.{i}.metric.name] {criterion.metric.name} is measured for "  # type: ignore[union-attr]
                    f"{' and '.join(sorted(info.tasks))} models only, and the rubric applies to "
                    f"{' and '.join(self.applicability.tasks)} (applicability.task)"
                )
        if self.status == "approved" and self.approval is None:
            raise ValueError(
                "[approval] status approved needs an approval record (approved_by, approved_at)"
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


_HINT = re.compile(r"^\[([A-Za-z0-9_.]+)\] ")


def _field(loc: tuple[Any, ...]) -> str:
    # pydantic adds the union member or validator name to some locations; users see YAML keys
    return ".".join(str(p) for p in loc if not str(p).startswith("function-")) or "(top level)"


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
    except UnicodeDecodeError:
        raise RubricError(
            f"{path} is not UTF-8: {not_utf8_place(data)}; save it as UTF-8"
        ) from None
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
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
        message = err["msg"].removeprefix("Value error, ")
        hint = _HINT.match(message)
        if hint:  # a model-level check names the field it is about: "[metric.aggregate] ..."
            loc = (*loc, *(int(p) if p.isdigit() else p for p in hint.group(1).split(".")))
            message = message[hint.end() :]
        line = _line_of(node, loc)
        where = f":{line}" if line else ""
        raise RubricError(f"{path}{where}: {_field(loc)}: {message}") from None
    return LoadedRubric(rubric=rubric, path=path, sha256=hashlib.sha256(data).hexdigest())


def check_task(loaded: LoadedRubric, task: str) -> None:
    """Refuse (:class:`RubricError`, exit 5) a rubric that does not judge ``task`` models: a
    classification rubric must not judge a detector by its score-based image decision."""
    tasks = loaded.rubric.applicability.tasks
    if task not in tasks:
        raise RubricError(
            f"rubric {loaded.rubric.id} judges {' and '.join(tasks)} models, but the model card's "
            f"task is {task}: choose a rubric for {task} models (auditkit rubric list)"
        )


def json_schema() -> dict[str, Any]:
    schema = Rubric.model_json_schema(by_alias=True)
    schema["$id"] = RUBRIC_SCHEMA
    return schema
