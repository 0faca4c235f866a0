"""Why a criterion or slice got its outcome, as a machine-readable code with arguments.

Every reason :mod:`auditkit.rubric.evaluate` and :mod:`auditkit.rubric.evidence` give is a
code of :data:`TEMPLATES` with raw arguments (numbers as fractions, words as identifiers), so a
report can print it in its own language (``reason`` templates of the string catalogues) and
``verdicts.json`` keeps the English text beside it (``reason``). A reason may carry notes
(``reason_notes``: more codes with their arguments), printed after it, separated by "; ".

How an argument is printed depends on its name (:func:`render`): ``value``, ``bound`` and
``threshold`` in the criterion's metric unit; ``share``, ``share_limit``, ``level`` and
``want_level`` as percentages; ``p``, ``alpha``, ``difference`` and ``limit`` as plain numbers;
``side``, ``source``, ``sided``, ``want_sided``, ``rubric_unit`` and ``metrics_unit`` as
words of the catalogue's ``reason_words``; lists joined with commas; anything else as is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from auditkit.rubric.schema import METRICS

#: code -> English template (the catalogues' ``reason`` tables hold the same codes)
TEMPLATES: dict[str, str] = {
    # decision rules
    "value_compared": "value {value} {relation} {threshold}",
    "bound_compared": "{side} bound {bound} {relation} {threshold}",
    "violation_not_proven": "violation not proven at this confidence",
    "no_bound": "too few measurements for a confidence bound",
    "bound_not_proving": "value {value} but {side} bound {bound} does not prove {op} {threshold}",
    "holm_bound_compared": "{side} bound {bound} at Holm level {level} {relation} {threshold}",
    "holm_violation_not_proven": "violation not proven at this family-wise confidence (Holm)",
    "holm_bound_not_proving": "value {value} but {side} bound {bound} at Holm level {level} "
    "does not prove {op} {threshold}",
    # too little evidence
    "no_value": "no value: n={n} (zero denominator)",
    "below_min_n": "insufficient sample: n={n} < min_n={min_n}",
    "below_min_n_fail_stands": "n={n} is below the rubric's minimum min_n={min_n}, but the "
    "bound already proves non-conformity",
    "interval_level_mismatch": "metrics.json bounds {metric} at {level} {sided}-sided, not at "
    "{want_level} {want_sided}-sided",
    "too_few_slices": "fewer than 2 slices with n >= min_n={min_n} to compare",
    "fisher_needs_two": "Fisher's exact test needs exactly 2 slices",
    "no_slice_value": "no slice has a value",
    "no_measurement": "no measurement of {metric} in this run",
    "no_certified_threshold": "no threshold proves escape <= {target} with the {n} defective "
    "parts tested",
    "no_measurement_by": "no measurement of {metric} by {by} in this run",
    "modelled_energy": "modelled figure {value}, not a measurement: a criterion on an energy "
    "figure is judged on a measured figure only",
    # spreads and baselines
    "homogeneity_compared": "homogeneity p = {p} ({method}) {relation} {alpha}",
    "no_common_parts": "no parts of this kind in both runs",
    "paired_counts": "{b} new, {c} fixed of {n}; McNemar p = {p}",
    "needs_baseline": "needs --baseline RUN: not evaluated",
    "conditional_on_baseline": "applies only when a production baseline is given "
    "(--baseline RUN): not evaluated",
    # criteria without measurement
    "attested": "attested, not verified",
    "card_declares_no": "the model card declares no '{name}' ({ref})",
    "card_not_number": "the model card's '{name}' is not a number ({ref})",
    "site_param_missing": "site parameter '{name}' not given (use --param {name}=VALUE)",
    # data gaps of the run
    "images_unreadable": "{count} image(s) unreadable: not scored",
    "images_failed": "{count} image(s) failed in inference: not scored",
    "parts_unscored": "{count} part(s) with an unscored image: left out of part-level rates",
    "unit_mismatch": "the rubric counts {rubric_unit}s but the metrics count {metrics_unit}s",
    "slice_keys_absent": "expected slice key(s) absent from the data: {keys} (not judged)",
    # evidence checks
    "no_run": "run.json not available to check this evidence",
    "no_declared_sha256": "no declared SHA-256 to compare with (metric.params.expected or the "
    "card's declared.model_sha256)",
    "sha256_equal": "model SHA-256 equals the {source}'s",
    "sha256_differs": "model SHA-256 {actual}… differs from the {source}'s {expected}…",
    "no_images_counted": "no images counted in metrics.json",
    "not_scored_within": "{bad} of {images} images not scored ({share}), within {op} {share_limit}",
    "not_scored_outside": "{bad} of {images} images not scored ({share}), outside {op} "
    "{share_limit}",
    "no_parity": "no runtime parity recorded (replay with --reference-outputs)",
    "parity_too_few": "runtime parity compared {compared} images, fewer than {needed}",
    "parity_no_difference": "no score difference recorded",
    "parity_difference_exceeds": "max |score difference| {difference} not {op} {limit}",
    "parity_decisions_differ": "{differ} of {compared} decisions differ",
    "parity_ok": "max |score difference| {difference} {op} {limit} on {compared} images",
    "parity_decisions_agree": "decisions agree {agree}/{compared}",
    "no_approval": "the rubric has no approval record (approval.approved_by, approved_at)",
    "no_started_at": "run.json has no readable started_at",
    "approved_before_run": "approved by {approver} at {at}, before the run started ({started})",
    "approved_not_before_run": "approved at {at}, not before the run started ({started})",
    "energy_not_recorded": "energy not recorded in this run (replay with energy on)",
    "energy_measured": "energy measured ({method}, {boundary} boundary)",
    "energy_modelled": "energy modelled ({method}), not measured",
    "energy_not_seen": "energy not measured: the meter ({method}) could not see the work "
    "(batches on a Dask cluster)",
    "not_reported": "not reported: {missing}",
    "reported_without_interval": "reported without counts or an interval: {names}",
    "reported": "reported: {names}",
    "reported_with_intervals": "reported with counts and intervals: {names}",
}

#: words an argument may hold, in English (the catalogues' ``reason_words`` translate them)
WORDS: dict[str, str] = {
    "upper": "upper",
    "lower": "lower",
    "rubric": "rubric",
    "model card": "model card",
    "one": "one",
    "two": "two",
    "part": "part",
    "image": "image",
}

METRIC_KEYS = frozenset({"value", "bound", "threshold"})
PERCENT_KEYS = frozenset({"share", "share_limit", "level", "want_level", "target"})
NUMBER_KEYS = frozenset({"p", "alpha", "difference", "limit"})
WORD_KEYS = frozenset({"side", "source", "sided", "want_sided", "rubric_unit", "metrics_unit"})


def reason(code: str, /, **args: Any) -> dict[str, Any]:
    """A reason as the fields of a row: ``reason_code`` and ``reason_args`` (the English
    ``reason`` text is added by :func:`with_text`)."""
    if code not in TEMPLATES:
        raise KeyError(f"unknown reason code {code!r}")
    return {"reason_code": code, "reason_args": args}


def note(code: str, /, **args: Any) -> dict[str, Any]:
    """A note after a reason (an element of ``reason_notes``)."""
    if code not in TEMPLATES:
        raise KeyError(f"unknown reason code {code!r}")
    return {"code": code, "args": args}


def _number(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def render(
    code: str,
    args: Mapping[str, Any],
    notes: Sequence[Mapping[str, Any]] = (),
    *,
    templates: Mapping[str, str],
    words: Mapping[str, str],
    value: Callable[[Any], str],
    percent: Callable[[Any], str],
    separator: str = "; ",
) -> str:
    """The text of a reason with ``templates`` (code -> format string), ``words`` (argument
    words), ``value`` (a number in the metric's unit) and ``percent`` (a fraction as a
    percentage). An unknown code gives the code itself, never an error."""

    def one(code: str, args: Mapping[str, Any]) -> str:
        shown: dict[str, str] = {}
        for key, x in args.items():
            if x is None:
                shown[key] = value(None)
            elif key in METRIC_KEYS:
                shown[key] = value(x)
            elif key in PERCENT_KEYS:
                shown[key] = percent(x)
            elif key in NUMBER_KEYS:
                shown[key] = _number(x)
            elif key in WORD_KEYS:
                shown[key] = str(words.get(str(x), x))
            elif isinstance(x, list | tuple):
                shown[key] = ", ".join(map(str, x))
            else:
                shown[key] = str(x)
        template = templates.get(code)
        if template is None:
            return code
        try:
            return template.format(**shown)
        except (KeyError, IndexError, ValueError):
            return code

    parts = [one(code, args)] + [one(str(n["code"]), n.get("args") or {}) for n in notes]
    return separator.join(p for p in parts if p)


def format_value(metric: str | None, x: Any) -> str:
    """A number as verdicts print it: rates, rate changes and shares in %, latency in ms, the
    rest to 4 significant digits; ``metric`` None for a plain number (a p-value)."""
    if x is None:
        return "n/a"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    name = metric or ""
    if name.endswith("_difference"):
        return f"{100 * x:.2f} pp"
    if METRICS.get(name) in ("rate", "paired") or name.endswith("_share"):
        return f"{100 * x:.2f}%"
    if name.endswith("_ms"):
        return f"{x:.3g} ms"
    return f"{x:.4g}"


def english(
    code: str,
    args: Mapping[str, Any],
    notes: Sequence[Mapping[str, Any]] = (),
    *,
    metric: str | None = None,
) -> str:
    """The English text of a reason (``verdicts.json`` ``reason``)."""
    return render(
        code,
        args,
        notes,
        templates=TEMPLATES,
        words=WORDS,
        value=lambda x: format_value(metric, x),
        percent=lambda x: f"{100 * float(x):.2f}%",
    )


def with_text(
    row: dict[str, Any],
    metric: str | None,
    code: str,
    notes: Sequence[Any] = (),
    /,
    **args: Any,
) -> dict[str, Any]:
    """Set a row's ``reason``, ``reason_code``, ``reason_args`` and (when any)
    ``reason_notes``; returns the row."""
    row.update(reason(code, **args))
    row["reason"] = english(code, args, notes, metric=metric)
    if notes:
        row["reason_notes"] = [dict(n) for n in notes]
    else:
        row.pop("reason_notes", None)
    return row
