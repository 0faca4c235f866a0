"""Re-derive the verdicts of a report from the evidence embedded in it (``verify --recompute``).

A regulator does not have to trust the verdicts printed in the report: ``metrics.json``, the
rubric and ``run.json`` (for the model card's declared values) are embedded byte for byte, so
:func:`auditkit.rubric.evaluate.evaluate` can judge them again, offline, and the result is
compared with the embedded ``verdicts.json``. Site parameters (``threshold_ref: site.NAME``)
are taken from ``verdicts.json`` ``params`` when present, else from the resolved thresholds of
those criteria (they are inputs the rubric deliberately leaves to the site).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auditkit.errors import AuditkitError

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


def recompute(files: Mapping[str, bytes]) -> tuple[dict[str, Any] | None, list[str]]:
    """Judge the embedded metrics against the embedded rubric and compare with the embedded
    verdicts. Returns (recomputed verdicts document or None, problems); no problems means the
    embedded verdicts are exactly what the evidence gives."""
    from auditkit.models.card import ModelCard
    from auditkit.rubric.evaluate import evaluate
    from auditkit.rubric.schema import load_rubric

    missing = [n for n in ("metrics.json", "verdicts.json", "rubric.yaml") if n not in files]
    if missing:
        return None, [f"cannot recompute: {', '.join(missing)} not embedded in the signed report"]
    try:
        metrics = _load_json(files["metrics.json"], "metrics.json")
        verdicts = _load_json(files["verdicts.json"], "verdicts.json")
        run = _load_json(files["run.json"], "run.json") if "run.json" in files else {}
    except (UnicodeDecodeError, ValueError) as exc:
        return None, [f"cannot recompute: {exc}".splitlines()[0]]
    card = None
    card_data = (run.get("model") or {}).get("card")
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
            document = evaluate(metrics, loaded, card=card, params=_params(verdicts))
        except AuditkitError as exc:
            return None, [f"cannot recompute: {exc}"]
        except (KeyError, TypeError, ValueError) as exc:
            return None, [f"cannot recompute: malformed evidence ({type(exc).__name__}: {exc})"]
    return document, compare(verdicts, document)


def compare(embedded: Mapping[str, Any], recomputed: Mapping[str, Any]) -> list[str]:
    """Differences between the embedded and the recomputed verdicts, one line each."""
    problems = []
    if embedded.get("verdict") != recomputed.get("verdict"):
        problems.append(
            f"verdict {embedded.get('verdict')} in the report, "
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
            where = "the report" if a is None else "the recomputation"
            problems.append(f"criterion {cid} is missing from {where}")
            continue
        for key in _COMPARED:
            if not _same(a.get(key), b.get(key)):
                problems.append(
                    f"criterion {cid}: {key} {a.get(key)!r} in the report, "
                    f"{b.get(key)!r} recomputed"
                )
        slices_a = [s.get("outcome") for s in a.get("slices") or []]
        slices_b = [s.get("outcome") for s in b.get("slices") or []]
        if slices_a != slices_b:
            problems.append(f"criterion {cid}: slice outcomes differ from the recomputation")
    return problems
