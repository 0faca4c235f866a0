"""Render a run directory into an unsigned, deterministic PDF/A-3b audit report.

Inputs are ``run.json``, ``metrics.json`` and ``verdicts.json`` (``docs/run-format.md``). The
exact bytes of ``metrics.json`` and ``verdicts.json`` are embedded as PDF/A-3 associated files
(``/AFRelationship /Data``) and their SHA-256 is printed on page 1, so a verifier can extract
them, hash them and recompute every verdict. Signing is a later incremental update
(``auditkit.report.sign``); this module never signs.

Security (see the signed-PDF spike, section 5):

* Jinja2 autoescapes everything. The template has no ``|safe``; the only markup we trust is the
  stylesheet read from the template folder (wrapped in :class:`~markupsafe.Markup` here, after a
  check that it cannot close its ``<style>`` element). Charts are our own matplotlib SVG, passed
  as a base64 ``data:`` image, so data never becomes markup.
* WeasyPrint gets ``base_url=None`` and :class:`SafeURLFetcher`, which refuses every URL except
  ``data:`` and aborts the render (``FatalURLFetchingError``) on anything else.

Determinism: the same run directory gives byte-identical bytes. The PDF identifier comes from
the report id, attachment dates from ``finished_at``, chart ids from a fixed salt, and nothing
reads the clock.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pydyf
import weasyprint
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import Markup
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from auditkit import __version__
from auditkit.errors import InputError, RunDirError
from auditkit.evidence import (
    CriterionResult,
    MetricEntry,
    MetricsDocument,
    RunRecord,
    SliceResult,
    VerdictsDocument,
    validate_evidence,
)
from auditkit.report import charts, sections
from auditkit.report.catalogue import (
    DEFAULT_LANG,
    LANGUAGES,
    STYLESHEET,
    TEMPLATE,
    confined,
    load_strings,
)
from auditkit.report.formatting import OP_SYMBOLS, Formatter, parse_utc
from auditkit.report.presentation import PRESENTATION_FILE, presentation_record
from auditkit.report.signature_boxes import AUTHOR_FIELD, COUNTERSIGN_FIELD, SIGNATURE_BOX_MM
from auditkit.resources import rubrics_dir, templates_dir
from auditkit.run import BASELINE_FILE, BASELINE_FORMAT, dumps

__all__ = [
    "EMBEDDED_FILES",
    "OPTIONAL_EMBEDDED_FILES",
    "SafeURLFetcher",
    "embedded_names",
    "load_evidence",
    "render_html",
    "render_report",
    "report_id_for",
]

RUN_FILES = ("run.json", "metrics.json", "verdicts.json")
RUBRIC_FILE = "rubric.yaml"
# presentation.json: which template and catalogues made the pages (branch verify)
EMBEDDED_FILES = ("metrics.json", "verdicts.json", "run.json", RUBRIC_FILE, PRESENTATION_FILE)
#: embedded when the run directory has them: baseline.json after `evaluate --baseline`
OPTIONAL_EMBEDDED_FILES = (BASELINE_FILE,)
_MIME = {".json": "application/json", ".yaml": "application/yaml"}
FORMATS = {
    "run.json": "auditkit.run/1",
    "metrics.json": "auditkit.metrics/1",
    "verdicts.json": "auditkit.verdicts/1",
}
PDF_VARIANT = "pdf/a-3b"

_ATTACHMENT_DESCRIPTIONS = {
    "metrics.json": "Measured rates with counts and confidence intervals (auditkit.metrics/1)",
    "verdicts.json": "Criterion outcomes and verdict under the rubric (auditkit.verdicts/1)",
    "run.json": "Run record: model, data, tools, host, replay settings, energy (auditkit.run/1)",
    RUBRIC_FILE: "The rubric the verdicts were judged against (auditkit.rubric/v1)",
    BASELINE_FILE: "The paired comparison with the baseline run that was judged "
    "(auditkit.baseline/1)",
    PRESENTATION_FILE: "The template, stylesheet and text catalogues that produced the pages, "
    "with their SHA-256 (auditkit.presentation/1)",
}
#: every outcome a criterion can have (rubric/schema.py ``Outcome``), in the order page 1 counts
#: them; each has a word in both catalogues and a badge style in report.css
_OUTCOME_ORDER = ("PASS", "FAIL", "INCONCLUSIVE", "ERROR", "SKIPPED", "ATTESTED")
#: outcomes that leave a criterion undecided: page 1 names the blockers among them
_UNDECIDED = ("INCONCLUSIVE", "ERROR", "SKIPPED")
_REPORT_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


# --------------------------------------------------------------------------- URL fetching


class SafeURLFetcher(URLFetcher):
    """Deny-by-default fetcher: only ``data:`` URLs are served.

    With ``strict=True`` (the default) any other URL aborts the render with
    :class:`weasyprint.urls.FatalURLFetchingError`, so a template or a data value that refers to a
    file or a server fails loudly instead of silently leaking it into a signed PDF. ``blocked``
    records every refused URL (useful in tests).
    """

    def __init__(self, strict: bool = True) -> None:
        super().__init__(timeout=1, allowed_protocols={"data"}, allow_redirects=False)
        self.strict = strict
        self.blocked: list[str] = []

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        if url.startswith("data:"):
            return super().fetch(url, headers)
        self.blocked.append(url)
        message = f"blocked resource fetch: {url[:80]}"
        if self.strict:
            raise FatalURLFetchingError(message)
        raise ValueError(message)


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class RunFiles:
    """The three JSON files of a run directory, parsed once and validated (auditkit.evidence),
    with the raw bytes kept for embedding. Every view reads the typed evidence: ``record``
    (run.json), ``metrics_doc`` (metrics.json) and ``verdicts_doc`` (verdicts.json)."""

    record: RunRecord
    metrics_doc: MetricsDocument
    verdicts_doc: VerdictsDocument
    raw: dict[str, bytes]


def _load_run_dir(run_dir: Path) -> RunFiles:
    if not run_dir.is_dir():
        raise RunDirError(f"run directory not found: {run_dir}")
    raw: dict[str, bytes] = {}
    parsed: dict[str, dict[str, Any]] = {}
    for name in RUN_FILES:
        path = run_dir / name
        try:
            raw[name] = path.read_bytes()
        except FileNotFoundError:
            raise RunDirError(f"{name} is missing from run directory {run_dir}") from None
        try:
            data = json.loads(raw[name].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunDirError(f"{path} is not valid UTF-8 JSON: {exc}".splitlines()[0]) from None
        if not isinstance(data, dict):
            raise RunDirError(f"{path} must hold a JSON object")
        if data.get("format") != FORMATS[name]:
            raise RunDirError(
                f"{path} has format {data.get('format')!r}; this auditkit reads {FORMATS[name]!r}"
            )
        parsed[name] = data
    run_id = parsed["run.json"].get("run_id")
    for name in ("metrics.json", "verdicts.json"):
        if parsed[name].get("run_id") != run_id:
            raise RunDirError(
                f"{name} belongs to run {parsed[name].get('run_id')!r}, not {run_id!r} "
                f"(run directory {run_dir})"
            )
    # every field the views read, typed: malformed evidence is one line before any rendering
    record = validate_evidence(parsed["run.json"], RunRecord, str(run_dir / "run.json"))
    metrics = validate_evidence(
        parsed["metrics.json"], MetricsDocument, str(run_dir / "metrics.json")
    )
    verdicts = validate_evidence(
        parsed["verdicts.json"], VerdictsDocument, str(run_dir / "verdicts.json")
    )
    raw[RUBRIC_FILE] = _rubric_bytes(run_dir, verdicts.rubric)
    baseline = _baseline_bytes(run_dir, run_id, parsed["verdicts.json"])
    if baseline is not None:
        raw[BASELINE_FILE] = baseline
    return RunFiles(record, metrics, verdicts, raw)


def _baseline_bytes(run_dir: Path, run_id: Any, verdicts: Mapping[str, Any]) -> bytes | None:
    """``baseline.json`` of the run directory (written by ``evaluate --baseline``), checked to
    belong to this run and to be the comparison ``verdicts.json`` records; None without one."""
    path = run_dir / BASELINE_FILE
    if not path.is_file():
        if "baseline" in verdicts:
            raise RunDirError(
                f"verdicts.json was judged against a baseline but {path} is missing "
                "(rerun `auditkit evaluate --baseline RUN`)"
            )
        return None
    data = path.read_bytes()
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path} is not valid UTF-8 JSON: {exc}".splitlines()[0]) from None
    if not isinstance(document, dict) or document.get("format") != BASELINE_FORMAT:
        raise RunDirError(f"{path} is not an {BASELINE_FORMAT} file")
    if document.get("run_id") != run_id or document.get("comparison") != verdicts.get("baseline"):
        raise RunDirError(
            f"{path} is not the baseline comparison verdicts.json was judged with "
            "(rerun `auditkit evaluate`)"
        )
    return data


def load_evidence(run_dir: Path) -> dict[str, bytes]:
    """The exact bytes a report of ``run_dir`` embeds as evidence (without presentation.json,
    which the render adds), after the same checks as the render (branch verify: ``report``
    recomputes the verdicts from them before it signs)."""
    return dict(_load_run_dir(Path(run_dir)).raw)


def embedded_names(raw: Mapping[str, bytes]) -> list[str]:
    """The files a report embeds, in page-1 order: the fixed ones, then the optional ones
    the run has."""
    return [*EMBEDDED_FILES, *(n for n in OPTIONAL_EMBEDDED_FILES if n in raw)]


def _rubric_bytes(run_dir: Path, rubric: Mapping[str, Any]) -> bytes:
    """The exact rubric file the verdicts were judged against (its SHA-256 is in verdicts.json):
    ``rubric.yaml`` in the run directory (written by ``evaluate``), else the shipped rubric of
    that id when its hash matches."""
    expected = str(rubric.get("sha256", ""))
    candidates = [run_dir / RUBRIC_FILE]
    rubric_id = str(rubric.get("id", ""))
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", rubric_id):
        candidates.append(rubrics_dir() / f"{rubric_id}.yaml")
    for path in candidates:
        if path.is_file():
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() == expected:
                return data
    raise RunDirError(
        f"the rubric file with SHA-256 {expected[:16]}… named in verdicts.json was not found "
        f"(expected {run_dir / RUBRIC_FILE}; rerun `auditkit evaluate`)"
    )


def report_id_for(run_id: str, verdicts_bytes: bytes) -> str:
    """``AR-<run id without 'run-'>-<first 8 hex of sha256(verdicts.json)>``, file-name safe."""
    stem = run_id.removeprefix("run-") or "unknown"
    stem = _REPORT_ID_UNSAFE.sub("_", stem)[:64]
    return f"AR-{stem}-{hashlib.sha256(verdicts_bytes).hexdigest()[:8]}"


def _stylesheet(strings: Mapping[str, Any], report_id: str, folder: Path) -> Markup:
    own = folder / STYLESHEET
    if folder == templates_dir():
        path = own
    elif own.is_file() or own.is_symlink():
        path = confined(own, folder)  # a link to a file outside is refused, never inlined
    else:
        path = templates_dir() / STYLESHEET
    css = path.read_text(encoding="utf-8")
    id_text = str(strings["colon"]) + report_id
    before, _, after = strings["page_x_of_y"].partition("{page}")
    middle, _, end = after.partition("{pages}")
    page_rules = (
        "@page { "
        f"@top-left {{ content: {_css_string(strings['short_title'])}; }} "
        f"@top-right {{ content: {_css_string(str(strings['report_id']) + id_text)}; }} "
        f"@bottom-left {{ content: {_css_string(strings['footer_note'])}; }} "
        f"@bottom-right {{ content: {_css_string(before)} counter(page) "
        f"{_css_string(middle)} counter(pages) {_css_string(end)}; }} "
        "}\n"
    )
    text = css + "\n" + page_rules
    if "</" in text or "url(" in text.lower() or "@import" in text.lower():
        # refuse rather than break out of <style> or point the renderer at a resource
        raise InputError(f"{path} must not contain '</', url( or @import")
    # Trusted: read from our template folder; every data-derived string is CSS-escaped above.
    return Markup(text)


def _css_string(text: str) -> str:
    """A CSS string literal with every character outside [A-Za-z0-9] hex-escaped.

    Spaces are escaped too: a space right after a hex escape would be swallowed by it.
    """
    out = []
    for char in text:
        if char.isascii() and char.isalnum():
            out.append(char)
        else:
            out.append(f"\\{ord(char):06x}")
    return '"' + "".join(out) + '"'


def _outcome_css(outcome: str | None) -> str:
    return f"outcome-{(outcome or 'error').lower()}"


# --------------------------------------------------------------------------- view model


def _index_metrics(metrics: Iterable[MetricEntry]) -> dict[tuple[str, str], MetricEntry]:
    """The metrics.json entries by (name, slice); the first of duplicates wins."""
    index: dict[tuple[str, str], MetricEntry] = {}
    for entry in metrics:
        index.setdefault((entry.name, json.dumps(entry.slice, sort_keys=True)), entry)
    return index


def _metric_at(
    index: Mapping[tuple[str, str], MetricEntry], name: str, slc: Mapping[str, Any]
) -> MetricEntry | None:
    return index.get((name, json.dumps(dict(slc), sort_keys=True)))


def _upper(entry: MetricEntry | None) -> float | None:
    return entry.interval.high if entry is not None and entry.interval is not None else None


def _criteria_view(
    verdicts: VerdictsDocument, fmt: Formatter, index: Mapping[tuple[str, str], MetricEntry]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The criteria table and the slice tables. Every figure of a criterion's row (value,
    bound, k/n, bounds, reason) is the criterion's own, i.e. its deciding slice's
    (``verdicts.json`` ``slice``); nothing is looked up in another entry."""
    rows: list[dict[str, Any]] = []
    sliced: list[dict[str, Any]] = []
    t = fmt.t
    for crit in verdicts.criteria:
        metric = crit.metric or ""  # attestations have none
        shown = _shown_metric(crit, crit.slice)  # the unit of the deciding row
        refs = []
        for ref in crit.maps_to:
            text = " ".join(p for p in (ref.get("ref"), ref.get("clause")) if p)
            if ref.get("relation"):
                text += f" ({fmt.lookup('relation', ref['relation'])})"
            refs.append(text)
        slices = crit.slices or []
        slice_by = [crit.slice_by] if isinstance(crit.slice_by, str) else crit.slice_by
        deciding = crit.slice if slice_by else None
        row = {
            "id": crit.id,
            "title": fmt.text(_localised_title(crit, str(t.get("html_lang", DEFAULT_LANG)))),
            "refs": refs,
            "severity": fmt.lookup("severity", crit.severity),
            "severity_css": f"severity-{crit.severity}",
            # a criterion without a metric (an attestation) says what kind it is instead
            "metric": fmt.metric(metric) if metric else fmt.lookup("criterion_kind", crit.kind),
            "slice_by": " × ".join(fmt.column(c) for c in slice_by) if slice_by else None,
            "statistic": _criterion_statistic(crit, fmt),
            "threshold": fmt.threshold(_shown_metric(crit, {"by": []}), crit.op, crit.threshold),
            # "Threshold set by" only where the rubric says who set a threshold
            "provenance": fmt.lookup("provenance", crit.threshold_provenance)
            if crit.threshold_provenance and crit.threshold is not None
            else None,
            "value": fmt.value(shown, crit.value),
            "bound": fmt.value(shown, crit.bound),
            "kn": fmt.kn(crit.k, crit.n),
            "outcome": fmt.lookup("outcome", crit.outcome),
            "outcome_code": crit.outcome,
            "outcome_css": _outcome_css(crit.outcome),
            "reason": fmt.reason(crit, shown),
            "worst": t["worst_slice"].format(slice=fmt.slice(deciding)) if deciding else None,
            "interval": _criterion_interval(crit, shown, deciding, index, fmt),
            "interval_label": fmt.bounds_label(crit),
            "rule": fmt.lookup("decision_rule", crit.decision_rule) if crit.decision_rule else None,
            "extras": _extra_fields(crit, fmt),
        }
        rows.append(row)
        if not (slice_by and slices):
            continue
        slice_rows = []
        chart_rows = []
        for s in slices:
            slc = s.slice or {}
            unit = _shown_metric(crit, slc)
            slice_rows.append(
                {
                    "slice": fmt.slice_value(slc),
                    "value": fmt.value(unit, s.value),
                    "bound": fmt.value(unit, s.bound),
                    "interval": _bounds_text(unit, s.low, s.high, fmt),
                    "interval_label": fmt.bounds_label(s),
                    "kn": fmt.kn(s.k, s.n),
                    "outcome": fmt.lookup("outcome", s.outcome),
                    "outcome_css": _outcome_css(s.outcome),
                    "reason": fmt.reason(s, unit),
                }
            )
            # the bar is the row's own bounds, the ones the decision used (Holm-adjusted
            # under multiplicity: holm), so the chart and the table show the same numbers
            chart_rows.append(
                charts.ChartRow(
                    label=fmt.slice_value(slc),
                    value=s.value,
                    low=s.low,
                    high=s.high,
                    outcome=str(s.outcome),
                )
            )
        chart_list: list[str] = []
        threshold = crit.threshold
        spread = crit.aggregate in _SPREADS  # a chart of slice rates would not show it
        if fmt.is_rate(metric) and threshold is not None and not spread:
            chart_list = charts.forest_chart_data_uris(chart_rows, float(threshold))
        labels = t.get("bounds_label") or {}
        level = crit.confidence_level
        bounds = (
            str(labels.get("holm_family", ""))
            if crit.multiplicity == "holm"
            else fmt.bounds_words(crit.sided, level, level)
        )
        sliced.append(
            {
                **row,
                "intro": t["sliced_intro"].format(id=row["id"], column=row["slice_by"]),
                "rows": slice_rows,
                "charts": chart_list,
                "chart_caption": t["chart_caption"].format(
                    level=fmt.level_text(level),
                    bounds=bounds,
                    threshold=fmt.value(metric, threshold),
                ),
            }
        )
    return rows, sliced


#: aggregates whose criterion value is not a slice rate
_SPREADS = ("difference", "ratio", "homogeneity")


def _shown_metric(crit: CriterionResult, slc: Mapping[str, Any] | None) -> str:
    """The name whose unit a row's numbers are printed in: a spread row (``{"by": ...}``) of
    a ``difference`` is in percentage points, of a ``ratio`` a plain number, of a
    ``homogeneity`` test a p-value; any other row in the criterion's metric."""
    metric = crit.metric or ""
    aggregate = crit.aggregate
    if aggregate not in _SPREADS or not (slc and "by" in slc):
        return metric
    if aggregate == "homogeneity":
        return "p_value"
    return f"{metric}_{aggregate}"


def _criteria_intro(verdicts: VerdictsDocument, fmt: Formatter) -> str:
    """The criteria table's introduction, for the rubric's default sidedness: two one-sided
    bounds at L together form a two-sided interval at 2L - 1 (95 %: 90 %)."""
    level = verdicts.confidence_level
    two_sided = verdicts.sided == "two"
    key = (
        "criteria_intro_two_sided"
        if two_sided and "criteria_intro_two_sided" in fmt.t
        else ("criteria_intro")
    )
    together = 2 * float(level) - 1 if level is not None else None
    return str(fmt.t[key]).format(
        rubric=verdicts.rubric.get("id", fmt.na),
        level=fmt.level_text(),
        two_sided=fmt.level_pct(together),
    )


def _criterion_statistic(crit: CriterionResult, fmt: Formatter) -> str:
    """The statistic at the criterion's own level and sidedness (a one-sided bound is never
    called an interval's end, nor the other way round)."""
    name = crit.statistic
    if not name:
        return fmt.na
    table = "statistic_two_sided" if crit.sided == "two" else "statistic"
    text = str(fmt.t.get(table, {}).get(name) or fmt.lookup("statistic", name))
    level = crit.confidence_level
    text = text.format(level=fmt.level_text(float(level) if level is not None else None))
    if crit.multiplicity == "holm" and name in ("upper_bound", "lower_bound"):
        text += " (Holm)"
    return text


#: criterion keys the results table shows in its own columns; any other key (new rubric
#: features) is listed under the criterion as "key: value", so new fields show without breaking.
_CRITERION_KEYS = {
    "id", "title", "severity", "maps_to", "metric", "slice_by", "statistic", "decision_rule",
    "op", "threshold", "threshold_ref", "threshold_provenance", "min_n", "rationale", "outcome",
    "value", "bound", "k", "n", "reason", "slices", "low", "high", "unit", "titles",
    "slice", "low_level", "high_level", "bounds_sided", "reason_code", "reason_args",
    "reason_notes", "requires", "below_min_n", "holm",
}  # fmt: skip


def _localised_title(crit: CriterionResult, lang: str) -> str:
    """The criterion's title in the report's language when the rubric gives one
    (``titles: {zh: ...}`` or ``title_zh``), else its title as written."""
    short = lang.split("-")[0]
    if crit.titles and crit.titles.get(short):
        return crit.titles[short]
    return str((crit.model_extra or {}).get(f"title_{short}") or crit.title)


#: criterion keys of the evaluation that the statistic/rule column already states
#: (``confidence_level``, ``interval``, ``sided``) or that only say how it was counted
_STATED_ELSEWHERE = {"confidence_level", "interval", "sided", "counts", "per_slice"}
#: values that are the rubric format's defaults: listing them under every criterion is noise
_DEFAULT_VALUES = {
    "aggregate": ("overall", "each"),
    "kind": ("metric",),
    "multiplicity": ("none",),
    "intersect": (False,),
}


def _extra_fields(crit: CriterionResult, fmt: Formatter) -> list[str]:
    """Criterion fields the table has no column for, as labelled words ("Parts judged:
    defect class = crack, inclusion"): new rubric features show without breaking the table,
    and never as JSON or a Python repr. Reads the criterion as written (its dump): the
    fields listed are the ones the typed model does not show in a column."""
    written = crit.model_dump(mode="json")
    out = []
    for key in sorted(written):
        if key in _CRITERION_KEYS or key in _STATED_ELSEWHERE or key.startswith("title_"):
            continue
        value = written[key]
        if value is None or value == [] or value == {} or value in _DEFAULT_VALUES.get(key, ()):
            continue
        if key in _EXTRA_SKIPPED:
            continue
        if key == "filter" and isinstance(value, Mapping):
            text = str(fmt.t["list_separator"]).join(
                f"{fmt.column(str(k))} = {fmt.any(v)}" for k, v in value.items()
            )
        elif key == "kind":
            text = fmt.lookup("criterion_kind", value)
        elif key == "multiplicity":
            text = fmt.lookup("multiplicity", value)
        elif key == "paired" and isinstance(value, Mapping):
            text = str(fmt.t["paired_line"]).format(
                new=fmt.num(value.get("b")),
                fixed=fmt.num(value.get("c")),
                n=fmt.num(value.get("n")),
                p=fmt.num(value.get("p_value_mcnemar")),
            )
        elif key == "evidence" and isinstance(value, Mapping):
            text = fmt.any({k: v for k, v in value.items() if k != "value"})
        else:
            text = fmt.any(value)
        out.append(f"{fmt.field(key)}{fmt.t['colon']}{text}")
    return out


#: fields that say again what the row shows: ``paired`` repeats the paired entry the
#: value and bound come from except for its counts (shown), ``params`` is the rubric's
#: parameter table (Appendix B)
_EXTRA_SKIPPED = {"params"}


def _bound_side(crit: CriterionResult, row: SliceResult | None) -> str | None:
    """Which bound ``crit.bound`` is ("lower_bound" / "upper_bound"), read from the
    interval the deciding row records; None when the evidence does not say."""
    bound = crit.bound
    if bound is None:
        return None
    paired = crit.paired or {}
    sources = [(crit.low, crit.high), (paired.get("low"), paired.get("high"))]
    if row is not None:
        sources.insert(1, (row.low, row.high))
    for low, high in sources:
        if isinstance(low, int | float) and abs(low - bound) <= 1e-12:
            return "lower_bound"
        if isinstance(high, int | float) and abs(high - bound) <= 1e-12:
            return "upper_bound"
    return crit.statistic if crit.statistic in ("lower_bound", "upper_bound") else None


def deciding_slice(crit: CriterionResult) -> SliceResult | None:
    """The slice row that decided a sliced criterion: the one the evaluation names
    (``slice`` on the criterion), else the first whose outcome and value are the criterion's."""
    rows = crit.slices or []
    if not rows:
        return None
    named = crit.slice
    if named:
        for r in rows:
            if r.slice == named:
                return r
        return SliceResult(slice=named, outcome=crit.outcome)
    for r in rows:
        if r.outcome == crit.outcome and r.value == crit.value:
            return r
    return next((r for r in rows if r.outcome == crit.outcome), None)


def _relation(left: float, right: float) -> str:
    return ">" if left > right else "<" if left < right else "="


def _blocker_line(crit: CriterionResult, fmt: Formatter) -> str:
    """ "escape rate, lighting = dim: 11.74 %, lower bound 8.72 % > 5.00 %": the figure and the
    bound that left a blocker failed or undecided, from the criterion row and its slice."""
    t = fmt.t
    metric = crit.metric or ""
    row = deciding_slice(crit)
    label = fmt.metric(metric)
    if row is not None and row.slice:
        label += f"{t['list_comma']}{fmt.slice(row.slice)}"
    value, bound, threshold = crit.value, crit.bound, crit.threshold
    if crit.outcome in ("ERROR", "SKIPPED") or value is None:
        reason = fmt.reason(crit, metric)
        return f"{label}{t['colon']}{reason or fmt.na}"
    text = f"{label}{t['colon']}{fmt.value(metric, value)}"
    if threshold is None:
        return text
    side = _bound_side(crit, row)
    if bound is not None and side:
        compared = f"{fmt.lookup('bound_name', side)} {fmt.value(metric, bound)}"
        relation = OP_SYMBOLS.get(_relation(bound, threshold), "=")
    else:
        compared, relation = "", OP_SYMBOLS.get(_relation(value, threshold), "=")
    tail = f"{compared} {relation} {fmt.value(metric, threshold)}".strip()
    text = f"{text}{t['list_comma']}{tail}"
    # the deciding row's n when the evidence has one (a named slice missing from the rows
    # falls back to the criterion's, which is that slice's)
    n = row.n if row is not None and "n" in row.model_fields_set else crit.n
    min_n = crit.min_n
    if n is not None and min_n is not None and n < min_n:
        # too few parts to accept: a regulator must see that the sample decided, not the rate
        text += str(t["blocker_small_n"]).format(n=fmt.count(n), min_n=fmt.count(min_n))
    return text


def _page_one_view(
    verdicts: VerdictsDocument, fmt: Formatter
) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """Page 1's tally of every outcome and the blockers that failed or stayed undecided."""
    seen = [str(c.outcome) for c in verdicts.criteria]
    order = [o for o in _OUTCOME_ORDER if o in seen]
    order += sorted({o for o in seen if o not in _OUTCOME_ORDER})
    tally = [
        {
            "n": str(seen.count(o)),
            "word": fmt.lookup("outcome_counted", o),
            "css": _outcome_css(o),
        }
        for o in order
    ]
    blockers = [
        {
            "id": c.id,
            "outcome": fmt.lookup("outcome", c.outcome),
            "outcome_css": _outcome_css(c.outcome),
            "line": _blocker_line(c, fmt),
        }
        for c in verdicts.criteria
        if c.severity == "blocker" and c.outcome in ("FAIL", *_UNDECIDED)
    ]
    return tally, blockers


def _criterion_interval(
    crit: CriterionResult,
    metric: str,
    deciding: Mapping[str, Any] | None,
    index: Mapping[tuple[str, str], MetricEntry],
    fmt: Formatter,
) -> str:
    """The bounds of the criterion's own row (its deciding slice). Only a verdicts.json of an
    older version, without ``low_level``/``high_level``, falls back to the metrics.json entry
    of the same slice (the deciding one, never another)."""
    low, high = crit.low, crit.high
    if low is None and high is None and "low_level" not in crit.model_fields_set:
        entry = _metric_at(index, metric, deciding or {})
        if entry is not None and entry.interval is not None:
            low, high = entry.interval.low, entry.interval.high
    return _bounds_text(metric, low, high, fmt)


def _bounds_text(metric: str, low: float | None, high: float | None, fmt: Formatter) -> str:
    if low is None and high is None:
        return fmt.na
    return f"{fmt.value(metric, low)} – {fmt.value(metric, high)}"


def _by_column_view(metrics: Iterable[MetricEntry], fmt: Formatter) -> list[dict[str, Any]]:
    """Escape and overkill per value of every metadata column (one table, grouped)."""
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in metrics:
        name, slc = entry.name, entry.slice
        if name not in ("escape_rate", "overkill_rate") or not slc:
            continue
        if set(slc) & {"defect_class", "scenario"}:
            continue
        group = " × ".join(fmt.column(c) for c in slc)
        key = json.dumps(slc, sort_keys=True)
        row = groups.setdefault(group, {}).setdefault(
            key, {"value": fmt.slice_value(slc), "unit": "", "escape": None, "overkill": None}
        )
        row["unit"] = fmt.lookup("unit", entry.unit or "")
        cell = {
            "value": fmt.pct(entry.value),
            "bound": fmt.pct(_upper(entry)),
            "kn": fmt.kn(entry.k, entry.n),
        }
        row["escape" if name == "escape_rate" else "overkill"] = cell
    empty = {"value": fmt.na, "bound": fmt.na, "kn": fmt.na}
    return [
        {
            "label": label,
            "rows": [
                {**r, "escape": r["escape"] or empty, "overkill": r["overkill"] or empty}
                for r in rows.values()
            ],
        }
        for label, rows in groups.items()
    ]


def _defect_class_view(
    metrics: Iterable[MetricEntry], fmt: Formatter, n_defective: int | None
) -> list[dict[str, Any]]:
    rows = []
    for entry in metrics:
        if entry.name != "escape_rate" or set(entry.slice) != {"defect_class"}:
            continue
        n = entry.n
        share = n / n_defective if n_defective and n is not None else None
        rows.append(
            {
                "name": entry.slice["defect_class"],
                "value": fmt.pct(entry.value),
                "bound": fmt.pct(_upper(entry)),
                "kn": fmt.kn(entry.k, n),
                "share": fmt.pct(share),
            }
        )
    return rows


def _confusion_view(metrics: MetricsDocument, fmt: Formatter) -> dict[str, Any]:
    view: dict[str, Any] = {"part": None, "classes": None}
    cm = metrics.confusion_matrix
    if cm is not None and len(cm.matrix) == 2 and all(len(r) == 2 for r in cm.matrix):
        (tn, fp), (fn, tp) = cm.matrix
        view["part"] = {
            "unit": fmt.lookup("unit", cm.unit or "part"),
            "tn": fmt.count(tn),
            "fp": fmt.count(fp),
            "fn": fmt.count(fn),
            "tp": fmt.count(tp),
            "good": fmt.count(tn + fp),
            "defective": fmt.count(fn + tp),
            "accepted": fmt.count(tn + fn),
            "rejected": fmt.count(fp + tp),
            "total": fmt.count(tn + fp + fn + tp),
            "overkill": fmt.pct(fp / (tn + fp)) if tn + fp else fmt.na,
            "escape": fmt.pct(fn / (fn + tp)) if fn + tp else fmt.na,
        }
    ccm = metrics.class_confusion_matrix
    if ccm is not None and ccm.labels is not None and len(ccm.matrix) == len(ccm.labels):
        labels, rows = ccm.labels, ccm.matrix
        view["classes"] = {
            "unit": fmt.lookup("unit", ccm.unit or "image"),
            "labels": labels,
            "rows": [
                {
                    "label": label,
                    "cells": [
                        {"count": fmt.count(c), "diagonal": i == j} for j, c in enumerate(row)
                    ],
                    "total": fmt.count(sum(row)),
                }
                for i, (label, row) in enumerate(zip(labels, rows, strict=True))
            ],
            "totals": [fmt.count(sum(col)) for col in zip(*rows, strict=True)],
            "total": fmt.count(sum(sum(r) for r in rows)),
        }
    return view


#: detection, anomaly and segmentation metrics shown in the report, in this order
_TASK_METRICS = (
    "map",
    "map_50",
    "map_75",
    "ar_100",
    "ap",
    "detection_escape_rate",
    "detection_overkill_rate",
    "box_miss_rate",
    "image_auroc",
    "image_f1_max",
    "pixel_auroc",
    "aupro",
    "iou",
    "dice",
)


def _task_view(metrics: MetricsDocument, fmt: Formatter) -> list[dict[str, str]]:
    """Rows of the task-metrics table (empty for a classifier): each task metric over all
    data and per class. Its values per metadata slice are in the slice tables of the criteria
    that judge them and in Appendix A, which lists every entry."""
    rows = []
    for name in _TASK_METRICS:
        for entry in metrics.metrics:
            if entry.name == name and _overall_or_class(entry.slice):
                rows.append(
                    {
                        "measure": fmt.metric(name),
                        "slice": fmt.slice(entry.slice),
                        "value": fmt.value(name, entry.value),
                        "kn": fmt.kn(entry.k, entry.n),
                    }
                )
    return rows


def _overall_or_class(slc: Mapping[str, Any]) -> bool:
    """A slice over all data (``{}``) or over one class only (``{"class": c}``)."""
    return not slc or set(slc) == {"class"}


#: pixel and image metrics of anomaly and segmentation models, drawn as bars
_MAP_METRICS = ("image_auroc", "pixel_auroc", "aupro", "image_f1_max")


def _task_chart(metrics: MetricsDocument, fmt: Formatter) -> str | None:
    """The task figure: AP per class (detectors) or the image and pixel metrics with IoU and Dice
    per class (anomaly and segmentation models); None for a classifier."""
    per_class: dict[str, dict[str, float | None]] = {}
    for entry in metrics.metrics:
        cls = entry.slice.get("class")
        if set(entry.slice) == {"class"} and entry.name in ("ap", "ap_50", "iou", "dice"):
            per_class.setdefault(str(cls), {})[entry.name] = entry.value
    overall = {e.name: e.value for e in metrics.metrics if not e.slice}
    if any("ap" in v or "ap_50" in v for v in per_class.values()):
        names = [c for c, v in per_class.items() if "ap" in v or "ap_50" in v]
        series = [(fmt.metric(m), [per_class[c].get(m) for c in names]) for m in ("ap", "ap_50")]
        return charts.metric_bars_data_uri(names, series, fmt.t["task_chart_x"])
    shown = [m for m in _MAP_METRICS if overall.get(m) is not None]
    classes = [c for c, v in per_class.items() if "iou" in v or "dice" in v]
    if not shown and not classes:
        return None
    categories = [fmt.metric(m) for m in shown]
    values: list[float | None] = [overall[m] for m in shown]
    for cls in classes:
        for m in ("iou", "dice"):
            categories.append(f"{fmt.metric(m)} ({cls})")
            values.append(per_class[cls].get(m))
    return charts.metric_bars_data_uri(categories, [("", values)], fmt.t["task_chart_x"])


def _gaps_view(
    metrics: MetricsDocument, verdicts: VerdictsDocument, run: RunRecord, fmt: Formatter
) -> dict[str, Any]:
    counts = metrics.counts
    unreadable = counts.get("images_unreadable", run.dataset.get("n_unreadable", 0)) or 0
    errors = counts.get("images_error", 0) or 0
    unscored = counts.get("parts_unscored", 0) or 0
    undecided = [
        {
            "id": c.id,
            "outcome": fmt.lookup("outcome", c.outcome),
            "outcome_css": _outcome_css(c.outcome),
            "reason": fmt.reason(c, c.metric or ""),
        }
        for c in verdicts.criteria
        if c.outcome in _UNDECIDED
    ]
    # the coded gaps render in the report's language; verdicts.json of an older auditkit
    # has the English lines only
    coded = verdicts.data_gap_reasons
    listed = (
        [fmt.gap(g) for g in coded]
        if coded is not None
        else [fmt.text(g) for g in verdicts.data_gaps]
    )
    counts_rows = [
        (fmt.t["gap_unreadable"], fmt.count(unreadable)),
        (fmt.t["gap_errors"], fmt.count(errors)),
        (fmt.t["gap_unscored_parts"], fmt.count(unscored)),
    ]
    return {
        "none": not (unreadable or errors or unscored or undecided or listed),
        "counts": counts_rows,
        "undecided": undecided,
        "listed": listed,
    }


def _methods_view(run: RunRecord, fmt: Formatter) -> list[tuple[str, str]]:
    t = fmt.t
    tool, replay, host = run.tool, run.replay, run.host
    rows: list[tuple[str, str]] = [(t["tool_auditkit"], fmt.any(tool.get("auditkit")))]
    rows += [(name, fmt.any(version)) for name, version in tool.items() if name != "auditkit"]
    rows += [
        (t["tool_report"], __version__),
        (t["tool_weasyprint"], weasyprint.__version__),
        (t["providers"], ", ".join(replay.get("providers") or []) or fmt.na),
        (t["batch_size"], fmt.any(replay.get("batch_size"))),
        (t["threads"], fmt.any(replay.get("intra_op_threads"))),
        (t["pipeline"], _pipeline_line(replay, t, fmt)),
        (t["graph_optimization"], fmt.any(replay.get("graph_optimization"))),
        (t["warmup"], fmt.any(replay.get("warmup_batches"))),
        (t["seed"], fmt.any(replay.get("seed"))),
        (t["scenario_parity"], _scenario_parity(replay, t, fmt)),
        (t["runtime_parity"], _runtime_parity(replay, t, fmt)),
        (
            t["host"],
            t["host_line"].format(
                platform=fmt.any(host.get("platform")),
                machine=fmt.any(host.get("machine")),
                cpus=fmt.any(host.get("cpu_count")),
            ),
        ),
    ]
    return rows


def _pipeline_line(replay: Mapping[str, Any], t: Mapping[str, Any], fmt: Formatter) -> str:
    """How the offline replay decoded and ran the images (the throughput depends on it)."""
    if "decode_threads" not in replay:
        return fmt.na
    processes = int(replay.get("decode_processes") or 0)
    return str(t["pipeline_processes" if processes else "pipeline_threads"]).format(
        decoders=processes or replay["decode_threads"],
        streams=replay.get("inference_streams", 1),
    )


def _scenario_parity(replay: Mapping[str, Any], t: Mapping[str, Any], fmt: Formatter) -> str:
    parity = replay.get("single_stream_parity") or {}
    if not parity.get("samples"):
        return fmt.na
    return str(t["scenario_parity_line"]).format(
        n=parity["samples"],
        diff=f"{parity.get('max_abs_score_difference', 0.0):.2g}",
        disagree=parity.get("top1_disagreements", 0),
    )


def _runtime_parity(replay: Mapping[str, Any], t: Mapping[str, Any], fmt: Formatter) -> str:
    parity = replay.get("runtime_parity")
    if not parity:
        return str(t["runtime_parity_none"])
    differences = (parity.get("max_abs_difference") or {}).items()
    diffs = ", ".join(f"{k}: {v:.2g}" for k, v in differences if v is not None)
    agree = parity.get("decisions_agree")
    return str(t["runtime_parity_line"]).format(
        compared=parity.get("n_compared", 0),
        given=parity.get("n_reference", 0),
        diffs=diffs or fmt.na,
        agree=fmt.na if agree is None else agree,
    )


def _declared_view(card: Mapping[str, Any], fmt: Formatter) -> list[tuple[str, str]]:
    declared = card.get("declared") or {}
    names = {"p99_latency_ms": "latency_p99_ms"}
    rows = []
    for key, value in declared.items():
        if value is None:
            continue
        metric = names.get(key, key)
        rows.append((fmt.metric(metric), fmt.value(metric, value)))
    return rows


def _context(
    files: RunFiles,
    *,
    run_dir: Path,
    signatory: str,
    development_key: bool,
    lang: str,
    folder: Path,
    signed: bool = True,
    medium: str = "pdf",
) -> dict[str, Any]:
    t = load_strings(lang, None if folder == templates_dir() else folder)
    run, metrics, verdicts = files.record, files.metrics_doc, files.verdicts_doc
    level = float(verdicts.confidence_level or metrics.confidence_level or 0.95)
    fmt = Formatter(t, level)
    report_id = report_id_for(run.run_id, files.raw["verdicts.json"])
    model = run.model
    card = model.get("card") or {}
    dataset = run.dataset
    rubric = verdicts.rubric
    counts = metrics.counts
    index = _index_metrics(metrics.metrics)

    criteria, sliced = _criteria_view(verdicts, fmt, index)
    tally, blockers = _page_one_view(verdicts, fmt)
    verdict = verdicts.verdict
    rule = verdicts.decision_rule or ""
    method = metrics.interval_method or ""
    sided = metrics.sided or ""

    defect_entry = _metric_at(index, "escape_rate", {})
    n_defective = defect_entry.n if defect_entry else None
    good_entry = _metric_at(index, "overkill_rate", {})
    n_good = good_entry.n if good_entry else None
    defective_share = None
    if n_defective is not None and n_good is not None and n_defective + n_good:
        defective_share = t["defective_share"].format(
            share=fmt.pct(n_defective / (n_defective + n_good)),
            k=n_defective,
            n=n_defective + n_good,
        )

    deviations = []
    if counts.get("images_unreadable"):
        deviations.append(t["deviation_unreadable"].format(n=counts["images_unreadable"]))
    if counts.get("images_error"):
        deviations.append(t["deviation_errors"].format(n=counts["images_error"]))

    started, finished = fmt.when(run.started_at), fmt.when(run.finished_at)
    positive = card.get("positive_classes") or metrics.positive_classes
    return {
        "t": t,
        "lang": lang,
        "report_id": report_id,
        "stylesheet": _stylesheet(t, report_id, folder),
        "issued": finished.split(" ")[0] if finished != "—" else fmt.na,
        "sig_ids": {"author": AUTHOR_FIELD, "counter": COUNTERSIGN_FIELD},
        "signatory": signatory,
        "development_key": development_key,
        "verdict": {
            "code": verdict,
            "label": fmt.lookup("verdict", verdict),
            "meaning": fmt.lookup("verdict_meaning", verdict),
            "css": f"verdict-{verdict.lower()}",
        },
        "tally": {
            "total": t["counts_total"].format(total=len(criteria)),
            "counts": tally,
        },
        "blockers": blockers,
        "signed": signed,
        "medium": medium,
        "started": started,
        "finished": finished,
        "dates_line": t["dates_line"].format(started=started, finished=finished),
        "model": {
            "line": t["model_name_line"].format(
                name=fmt.any(card.get("name")),
                version=fmt.any(card.get("version")),
                vendor=fmt.any(card.get("vendor")),
            ),
            "sha256": fmt.any(model.get("sha256")),
            "card_sha256": fmt.any(model.get("card_sha256")),
            "operating": t["operating_rule"].format(
                classes=", ".join(positive) or fmt.na,
                threshold=fmt.num(card.get("operating_threshold"), 6),
            ),
            "declared": _declared_view(card, fmt),
        },
        "dataset": {
            "line": t["dataset_line"].format(
                images=fmt.count(dataset.get("n_images", fmt.any(counts.get("images")))),
                parts=fmt.count(dataset.get("n_parts", fmt.any(counts.get("parts")))),
                unreadable=fmt.count(
                    dataset.get("n_unreadable", counts.get("images_unreadable", 0))
                ),
            ),
            "manifest_sha256": fmt.any(dataset.get("manifest_sha256")),
            "labels": [(label, fmt.count(n)) for label, n in (dataset.get("labels") or {}).items()],
            "labels_total": fmt.count(sum((dataset.get("labels") or {}).values())),
            "sampling": t["sampling_text"].format(
                images=fmt.count(dataset.get("n_images", fmt.any(counts.get("images")))),
                parts=fmt.count(dataset.get("n_parts", fmt.any(counts.get("parts")))),
            ),
            "defective_share": defective_share,
        },
        "rubric": {
            "line": t["rubric_line"].format(
                id=fmt.any(rubric.get("id")), version=fmt.any(rubric.get("version"))
            ),
            "title": fmt.text(rubric.get("title", "")),
            "sha256": fmt.any(rubric.get("sha256")),
        },
        "decision": {
            "rule": fmt.lookup("decision_rule", rule),
            "meaning": fmt.lookup("decision_rule_meaning", rule).format(level=fmt.level_text()),
            "level": t["level_line"].format(
                level=fmt.level_text(), sided=fmt.lookup("sided", sided)
            ),
            "method": fmt.lookup("interval", method),
        },
        "embedded": [
            {
                "name": name,
                "label": t["sha256_of"].format(name=name),
                "sha256": hashlib.sha256(files.raw[name]).hexdigest(),
            }
            for name in embedded_names(files.raw)
        ],
        # page 1 says when the pages were not made by the shipped template
        "custom_template": not json.loads(files.raw[PRESENTATION_FILE])["shipped"],
        "criteria_intro": _criteria_intro(verdicts, fmt),
        "criteria": criteria,
        "sliced": sliced,
        "by_column": _by_column_view(metrics.metrics, fmt),
        "by_column_intro": t["by_column_intro"].format(level=fmt.level_text()),
        "defect_classes": _defect_class_view(metrics.metrics, fmt, n_defective),
        "confusion": _confusion_view(metrics, fmt),
        "task_metrics": _task_view(metrics, fmt),
        "task_chart": _task_chart(metrics, fmt),
        "gaps": _gaps_view(metrics, verdicts, run, fmt),
        "scope": sections.scope_view(run, metrics, fmt),
        "preprocessing": sections.preprocessing_line(card, fmt),
        "scenario": sections.scenario_line(run.replay, fmt),
        "hardware": sections.hardware_line(run.host, fmt),
        "sampling": sections.sampling_view(run_dir, run, metrics, fmt),
        "forests": sections.forest_view(metrics, verdicts, fmt),
        "curves": sections.curves_view(run_dir, metrics, fmt),
        "zero_escape": sections.zero_escape_view(metrics, fmt),
        "latency": sections.latency_view(run_dir, run, metrics, fmt),
        "energy": sections.energy_view(run_dir, run, fmt),
        "baseline": sections.baseline_view(metrics, verdicts, fmt),
        "metric_table": sections.metric_table(metrics, fmt),
        "rubric_text": files.raw[RUBRIC_FILE].decode("utf-8", "replace"),
        "environment": sections.environment_rows(run, fmt),
        "glossary": sections.glossary(t),
        "methods": _methods_view(run, fmt),
        "method_text": t["method_text"].format(
            unit=fmt.lookup("unit", metrics.unit or "part"), rubric=fmt.any(rubric.get("id"))
        ),
        "deviations": deviations,
    }


class _ConfinedLoader(FileSystemLoader):
    """Jinja2's file loader (which already refuses ``..``) that also refuses a file whose real
    path, links resolved, lies outside the folder: ``{% include %}``, ``{% import %}`` and
    ``{% extends %}`` of a link to a local file."""

    def __init__(self, folder: Path) -> None:
        super().__init__(str(folder))
        self.folder = folder

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        if self.folder != templates_dir():  # the shipped templates are ours (may be linked)
            confined(Path(filename), self.folder)
        return source, filename, uptodate


def check_template_folder(folder: Path) -> None:
    """Refuse a template folder holding any entry (file or sub-folder, at any depth) whose real
    path lies outside it: checked before anything is rendered, and again by every file read."""
    for where, dirs, files in os.walk(folder):  # os.walk does not descend into links
        for name in [*dirs, *files]:
            confined(Path(where) / name, folder)


@functools.cache
def _environment(folder: Path) -> ImmutableSandboxedEnvironment:
    """Jinja2 in its sandbox (no attribute tricks, no mutation of our data), autoescaping
    everything: a custom ``--template`` folder is someone else's code. Its loader reads only
    files that resolve inside ``folder`` (:class:`_ConfinedLoader`)."""
    return ImmutableSandboxedEnvironment(
        loader=_ConfinedLoader(folder),
        autoescape=select_autoescape(["html", "j2", "xml"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _template_folder(template_dir: Path | None) -> Path:
    if template_dir is None:
        return templates_dir()
    folder = Path(template_dir).resolve()
    if not folder.is_dir():
        raise InputError(f"template folder {template_dir} does not exist")
    if not (folder / TEMPLATE).is_file():
        raise InputError(f"template folder {template_dir} has no {TEMPLATE}")
    check_template_folder(folder)
    return folder


def check_template(template_dir: Path | None, lang: str) -> None:
    """Everything about the report's template and language that can be checked before a run:
    the folder (confined, with its ``report.html.j2``), the language in its catalogues, and
    the template's syntax. One-line :class:`InputError` (exit 5)."""
    if lang not in LANGUAGES and template_dir is None:
        available = ", ".join(LANGUAGES)
        raise InputError(f"no report text for language {lang!r} (available: {available})")
    folder = _template_folder(template_dir)
    load_strings(lang, None if folder == templates_dir() else folder)
    try:
        _environment(folder).get_template(TEMPLATE)
    except SecurityError as exc:
        raise InputError(f"template {folder / TEMPLATE} refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise InputError(f"template {folder / TEMPLATE}: {exc}".splitlines()[0]) from None


def _prepare(
    run_dir: Path,
    signatory: str,
    development_key: bool,
    lang: str,
    template_dir: Path | None = None,
    *,
    signed: bool = True,
    medium: str = "pdf",
) -> tuple[RunFiles, str, str]:
    if not signatory.strip():
        raise InputError("a signatory is required for the report")
    if lang not in LANGUAGES and template_dir is None:
        available = ", ".join(LANGUAGES)
        raise InputError(f"no report text for language {lang!r} (available: {available})")
    folder = _template_folder(template_dir)
    files = _load_run_dir(Path(run_dir))
    # the record of what makes the pages is evidence too (branch verify; docs/report.md)
    files.raw[PRESENTATION_FILE] = dumps(presentation_record(folder, lang))
    context = _context(
        files,
        run_dir=Path(run_dir),
        signatory=signatory.strip(),
        development_key=development_key,
        lang=lang,
        folder=folder,
        signed=signed,
        medium=medium,
    )
    try:
        html = _environment(folder).get_template(TEMPLATE).render(**context)
    except SecurityError as exc:
        raise InputError(f"template {folder / TEMPLATE} refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise InputError(f"template {folder / TEMPLATE}: {exc}".splitlines()[0]) from None
    return files, html, context["report_id"]


# --------------------------------------------------------------------------- public API


def render_html(
    run_dir: Path,
    *,
    signatory: str,
    development_key: bool,
    lang: str = DEFAULT_LANG,
    template_dir: Path | None = None,
    signed: bool = True,
    for_pdf: bool = False,
) -> str:
    """The report as one self-contained HTML document (the stylesheet inlined, charts as
    ``data:`` images, no external reference): the ``--html`` report. An HTML file carries no
    attachments and no signature, and says so where the PDF names its embedded files and
    its signature; ``for_pdf=True`` gives the exact input WeasyPrint gets instead."""
    medium = "pdf" if for_pdf else "html"
    return _prepare(
        run_dir, signatory, development_key, lang, template_dir, signed=signed, medium=medium
    )[1]


def render_report(
    run_dir: Path,
    *,
    signatory: str,
    development_key: bool,
    lang: str = DEFAULT_LANG,
    template_dir: Path | None = None,
    fetcher: SafeURLFetcher | None = None,
    signed: bool = True,
) -> bytes:
    """Render ``run_dir`` into an unsigned PDF/A-3b report and return its bytes.

    ``metrics.json``, ``verdicts.json``, ``run.json`` and the rubric are embedded byte for byte.
    The same run directory always gives the same bytes. Raises :class:`RunDirError` when an
    input file is missing or unreadable. ``signed=False``: the report will not be signed
    (``--no-sign``), and page 1 says so instead of describing a signature.
    """
    files, html, report_id = _prepare(
        run_dir, signatory, development_key, lang, template_dir, signed=signed
    )
    fetcher = fetcher or SafeURLFetcher(strict=True)
    try:
        stamp = parse_utc(str(files.record.finished_at))
    except ValueError:
        raise RunDirError(
            f"run.json in {run_dir} lacks a valid finished_at timestamp: "
            f"{files.record.finished_at!r}"
        ) from None
    # WeasyPrint writes attachment dates with strftime(...'Z'): give it naive UTC.
    stamp = stamp.replace(tzinfo=None)
    attachments = [
        weasyprint.Attachment(
            # a data: URL carries the MIME type, so /Subtype does not depend on the host's
            # mimetypes database (YAML has no standard entry)
            url=f"data:{_MIME[Path(name).suffix]};base64,"
            + base64.b64encode(files.raw[name]).decode("ascii"),
            name=name,
            description=_ATTACHMENT_DESCRIPTIONS[name],
            relationship="Data",
            created=stamp,
            modified=stamp,
            url_fetcher=fetcher,
        )
        for name in embedded_names(files.raw)
    ]
    try:
        document = weasyprint.HTML(string=html, base_url=None, url_fetcher=fetcher).render(
            pdf_variant=PDF_VARIANT
        )
        pdf = document.write_pdf(  # <link rel=attachment> is fetched here
            pdf_variant=PDF_VARIANT,
            attachments=attachments,
            pdf_identifier=report_id.encode("ascii"),
            finisher=_pdfa_finisher,
        )
    except FatalURLFetchingError as exc:
        raise InputError(f"the report refers to an external resource (refused): {exc}") from None
    assert isinstance(pdf, bytes)
    return pdf


def render_stamp(*, signer: str, when: datetime, reason: str, lang: str = DEFAULT_LANG) -> bytes:
    """The visible appearance of a countersignature: a one-page PDF exactly the size of the
    cover's countersignature box (fonts embedded), naming the signer and the signing time."""
    t = load_strings(lang if lang in LANGUAGES else DEFAULT_LANG)
    width, height = SIGNATURE_BOX_MM
    html = (
        _environment(templates_dir())
        .from_string(
            '<!DOCTYPE html><html lang="{{ t.html_lang }}"><head><meta charset="utf-8"><style>'
            "@page { size: {{ w }}mm {{ h }}mm; margin: 0 }"
            'html { font: 7.5pt "DejaVu Sans", "Noto Sans CJK SC", sans-serif; color: #1a1a1a }'
            "body { margin: 0 } div.box { box-sizing: border-box; width: {{ w }}mm;"
            " height: {{ h }}mm; padding: 1.6mm 2.5mm; background: #fff;"
            " border: 0.9pt solid #1f3a5f; overflow: hidden }"
            ".cap { font-size: 7pt; font-weight: bold; color: #1f3a5f; text-transform: uppercase;"
            " letter-spacing: 0.06em }"
            ".name { font-size: 10pt; font-weight: bold; margin: 0.8mm 0 }"
            "</style></head><body><div class=box><div class=cap>{{ t.sig_counter_caption }}</div>"
            "<div class=name>{{ signer }}</div><div>{{ signed }}</div><div>{{ reason }}</div>"
            "</div></body></html>"
        )
        .render(
            t=t,
            w=width,
            h=height,
            signer=signer,
            signed=str(t["stamp_signed_on"]).format(when=when.strftime("%Y-%m-%d %H:%M:%S UTC")),
            reason=str(t["stamp_reason"]).format(reason=reason),
        )
    )
    pdf = weasyprint.HTML(string=html, base_url=None, url_fetcher=SafeURLFetcher()).write_pdf()
    assert isinstance(pdf, bytes)
    return pdf


def _pdfa_finisher(document: Any, pdf: Any) -> None:
    """Dedupe ``/AF`` (WeasyPrint 70 lists each file twice) and drop Info/Producer.

    Without Info/Producer, the XMP and Info producers stay consistent after pyHanko signs the
    file as an incremental update (spike section 3.6).
    """
    if "AF" in pdf.catalog:
        pdf.catalog["AF"] = pydyf.Array(list(dict.fromkeys(pdf.catalog["AF"])))
    pdf.info.pop("Producer", None)
