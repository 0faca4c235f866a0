"""CI formats of a verdict: JUnit XML, Markdown (a CI job summary) and JSON.

All three are pure functions of ``verdicts.json`` content (the typed
:class:`~auditkit.evidence.VerdictsDocument`, or the parsed file, validated first) and return
text.

JUnit XML (the Jenkins/Ant schema that GitHub, GitLab and Jenkins read): one ``testsuite``
per rubric, one ``testcase`` per criterion and, for a sliced criterion, one per slice
(``classname`` = rubric id, ``name`` = ``criterion id [slice]``). FAIL and ERROR become
``<failure>`` / ``<error>``; INCONCLUSIVE becomes ``<failure type="INCONCLUSIVE">`` for a
blocker (it holds the release) and ``<skipped>`` otherwise; ATTESTED and SKIPPED become
``<skipped>``, except a blocker SKIPPED without being conditional on the missing input
(``requires``), which is a ``<failure type="blocker SKIPPED">``: it holds the verdict. An
``info`` criterion never fails a CI run: whatever its outcome other than PASS it is a
``<skipped>`` whose message starts "info, does not gate:". Every message gives the value, the
bound and the threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from auditkit.evidence import (
    CriterionResult,
    Judged,
    SliceResult,
    VerdictsDocument,
    validate_evidence,
)
from auditkit.rubric.evaluate import slice_label
from auditkit.rubric.reasons import format_value
from auditkit.run import dumps, write_atomic

_VERDICT_ICON = {"ACCEPT": "✅", "CONDITIONAL": "⚠️", "HOLD": "⏸️", "REJECT": "❌"}
_OUTCOME_ICON = {
    "PASS": "✅",
    "FAIL": "❌",
    "INCONCLUSIVE": "❔",
    "ERROR": "⚠️",
    "ATTESTED": "📝",
    "SKIPPED": "➖",
}


def _document(verdicts: VerdictsDocument | Mapping[str, Any]) -> VerdictsDocument:
    """The typed verdict document; a mapping (``verdicts.json`` parsed) is validated first."""
    if isinstance(verdicts, VerdictsDocument):
        return verdicts
    return validate_evidence(dict(verdicts), VerdictsDocument, "verdicts.json")


def _criterion(criterion: CriterionResult | Mapping[str, Any]) -> CriterionResult:
    if isinstance(criterion, CriterionResult):
        return criterion
    return validate_evidence(dict(criterion), CriterionResult, "criterion")


def _metric(criterion: CriterionResult, row: SliceResult | None = None) -> str | None:
    """The name whose unit a row's numbers are in: a homogeneity test's are p-values, a
    difference's percentage points, a ratio's plain numbers; slice rows are rates."""
    slc = (row or criterion).slice
    if isinstance(slc, dict) and "by" not in slc:  # a slice's own rate
        return criterion.metric
    if criterion.aggregate == "homogeneity":
        return None
    if criterion.aggregate in ("difference", "ratio"):
        return f"{criterion.metric}_{criterion.aggregate}"
    return criterion.metric


def describe(criterion: CriterionResult | Mapping[str, Any], row: SliceResult | None = None) -> str:
    """One line: outcome, value, bound, threshold with provenance, k/n, reason."""
    c = _criterion(criterion)
    r: Judged = row or c
    metric = _metric(c, row)
    if c.kind == "attestation":
        return f"ATTESTED: {c.reason}"
    parts = [str(r.outcome), f"value {format_value(metric, r.value)}"]
    if r.bound is not None:
        parts.append(f"bound {format_value(metric, r.bound)}")
    if c.op and c.threshold is not None:
        prov = c.threshold_provenance or ""
        parts.append(
            f"threshold {c.op} {format_value(metric, c.threshold)}" + (f" ({prov})" if prov else "")
        )
    if r.n is not None:
        parts.append(f"n={r.n}" if r.k is None else f"k/n={r.k}/{r.n}")
    return "; ".join(parts) + f" — {r.reason}"


def _cases(
    verdicts: VerdictsDocument,
) -> list[tuple[str, CriterionResult, SliceResult | None]]:
    cases: list[tuple[str, CriterionResult, SliceResult | None]] = []
    for c in verdicts.criteria:
        if c.slices:
            cases.extend((f"{c.id} [{slice_label(s.slice or {})}]", c, s) for s in c.slices)
        else:
            cases.append((c.id, c, None))
    return cases


def junit_xml(verdicts: VerdictsDocument | Mapping[str, Any]) -> str:
    """The verdict as JUnit XML (see the module docstring)."""
    doc = _document(verdicts)
    rubric = doc.rubric
    suite_name = f"{rubric['id']} {rubric['version']}"
    cases = _cases(doc)
    failures = errors = skipped = 0
    suite = ET.Element("testsuite", name=suite_name)
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("verdict", doc.verdict),
        ("decision_rule", doc.decision_rule),
        ("confidence_level", doc.confidence_level),
        ("rubric_sha256", rubric.get("sha256")),
        ("run_id", doc.run_id),
    ):
        ET.SubElement(props, "property", name=key, value=str(value))
    for name, criterion, row in cases:
        r: Judged = row or criterion
        case = ET.SubElement(suite, "testcase", name=name, classname=rubric["id"], time="0")
        outcome = r.outcome
        message = describe(criterion, row)
        kind = f"{criterion.severity} {outcome}"
        blocker = criterion.severity == "blocker"
        if criterion.severity == "info" and outcome != "PASS":
            # information only: it never fails a CI run, whatever its outcome
            skipped += 1
            ET.SubElement(case, "skipped", message=f"info, does not gate: {message}")
        elif (
            outcome == "FAIL"
            or (outcome == "INCONCLUSIVE" and blocker)
            or (outcome == "SKIPPED" and blocker and not criterion.requires)
        ):
            failures += 1
            ET.SubElement(case, "failure", message=message, type=kind).text = message
        elif outcome == "ERROR":
            errors += 1
            ET.SubElement(case, "error", message=message, type=kind).text = message
        elif outcome in ("INCONCLUSIVE", "ATTESTED", "SKIPPED"):
            skipped += 1
            ET.SubElement(case, "skipped", message=message)
        else:
            ET.SubElement(case, "system-out").text = message
    if doc.data_gaps:
        ET.SubElement(suite, "system-err").text = "data gaps:\n" + "\n".join(doc.data_gaps)
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    suite.set("time", "0")
    suites = ET.Element("testsuites")
    suites.append(suite)
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_summary(verdicts: VerdictsDocument | Mapping[str, Any]) -> str:
    """A Markdown summary for a CI job page (``$GITHUB_STEP_SUMMARY``, a GitLab MR note)."""
    doc = _document(verdicts)
    rubric = doc.rubric
    verdict = doc.verdict
    rule = str(doc.decision_rule or "").replace("_", " ")
    lines = [
        f"## {_VERDICT_ICON.get(verdict, '')} auditkit verdict: **{verdict}**",
        "",
        f"Rubric `{rubric['id']}` {rubric['version']} (sha256 `{str(rubric.get('sha256'))[:12]}`), "
        f"decision rule *{rule}* at {100 * float(doc.confidence_level or 0):.0f}% confidence"
        + (f", run `{doc.run_id}`" if doc.run_id else "")
        + ".",
        "",
        "| | criterion | severity | value | bound | threshold | n | reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in doc.criteria:
        metric = _metric(c)
        threshold = (
            f"{c.op} {format_value(metric, c.threshold)} ({c.threshold_provenance})"
            if c.op and c.threshold is not None
            else ""
        )
        kn = "" if c.n is None else (f"{c.k}/{c.n}" if c.k is not None else str(c.n))
        icon = _OUTCOME_ICON.get(c.outcome, "")
        if c.severity == "info" and c.outcome != "PASS":
            icon = "ℹ️"  # information only: never gates, so never a red cross
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    icon + " " + c.outcome,
                    f"{c.id}: {c.title}",
                    c.severity,
                    format_value(metric, c.value) if c.kind != "attestation" else "",
                    format_value(metric, c.bound) if c.bound is not None else "",
                    threshold,
                    kn,
                    c.reason,
                )
            )
            + " |"
        )
    if doc.data_gaps:
        lines += ["", f"<details><summary>{len(doc.data_gaps)} data gap(s)</summary>", ""]
        lines += [f"- {_cell(g)}" for g in doc.data_gaps]
        lines += ["", "</details>"]
    base = doc.baseline
    if base:
        esc = base["escape_rate"]
        changed = base["changed_decisions"]
        lines += [
            "",
            f"Baseline `{base['model']}` on the same {base['n_parts']} parts: "
            f"escape change {format_value('escape_rate_change', esc['difference'])} "
            f"({esc['b']} new, {esc['c']} fixed; McNemar p = {esc['p_value_mcnemar']:.3g}); "
            f"{changed['total']} decision(s) changed.",
        ]
    note = rubric.get("applicability_note")
    if note:
        lines += ["", f"> {_cell(note.strip())}"]
    return "\n".join(lines) + "\n"


def json_summary(verdicts: VerdictsDocument | Mapping[str, Any]) -> str:
    """The verdict document as sorted-key JSON, byte for byte what ``verdicts.json`` holds."""
    return dumps(_document(verdicts).model_dump(mode="json")).decode("utf-8")


def write_ci_outputs(
    verdicts: VerdictsDocument | Mapping[str, Any],
    *,
    junit: Path | None = None,
    markdown: Path | None = None,
    json_file: Path | None = None,
) -> list[Path]:
    """Write the requested CI files (folders made as needed; each written atomically, so a
    CI job never reads half a file); returns the paths written."""
    doc = _document(verdicts)
    written = []
    for path, render in (
        (junit, junit_xml),
        (markdown, markdown_summary),
        (json_file, json_summary),
    ):
        if path is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, render(doc).encode("utf-8"))
        written.append(path)
    return written
