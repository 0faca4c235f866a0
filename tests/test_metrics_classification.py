"""Binary and multi-class counts vs scikit-learn; part aggregation on a hand-worked example."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from auditkit.errors import DataError
from auditkit.metrics.classification import (
    Rate,
    accuracy,
    class_confusion_matrix,
    confusion_counts,
    detection_rate,
    escape_rate,
    f1_score,
    false_call_share,
    normalise_slice_values,
    overkill_rate,
    parts_from_images,
    precision,
)


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
