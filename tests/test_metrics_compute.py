"""Slices, efficiency and ``metrics.json`` on a hand-worked example with known numbers."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from auditkit.errors import DataError
from auditkit.metrics import compute_metrics
from auditkit.metrics.efficiency import latency_summary, single_stream_e2e_s, throughput
from auditkit.metrics.groups import by_group, difference, ratio, slice_counts
from auditkit.metrics.stats import binomial_interval

CLASSES = ["good", "scratch", "pit", "crack"]
POSITIVE = ["scratch", "pit", "crack"]

# ------------------------------------------------------------------ slices


def _brute_force_counts(df: pd.DataFrame, cols: list[str]) -> dict[tuple[str, ...], list[int]]:
    keyed = df.copy()
    for c in cols:
        v = keyed[c].astype(object)
        keyed[c] = [
            "(missing)" if x is None or (isinstance(x, float) and np.isnan(x)) or str(x) == ""
            else str(x)
            for x in v
        ]  # fmt: skip
    out: dict[tuple[str, ...], list[int]] = {}
    for _, row in keyed.iterrows():
        key = tuple(row[c] for c in cols)
        counts = out.setdefault(key, [0, 0, 0, 0])  # tp, fp, tn, fn
        d, r = bool(row["is_defect"]), bool(row["is_reject"])
        counts[0 if d and r else 1 if r else 2 if not d else 3] += 1
    return out


@pytest.mark.parametrize("cols", [["line"], ["shift"], ["line", "shift"]])
def test_slice_counts_match_brute_force(cols: list[str]) -> None:
    rng = np.random.default_rng(5)
    n = 800
    df = pd.DataFrame(
        {
            "line": rng.choice(np.array(["L1", "L2", "L3", "", None], dtype=object), size=n),
            "shift": rng.choice(np.array(["day", "night", np.nan], dtype=object), size=n),
            "is_defect": rng.random(n) < 0.4,
            "is_reject": rng.random(n) < 0.4,
        }
    )
    got = slice_counts(df, cols)
    want = _brute_force_counts(df, cols)
    assert got["tp"].sum() + got["fp"].sum() + got["tn"].sum() + got["fn"].sum() == n
    keys = [k if isinstance(k, tuple) else (k,) for k in got.index]
    assert sorted(keys) == sorted(want)
    assert keys == sorted(keys)  # sorted by value
    for key, row in zip(keys, got.itertuples(index=False), strict=True):
        assert [row.tp, row.fp, row.tn, row.fn] == want[key]
    assert list(got.index.names) == cols


def test_by_group_difference_ratio() -> None:
    df = pd.DataFrame(
        {
            "line": ["a"] * 4 + ["b"] * 4 + ["c"] * 2,
            "is_defect": [1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
            "is_reject": [1, 1, 1, 0, 1, 0, 0, 1, 0, 0],
        }
    ).astype({"is_defect": bool, "is_reject": bool})
    esc = by_group(slice_counts(df, "line"), "escape_rate")
    assert esc["k"].tolist() == [1, 1, 0]
    assert esc["n"].tolist() == [4, 2, 0]
    assert esc["value"].tolist()[:2] == [0.25, 0.5]
    assert np.isnan(esc["value"].iloc[2])
    assert difference(esc["value"]) == pytest.approx(0.25)
    assert ratio(esc["value"]) == pytest.approx(0.5)
    assert difference(esc["value"], method="to_overall", overall=1 / 3) == pytest.approx(1 / 6)
    assert ratio(esc["value"], method="to_overall", overall=1 / 3) == pytest.approx(2 / 3)
    assert difference([np.nan]) is None
    with pytest.raises(ValueError):
        by_group(slice_counts(df, "line"), "nonsense")


# ------------------------------------------------------------------ efficiency


def test_latency_summary_and_throughput() -> None:
    rng = np.random.default_rng(2)
    e2e = rng.permutation(np.arange(1, 1001) / 1000.0)  # 1 ms ... 1000 ms
    s = latency_summary(e2e)
    assert s["n"] == 1000
    for q in (50, 90, 99):
        assert s[f"p{q}_ms"] == pytest.approx(np.percentile(e2e * 1000, q))
    assert s["p99_high_ms"] == pytest.approx(996.0)  # the 996th smallest value
    assert latency_summary(e2e[:298])["p99_high_ms"] is None
    assert throughput(1000, 4.0) == 250.0
    with pytest.raises(ValueError):
        throughput(10, 0.0)
    timings = pd.DataFrame(
        {"scenario": ["offline", "single-stream", "single-stream"], "e2e_s": [0.5, 0.1, 0.2]}
    )
    np.testing.assert_array_equal(single_stream_e2e_s(timings), [0.1, 0.2])


# ------------------------------------------------------------------ metrics.json


def _hand_example() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Five parts, eight images (same as in test_metrics_classification).

    P1 two views: good accepted (top), scratch rejected (side)  -> caught
    P2 two views, good, side unreadable                          -> unscored
    P3 one view, pit, accepted                                   -> escape
    P4 two views, scratch accepted (top) + pit rejected (side)   -> "pit+scratch", caught
    P5 one view, good, rejected                                  -> overkill
    """
    rows = [
        ("s1", "P1", "good", "ok", "L1", "top"),
        ("s2", "P1", "scratch", "ok", "L1", "side"),
        ("s3", "P2", "good", "ok", "L2", "top"),
        ("s4", "P2", "good", "unreadable", "L2", "side"),
        ("s5", "P3", "pit", "ok", "L2", "top"),
        ("s6", "P4", "scratch", "ok", "", "top"),
        ("s7", "P4", "pit", "ok", None, "side"),
        ("s8", "P5", "good", "ok", "L1", "top"),
    ]
    samples = pd.DataFrame(
        rows, columns=["sample_id", "part_id", "label", "status", "line", "camera"]
    )
    samples = samples.assign(
        path=samples["sample_id"] + ".png",
        sha256="",
        is_defect=samples["label"] != "good",
        error=np.where(samples["status"] == "ok", "", "cannot decode"),
    )
    predictions = pd.DataFrame(
        {
            "sample_id": ["s1", "s2", "s3", "s5", "s6", "s7", "s8"],
            "score": [0.1, 0.9, 0.2, 0.3, 0.1, 0.8, 0.7],
            "pred_label": ["good", "scratch", "good", "good", "good", "pit", "scratch"],
            "is_reject": [False, True, False, False, False, True, True],
        }
    )
    return samples, predictions


def _entry(m: dict[str, Any], name: str, slice_: dict[str, str]) -> dict[str, Any]:
    found = [e for e in m["metrics"] if e["name"] == name and e["slice"] == slice_]
    assert len(found) == 1, (name, slice_)
    return found[0]


def _kn(m: dict[str, Any], name: str, slice_: dict[str, str]) -> tuple[int, int]:
    e = _entry(m, name, slice_)
    return e["k"], e["n"]


def test_compute_metrics_hand_example() -> None:
    samples, predictions = _hand_example()
    m = compute_metrics(samples, predictions, classes=CLASSES, positive_classes=POSITIVE)
    assert m["format"] == "auditkit.metrics/1"
    assert (m["unit"], m["confidence_level"], m["interval_method"], m["sided"]) == (
        "part",
        0.95,
        "clopper_pearson",
        "one",
    )
    assert m["positive_classes"] == POSITIVE
    assert m["counts"] == {
        "images": 8,
        "images_ok": 7,
        "images_unreadable": 1,
        "images_error": 0,
        "parts": 5,
        "parts_scored": 4,
        "parts_unscored": 1,
    }
    # scored parts: TP = P1, P4; FN = P3; FP = P5; TN = none
    assert m["confusion_matrix"] == {
        "unit": "part",
        "labels": ["good", "defect"],
        "matrix": [[0, 1], [1, 2]],
    }
    assert _kn(m, "escape_rate", {}) == (1, 3)
    assert _kn(m, "overkill_rate", {}) == (1, 1)
    assert _kn(m, "detection_rate", {}) == (2, 3)
    assert _kn(m, "precision", {}) == (2, 3)
    assert _kn(m, "false_call_share", {}) == (1, 3)
    assert _kn(m, "accuracy", {}) == (2, 4)
    f1 = _entry(m, "f1", {})
    assert f1["value"] == pytest.approx(2 / 3)
    assert (f1["k"], f1["n"], f1["interval"]) == (None, None, None)

    esc = _entry(m, "escape_rate", {})
    assert esc["value"] == 1 / 3
    assert esc["unit"] == "part"
    low, high = binomial_interval(1, 3, 0.95, "clopper_pearson", "one")
    assert esc["interval"] == {
        "low": low,
        "high": high,
        "method": "clopper_pearson",
        "level": 0.95,
        "sided": "one",
    }

    # escape per defect class: card order, then other classes of the data
    per_class = [e for e in m["metrics"] if "defect_class" in e["slice"]]
    assert [e["slice"]["defect_class"] for e in per_class] == [
        "scratch",
        "pit",
        "crack",
        "pit+scratch",
    ]
    assert [(e["k"], e["n"]) for e in per_class] == [(0, 1), (1, 1), (0, 0), (0, 1)]
    crack = per_class[2]
    assert crack["value"] is None and crack["interval"] is None

    # line: constant within parts -> part level; P4's "" / None -> "(missing)"
    for value, (esc_kn, ok_kn, det_kn, acc_kn) in {
        "(missing)": ((0, 1), (0, 0), (1, 1), (1, 1)),
        "L1": ((0, 1), (1, 1), (1, 1), (1, 2)),
        "L2": ((1, 1), (0, 0), (0, 1), (0, 1)),
    }.items():
        s = {"line": value}
        assert _kn(m, "escape_rate", s) == esc_kn
        assert _kn(m, "overkill_rate", s) == ok_kn
        assert _kn(m, "detection_rate", s) == det_kn
        assert _kn(m, "accuracy", s) == acc_kn
        assert _entry(m, "escape_rate", s)["unit"] == "part"
    # camera varies within parts -> image level, images with status ok
    assert _entry(m, "escape_rate", {"camera": "top"})["unit"] == "image"
    assert _kn(m, "escape_rate", {"camera": "top"}) == (2, 2)
    assert _kn(m, "overkill_rate", {"camera": "top"}) == (1, 3)
    assert _kn(m, "accuracy", {"camera": "top"}) == (2, 5)
    assert _kn(m, "detection_rate", {"camera": "side"}) == (2, 2)
    assert _kn(m, "overkill_rate", {"camera": "side"}) == (0, 0)

    assert m["class_confusion_matrix"] == {
        "unit": "image",
        "labels": CLASSES,
        "matrix": [[2, 1, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]],
    }

    names = [(e["name"], json.dumps(e["slice"], sort_keys=True)) for e in m["metrics"]]
    assert len(names) == len(set(names))
    assert names[:12] == [
        (n, "{}")
        for n in (
            "escape_rate",
            "overkill_rate",
            "detection_rate",
            "precision",
            "false_call_share",
            "accuracy",
            "f1",
            "f2",
            "balanced_accuracy",
            "kappa",
            "roc_auc",
            "pr_auc",
        )
    ]
    # 12 overall, 4 defect classes, 4 rates per slice value, and per slicing column the
    # difference and ratio of escape and overkill
    assert len(m["metrics"]) == 12 + 4 + 4 * 3 + 4 * 2 + 2 * 4
    for e in m["metrics"]:
        spread = e["name"].endswith(("_difference", "_ratio"))
        extra = ["largest", "smallest"] if spread else []
        assert list(e) == ["name", "slice", "unit", "value", "k", "n", "interval", *extra]
        if e["k"] is not None and e["n"]:
            assert e["value"] == e["k"] / e["n"]


def _assert_plain(x: Any) -> None:
    if isinstance(x, dict):
        for k, v in x.items():
            assert type(k) is str
            _assert_plain(v)
    elif isinstance(x, list):
        for v in x:
            _assert_plain(v)
    else:
        assert x is None or type(x) in (str, int, float, bool), (x, type(x))


def test_compute_metrics_json_round_trip_and_determinism() -> None:
    samples, predictions = _hand_example()
    rng = np.random.default_rng(0)
    kwargs: dict[str, Any] = {
        "classes": CLASSES,
        "positive_classes": POSITIVE,
        "latency_e2e_s": rng.gamma(4.0, 0.0005, size=400),
        "throughput_ips": 812.5,
    }
    m = compute_metrics(samples, predictions, **kwargs)
    _assert_plain(m)
    text = json.dumps(m, allow_nan=False)
    assert json.loads(text) == m
    # same input in another row order -> byte-identical JSON
    again = compute_metrics(
        samples.sample(frac=1, random_state=3), predictions.iloc[::-1], **kwargs
    )
    assert json.dumps(again) == text

    p99 = _entry(m, "latency_p99_ms", {"scenario": "single-stream"})
    assert p99["n"] == 400 and p99["k"] is None and p99["unit"] == "image"
    assert p99["value"] == pytest.approx(np.percentile(kwargs["latency_e2e_s"] * 1000, 99))
    assert p99["interval"]["method"] == "order_statistic"
    assert p99["interval"]["high"] >= p99["value"] >= p99["interval"]["low"]
    thr = _entry(m, "throughput_ips", {"scenario": "offline"})
    assert thr["value"] == 812.5 and thr["interval"] is None
    assert [e["name"] for e in m["metrics"][-4:]] == [
        "latency_p50_ms",
        "latency_p90_ms",
        "latency_p99_ms",
        "throughput_ips",
    ]


def test_compute_metrics_options() -> None:
    samples, predictions = _hand_example()
    m = compute_metrics(
        samples,
        predictions,
        classes=CLASSES,
        positive_classes=POSITIVE,
        level=0.9,
        method="wilson",
        sided="two",
        slice_columns=[["line", "camera"], "line"],
    )
    esc = _entry(m, "escape_rate", {})
    assert (esc["interval"]["low"], esc["interval"]["high"]) == binomial_interval(
        1, 3, 0.9, "wilson", "two"
    )
    assert (m["interval_method"], m["sided"], m["confidence_level"]) == ("wilson", "two", 0.9)
    inter = _entry(m, "escape_rate", {"line": "L2", "camera": "top"})
    assert inter["unit"] == "image" and (inter["k"], inter["n"]) == (1, 1)
    assert not [e for e in m["metrics"] if "camera" in e["slice"] and len(e["slice"]) == 1]
    with pytest.raises(DataError):
        compute_metrics(
            samples, predictions, classes=CLASSES, positive_classes=POSITIVE, slice_columns=["x"]
        )
    with pytest.raises(ValueError):
        compute_metrics(
            samples, predictions, classes=CLASSES, positive_classes=POSITIVE, method="normal"
        )


def test_compute_metrics_matches_independent_pandas_on_random_data() -> None:
    rng = np.random.default_rng(11)
    n_parts = 3000
    views = rng.integers(1, 3, size=n_parts)
    part = np.repeat(np.arange(n_parts), views)
    n = len(part)
    labels = rng.choice(CLASSES, size=n, p=[0.7, 0.1, 0.1, 0.1])
    status = rng.choice(["ok", "unreadable", "error"], size=n, p=[0.98, 0.01, 0.01])
    samples = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "part_id": [f"p{i:05d}" for i in part],
            "label": labels,
            "is_defect": labels != "good",
            "status": status,
            "line": rng.choice(["L1", "L2", ""], size=n_parts)[part],
            "camera": rng.choice(["a", "b"], size=n),
        }
    )
    ok = samples[samples["status"] == "ok"]
    predictions = pd.DataFrame(
        {
            "sample_id": ok["sample_id"].to_numpy(),
            "pred_label": rng.choice(CLASSES, size=len(ok)),
            "is_reject": rng.random(len(ok)) < 0.35,
        }
    )
    m = compute_metrics(samples, predictions, classes=CLASSES, positive_classes=POSITIVE)

    # independent part aggregation with a plain merge + groupby
    joined = samples.merge(predictions, on="sample_id", how="left")
    g = joined.groupby("part_id")
    parts = pd.DataFrame(
        {
            "scored": g["status"].agg(lambda s: bool((s == "ok").all())),
            "defect": g["is_defect"].any(),
            "reject": g["is_reject"].agg(lambda s: bool(s.fillna(False).any())),
            "line": g["line"].first(),
        }
    )
    sp = parts[parts["scored"]]
    fn = int((sp["defect"] & ~sp["reject"]).sum())
    assert _kn(m, "escape_rate", {}) == (fn, int(sp["defect"].sum()))
    fp = int((~sp["defect"] & sp["reject"]).sum())
    assert _kn(m, "overkill_rate", {}) == (fp, int((~sp["defect"]).sum()))
    assert m["counts"]["parts_unscored"] == int((~parts["scored"]).sum())
    for value in ("L1", "L2", "(missing)"):
        sl = sp[sp["line"].replace("", "(missing)") == value]
        k = int((sl["defect"] & ~sl["reject"]).sum())
        assert _kn(m, "escape_rate", {"line": value}) == (k, int(sl["defect"].sum()))
    okj = joined[joined["status"] == "ok"]
    for value in ("a", "b"):
        sl = okj[okj["camera"] == value]
        k = int((~sl["is_defect"] & sl["is_reject"].astype(bool)).sum())
        assert _kn(m, "overkill_rate", {"camera": value}) == (k, int((~sl["is_defect"]).sum()))
    cm = pd.crosstab(okj["label"], okj["pred_label"]).reindex(
        index=CLASSES, columns=CLASSES, fill_value=0
    )
    assert m["class_confusion_matrix"]["matrix"] == cm.to_numpy().tolist()


def test_overall_values_and_slice_spreads_match_references() -> None:
    from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, fbeta_score
    from statsmodels.stats.proportion import confint_proportions_2indep

    samples, predictions = _hand_example()
    m = compute_metrics(samples, predictions, classes=CLASSES, positive_classes=POSITIVE)
    (tn, fp), (fn, tp) = m["confusion_matrix"]["matrix"]
    truth = [0] * (tn + fp) + [1] * (fn + tp)
    decided = [0] * tn + [1] * fp + [0] * fn + [1] * tp
    assert _entry(m, "f2", {})["value"] == pytest.approx(fbeta_score(truth, decided, beta=2))
    assert _entry(m, "balanced_accuracy", {})["value"] == pytest.approx(
        balanced_accuracy_score(truth, decided)
    )
    assert _entry(m, "kappa", {})["value"] == pytest.approx(cohen_kappa_score(truth, decided))

    for e in m["metrics"]:
        if e["name"] != "escape_rate_difference":
            continue
        (column,) = e["slice"]["by"]
        hi = _entry(m, "escape_rate", {column: e["largest"][column]})
        lo = _entry(m, "escape_rate", {column: e["smallest"][column]})
        assert e["value"] == pytest.approx(hi["value"] - lo["value"])
        rates = [
            x["value"]
            for x in m["metrics"]
            if x["name"] == "escape_rate" and set(x["slice"]) == {column} and x["n"]
        ]
        assert hi["value"] == max(rates) and lo["value"] == min(rates)
        if e["interval"] is not None:
            # one-sided bounds at 95 % are the ends of the two-sided 90 % interval
            low, high = confint_proportions_2indep(
                hi["k"], hi["n"], lo["k"], lo["n"], method="newcomb", alpha=0.10
            )
            assert e["interval"]["low"] == pytest.approx(low)
            assert e["interval"]["high"] == pytest.approx(high)


def test_part_level_aucs_use_the_highest_image_score() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    samples, predictions = _hand_example()
    m = compute_metrics(samples, predictions, classes=CLASSES, positive_classes=POSITIVE)
    images = samples.merge(predictions, on="sample_id", how="left")
    by_part = images.groupby("part_id").agg(
        all_ok=("status", lambda s: bool((s == "ok").all())),
        defect=("label", lambda s: bool((s != "good").any())),
        score=("score", "max"),
    )
    scored = by_part[by_part["all_ok"]]
    assert _entry(m, "roc_auc", {})["value"] == pytest.approx(
        roc_auc_score(scored["defect"], scored["score"])
    )
    assert _entry(m, "pr_auc", {})["value"] == pytest.approx(
        average_precision_score(scored["defect"], scored["score"])
    )
