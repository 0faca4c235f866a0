"""The regression flag between consecutive audits, against statsmodels' Newcombe interval and
the worked examples of DOMAIN.md §3 (8/800 vs 1/800 misses: significant; 3/800 vs 1/800: not)."""

from __future__ import annotations

import pytest
from statsmodels.stats.proportion import confint_proportions_2indep

from auditkit.registry.regression import compare, overall_rates


def test_significantly_higher_escape_rate_is_flagged() -> None:
    result = compare("ACCEPT", {"escape_rate": (1, 800)}, "ACCEPT", {"escape_rate": (8, 800)})
    low, high = confint_proportions_2indep(8, 800, 1, 800, method="newcomb", compare="diff")
    [change] = result.changes
    assert (change.low, change.high) == pytest.approx((low, high), abs=1e-12)
    assert change.difference == pytest.approx(7 / 800)
    assert round(low * 100, 2) == 0.11 and round(high * 100, 2) == 1.84  # DOMAIN.md
    assert result.flagged
    assert result.reasons == [
        "escape rate rose from 1/800 to 8/800: difference +0.88 pp, 95% interval (0.11, 1.84) "
        "pp excludes 0"
    ]
    assert result.not_compared == ["overkill rate: not measured in both audits"]


def test_a_rise_within_chance_is_not_flagged() -> None:
    result = compare(
        "ACCEPT",
        {"escape_rate": (1, 800), "overkill_rate": (10, 1000)},
        "ACCEPT",
        {"escape_rate": (3, 800), "overkill_rate": (10, 1000)},
    )
    low, _high = confint_proportions_2indep(3, 800, 1, 800, method="newcomb", compare="diff")
    assert round(low * 100, 2) == -0.38  # DOMAIN.md: (−0.38, 0.98) pp
    assert not result.flagged and len(result.changes) == 2
    # a fall, however large, is not a regression
    assert not compare(
        "ACCEPT", {"overkill_rate": (80, 800)}, "ACCEPT", {"overkill_rate": (1, 800)}
    ).flagged


@pytest.mark.parametrize(
    ("before", "after", "flagged"),
    [
        ("ACCEPT", "REJECT", True),
        ("ACCEPT", "HOLD", True),
        ("ACCEPT", "CONDITIONAL", False),
        ("HOLD", "REJECT", False),
        ("REJECT", "ACCEPT", False),
    ],
)
def test_verdict_changes(before: str, after: str, flagged: bool) -> None:
    result = compare(before, {}, after, {})
    assert result.flagged is flagged
    assert result.reasons == ([f"verdict {before} → {after}"] if flagged else [])


def test_overall_rates_take_the_overall_rows_only() -> None:
    rows = [
        {"metric": "escape_rate", "parent": None, "slice": {"line": "L1"}, "k": 5, "n": 50},
        {"metric": "escape_rate", "parent": "esc", "slice": {}, "k": 4, "n": 40},
        {"metric": "escape_rate", "parent": None, "slice": {}, "k": 9, "n": 690},
        {"metric": "escape_rate", "parent": None, "slice": {}, "k": 1, "n": 10},
        {"metric": "overkill_rate", "parent": None, "slice": None, "k": None, "n": None},
        {"metric": "latency_p99", "parent": None, "slice": {}, "k": 0, "n": 300},
    ]
    assert overall_rates(rows) == {"escape_rate": (9, 690)}
