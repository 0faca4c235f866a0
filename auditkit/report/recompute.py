"""Re-derive the verdicts of a report from the evidence embedded in it (``verify --recompute``,
and ``report`` before it signs).

A regulator does not have to trust the verdicts printed in the report: ``metrics.json``, the
rubric, ``run.json`` (the model card's declared values, the facts evidence criteria read) and,
after ``evaluate --baseline``, ``baseline.json`` (the paired comparison judged) are embedded
byte for byte, so :func:`auditkit.rubric.evaluate.evaluate` can judge them again, offline, and
the result is compared with the embedded ``verdicts.json``: verdict and each criterion's
outcome, value, bound, threshold and counts one by one (a line each), then the whole document
(any other edit, a reason or a title, is named by its place). Site parameters
(``threshold_ref: site.NAME``) are taken from ``verdicts.json`` ``params`` when present, else
from the resolved thresholds of those criteria (they are inputs the rubric deliberately leaves
to the site).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auditkit.errors import AuditkitError
from auditkit.run import BASELINE_FILE, BASELINE_FORMAT, dumps

#: What must agree per criterion; the numbers are compared after rounding to 9 digits.
_COMPARED = ("outcome", "value", "bound", "threshold", "k", "n")


def _load_json(data: bytes, name: str) -> dict[str, Any]:
    document = json.loads(data.decode("utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{name} is not a JSON object")
    return document


def _params(verdicts: Mapping[str, Any]) -> dict[str, float]:
    given = verdicts.get("params")
    if isinstance(given, Mapping):
        return {str(k): float(v) for k, v in given.items()}
    params: dict[str, float] = {}
    for crit in verdicts.get("criteria") or []:
        ref = str(crit.get("threshold_ref") or "")
        if ref.startswith("site.") and isinstance(crit.get("threshold"), int | float):
            params[ref.removeprefix("site.")] = float(crit["threshold"])
    return params


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return round(float(a), 9) == round(float(b), 9)
    return bool(a == b)


def _baseline(files: Mapping[str, bytes], verdicts: Mapping[str, Any]) -> dict[str, Any] | None:
    """The paired comparison ``evaluate`` judged: ``baseline.json``'s, else (a report made
    before baseline.json existed) the copy in ``verdicts.json``."""
    if BASELINE_FILE not in files:
        given = verdicts.get("baseline")
        return dict(given) if isinstance(given, Mapping) else None
    document = _load_json(files[BASELINE_FILE], BASELINE_FILE)
    if document.get("format") != BASELINE_FORMAT:
        raise ValueError(f"{BASELINE_FILE} is not an {BASELINE_FORMAT} file")
    comparison = document.get("comparison")
    if not isinstance(comparison, dict):
        raise ValueError(f"{BASELINE_FILE} holds no comparison")
    return comparison


def recompute(files: Mapping[str, bytes]) -> tuple[dict[str, Any] | None, list[str]]:
    """Judge the embedded metrics against the embedded rubric (with the embedded run and
    baseline) and compare with the embedded verdicts. Returns (recomputed verdicts document or
    None, problems); no problems means the embedded verdicts are exactly what the evidence
    gives."""
    from auditkit.models.card import ModelCard
    from auditkit.rubric.evaluate import evaluate
    from auditkit.rubric.schema import load_rubric

    missing = [n for n in ("metrics.json", "verdicts.json", "rubric.yaml") if n not in files]
    if missing:
        return None, [f"cannot recompute: {', '.join(missing)} not embedded in the signed report"]
    try:
        metrics = _load_json(files["metrics.json"], "metrics.json")
        verdicts = _load_json(files["verdicts.json"], "verdicts.json")
        run = _load_json(files["run.json"], "run.json") if "run.json" in files else None
        baseline = _baseline(files, verdicts)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, [f"cannot recompute: {exc}".splitlines()[0]]
    card = None
    card_data = ((run or {}).get("model") or {}).get("card")
    if card_data:
        try:
            card = ModelCard.model_validate(card_data)
        except Exception as exc:  # pydantic: one line is enough here
            return None, [f"cannot recompute: run.json model card: {exc}".splitlines()[0]]
    with tempfile.TemporaryDirectory(prefix="auditkit-recompute-") as tmp:
        path = Path(tmp) / "rubric.yaml"
        path.write_bytes(files["rubric.yaml"])
        try:
            loaded = load_rubric(str(path))
            document = evaluate(
                metrics, loaded, card=card, params=_params(verdicts), run=run, baseline=baseline
            )
        except AuditkitError as exc:
            return None, [f"cannot recompute: {exc}"]
        except (KeyError, TypeError, ValueError) as exc:
            return None, [f"cannot recompute: malformed evidence ({type(exc).__name__}: {exc})"]
    document = {"format": verdicts.get("format"), "run_id": verdicts.get("run_id"), **document}
    problems = compare(verdicts, document)
    if not problems:
        where = first_difference(verdicts, document)
        if where is not None:
            problems.append(f"verdicts.json differs from the recomputation at {where}")
    return document, problems


def first_difference(a: Any, b: Any, where: str = "") -> str | None:
    """The first place (``criteria[3].reason``) where two JSON documents differ, compared as
    the bytes ``evaluate`` writes would be; None when they are the same."""
    a, b = json.loads(dumps(a)), json.loads(dumps(b))
    return _diff(a, b, where)


def _diff(a: Any, b: Any, where: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            here = f"{where}.{key}" if where else str(key)
            if key not in a or key not in b:
                return here
            found = _diff(a[key], b[key], here)
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where} (length)"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _diff(x, y, f"{where}[{i}]")
            if found is not None:
                return found
        return None
    return None if _same(a, b) else (where or "the top level")


def compare(embedded: Mapping[str, Any], recomputed: Mapping[str, Any]) -> list[str]:
    """Differences between the embedded and the recomputed verdicts, one line each."""
    problems = []
    if embedded.get("verdict") != recomputed.get("verdict"):
        problems.append(
            f"verdict {embedded.get('verdict')} in verdicts.json, "
            f"{recomputed.get('verdict')} recomputed from the evidence"
        )
    rubric_sha = (embedded.get("rubric") or {}).get("sha256")
    if rubric_sha != (recomputed.get("rubric") or {}).get("sha256"):
        problems.append("the embedded rubric is not the one verdicts.json names (SHA-256 differs)")
    ours = {c.get("id"): c for c in embedded.get("criteria") or []}
    theirs = {c.get("id"): c for c in recomputed.get("criteria") or []}
    for cid in sorted(set(ours) | set(theirs), key=str):
        a, b = ours.get(cid), theirs.get(cid)
        if a is None or b is None:
            where = "verdicts.json" if a is None else "the recomputation"
            problems.append(f"criterion {cid} is missing from {where}")
            continue
        for key in _COMPARED:
            if not _same(a.get(key), b.get(key)):
                problems.append(
                    f"criterion {cid}: {key} {a.get(key)!r} in verdicts.json, "
                    f"{b.get(key)!r} recomputed"
                )
        slices_a = [s.get("outcome") for s in a.get("slices") or []]
        slices_b = [s.get("outcome") for s in b.get("slices") or []]
        if slices_a != slices_b:
            problems.append(f"criterion {cid}: slice outcomes differ from the recomputation")
    return problems
