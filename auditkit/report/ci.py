"""CI formats of a verdict: JUnit XML, Markdown (a CI job summary) and JSON.

All three are pure functions of ``verdicts.json`` content and return text.

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

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from auditkit.rubric.evaluate import slice_label
from auditkit.rubric.reasons import format_value
from auditkit.run import dumps

_VERDICT_ICON = {"ACCEPT": "✅", "CONDITIONAL": "⚠️", "HOLD": "⏸️", "REJECT": "❌"}
_OUTCOME_ICON = {
    "PASS": "✅",
    "FAIL": "❌",
    "INCONCLUSIVE": "❔",
    "ERROR": "⚠️",
    "ATTESTED": "📝",
    "SKIPPED": "➖",
}


def _metric(criterion: dict[str, Any], row: dict[str, Any] | None = None) -> str | None:
    """The name whose unit a row's numbers are in: a homogeneity test's are p-values, a
    difference's percentage points, a ratio's plain numbers; slice rows are rates."""
    aggregate = criterion.get("aggregate")
    slc = (row or criterion).get("slice")
    if isinstance(slc, dict) and "by" not in slc:  # a slice's own rate
        return criterion.get("metric")
    if aggregate == "homogeneity":
        return None
    if aggregate in ("difference", "ratio"):
        return f"{criterion.get('metric')}_{aggregate}"
    return criterion.get("metric")


def describe(criterion: dict[str, Any], row: dict[str, Any] | None = None) -> str:
    """One line: outcome, value, bound, threshold with provenance, k/n, reason."""
    r = row or criterion
    metric = _metric(criterion, row)
    parts = [str(r.get("outcome"))]
    if criterion.get("kind") == "attestation":
        return f"ATTESTED: {criterion.get('reason')}"
    parts.append(f"value {format_value(metric, r.get('value'))}")
    if r.get("bound") is not None:
        parts.append(f"bound {format_value(metric, r.get('bound'))}")
    if criterion.get("op") and criterion.get("threshold") is not None:
        prov = criterion.get("threshold_provenance") or ""
        parts.append(
            f"threshold {criterion['op']} {format_value(metric, criterion['threshold'])}"
            + (f" ({prov})" if prov else "")
        )
    if r.get("n") is not None:
        k = r.get("k")
        parts.append(f"n={r['n']}" if k is None else f"k/n={k}/{r['n']}")
    return "; ".join(parts) + f" — {r.get('reason', '')}"


def _cases(verdicts: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    cases = []
    for c in verdicts["criteria"]:
        if c.get("slices"):
            for s in c["slices"]:
                cases.append((f"{c['id']} [{slice_label(s['slice'])}]", c, s))
        else:
            cases.append((c["id"], c, None))
    return cases


def junit_xml(verdicts: dict[str, Any]) -> str:
    """The verdict as JUnit XML (see the module docstring)."""
    rubric = verdicts["rubric"]
    suite_name = f"{rubric['id']} {rubric['version']}"
    cases = _cases(verdicts)
    failures = errors = skipped = 0
    suite = ET.Element("testsuite", name=suite_name)
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("verdict", verdicts["verdict"]),
        ("decision_rule", verdicts.get("decision_rule")),
        ("confidence_level", verdicts.get("confidence_level")),
        ("rubric_sha256", rubric.get("sha256")),
        ("run_id", verdicts.get("run_id")),
    ):
        ET.SubElement(props, "property", name=key, value=str(value))
    for name, criterion, row in cases:
        r = row or criterion
        case = ET.SubElement(suite, "testcase", name=name, classname=rubric["id"], time="0")
        outcome = r.get("outcome")
        message = describe(criterion, row)
        kind = f"{criterion['severity']} {outcome}"
        blocker = criterion["severity"] == "blocker"
        if criterion["severity"] == "info" and outcome != "PASS":
            # information only: it never fails a CI run, whatever its outcome
            skipped += 1
            ET.SubElement(case, "skipped", message=f"info, does not gate: {message}")
        elif (
            outcome == "FAIL"
            or (outcome == "INCONCLUSIVE" and blocker)
            or (outcome == "SKIPPED" and blocker and not criterion.get("requires"))
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
    gaps = verdicts.get("data_gaps") or []
    if gaps:
        ET.SubElement(suite, "system-err").text = "data gaps:\n" + "\n".join(gaps)
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


def markdown_summary(verdicts: dict[str, Any]) -> str:
    """A Markdown summary for a CI job page (``$GITHUB_STEP_SUMMARY``, a GitLab MR note)."""
    rubric = verdicts["rubric"]
    verdict = verdicts["verdict"]
    rule = str(verdicts.get("decision_rule", "")).replace("_", " ")
    level = verdicts.get("confidence_level")
    lines = [
        f"## {_VERDICT_ICON.get(verdict, '')} auditkit verdict: **{verdict}**",
        "",
        f"Rubric `{rubric['id']}` {rubric['version']} (sha256 `{str(rubric.get('sha256'))[:12]}`), "
        f"decision rule *{rule}* at {100 * float(level or 0):.0f}% confidence"
        + (f", run `{verdicts['run_id']}`" if verdicts.get("run_id") else "")
        + ".",
        "",
        "| | criterion | severity | value | bound | threshold | n | reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in verdicts["criteria"]:
        metric = _metric(c)
        threshold = (
            f"{c['op']} {format_value(metric, c['threshold'])} ({c.get('threshold_provenance')})"
            if c.get("op") and c.get("threshold") is not None
            else ""
        )
        n = c.get("n")
        kn = "" if n is None else (f"{c['k']}/{n}" if c.get("k") is not None else str(n))
        icon = _OUTCOME_ICON.get(c["outcome"], "")
        if c["severity"] == "info" and c["outcome"] != "PASS":
            icon = "ℹ️"  # information only: never gates, so never a red cross
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    icon + " " + c["outcome"],
                    f"{c['id']}: {c['title']}",
                    c["severity"],
                    format_value(metric, c.get("value")) if c["kind"] != "attestation" else "",
                    format_value(metric, c.get("bound")) if c.get("bound") is not None else "",
                    threshold,
                    kn,
                    c.get("reason", ""),
                )
            )
            + " |"
        )
    gaps = verdicts.get("data_gaps") or []
    if gaps:
        lines += ["", f"<details><summary>{len(gaps)} data gap(s)</summary>", ""]
        lines += [f"- {_cell(g)}" for g in gaps]
        lines += ["", "</details>"]
    base = verdicts.get("baseline")
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


def json_summary(verdicts: dict[str, Any]) -> str:
    """The verdict document as sorted-key JSON, byte for byte what ``verdicts.json`` holds."""
    return dumps(verdicts).decode("utf-8")


def write_ci_outputs(
    verdicts: dict[str, Any],
    *,
    junit: Path | None = None,
    markdown: Path | None = None,
    json_file: Path | None = None,
) -> list[Path]:
    """Write the requested CI files (folders made as needed); returns the paths written."""
    written = []
    for path, render in (
        (junit, junit_xml),
        (markdown, markdown_summary),
        (json_file, json_summary),
    ):
        if path is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(verdicts), encoding="utf-8")
        written.append(path)
    return written
