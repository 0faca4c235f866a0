"""Task-aware rubrics, task metrics with intervals, the certified zero-escape operating point
and escaped ppm (issue 14, items 1-3 and 7). References: pycocotools, scikit-learn, SciPy,
statsmodels and hand-worked fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from sklearn.metrics import f1_score, roc_auc_score
from statsmodels.stats.proportion import proportion_confint

from auditkit.errors import RubricError
from auditkit.metrics.bootstrap import evaluate_boxes, weighted_ap, weighted_auroc, weighted_f1
from auditkit.metrics.compute import operating_point_entries
from auditkit.metrics.stats import cluster_bootstrap, part_weights, percentile_bounds
from auditkit.metrics.tasks import Bootstrap, detection_entries
from auditkit.rubric.evaluate import evaluate
from auditkit.rubric.schema import load_rubric

CLASSES = ["scratch", "pit"]
ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


RUBRIC = """schema: auditkit.rubric/v1
id: t
version: 1.0.0
title: t
applicability: {{task: {task}}}
criteria:
{criteria}
"""


def _rubric(tmp_path: Path, task: str, criteria: str) -> object:
    return load_rubric(_write(tmp_path, RUBRIC.format(task=task, criteria=criteria)))


# ----------------------------------------------------------------- a rubric for the wrong task


def test_classification_rubric_refuses_a_detection_run() -> None:
    loaded = load_rubric("industrial-aoi-acceptance")
    with pytest.raises(RubricError, match=r"judges classification models.*task is detection"):
        evaluate({"task": "detection", "metrics": []}, loaded)
    # a metrics.json written before the task was recorded is judged as it was when signed
    # (verify --recompute of an older report); `evaluate RUN` checks the card itself
    evaluate({"metrics": []}, loaded, run={"model": {"card": {"task": "anomaly"}}})


def test_detection_rubric_refuses_classification_and_anomaly_takes_both(tmp_path: Path) -> None:
    with pytest.raises(RubricError, match="task is classification"):
        evaluate({"task": "classification", "metrics": []}, load_rubric("industrial-aoi-detection"))
    anomaly = load_rubric("anomaly-inspection")
    assert anomaly.rubric.applicability.tasks == ("anomaly", "segmentation")
    evaluate({"task": "segmentation", "metrics": []}, anomaly)  # accepted: data gaps only


def test_a_detection_metric_in_a_classification_rubric_is_refused(tmp_path: Path) -> None:
    crit = """  - id: a
    title: a
    metric: {name: map_50}
    requirement: {op: ">=", threshold: 0.5}
    severity: major"""
    with pytest.raises(RubricError, match="map_50 is measured for detection models only"):
        _rubric(tmp_path, "classification", crit)
    assert _rubric(tmp_path, "detection", crit).rubric.criteria[0].statistic == "lower_bound"


def test_required_params_and_their_values_are_checked(tmp_path: Path) -> None:
    base = """  - id: a
    title: a
    metric: {{name: overkill_at_escape_target{params}}}
    requirement: {{op: "<=", threshold: 0.1}}
    severity: major"""
    with pytest.raises(RubricError, match="needs params target"):
        _rubric(tmp_path, "anomaly", base.format(params=""))
    with pytest.raises(RubricError, match="target"):
        _rubric(tmp_path, "anomaly", base.format(params=", params: {target: 1.5}"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditkit", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=600,
    )


def test_cli_audit_refuses_the_wrong_rubric_before_replaying(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _cli(
        "audit",
        "sample_data/steel-coco/annotations.json",
        "--model",
        "sample_data/models/steel-det.onnx",
        "--rubric",
        "industrial-aoi-acceptance",
        "--out",
        str(out),
    )
    assert result.returncode == 5, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "judges classification models, but the model card's task is detection" in lines[0]
    assert not out.exists()  # refused before the replay wrote anything


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "data", "metadata", "rubric", "decisive"),
    [
        (
            "steel-det",
            "sample_data/steel-coco/annotations.json",
            "sample_data/steel-coco/metadata.csv",
            "industrial-aoi-detection",
            "det-escape-overall",
        ),
        (
            "steel-det",
            "sample_data/steel-yolo",
            "sample_data/steel-yolo/metadata.csv",
            "industrial-aoi-detection",
            "det-escape-overall",
        ),
        (
            "steel-anomaly",
            "sample_data/steel-mvtec/steel",
            "sample_data/steel-mvtec/metadata.csv",
            "anomaly-inspection",
            "anomaly-escape-overall",
        ),
    ],
)
def test_bundled_task_audits_end_decided_signed_and_recomputed(
    tmp_path: Path, model: str, data: str, metadata: str, rubric: str, decisive: str
) -> None:
    out = tmp_path / "run"
    result = _cli(
        "audit",
        data,
        "--model",
        f"sample_data/models/{model}.onnx",
        "--metadata",
        metadata,
        "--rubric",
        rubric,
        "--out",
        str(out),
        "--no-progress",
        "--prevalence",
        "0.002",
    )
    verdicts = json.loads((out / "verdicts.json").read_text(encoding="utf-8"))
    assert verdicts["verdict"] in ("ACCEPT", "REJECT"), verdicts["undecided"]
    assert result.returncode == verdicts["exit_code"], result.stderr
    assert "VERIFIED" in result.stdout
    crit = next(c for c in verdicts["criteria"] if c["id"] == decisive)
    # the escape blocker is decided by its own exact bound from k and n
    low, high = proportion_confint(crit["k"], crit["n"], alpha=0.10, method="beta")
    assert (crit["low"], crit["high"]) == pytest.approx((low, high))
    assert crit["outcome"] == ("FAIL" if low > crit["threshold"] else crit["outcome"])
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["bootstrap"]["seed"] == 0 and metrics["bootstrap"]["resamples"] == 1000
    assert metrics["prevalence"] == {"value": 0.002, "source": "site"}
    # evaluating the run again with the classification rubric: refused before anything changes
    before = (out / "verdicts.json").read_bytes()
    wrong = _cli("evaluate", str(out), "--rubric", "industrial-aoi-acceptance")
    assert wrong.returncode == 5 and len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
    assert f"task is {'detection' if model == 'steel-det' else 'anomaly'}" in wrong.stderr
    assert (out / "verdicts.json").read_bytes() == before
    if model == "steel-anomaly":
        # the recorded seed reproduces the image AUROC interval from the run files alone:
        # scikit-learn on the images of the parts each resample draws
        samples = pd.read_parquet(out / "samples.parquet")
        scores = pd.read_parquet(out / "predictions.parquet")
        joined = samples.merge(scores[["sample_id", "score"]], on="sample_id")
        d = joined["is_defect"].to_numpy(bool)
        s = joined["score"].to_numpy(float)

        def auroc(rows: np.ndarray) -> float | None:
            return roc_auc_score(d[rows], s[rows]) if 0 < d[rows].sum() < rows.size else None

        rec = metrics["bootstrap"]
        res = cluster_bootstrap(
            auroc,
            joined["part_id"].astype(str).to_numpy(),
            n_resamples=rec["resamples"],
            seed=rec["seed"],
            level=0.90,  # two-sided 90 %: the one-sided 95 % bounds
        )
        entry = next(e for e in metrics["metrics"] if e["name"] == "image_auroc" and not e["slice"])
        assert entry["interval"]["low"] == pytest.approx(res.low, abs=1e-12)
        assert entry["interval"]["high"] == pytest.approx(res.high, abs=1e-12)
    verify = _cli(
        "verify",
        str(out / "report.pdf"),
        "--trust",
        str(out / "dev-keys" / "ca.pem"),
        "--recompute",
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


# ----------------------------------------------------------------- detection fixture


def _fixture() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Four parts, one image each. p1 scratch found; p2 pit with a high-scoring box of the
    wrong place (rejected, but no box matches: an escape by boxes, a catch by image score);
    p3 good and clean; p4 good with a false call."""
    samples = pd.DataFrame(
        {
            "sample_id": ["a", "b", "c", "d"],
            "part_id": ["p1", "p2", "p3", "p4"],
            "label": ["scratch", "pit", "good", "good"],
            "is_defect": [True, True, False, False],
            "status": ["ok"] * 4,
            "line": ["L1", "L1", "L2", "L2"],
        }
    )
    gt = pd.DataFrame(
        {
            "sample_id": ["a", "b"],
            "class": ["scratch", "pit"],
            "x1": [10.0, 10.0],
            "y1": [10.0, 10.0],
            "x2": [30.0, 30.0],
            "y2": [30.0, 30.0],
        }
    )
    det = pd.DataFrame(
        {
            "sample_id": ["a", "b", "d"],
            "class": ["scratch", "pit", "scratch"],
            "score": [0.9, 0.8, 0.6],
            "x1": [11.0, 60.0, 5.0],
            "y1": [11.0, 60.0, 5.0],
            "x2": [30.0, 80.0, 15.0],
            "y2": [30.0, 80.0, 15.0],
        }
    )
    return samples, gt, det


def test_box_matched_escape_differs_from_the_image_score_escape() -> None:
    samples, gt, det = _fixture()
    entries = detection_entries(
        samples,
        gt,
        det,
        classes=CLASSES,
        match_iou=0.5,
        score_threshold=0.5,
        level=0.95,
        method="clopper_pearson",
        sided="one",
        bootstrap=Bootstrap(resamples=50, seed=3),
    )
    by = {(e["name"], tuple(sorted(e["slice"].items()))): e for e in entries}
    esc = by[("detection_escape_rate", ())]
    # by image score both defective parts are rejected (escape 0/2); by boxes p2 escaped
    assert (esc["k"], esc["n"]) == (1, 2)
    low, high = proportion_confint(1, 2, alpha=0.10, method="beta")  # one-sided 95 %
    assert esc["interval"]["low"] == pytest.approx(low)
    assert esc["interval"]["high"] == pytest.approx(high)
    ovk = by[("detection_overkill_rate", ())]
    assert (ovk["k"], ovk["n"]) == (1, 2)
    assert by[("detection_escape_rate", (("defect_class", "pit"),))]["k"] == 1
    assert by[("detection_escape_rate", (("defect_class", "scratch"),))]["k"] == 0
    assert by[("detection_overkill_rate", (("line", "L2"),))]["k"] == 1
    # IoU of the scratch match: 19*19 / (20*20) = 0.9025 -> matched at 0.5; the pit box: 0
    recall = [e for e in entries if e["name"] == "recall_at_iou"]
    assert [(e["iou"], e["k"], e["n"]) for e in recall] == [(0.5, 1, 2)]
    # false calls: b's box (no match) and d's box -> 2 of 4 images
    assert by[("false_calls_per_image", ())]["value"] == pytest.approx(0.5)


# ----------------------------------------------------------------- COCO AP against pycocotools


def _random_boxes(rng: np.random.Generator, n_img: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    g, d = [], []
    for i in range(n_img):
        for _ in range(rng.integers(0, 3)):
            x, y = rng.uniform(0, 80, 2)
            w, h = rng.uniform(5, 30, 2)
            c = CLASSES[rng.integers(0, 2)]
            g.append((f"i{i}", c, x, y, x + w, y + h))
            for _ in range(rng.integers(0, 3)):  # near-misses and hits
                j = rng.normal(0, 4, 4)
                d.append(
                    (f"i{i}", c, rng.uniform(), x + j[0], y + j[1], x + w + j[2], y + h + j[3])
                )
        for _ in range(rng.integers(0, 2)):  # false calls
            x, y = rng.uniform(0, 80, 2)
            d.append((f"i{i}", CLASSES[rng.integers(0, 2)], rng.uniform(), x, y, x + 10, y + 10))
    gt = pd.DataFrame(g, columns=["sample_id", "class", "x1", "y1", "x2", "y2"])
    det = pd.DataFrame(d, columns=["sample_id", "class", "score", "x1", "y1", "x2", "y2"])
    det[["x1", "y1"]] = det[["x1", "y1"]].clip(lower=0)
    det["x2"] = np.maximum(det["x2"], det["x1"])
    det["y2"] = np.maximum(det["y2"], det["y1"])
    return gt, det


def _pycocotools(
    gt: pd.DataFrame, det: pd.DataFrame, ids: list[str], classes: list[str] = CLASSES
) -> np.ndarray:
    """pycocotools' precision[T, R, K] (area all, maxDets 100) for these tables, -1 as NaN."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    img = {s: i + 1 for i, s in enumerate(ids)}
    cat = {c: k + 1 for k, c in enumerate(classes)}

    def anns(t: pd.DataFrame, score: bool) -> list[dict[str, object]]:
        out = []
        for j, r in enumerate(t.itertuples(index=False)):
            w, h = r.x2 - r.x1, r.y2 - r.y1
            a = {"id": j + 1, "image_id": img[r.sample_id], "category_id": cat[r[1]]}
            a.update(bbox=[r.x1, r.y1, w, h], area=w * h, iscrowd=0)
            if score:
                a["score"] = r.score
            out.append(a)
        return out

    base = {
        "images": [{"id": i} for i in img.values()],
        "categories": [{"id": k} for k in cat.values()],
    }
    cg, cd = COCO(), COCO()
    cg.dataset = {**base, "annotations": anns(gt, False)}
    cd.dataset = {**base, "annotations": anns(det, True)}
    cg.createIndex()
    cd.createIndex()
    ev = COCOeval(cg, cd, "bbox")
    ev.params.imgIds = list(img.values())
    ev.evaluate()
    ev.accumulate()
    p = np.asarray(ev.eval["precision"])[:, :, :, 0, 2]
    return np.where(p > -1, p, np.nan)


def _ap_from_precision(p: np.ndarray) -> np.ndarray:
    return np.nanmean(p, axis=1) if np.isfinite(p).any() else p[:, 0, :]


def test_weighted_ap_equals_pycocotools_with_weights_one_and_on_duplicated_images() -> None:
    rng = np.random.default_rng(11)
    gt, det = _random_boxes(rng, 30)
    ids = [f"i{i}" for i in range(30)]
    ev = evaluate_boxes(gt, det, image_ids=ids, classes=CLASSES)
    ours = weighted_ap(ev, np.ones(30))[0]  # (T, K)
    ref = np.nanmean(_pycocotools(gt, det, ids), axis=1)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    # a resample: image weights 0..3; pycocotools on the images copied that many times
    w = rng.integers(0, 4, 30)
    rows_g, rows_d, dup_ids = [], [], []
    for i, sid in enumerate(ids):
        for c in range(w[i]):
            new = f"{sid}#{c}"
            dup_ids.append(new)
            rows_g.append(gt[gt["sample_id"] == sid].assign(sample_id=new))
            rows_d.append(det[det["sample_id"] == sid].assign(sample_id=new))
    ref_dup = np.nanmean(_pycocotools(pd.concat(rows_g), pd.concat(rows_d), dup_ids), axis=1)
    np.testing.assert_allclose(weighted_ap(ev, w)[0], ref_dup, rtol=0, atol=1e-12)


# ----------------------------------------------------------------- bootstrap reproduced


def test_bootstrap_weights_are_the_cluster_bootstrap_resamples() -> None:
    rng = np.random.default_rng(5)
    parts = np.repeat(np.arange(40), rng.integers(1, 3, 40)).astype(str)
    d = rng.random(parts.size) < 0.4
    s = rng.random(parts.size) + d * 0.3
    weights = part_weights(parts, n_resamples=200, seed=42)
    ours = weighted_auroc(d, s, weights)
    # the same seed, row resampling: the statistic on the resampled rows, resample by resample
    values: list[float] = []

    def stat(rows: np.ndarray) -> float | None:
        if d[rows].all() or not d[rows].any():
            values.append(np.nan)
            return None
        values.append(roc_auc_score(d[rows], s[rows]))
        return values[-1]

    res = cluster_bootstrap(stat, parts, n_resamples=200, seed=42, level=0.90)
    np.testing.assert_allclose(ours, values[1:], rtol=0, atol=1e-12)  # [0]: the estimate
    low, high = percentile_bounds(ours, level=0.95, sided="one")
    assert (low, high) == pytest.approx((res.low, res.high))  # one-sided 95 % = two-sided 90 %
    # sample weights in scikit-learn give the same AUROC and F1
    r = s > 0.8
    assert ours[7] == pytest.approx(roc_auc_score(d, s, sample_weight=weights[7]))
    assert weighted_f1(d, r, weights[7])[0] == pytest.approx(
        f1_score(d, r, sample_weight=weights[7])
    )


def test_recorded_seed_reproduces_the_intervals_of_the_metrics() -> None:
    samples, gt, det = _fixture()
    kwargs = dict(
        classes=CLASSES,
        match_iou=0.5,
        score_threshold=0.5,
        level=0.95,
        method="clopper_pearson",
        sided="one",
    )
    a = detection_entries(samples, gt, det, bootstrap=Bootstrap(resamples=80, seed=9), **kwargs)
    b = detection_entries(samples, gt, det, bootstrap=Bootstrap(resamples=80, seed=9), **kwargs)
    fc = next(e for e in a if e["name"] == "false_calls_per_image")
    assert fc == next(e for e in b if e["name"] == "false_calls_per_image")
    assert (fc["interval"]["seed"], fc["interval"]["resamples"]) == (9, 80)
    w = part_weights(samples["part_id"].to_numpy(), n_resamples=80, seed=9)
    calls = np.array([0.0, 1.0, 0.0, 1.0])
    expected = percentile_bounds(w @ calls / w.sum(axis=1), level=0.95, sided="one")
    assert (fc["interval"]["low"], fc["interval"]["high"]) == pytest.approx(expected)


# ----------------------------------------------------------------- zero-escape operating point


def _brute_force(d: np.ndarray, s: np.ndarray, target: float, level: float) -> float | None:
    best = None
    for t in np.unique(s):
        fn = int((d & (s < t)).sum())
        n = int(d.sum())
        upper = 1.0 if fn == n else st.beta.ppf(level, fn + 1, n - fn)
        if upper <= target and (best is None or t > best):
            best = float(t)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_zero_escape_threshold_matches_a_brute_force_scan(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    d = rng.random(n) < 0.5
    s = np.round(rng.normal(d * 2.5, 1.0), 2)  # rounded: ties
    line = rng.choice(["L1", "L2"], n)
    target = 0.05
    entries = operating_point_entries(d, s, target, slices={"line": line}, level=0.95)
    for e in entries:
        mask = np.ones(n, bool) if not e["slice"] else line == e["slice"]["line"]
        expect = _brute_force(d[mask], s[mask], target, 0.95)
        if e["name"] == "escape_certified_threshold":
            assert e["value"] == expect
            if expect is not None:
                fn = int((d[mask] & (s[mask] < expect)).sum())
                assert e["escape"]["k"] == fn
                assert e["escape"]["certified_upper"] <= target
        else:  # overkill_at_escape_target: good parts at or above the threshold, exact bounds
            if expect is None:
                assert e["value"] is None and e["no_threshold"]
                continue
            fp = int((~d[mask] & (s[mask] >= expect)).sum())
            ng = int((~d[mask]).sum())
            assert (e["k"], e["n"]) == (fp, ng)
            lo, hi = proportion_confint(fp, ng, alpha=0.10, method="beta")
            assert e["interval"]["high"] == pytest.approx(hi)
            assert e["interval"]["low"] == pytest.approx(lo)


def test_too_few_defective_parts_certify_nothing_and_the_criterion_says_why(
    tmp_path: Path,
) -> None:
    d = np.array([True] * 20 + [False] * 20)
    s = np.r_[np.linspace(0.6, 1, 20), np.linspace(0, 0.5, 20)]
    # 0 escapes in 20: upper bound 1 - 0.05^(1/20) = 13.9 % > 5 %: no threshold qualifies
    entries = operating_point_entries(d, s, 0.05)
    assert entries[0]["value"] is None
    crit = """  - id: z
    title: z
    metric: {name: overkill_at_escape_target, params: {target: 0.05}}
    requirement: {op: "<=", threshold: 0.1}
    severity: blocker"""
    verdicts = evaluate({"task": "anomaly", "metrics": entries}, _rubric(tmp_path, "anomaly", crit))
    c = verdicts["criteria"][0]
    assert c["outcome"] == "INCONCLUSIVE"
    assert c["reason_code"] == "no_certified_threshold"
    assert "20 defective parts" in c["reason"]


def test_a_criterion_reads_the_operating_point_of_its_target(tmp_path: Path) -> None:
    d = np.array([True] * 300 + [False] * 100)
    s = np.r_[np.linspace(0.5, 1.0, 300), np.linspace(0.0, 0.52, 100)]
    entries = operating_point_entries(d, s, 0.01) + operating_point_entries(d, s, 0.05)
    crit = """  - id: z
    title: z
    metric: {name: overkill_at_escape_target, params: {target: 0.01}}
    requirement: {op: "<=", threshold: 0.2}
    severity: blocker"""
    verdicts = evaluate({"task": "anomaly", "metrics": entries}, _rubric(tmp_path, "anomaly", crit))
    c = verdicts["criteria"][0]
    # 0 escapes in 300 bound the escape at 0.99 %: the highest such threshold is 0.5; the good
    # parts at or above it: linspace(0, 0.52, 100) >= 0.5 -> 4 of 100
    assert (c["k"], c["n"]) == (4, 100)
    hi = st.beta.ppf(0.95, 5, 96)
    assert c["high"] == pytest.approx(hi)
    assert c["outcome"] == "PASS"


# ----------------------------------------------------------------- estimates and params


def test_ap_of_a_class_and_bootstrap_bounds_decide(tmp_path: Path) -> None:
    interval = {"low": 0.31, "high": 0.5, "method": "cluster_bootstrap", "level": 0.95}
    metrics = {
        "task": "detection",
        "metrics": [
            {
                "name": "ap",
                "slice": {"class": "pit"},
                "value": 0.4,
                "k": None,
                "n": None,
                "interval": {**interval, "sided": "one"},
            },
            {
                "name": "ap",
                "slice": {"class": "crack"},
                "value": 0.1,
                "k": None,
                "n": None,
                "interval": {
                    "low": 0.05,
                    "high": 0.2,
                    "method": "cluster_bootstrap",
                    "level": 0.95,
                    "sided": "one",
                },
            },
        ],
    }
    crit = """  - id: a
    title: a
    metric: {{name: ap, params: {{class: {c}}}}}
    requirement: {{op: ">=", threshold: 0.3}}
    severity: blocker"""
    pit = evaluate(metrics, _rubric(tmp_path, "detection", crit.format(c="pit")))
    assert pit["verdict"] == "ACCEPT"  # lower bound 0.31 >= 0.3
    crack = evaluate(metrics, _rubric(tmp_path, "detection", crit.format(c="crack")))
    assert crack["verdict"] == "REJECT"  # upper bound 0.2 < 0.3
    assert crack["criteria"][0]["bound"] == 0.2


def test_escaped_ppm_at_a_stated_prevalence() -> None:
    from auditkit.metrics.classification import Rate
    from auditkit.metrics.compute import _ppm_entry

    class Overall:
        def rate(self, name: str) -> Rate:
            return {"escape_rate": Rate(4, 100), "overkill_rate": Rate(2, 200)}[name]

    e = _ppm_entry(Overall(), (0.002, "site"), 0.95, "clopper_pearson", "one")
    # hand-worked: 1e6 * 0.002*0.04 / (0.002*0.04 + 0.998*0.99) = 80.9 ppm
    assert e["value"] == pytest.approx(1e6 * 0.00008 / (0.00008 + 0.998 * 0.99))
    assert (e["prevalence"], e["prevalence_source"]) == (0.002, "site")
    hi_e = st.beta.ppf(0.975, 5, 96)  # each rate at 97.5 %: Bonferroni over the two
    hi_o = st.beta.ppf(0.975, 3, 198)
    assert e["interval"]["high"] == pytest.approx(
        1e6 * 0.002 * hi_e / (0.002 * hi_e + 0.998 * (1 - hi_o))
    )


def test_weighted_ap_edge_cases_equal_pycocotools() -> None:
    """scratch: ground truth, only missed detections; pit: ground truth, no detection at all;
    and a third class with detections but no ground truth (pycocotools -1: NaN)."""
    classes = ["scratch", "pit", "crack"]
    gt = pd.DataFrame(
        [("i0", "scratch", 0, 0, 10, 10), ("i1", "pit", 0, 0, 10, 10)],
        columns=["sample_id", "class", "x1", "y1", "x2", "y2"],
    )
    det = pd.DataFrame(
        [("i0", "scratch", 0.9, 50, 50, 60, 60), ("i1", "crack", 0.5, 0, 0, 10, 10)],
        columns=["sample_id", "class", "score", "x1", "y1", "x2", "y2"],
    )
    ids = ["i0", "i1"]
    ours = weighted_ap(evaluate_boxes(gt, det, image_ids=ids, classes=classes), np.ones(2))[0]
    precision = _pycocotools(gt, det, ids, classes)
    ref = precision.mean(axis=1)  # NaN where pycocotools has -1 (no ground truth)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours[:, :2], ref[:, :2], atol=1e-12)
    assert np.all(ours[:, :2] == 0) and np.isnan(ours[:, 2]).all()


def test_iou_dice_per_class_intervals_from_the_resampled_pixel_counts() -> None:
    from auditkit.metrics.tasks import class_overlap_entries

    rng = np.random.default_rng(4)
    true = [rng.integers(0, 3, (6, 6)) for _ in range(5)]
    pred = [np.where(rng.random((6, 6)) < 0.7, t, rng.integers(0, 3, (6, 6))) for t in true]
    parts = ["p1", "p1", "p2", "p3", "p4"]
    boot = Bootstrap(resamples=60, seed=8)
    entries = class_overlap_entries(pred, true, {"a": 1, "b": 2}, parts=parts, bootstrap=boot)
    w = part_weights(np.array(parts, dtype=object), n_resamples=60, seed=8)
    for e in entries:
        v = {"a": 1, "b": 2}[e["slice"]["class"]]
        # each resample: the images drawn, concatenated, IoU / Dice by plain counting
        values = []
        for row in w:
            t = np.concatenate(
                [np.repeat(true[i].ravel()[None], c, 0).ravel() for i, c in enumerate(row) if c]
            )
            p = np.concatenate(
                [np.repeat(pred[i].ravel()[None], c, 0).ravel() for i, c in enumerate(row) if c]
            )
            inter, tt, pp = np.sum((t == v) & (p == v)), np.sum(t == v), np.sum(p == v)
            values.append(
                inter / (tt + pp - inter) if e["name"] == "iou" else 2 * inter / (tt + pp)
            )
        assert (e["interval"]["low"], e["interval"]["high"]) == pytest.approx(
            percentile_bounds(values, level=0.95, sided="one")
        )


def test_map_and_image_auroc_per_slice_equal_the_reference_on_the_slice() -> None:
    from auditkit.metrics.detection import coco_metrics
    from auditkit.metrics.tasks import anomaly_entries

    rng = np.random.default_rng(21)
    gt, det = _random_boxes(rng, 24)
    ids = [f"i{i}" for i in range(24)]
    samples = pd.DataFrame(
        {
            "sample_id": ids,
            "part_id": [f"p{i // 2}" for i in range(24)],
            "label": ["good"] * 24,
            "is_defect": [bool(i in set(gt["sample_id"])) for i in ids],
            "status": ["ok"] * 24,
            "line": rng.choice(["L1", "L2"], 24),
        }
    )
    entries = detection_entries(
        samples,
        gt,
        det,
        classes=CLASSES,
        match_iou=0.5,
        score_threshold=0.5,
        level=0.95,
        method="clopper_pearson",
        sided="one",
        bootstrap=Bootstrap(resamples=30, seed=1),
    )
    for line in ("L1", "L2"):
        keep = samples.loc[samples["line"] == line, "sample_id"].tolist()
        ref = coco_metrics(
            gt[gt["sample_id"].isin(keep)],
            det[det["sample_id"].isin(keep)],
            image_ids=keep,
            classes=CLASSES,
        )
        got = {e["name"]: e for e in entries if e["slice"] == {"line": line}}
        assert got["map_50"]["value"] == pytest.approx(ref["map_50"], abs=1e-12)
        assert got["map_50_95"]["value"] == pytest.approx(ref["map"], abs=1e-12)
        assert got["map_50"]["n"] == len(keep)
        assert got["map_50"]["interval"]["low"] <= got["map_50"]["interval"]["high"]
    scores = pd.DataFrame({"sample_id": ids, "score": rng.random(24) + samples["is_defect"] * 0.4})
    auroc = {
        e["slice"].get("line"): e
        for e in anomaly_entries(samples, scores, Bootstrap(resamples=30, seed=1))
        if e["name"] == "image_auroc"
    }
    for line in ("L1", "L2"):
        m = (samples["line"] == line).to_numpy()
        expect = roc_auc_score(samples["is_defect"][m], scores["score"][m])
        assert auroc[line]["value"] == pytest.approx(expect)


def test_f1_keeps_its_point_default_and_may_be_bounded(tmp_path: Path) -> None:
    crit = """  - id: f
    title: f
    metric: {{name: f1}}
    requirement: {{op: ">=", threshold: 0.9{stat}}}
    severity: major"""
    point = _rubric(tmp_path, "classification", crit.format(stat=""))
    assert point.rubric.criteria[0].statistic == "point"
    bound = _rubric(tmp_path, "classification", crit.format(stat=", statistic: lower_bound"))
    entry = {"name": "f1", "slice": {}, "value": 0.95, "k": None, "n": None}
    entry["interval"] = {"low": 0.88, "high": 0.97, "level": 0.95, "sided": "one"}
    verdicts = evaluate({"metrics": [entry]}, bound)
    assert verdicts["criteria"][0]["outcome"] == "INCONCLUSIVE"  # 0.88 < 0.9 <= 0.95
    assert evaluate({"metrics": [entry]}, point)["criteria"][0]["outcome"] == "PASS"


def test_pixel_auroc_and_aupro_per_slice_are_those_of_the_slice_images() -> None:
    from auditkit.metrics.segmentation import aupro
    from auditkit.metrics.tasks import segmentation_entries

    rng = np.random.default_rng(6)
    masks = [(rng.random((8, 8)) < 0.2).astype(np.uint8) * 255 for _ in range(8)]
    maps = [np.round((m > 0) * 0.4 + rng.random((8, 8)) * 0.6, 2) for m in masks]  # ties
    preds = [mp >= 0.5 for mp in maps]
    line = np.array(["L1", "L2"] * 4)
    slices = [({"line": v}, line == v) for v in ("L1", "L2")]
    entries = segmentation_entries(
        masks,
        maps,
        preds,
        parts=[f"p{i}" for i in range(8)],
        bootstrap=Bootstrap(resamples=40, seed=2),
        slices=slices,
    )
    for slice_, mask in slices:
        got = {e["name"]: e for e in entries if e["slice"] == slice_}
        fg = np.concatenate([masks[i].ravel() > 127 for i in np.flatnonzero(mask)])
        sc = np.concatenate([maps[i].ravel() for i in np.flatnonzero(mask)])
        assert got["pixel_auroc"]["value"] == pytest.approx(roc_auc_score(fg, sc))
        sub_masks = [masks[i] for i in np.flatnonzero(mask)]
        sub_maps = [maps[i] for i in np.flatnonzero(mask)]
        assert got["aupro"]["value"] == pytest.approx(aupro(sub_masks, sub_maps, bins=None))
        assert got["aupro"]["n"] == 4 and got["aupro"]["interval"]["seed"] == 2


def test_prevalence_sources_in_order_and_a_bad_one_refused(tmp_path: Path) -> None:
    from auditkit.audit import stated_prevalence
    from auditkit.models.card import load_card

    card = load_card(ROOT / "sample_data/models/steel-anomaly.card.yaml")
    with_claim = card.model_copy(
        update={"declared": card.declared.model_copy(update={"production_prevalence": 0.004})}
    )
    loaded = load_rubric("anomaly-inspection")
    assert stated_prevalence({}, loaded, card) is None
    assert stated_prevalence({}, loaded, with_claim) == (0.004, "card")
    crit = """  - id: a
    title: a
    metric: {name: escape_rate}
    requirement: {op: "<=", threshold: 0.05}
    severity: major"""
    text = RUBRIC.format(task="anomaly", criteria=crit).replace(
        "applicability: {task: anomaly}",
        "applicability: {task: anomaly, production_prevalence: 0.003}",
    )
    own = load_rubric(_write(tmp_path, text))
    assert stated_prevalence({}, own, with_claim) == (0.003, "rubric")
    assert stated_prevalence({"prevalence": 0.001}, own, with_claim) == (0.001, "site")
    result = _cli("evaluate", str(tmp_path / "no-run"), "--prevalence", "1.5")
    assert result.returncode == 5
    assert result.stderr.strip().splitlines() == [
        "error: prevalence 1.5: a share of defective parts in (0, 1)"
    ]


def test_f1_per_slice_is_scikit_learn_f1_of_the_slice_parts() -> None:
    from auditkit.metrics.compute import compute_metrics

    rng = np.random.default_rng(13)
    n = 60
    is_defect = rng.random(n) < 0.5
    samples = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "part_id": [f"p{i}" for i in range(n)],
            "path": [f"s{i}.png" for i in range(n)],
            "sha256": ["0" * 64] * n,
            "label": np.where(is_defect, "scratch", "good"),
            "is_defect": is_defect,
            "status": ["ok"] * n,
            "error": [""] * n,
            "line": rng.choice(["L1", "L2"], n),
        }
    )
    score = np.clip(rng.normal(is_defect * 0.4 + 0.3, 0.2), 0, 1)
    predictions = pd.DataFrame(
        {
            "sample_id": samples["sample_id"],
            "score": score,
            "pred_label": np.where(score >= 0.5, "scratch", "good"),
            "is_reject": score >= 0.5,
        }
    )
    metrics = compute_metrics(
        samples,
        predictions,
        classes=["good", "scratch"],
        positive_classes=["scratch"],
        bootstrap=Bootstrap(resamples=50, seed=5),
    )
    for line in ("L1", "L2"):
        e = next(
            e for e in metrics["metrics"] if e["name"] == "f1" and e["slice"] == {"line": line}
        )
        m = (samples["line"] == line).to_numpy()
        assert e["value"] == pytest.approx(f1_score(is_defect[m], score[m] >= 0.5))
        assert e["n"] == int(m.sum()) and e["interval"]["resamples"] == 50
