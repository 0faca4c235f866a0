"""Binary and multi-class counts vs scikit-learn; part aggregation on a hand-worked example."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    auc,
    average_precision_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from sklearn.metrics import fbeta_score as sk_fbeta

from auditkit.errors import DataError
from auditkit.metrics.classification import (
    Rate,
    accuracy,
    balanced_accuracy,
    class_confusion_matrix,
    cohen_kappa,
    confusion_counts,
    detection_rate,
    escape_rate,
    escaped_ppm,
    f1_score,
    f2_score,
    false_call_share,
    fbeta_score,
    normalise_slice_values,
    overkill_rate,
    parts_from_images,
    per_class_rates,
    pr_auc,
    pr_points,
    precision,
    rates_by_threshold,
    roc_auc,
    roc_points,
    threshold_for_escape,
)
from auditkit.metrics.stats import binomial_interval


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_counts_and_rates_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 5000
    d = rng.random(n) < 0.3
    r = np.where(d, rng.random(n) < 0.9, rng.random(n) < 0.05)
    tn, fp, fn, tp = confusion_matrix(d, r, labels=[False, True]).ravel()
    c = confusion_counts(d, r)
    assert (c.tp, c.fp, c.tn, c.fn) == (tp, fp, tn, fn)
    prec, rec, f1, _ = precision_recall_fscore_support(d, r, average="binary", pos_label=True)
    assert detection_rate(d, r).value == pytest.approx(rec)
    assert escape_rate(d, r).value == pytest.approx(1 - rec)
    assert precision(d, r).value == pytest.approx(prec)
    assert false_call_share(d, r).value == pytest.approx(1 - prec)
    assert f1_score(d, r) == pytest.approx(f1)
    assert accuracy(d, r).value == pytest.approx(accuracy_score(d, r))
    assert overkill_rate(d, r).value == pytest.approx(fp / (fp + tn))
    # documented k and n
    assert escape_rate(d, r) == Rate(k=int(fn), n=int(tp + fn))
    assert overkill_rate(d, r) == Rate(k=int(fp), n=int(fp + tn))
    assert detection_rate(d, r) == Rate(k=int(tp), n=int(tp + fn))
    assert precision(d, r) == Rate(k=int(tp), n=int(tp + fp))
    assert false_call_share(d, r) == Rate(k=int(fp), n=int(tp + fp))
    assert accuracy(d, r) == Rate(k=int(tp + tn), n=n)


def test_rate_value_and_validation() -> None:
    assert Rate(3, 10).value == 0.3
    assert Rate(0, 0).value is None
    with pytest.raises(ValueError):
        Rate(4, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Rate(1, 2).k = 2  # type: ignore[misc]


def test_empty_denominators() -> None:
    good = np.zeros(4, dtype=bool)
    assert escape_rate(good, good) == Rate(0, 0)
    assert escape_rate(good, good).value is None
    assert precision(good, good).value is None
    assert f1_score(good, good) is None
    assert overkill_rate(good, good) == Rate(0, 4)
    assert confusion_counts([1, 0, 1], [1, 1, 0]) == (1, 1, 0, 1)
    with pytest.raises(ValueError):
        confusion_counts([True], [True, False])


def test_class_confusion_matrix_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    classes = ["good", "scratch", "pit", "crack"]
    y_true = rng.choice([*classes, "dent"], size=3000)  # "dent" is not in labels
    y_pred = rng.choice(classes, size=3000)
    got = class_confusion_matrix(y_true, y_pred, classes)
    want = confusion_matrix(y_true, y_pred, labels=classes)
    np.testing.assert_array_equal(got, want)
    got_series = class_confusion_matrix(pd.Series(y_true), pd.Series(y_pred), classes)
    np.testing.assert_array_equal(got_series, want)


# ------------------------------------------------------------------ parts


def _hand_example() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Five parts, eight images.

    P1 two views: top good accepted, side scratch rejected -> defective, rejected (caught)
    P2 two views, both good, side unreadable -> unscored (counted, not pooled)
    P3 one view, pit, accepted -> defective, accepted (escape)
    P4 two views labelled scratch and pit, one rejected -> defect class "pit+scratch", caught
    P5 one view, good, rejected -> overkill
    """
    rows = [
        # sample, part, label, status, line, camera
        ("s1", "P1", "good", "ok", "L1", "top"),
        ("s2", "P1", "scratch", "ok", "L1", "side"),
        ("s3", "P2", "good", "ok", "L2", "top"),
        ("s4", "P2", "good", "unreadable", "L2", "side"),
        ("s5", "P3", "pit", "ok", "L2", "top"),
        ("s6", "P4", "scratch", "ok", "", "top"),
        ("s7", "P4", "pit", "ok", None, "side"),
        ("s8", "P5", "good", "ok", "L1", "top"),
    ]
    samples = pd.DataFrame(rows, columns=["sample_id", "part_id", "label", "status", "line", "cam"])
    samples = samples.assign(
        path=samples["sample_id"] + ".png",
        sha256="",
        is_defect=samples["label"] != "good",
        error=np.where(samples["status"] == "ok", "", "cannot decode"),
    )
    rejects = {"s1": False, "s2": True, "s3": False, "s5": False, "s6": False, "s7": True}
    rejects["s8"] = True
    predictions = pd.DataFrame(
        {
            "sample_id": list(rejects),
            "score": [0.1] * len(rejects),
            "pred_label": ["good", "scratch", "good", "good", "good", "pit", "scratch"],
            "is_reject": list(rejects.values()),
        }
    )
    return samples, predictions


def test_parts_from_images_hand_example() -> None:
    samples, predictions = _hand_example()
    parts = parts_from_images(samples, predictions).set_index("part_id")
    assert list(parts.index) == ["P1", "P2", "P3", "P4", "P5"]
    assert parts["n_images"].tolist() == [2, 2, 1, 2, 1]
    assert parts["n_images_ok"].tolist() == [2, 1, 1, 2, 1]
    assert parts["scored"].tolist() == [True, False, True, True, True]
    assert parts["is_defect"].tolist() == [True, False, True, True, False]
    # P1: one bad view is enough to reject the part; P2 unscored -> <NA>
    assert parts["is_reject"].dtype == "boolean"
    assert parts["is_reject"].isna().tolist() == [False, True, False, False, False]
    assert parts.loc[["P1", "P3", "P4", "P5"], "is_reject"].tolist() == [True, False, True, True]
    assert parts["defect_class"].tolist() == ["scratch", "good", "pit", "pit+scratch", "good"]
    # line is constant within every part ("" and None both missing) -> carried; cam varies
    assert "line" in parts.columns
    assert "cam" not in parts.columns
    assert parts["line"].tolist() == ["L1", "L2", "L2", "(missing)", "L1"]
    scored = parts[parts["scored"]]
    c = confusion_counts(scored["is_defect"], scored["is_reject"].astype(bool))
    assert c == (2, 1, 0, 1)  # tp P1,P4; fp P5; tn none; fn P3


def test_parts_default_part_id_and_reordering() -> None:
    samples, predictions = _hand_example()
    alone = samples.drop(columns=["part_id"])  # every image its own part
    parts = parts_from_images(alone, predictions)
    assert len(parts) == 8
    assert "cam" in parts.columns  # constant within one-image parts
    shuffled = parts_from_images(samples.sample(frac=1, random_state=1), predictions[::-1])
    pd.testing.assert_frame_equal(shuffled, parts_from_images(samples, predictions))


def test_parts_contract_violations() -> None:
    samples, predictions = _hand_example()
    extra = pd.concat(
        [predictions, pd.DataFrame({"sample_id": ["s4"], "is_reject": [True]})],
        ignore_index=True,
    )
    with pytest.raises(DataError, match="not 'ok'"):
        parts_from_images(samples, extra)
    with pytest.raises(DataError, match="no prediction"):
        parts_from_images(samples, predictions.iloc[1:])
    with pytest.raises(DataError, match="unknown sample_id"):
        parts_from_images(
            samples,
            pd.concat([predictions, pd.DataFrame({"sample_id": ["zz"], "is_reject": [True]})]),
        )
    dup = pd.concat([samples, samples.iloc[[0]]], ignore_index=True)
    with pytest.raises(DataError, match="not unique"):
        parts_from_images(dup, predictions)
    bad = samples.assign(is_defect=~samples["is_defect"])
    with pytest.raises(DataError, match="is_defect"):
        parts_from_images(bad, predictions)
    with pytest.raises(DataError, match="status"):
        parts_from_images(samples.assign(status="weird"), predictions)


def test_normalise_slice_values() -> None:
    s = pd.Series(["b", "", None, np.nan, "  ", "a", "b"])
    assert normalise_slice_values(s).tolist() == [
        "b",
        "(missing)",
        "(missing)",
        "(missing)",
        "(missing)",
        "a",
        "b",
    ]
    assert normalise_slice_values(pd.Series([1, 2, 1])).tolist() == ["1", "2", "1"]


def test_integer_ids_and_shuffled_predictions() -> None:
    samples, predictions = _hand_example()
    ids = {f"s{i}": i for i in range(1, 9)}
    samples_int = samples.assign(sample_id=samples["sample_id"].map(ids))
    preds_int = predictions.assign(sample_id=predictions["sample_id"].map(ids)).iloc[::-1]
    got = parts_from_images(samples_int, preds_int)
    want = parts_from_images(samples, predictions)
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize("n_classes", [3, 70])
def test_defect_class_of_disagreeing_views(n_classes: int) -> None:
    # more than 62 defect classes takes the general (non bit-set) path
    names = [f"d{i:02d}" for i in range(n_classes)]
    labels = ["good", names[-1], names[0], names[1], names[1], "good", "good"]
    parts = ["A", "A", "A", "B", "B", "C", "C"]
    samples = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(7)],
            "part_id": parts,
            "label": labels,
            "status": "ok",
        }
    )
    predictions = pd.DataFrame({"sample_id": samples["sample_id"], "is_reject": False})
    got = parts_from_images(samples, predictions)
    assert got["defect_class"].tolist() == [f"{names[0]}+{names[-1]}", names[1], "good"]


# ------------------------------------------------------------------ summary scores


def _random_scores(seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = rng.random(n) < 0.3
    # rounded scores give many ties
    s = np.round(np.clip(rng.normal(np.where(d, 0.65, 0.35), 0.2), 0, 1), 2)
    return d, s


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_summary_scores_match_sklearn(seed: int) -> None:
    d, s = _random_scores(seed)
    r = s >= 0.5
    assert balanced_accuracy(d, r) == pytest.approx(balanced_accuracy_score(d, r), rel=1e-12)
    assert f2_score(d, r) == pytest.approx(sk_fbeta(d, r, beta=2), rel=1e-12)
    assert fbeta_score(d, r, beta=0.5) == pytest.approx(sk_fbeta(d, r, beta=0.5), rel=1e-12)
    assert cohen_kappa(d, r) == pytest.approx(cohen_kappa_score(d, r), rel=1e-12)
    assert roc_auc(d, s) == pytest.approx(roc_auc_score(d, s), rel=1e-12)
    assert pr_auc(d, s) == pytest.approx(average_precision_score(d, s), rel=1e-12)
    # multi-class kappa on class names
    rng = np.random.default_rng(seed)
    classes = np.array(["good", "scratch", "pit", "crack"])
    y_true = rng.choice(classes, 3000)
    y_pred = np.where(rng.random(3000) < 0.7, y_true, rng.choice(classes, 3000))
    assert cohen_kappa(y_true, y_pred) == pytest.approx(cohen_kappa_score(y_true, y_pred))


def test_summary_scores_degenerate_sets() -> None:
    good = np.zeros(6, dtype=bool)
    bad = np.ones(6, dtype=bool)
    s = np.array([0.1, 0.2, 0.2, 0.9, 0.5, 0.5])
    r = s >= 0.5
    # all good: AUC undefined, AP undefined, balanced accuracy = 1 - overkill (as sklearn)
    assert roc_auc(good, s) is None
    assert pr_auc(good, s) is None
    with pytest.warns(UndefinedMetricWarning):  # scikit-learn: NaN with a warning
        assert np.isnan(roc_auc_score(good, s))
    with pytest.warns(UserWarning, match="not in y_true"):  # scikit-learn warns, then
        assert balanced_accuracy(good, r) == pytest.approx(balanced_accuracy_score(good, r))
    with pytest.warns(UserWarning, match="not in y_true"):  # averages the classes present
        assert balanced_accuracy(bad, r) == pytest.approx(balanced_accuracy_score(bad, r))
    assert balanced_accuracy([], []) is None
    # all defective: AUC undefined, AP = share of defects at every threshold = 1
    assert roc_auc(bad, s) is None
    assert pr_auc(bad, s) == pytest.approx(average_precision_score(bad, s)) == 1.0
    # no defect and no reject: F2 undefined (sklearn: 0 with a warning)
    assert f2_score(good, good) is None
    # kappa: one label in both -> undefined (sklearn: NaN)
    assert cohen_kappa(good, good) is None
    assert cohen_kappa([], []) is None
    # all scores tied: AUC 1/2
    assert roc_auc([True, False, True, False], [0.3] * 4) == 0.5
    with pytest.raises(ValueError):
        roc_auc([True, False], [0.1, np.nan])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rates_by_threshold_match_roc_curve(seed: int) -> None:
    d, s = _random_scores(seed, 500)
    table = rates_by_threshold(d, s)
    fpr, tpr, thr = roc_curve(d, s, drop_intermediate=False)
    np.testing.assert_array_equal(table["threshold"], thr)
    np.testing.assert_allclose(table["overkill_rate"], fpr, rtol=1e-12)
    np.testing.assert_allclose(table["detection_rate"], tpr, rtol=1e-12)
    # counts are those of the rule score >= threshold
    for i in [1, len(table) // 2, len(table) - 1]:
        row = table.iloc[i]
        c = confusion_counts(d, s >= row["threshold"])
        assert (row["tp"], row["fp"], row["tn"], row["fn"]) == tuple(c)
        r = s >= row["threshold"]
        assert row["precision"] == pytest.approx(precision(d, r).value, rel=1e-12)
        assert row["false_call_share"] == pytest.approx(false_call_share(d, r).value, rel=1e-12)
        assert row["accuracy"] == pytest.approx(accuracy_score(d, r), rel=1e-12)
    assert table.iloc[0][["tp", "fp"]].tolist() == [0, 0]
    assert np.isnan(table["precision"].iloc[0])  # nothing rejected
    # the precision-recall curve: sklearn's precision_recall_curve at the same thresholds
    prec, rec, pr_thr = precision_recall_curve(d, s)
    by_thr = table.set_index("threshold")
    np.testing.assert_allclose(by_thr.loc[pr_thr, "precision"], prec[:-1], rtol=1e-12)
    np.testing.assert_allclose(by_thr.loc[pr_thr, "detection_rate"], rec[:-1], rtol=1e-12)
    assert np.isnan(rates_by_threshold(np.zeros(3, bool), [0.1, 0.2, 0.3])["escape_rate"]).all()


def _curve_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """Ties (rounded scores), no ties, perfect separation, all scores equal, and the shortest
    inputs (two and three distinct scores, where corner dropping does not apply)."""
    rng = np.random.default_rng(7)
    d = rng.random(300) < 0.4
    return [
        *(_random_scores(seed, 500) for seed in (0, 1, 2)),
        (d, rng.normal(np.where(d, 0.6, 0.4), 0.2)),
        (np.array([False] * 5 + [True] * 5), np.arange(10) / 10.0),
        (np.array([True, False, True, False]), np.full(4, 0.3)),
        (np.array([False, True]), np.array([0.2, 0.7])),
        (np.array([False, True, True, False]), np.array([0.1, 0.4, 0.35, 0.8])),
    ]


@pytest.mark.parametrize("case", range(8))
@pytest.mark.parametrize("drop_intermediate", [True, False])
def test_roc_and_pr_points_equal_sklearn_curves(case: int, drop_intermediate: bool) -> None:
    d, s = _curve_cases()[case]
    roc = roc_points(d, s, drop_intermediate=drop_intermediate)
    fpr, tpr, thr = roc_curve(d, s, drop_intermediate=drop_intermediate)
    assert roc is not None
    np.testing.assert_array_equal(roc.threshold, thr)
    np.testing.assert_array_equal(roc.overkill_rate, fpr)
    np.testing.assert_array_equal(roc.detection_rate, tpr)
    pr = pr_points(d, s, drop_intermediate=drop_intermediate)
    prec, rec, pr_thr = precision_recall_curve(d, s, drop_intermediate=drop_intermediate)
    assert pr is not None
    np.testing.assert_array_equal(pr.threshold, np.r_[np.inf, pr_thr[::-1]])
    np.testing.assert_array_equal(pr.detection_rate, rec[::-1])
    np.testing.assert_array_equal(pr.precision, prec[::-1])


def test_curve_points_drop_only_points_off_the_corners() -> None:
    d, s = _random_scores(0, 500)
    full = roc_points(d, s, drop_intermediate=False)
    roc = roc_points(d, s)
    pr_full, pr = pr_points(d, s, drop_intermediate=False), pr_points(d, s)
    assert full is not None and roc is not None and pr_full is not None and pr is not None
    assert len(roc.threshold) < len(full.threshold) and len(pr.threshold) < len(pr_full.threshold)
    # what stays is a subset of the full curve, and the area under the ROC steps is unchanged
    assert set(roc.threshold) <= set(full.threshold) and set(pr.threshold) <= set(pr_full.threshold)
    assert auc(roc.overkill_rate, roc.detection_rate) == pytest.approx(
        roc_auc_score(d, s), rel=1e-12
    )
    # the full curves are rates_by_threshold's rows
    table = rates_by_threshold(d, s)
    np.testing.assert_allclose(full.overkill_rate, table["overkill_rate"], rtol=1e-12)
    np.testing.assert_allclose(pr_full.precision[1:], table["precision"][1:], rtol=1e-12)
    # hand-worked: scores 0.8 (good), 0.4 (defect), 0.35 (defect), 0.1 (good)
    small = roc_points([False, True, True, False], [0.1, 0.4, 0.35, 0.8])
    assert small is not None
    assert small.overkill_rate.tolist() == [0.0, 0.5, 0.5, 1.0]  # 0.4 sits on a straight run
    assert small.detection_rate.tolist() == [0.0, 0.0, 1.0, 1.0]
    small_pr = pr_points([False, True, True, False], [0.1, 0.4, 0.35, 0.8], drop_intermediate=False)
    assert small_pr is not None
    assert small_pr.detection_rate.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert small_pr.precision.tolist() == [1.0, 0.0, 0.5, 2 / 3, 0.5]


def test_curve_points_undefined_without_both_kinds_of_unit() -> None:
    assert roc_points([True, True], [0.1, 0.2]) is None
    assert roc_points([False, False], [0.1, 0.2]) is None
    assert pr_points([False, False], [0.1, 0.2]) is None
    only_defects = pr_points([True, True], [0.1, 0.2])  # precision 1 everywhere
    assert only_defects is not None and only_defects.precision.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="finite"):
        roc_points([True, False], [0.1, np.nan])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("target", [0.02, 0.05, 0.2])
def test_threshold_for_escape_matches_brute_force(seed: int, target: float) -> None:
    d, s = _random_scores(seed, 3000)
    got = threshold_for_escape(d, s, target, level=0.95)
    want = None
    for t in sorted(set(s.tolist()), reverse=True):
        e = escape_rate(d, s >= t)
        high = binomial_interval(e.k, e.n, 0.95, sided="one")[1]
        if high <= target:
            want = (t, e, high, overkill_rate(d, s >= t))
            break
    if want is None:
        assert got is None
    else:
        assert got is not None
        assert (got.threshold, got.escape, got.overkill) == (want[0], want[1], want[3])
        assert got.escape_upper == pytest.approx(want[2], rel=1e-12)


def test_threshold_for_escape_unreachable() -> None:
    # 10 defective parts cannot demonstrate escape <= 1 % (0 escapes bound at 25.9 %)
    d = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    s = np.r_[np.full(10, 0.9), np.full(10, 0.1)]
    assert threshold_for_escape(d, s, 0.01) is None
    point = threshold_for_escape(d, s, 0.3)
    assert point is not None and point.threshold == 0.9 and point.escape == Rate(0, 10)
    assert point.overkill == Rate(0, 10)
    assert threshold_for_escape(np.zeros(3, bool), [0.1, 0.2, 0.3], 0.3) is None


def test_escaped_ppm_formula_and_bounds() -> None:
    # 12 escapes / 600 defective, 30 overkill / 1400 good, production prevalence 0.2 %
    esc, ovk, pi = Rate(12, 600), Rate(30, 1400), 0.002
    res = escaped_ppm(esc, ovk, pi)
    fnr, fpr = 12 / 600, 30 / 1400
    assert res.value == pytest.approx(1e6 * pi * fnr / (pi * fnr + (1 - pi) * (1 - fpr)))
    e_lo, e_hi = binomial_interval(12, 600, 0.975, sided="one")
    o_lo, o_hi = binomial_interval(30, 1400, 0.975, sided="one")
    assert res.high == pytest.approx(1e6 * pi * e_hi / (pi * e_hi + (1 - pi) * (1 - o_hi)))
    assert res.low == pytest.approx(1e6 * pi * e_lo / (pi * e_lo + (1 - pi) * (1 - o_lo)))
    assert res.low < res.value < res.high
    assert res.prevalence == pi and res.level == 0.95
    plain = escaped_ppm(fnr, fpr, pi)
    assert plain.value == pytest.approx(res.value) and plain.high is None
    assert escaped_ppm(Rate(0, 0), ovk, pi).value is None
    assert escaped_ppm(0.0, 0.01, pi).value == 0.0
    with pytest.raises(ValueError):
        escaped_ppm(esc, ovk, 1.5)


def test_per_class_rates_match_sklearn() -> None:
    rng = np.random.default_rng(8)
    classes = ["good", "scratch", "pit", "crack", "dent"]
    y_true = rng.choice(classes[:4], 2000)  # "dent" never occurs: recall undefined
    y_pred = np.where(rng.random(2000) < 0.6, y_true, rng.choice(classes[:3], 2000))
    got = per_class_rates(y_true, y_pred, classes)
    prec, rec, _, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, average=None, zero_division=np.nan
    )
    np.testing.assert_allclose(got["recall"], rec, equal_nan=True)
    np.testing.assert_allclose(got["precision"], prec, equal_nan=True)
    np.testing.assert_array_equal(got["support"], support)
    assert got.loc["dent", "precision_n"] == 0 and np.isnan(got.loc["dent", "precision"])
    assert got.loc["dent", "recall_n"] == 0 and np.isnan(got.loc["dent", "recall"])
