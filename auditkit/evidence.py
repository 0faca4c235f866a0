"""Typed models of the evidence files of a run directory (docs/run-format.md).

``run.json``, ``metrics.json`` and ``verdicts.json`` are read once, validated here, and every
view of them (the report's pages, the CI formats) reads the typed copy. The models type every
field the views read; ``extra="allow"`` keeps every other field, so a newer file survives and a
dump gives the file back: ``model_dump(mode="json")`` of a loaded file equals its JSON, field for
field (a declared field the file does not have stays absent from the dump).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from auditkit.errors import RunDirError
from auditkit.rubric.schema import Outcome, Severity

__all__ = [
    "MODELS",
    "Coded",
    "ConfusionMatrix",
    "CriterionResult",
    "DataGapReason",
    "EvidenceModel",
    "Interval",
    "Judged",
    "MetricEntry",
    "MetricsDocument",
    "RateAt",
    "ReasonNote",
    "RunRecord",
    "SliceResult",
    "StatedPrevalence",
    "VerdictsDocument",
    "load_evidence_file",
    "validate_evidence",
]

#: a number as JSON writes it: an int stays an int, so a dump equals the file
Number = int | float
#: a slice: ``{}`` (all data), ``{column: value}``, ``{"defect_class": name}``, ``{"by": [cols]}``
Slice = dict[str, Any]


class EvidenceModel(BaseModel):
    """Base of the evidence models: unknown fields kept, nothing mutable, and a dump that leaves
    out the declared fields the file did not have (so a dump is the file as written)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    @model_serializer(mode="wrap")
    def _as_written(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        unset = set(type(self).model_fields) - self.model_fields_set
        return {key: value for key, value in data.items() if key not in unset}


# --------------------------------------------------------------------------- run.json


class RunRecord(EvidenceModel):
    """``run.json`` (``auditkit.run/1``), written by ``replay``: the run id, times, tool
    versions, host, the model and its card, the data set, the replay settings and the energy
    window. The nested blocks stay mappings (the views read them key by key, most optional)."""

    format: Literal["auditkit.run/1"]
    run_id: str
    started_at: str | None = None
    finished_at: str | None = None
    tool: dict[str, Any] = {}
    host: dict[str, Any] = {}
    model: dict[str, Any] = {}
    dataset: dict[str, Any] = {}
    replay: dict[str, Any] = {}
    energy: dict[str, Any] = {}


# --------------------------------------------------------------------------- metrics.json


class Interval(EvidenceModel):
    """A confidence interval or pair of one-sided bounds of a ``metrics.json`` entry: with
    ``sided: "one"`` ``low`` and ``high`` are one-sided bounds, each at ``level``."""

    low: Number | None
    high: Number | None
    method: str | None = None
    level: Number | None = None
    sided: str | None = None


class RateAt(EvidenceModel):
    """A rate at a chosen threshold (the zero-escape operating point's ``escape`` and
    ``overkill``): k of n, the value and its exact one-sided bounds; ``certified_upper`` is the
    escape bound the threshold was chosen to meet."""

    k: int
    n: int
    value: Number | None = None
    low: Number | None = None
    high: Number | None = None
    certified_upper: Number | None = None


class MetricEntry(EvidenceModel):
    """One entry of ``metrics.json`` → ``metrics``: a named metric on one slice, with its value,
    counts (``k`` of ``n``; null for metrics that are not rates) and interval (null for ``n == 0``
    and for metrics without one)."""

    name: str
    slice: Slice = {}
    value: Number | None = None
    k: int | None = None
    n: int | None = None
    interval: Interval | None = None
    unit: str | None = None
    #: the defect prevalence a production-rate figure was computed at (null: none stated)
    prevalence: Number | None = None
    #: how an energy figure was obtained: ``measured`` or ``modelled``
    method: str | None = None
    #: ``escaped_ppm``: where its prevalence came from (``site``, ``rubric``, ``card``)
    prevalence_source: str | None = None
    # the certified zero-escape operating point (``escape_certified_threshold`` and
    # ``overkill_at_escape_target``, docs/metrics.md): the escape target, the level of the bound
    # that must meet it, the threshold found (null: none proves the target) and its rates
    target: Number | None = None
    bound_level: Number | None = None
    threshold: Number | None = None
    escape: RateAt | None = None
    overkill: RateAt | None = None
    no_threshold: bool | None = None
    n_defective: int | None = None


class ConfusionMatrix(EvidenceModel):
    """``metrics.json`` → ``confusion_matrix`` (2 × 2, rows actual good/defective, columns
    accepted/rejected, per decision unit) or ``class_confusion_matrix`` (one row and column
    per label, per image)."""

    matrix: list[list[int]]
    labels: list[str] | None = None
    unit: str | None = None


class StatedPrevalence(EvidenceModel):
    """``metrics.json`` → ``prevalence``: the production defect prevalence the escaped-ppm
    figure uses, and who stated it (``site``: ``--prevalence``/``--param``; ``rubric``;
    ``card``: the model card's ``declared.production_prevalence``)."""

    value: Number
    source: str | None = None


class MetricsDocument(EvidenceModel):
    """``metrics.json`` (``auditkit.metrics/1``), written by ``evaluate``: every measured rate
    with its counts and interval, the decision unit, the interval method and confidence level,
    the image and part counts and the confusion matrices."""

    format: Literal["auditkit.metrics/1"]
    run_id: str
    unit: str | None = None
    confidence_level: Number | None = None
    interval_method: str | None = None
    sided: str | None = None
    positive_classes: list[str] = []
    counts: dict[str, Any] = {}
    metrics: list[MetricEntry]
    confusion_matrix: ConfusionMatrix | None = None
    class_confusion_matrix: ConfusionMatrix | None = None
    #: the model's task (``classification``, ``detection``, ``anomaly``, ``segmentation``)
    task: str | None = None
    #: the cluster bootstrap's settings (method, unit, resamples, seed)
    bootstrap: dict[str, Any] | None = None
    prevalence: StatedPrevalence | None = None


# --------------------------------------------------------------------------- verdicts.json


class ReasonNote(EvidenceModel):
    """A coded note appended to a reason (``reason_notes``): a catalogue code and its
    arguments, rendered in the report's language."""

    code: str | None = None
    args: dict[str, Any] = {}


class Coded(EvidenceModel):
    """A reason as the evaluation codes it: ``reason_code`` and ``reason_args`` (rendered from
    the report's catalogue), ``reason_notes``, and the English ``reason`` line (the only form
    an older ``verdicts.json`` has)."""

    reason: str = ""
    reason_code: str | None = None
    reason_args: dict[str, Any] = {}
    reason_notes: list[ReasonNote] = []


class Judged(Coded):
    """The figures of one judgement (a criterion, or one slice of it)."""

    slice: Slice | None = None
    outcome: Outcome
    value: Number | None = None
    bound: Number | None = None
    k: int | None = None
    n: int | None = None
    low: Number | None = None
    high: Number | None = None
    low_level: Number | None = None
    high_level: Number | None = None
    bounds_sided: str | None = None
    holm: bool | None = None
    below_min_n: bool | None = None


class SliceResult(Judged):
    """One slice of a ``slice_by`` criterion in ``verdicts.json``: its outcome, value, bound,
    k of n, the bounds on that same slice, and (Holm-judged) the adjusted p-values."""

    unit: str | None = None


class CriterionResult(Judged):
    """One criterion of ``verdicts.json`` → ``criteria``: what the rubric asked (metric,
    statistic, op, threshold, severity) and what was found; with ``slice_by``, the criterion's
    figures are those of its deciding slice and ``slices`` holds every slice."""

    id: str
    title: str = ""
    severity: Severity
    kind: str | None = None
    metric: str | None = None
    slice_by: list[str] | str | None = None
    statistic: str | None = None
    op: str | None = None
    threshold: Number | None = None
    threshold_provenance: str | None = None
    min_n: int | None = None
    aggregate: str | None = None
    requires: str | list[str] | None = None
    maps_to: list[dict[str, Any]] = []
    slices: list[SliceResult] | None = None
    paired: dict[str, Any] | None = None
    # the statistics the criterion was judged with (the rubric's defaults, or its override)
    decision_rule: str | None = None
    confidence_level: Number | None = None
    sided: str | None = None
    multiplicity: str | None = None
    #: the title in other languages (``{zh: ...}``) where the rubric gives them
    titles: dict[str, str] | None = None


class DataGapReason(Coded):
    """One coded data gap (``verdicts.json`` → ``data_gap_reasons``): what evidence is missing
    and why; ``criterion`` (and ``slice``) name where, absent for a gap of the whole run."""

    criterion: str | None = None
    slice: Slice | None = None
    metric: str | None = None


class VerdictsDocument(EvidenceModel):
    """``verdicts.json`` (``auditkit.verdicts/1``), written by ``evaluate``: the rubric judged
    against (id, version, SHA-256), the decision rule, every criterion's outcome, the verdict
    with its exit code, the criteria left undecided and the data gaps."""

    format: Literal["auditkit.verdicts/1"]
    run_id: str
    rubric: dict[str, Any] = {}
    decision_rule: str | None = None
    confidence_level: Number | None = None
    verdict: Literal["ACCEPT", "CONDITIONAL", "HOLD", "REJECT"]
    exit_code: int | None = None
    criteria: list[CriterionResult]
    undecided: list[Any] = []
    data_gaps: list[str] = []
    #: null in a verdicts.json older than coded gaps (then ``data_gaps`` holds English lines)
    data_gap_reasons: list[DataGapReason] | None = None
    sided: str | None = None
    #: the comparison with the production model (``evaluate --baseline``)
    baseline: dict[str, Any] | None = None


# --------------------------------------------------------------------------- loading

#: the model of each evidence file, by its name in the run directory
MODELS: dict[str, type[EvidenceModel]] = {
    "run.json": RunRecord,
    "metrics.json": MetricsDocument,
    "verdicts.json": VerdictsDocument,
}

M = TypeVar("M", bound=EvidenceModel)


def _where(loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as a path in the file: ``criteria[3].outcome``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the top level"


def validate_evidence(data: Any, kind: type[M], name: str) -> M:
    """``data`` (parsed JSON) validated as ``kind``; a :class:`RunDirError` of one line naming
    the file, the field and the first problem when it is not."""
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = exc.error_count() - 1
        raise RunDirError(
            f"{name} is not valid evidence: {_where(tuple(first['loc']))}: {first['msg']}"
            + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
        ) from None


def load_evidence_file(source: Path | bytes, kind: type[M], name: str | None = None) -> M:
    """An evidence file (a path, or its bytes with ``name`` for the messages) parsed once and
    validated as ``kind``. Malformed evidence raises :class:`RunDirError` (exit 5) with one line
    naming the file and its first problem."""
    label = name or str(source if isinstance(source, Path) else "evidence")
    try:
        raw = source.read_bytes() if isinstance(source, Path) else source
    except OSError as exc:
        raise RunDirError(f"{label} cannot be read: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{label} is not valid UTF-8 JSON: {exc}".splitlines()[0]) from None
    return validate_evidence(data, kind, label)
