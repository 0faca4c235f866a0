"""``auditkit rubric show``: a rubric as a plain-text table a person can read."""

from __future__ import annotations

import textwrap

from auditkit.rubric.evaluate import effective_statistics, threshold_provenance
from auditkit.rubric.schema import Criterion, LoadedRubric

_COLUMNS = ("criterion", "sev.", "reads", "requirement", "provenance", "min n", "maps to")
_WIDTHS = (24, 7, 30, 26, 12, 6, 30)


def _reads(c: Criterion) -> str:
    if c.kind == "attestation":
        return "attestation"
    assert c.metric is not None
    m = c.metric
    text = m.name if c.kind == "metric" else f"evidence: {m.name}"
    aggregate = m.resolved_aggregate
    if m.slice_by:
        joiner = " × " if m.intersect else ", "
        text += f" {aggregate} by {joiner.join(m.slice_by)}"
    if m.filter:
        text += " where " + "; ".join(f"{k} in {', '.join(v)}" for k, v in m.filter.items())
    return text


def _requirement(c: Criterion, loaded: LoadedRubric) -> str:
    req = c.requirement
    if req is None:
        return "attested, not verified" if c.kind == "attestation" else "must hold"
    threshold = req.threshold if req.threshold is not None else req.threshold_ref
    stats = effective_statistics(c, loaded.rubric.defaults.statistics)
    text = f"{c.statistic} {req.op} {threshold}"
    defaults = loaded.rubric.defaults.statistics
    if stats != defaults:
        changed = [f"{k}={v}" for k, v in stats.model_dump().items() if v != getattr(defaults, k)]
        text += f" [{', '.join(changed)}]"
    return text


def _row(cells: tuple[str, ...]) -> list[str]:
    wrapped = [textwrap.wrap(x, w) or [""] for x, w in zip(cells, _WIDTHS, strict=True)]
    height = max(len(w) for w in wrapped)
    return [
        "  ".join(
            (col[i] if i < len(col) else "").ljust(w)
            for col, w in zip(wrapped, _WIDTHS, strict=True)
        ).rstrip()
        for i in range(height)
    ]


def rubric_table(loaded: LoadedRubric) -> str:
    """Header (id, version, file, SHA-256, decision rule) and one row per criterion."""
    r = loaded.rubric
    s = r.defaults.statistics
    lines = [
        f"{r.id} {r.version} ({r.status}): {r.title}",
        f"file {loaded.path}",
        f"sha256 {loaded.sha256}",
        f"decision rule {s.decision_rule} at {100 * s.confidence_level:g}% "
        f"({s.sided}-sided {s.interval}, multiplicity {s.multiplicity}); "
        f"too little data -> {r.defaults.on_insufficient_sample}",
        f"thresholds: {r.threshold_policy.provenance_default} unless stated",
        f"judges {' and '.join(r.applicability.tasks)} models",
    ]
    if r.approval:
        lines.append(f"approved by {r.approval.approved_by} at {r.approval.approved_at}")
    if r.applicability.note:
        lines.append("note: " + " ".join(r.applicability.note.split()))
    lines.append("")
    lines += _row(_COLUMNS)
    lines.append("  ".join("-" * w for w in _WIDTHS))
    for c in r.criteria:
        cells = (
            c.id,
            c.severity,
            _reads(c),
            _requirement(c, loaded),
            threshold_provenance(c, loaded) or "",
            str(c.sample.min_n) if c.kind == "metric" else "",
            "; ".join(f"{m.ref} {m.clause}" for m in c.maps_to),
        )
        lines += _row(cells)
    lines.append("")
    lines.append("references:")
    lines += [f"  {ref.key}: {ref.citation}" for ref in r.references]
    return "\n".join(lines)
