"""Rubrics on the bundled sample: every exit code from a real run, the baseline gate, the
shipped rubrics, and their clause references.

One replay per sample model (2,000 images, about 5 s each on one core) is shared by the module.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from lxml import etree
from typer.testing import CliRunner

from auditkit.audit import run_replay
from auditkit.cli import app
from auditkit.metrics.classification import parts_from_images
from auditkit.models.card import ModelCard
from auditkit.replay.pipeline import ReplaySettings
from auditkit.rubric.evaluate import evaluate
from auditkit.rubric.schema import load_rubric, shipped_rubrics
from auditkit.run import dumps
from tests.conftest import write_dataset

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
# a copy of the team's domain notes (shared/DOMAIN.md, 2026-11-27), kept in the repository so
# that a clean clone checks the shipped rubrics' clause references on its own
DOMAIN = ROOT / "tests" / "fixtures" / "standards" / "DOMAIN.md"
JUNIT_XSD = Path(__file__).parent / "fixtures" / "junit" / "junit-10.xsd"


def _replay(model: str, out: Path, manifest: Path | None = None) -> Path:
    settings = ReplaySettings(scenario="both", single_stream_samples=300, batch_size=64)
    run_replay(
        manifest or SAMPLE / "steel" / "manifest.csv",
        SAMPLE / "models" / f"{model}.onnx",
        out,
        settings=settings,
    )
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sample-runs")
    return {"v1": _replay("steel-v1", base / "v1"), "v2": _replay("steel-v2", base / "v2")}


def _escape_counts(run: Path) -> tuple[int, int]:
    samples = pd.read_parquet(run / "samples.parquet")
    predictions = pd.read_parquet(run / "predictions.parquet")
    parts = parts_from_images(samples, predictions)
    defective = parts[parts["is_defect"] & parts["scored"]]
    return int((~defective["is_reject"].astype(bool)).sum()), len(defective)


def _rubric(tmp_path: Path, name: str, criteria: list[dict[str, Any]]) -> Path:
    path = tmp_path / f"{name}.yaml"
    doc = {
        "schema": "auditkit.rubric/v1",
        "id": name,
        "version": "1.0.0",
        "title": name,
        "criteria": criteria,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _escape(threshold: float, severity: str) -> dict[str, Any]:
    return {
        "id": f"escape-{severity}-{threshold}",
        "title": "escape",
        "metric": {"name": "escape_rate"},
        "requirement": {"op": "<=", "threshold": threshold},
        "sample": {"min_n": 300, "counts": "defective"},
        "severity": severity,
    }


def test_each_exit_code_from_a_real_run(runs: dict[str, Path], tmp_path: Path) -> None:
    k, n = _escape_counts(runs["v1"])
    assert (k, n) == (37, 834)  # the sample's v1 escapes, counted here from the run's tables
    # one-sided 95 % CP for 37/834: L = 3.33 %, U = 5.80 % (scipy beta quantiles)
    cases = {
        0: [_escape(0.10, "blocker")],  # U 5.8 % <= 10 %
        1: [_escape(0.02, "blocker")],  # L 3.3 % > 2 %
        3: [_escape(0.05, "blocker")],  # L <= 5 % < U
        4: [_escape(0.10, "blocker"), _escape(0.02, "major")],
    }
    verdicts = {0: "ACCEPT", 1: "REJECT", 3: "HOLD", 4: "CONDITIONAL"}
    cli = CliRunner()
    for code, criteria in cases.items():
        rubric = _rubric(tmp_path, f"exit-{code}", criteria)
        junit = tmp_path / f"exit-{code}.xml"
        result = cli.invoke(
            app, ["evaluate", str(runs["v1"]), "--rubric", str(rubric), "--junit", str(junit)]
        )
        assert result.exit_code == code, result.output
        written = json.loads((runs["v1"] / "verdicts.json").read_text())
        assert written["verdict"] == verdicts[code] and written["exit_code"] == code
        assert f"verdict: {verdicts[code]}" in result.output
        assert junit.exists()
    # --fail-on loosens the gate: CONDITIONAL exits 0 with --fail-on hold, HOLD with reject
    rubric = tmp_path / "exit-4.yaml"
    result = cli.invoke(app, ["evaluate", str(runs["v1"]), "-r", str(rubric), "--fail-on", "hold"])
    assert result.exit_code == 0 and "passes with --fail-on hold" in result.output
    rubric = tmp_path / "exit-3.yaml"
    result = cli.invoke(app, ["evaluate", str(runs["v1"]), "-r", str(rubric), "--fail-on", "hold"])
    assert result.exit_code == 3
    result = cli.invoke(
        app, ["evaluate", str(runs["v1"]), "-r", str(rubric), "--fail-on", "reject"]
    )
    assert result.exit_code == 0


def test_junit_markdown_and_json_outputs(runs: dict[str, Path], tmp_path: Path) -> None:
    junit, markdown, as_json = tmp_path / "j.xml", tmp_path / "s.md", tmp_path / "v.json"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(runs["v1"]),
            "-r",
            "iso-iec-tr-24027-consistency",
            "--junit",
            str(junit),
            "--markdown",
            str(markdown),
            "--json",
            str(as_json),
        ],
    )
    assert result.exit_code == 1, result.output
    verdicts = json.loads((runs["v1"] / "verdicts.json").read_text())
    assert as_json.read_bytes() == (runs["v1"] / "verdicts.json").read_bytes()

    schema = etree.XMLSchema(etree.parse(str(JUNIT_XSD)))
    document = etree.parse(str(junit))
    assert schema.validate(document), schema.error_log
    # the schema is not vacuous: a testsuite without its required counts fails it
    broken = etree.fromstring(junit.read_bytes())
    del broken[0].attrib["tests"]
    assert not schema.validate(broken)

    cases = document.findall(".//testcase")
    expected = sum(len(c["slices"]) or 1 for c in verdicts["criteria"])
    assert len(cases) == expected
    suite = document.find("testsuite")
    assert suite is not None and suite.get("tests") == str(expected)
    failures = document.findall(".//failure")
    assert suite.get("failures") == str(len(failures)) and failures
    dim = next(c for c in cases if c.get("name") == "escape-each-slice [lighting=dim]")
    failure = dim.find("failure")
    assert failure is not None
    message = failure.get("message") or ""
    # value, bound and threshold, as the verdicts give them
    row = next(
        s
        for c in verdicts["criteria"]
        if c["id"] == "escape-each-slice"
        for s in c["slices"]
        if s["slice"] == {"lighting": "dim"}
    )
    assert f"value {100 * row['value']:.2f}%" in message
    assert f"bound {100 * row['bound']:.2f}%" in message
    assert "threshold <= 5.00% (organisation)" in message

    text = markdown.read_text()
    assert text.startswith("## ") and "**REJECT**" in text
    assert text.count("\n| ") >= len(verdicts["criteria"]) + 1
    assert len(text.encode()) < 1024 * 1024  # GitHub's job-summary limit per step


def test_baseline_gate_and_changed_decisions(runs: dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(runs["v2"]),
            "-r",
            "industrial-aoi-acceptance",
            "--baseline",
            str(runs["v1"]),
            "--param",
            "latency_budget_ms=50",
        ],
    )
    verdicts = json.loads((runs["v2"] / "verdicts.json").read_text())
    gate = {c["id"]: c for c in verdicts["criteria"]}["escape-vs-baseline"]
    # paired counts, independently: escapes under v2 only (b) and under v1 only (c)
    samples = pd.read_parquet(runs["v1"] / "samples.parquet")
    v1 = parts_from_images(samples, pd.read_parquet(runs["v1"] / "predictions.parquet"))
    v2 = parts_from_images(samples, pd.read_parquet(runs["v2"] / "predictions.parquet"))
    defect = v1["is_defect"].to_numpy(bool)
    r1, r2 = v1["is_reject"].to_numpy(bool), v2["is_reject"].to_numpy(bool)
    b, c = int((defect & ~r2 & r1).sum()), int((defect & ~r1 & r2).sum())
    paired = gate["paired"]
    assert (paired["b"], paired["c"], paired["n"]) == (b, c, int(defect.sum()))
    assert gate["value"] == pytest.approx((b - c) / defect.sum())
    assert gate["outcome"] == "PASS"  # v2 fixes more escapes than it adds
    changed = verdicts["baseline"]["changed_decisions"]
    assert changed["total"] == int((r1 != r2).sum())
    assert {row["part_id"] for row in changed["listed"]} == set(v1["part_id"][r1 != r2])
    assert "decision(s) changed" in result.output

    # verdicts.json holds what a recomputation needs (verify --recompute): same bytes again
    run_json = json.loads((runs["v2"] / "run.json").read_text())
    recomputed = evaluate(
        json.loads((runs["v2"] / "metrics.json").read_text()),
        load_rubric("industrial-aoi-acceptance"),
        card=ModelCard.model_validate(run_json["model"]["card"]),
        params=verdicts["params"],
        run=run_json,
        baseline=verdicts["baseline"],
    )
    document = {"format": verdicts["format"], "run_id": verdicts["run_id"], **recomputed}
    assert dumps(document) == (runs["v2"] / "verdicts.json").read_bytes()

    # without --baseline the criterion is skipped, not failed
    CliRunner().invoke(app, ["evaluate", str(runs["v2"]), "-r", "industrial-aoi-acceptance"])
    verdicts = json.loads((runs["v2"] / "verdicts.json").read_text())
    gate = {c["id"]: c for c in verdicts["criteria"]}["escape-vs-baseline"]
    assert gate["outcome"] == "SKIPPED" and "baseline" not in verdicts


def test_baseline_on_other_samples_exits_5(runs: dict[str, Path], tmp_path: Path) -> None:
    manifest = SAMPLE / "steel" / "manifest.csv"
    subset = tmp_path / "steel" / "manifest.csv"
    subset.parent.mkdir()
    rows = manifest.read_text().splitlines(keepends=True)[:101]
    subset.write_text("".join(rows))
    (subset.parent / "images").mkdir()
    for row in rows[1:]:
        image = row.split(",")[2]
        shutil.copyfile(SAMPLE / "steel" / image, subset.parent / image)
    other = _replay("steel-v1", tmp_path / "other", subset)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditkit",
            "evaluate",
            str(runs["v2"]),
            "-r",
            "industrial-aoi-acceptance",
            "--baseline",
            str(other),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 5, result.stderr
    assert "different samples" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "name",
    [
        "industrial-aoi-acceptance",
        "iso-iec-ts-4213-reporting",
        "iso-iec-tr-24027-consistency",
        "eu-ai-act-art15-evidence",
    ],
)
def test_shipped_rubric_runs_on_the_sample(runs: dict[str, Path], name: str) -> None:
    assert name in shipped_rubrics()
    from auditkit.audit import run_evaluate

    verdicts = run_evaluate(runs["v1"], name, params={"latency_budget_ms": 50.0})
    assert verdicts["verdict"] in {"ACCEPT", "REJECT", "HOLD", "CONDITIONAL"}
    outcomes = {c["outcome"] for c in verdicts["criteria"]}
    assert outcomes <= {"PASS", "FAIL", "INCONCLUSIVE", "ERROR", "ATTESTED", "SKIPPED"}
    # nothing is left unexplained: every ERROR / INCONCLUSIVE without a bound is a data gap
    for c in verdicts["criteria"]:
        if c["outcome"] == "ERROR":
            assert any(g.startswith(c["id"]) for g in verdicts["data_gaps"])


def test_every_shipped_rubric_validates_and_maps_to_known_clauses() -> None:
    """Every maps_to clause (split at ';') appears verbatim in DOMAIN.md, or says it maps to
    the reference as a whole ('whole document') when no clause number could be verified."""
    domain = DOMAIN.read_text(encoding="utf-8")
    names = shipped_rubrics()
    assert len(names) >= 4
    for name in names:
        rubric = load_rubric(name).rubric
        for criterion in rubric.criteria:
            for mapping in criterion.maps_to:
                for clause in (p.strip() for p in mapping.clause.split(";")):
                    assert clause == "whole document" or clause in domain, (name, clause)
        # thresholds carry a provenance, and "standard" is used only where a source states it
        for criterion in rubric.criteria:
            req = criterion.requirement
            if req and req.threshold_provenance == "standard":
                assert any(m.ref == "AIAG-MSA" for m in criterion.maps_to), criterion.id


def test_eu_rubric_carries_the_applicability_note() -> None:
    note = load_rubric("eu-ai-act-art15-evidence").rubric.applicability.note
    assert "not high-risk" in note and "Machinery Regulation 2023/1230" in note
    assert re.search(r"not a conformity assessment", note)


@pytest.mark.slow
def test_audit_writes_ci_files_and_applies_the_gate(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=30, corrupt=1)
    out = tmp_path / "run"
    files = {"--junit": out / "ci" / "j.xml", "--markdown": out / "ci" / "s.md"}
    files["--json"] = out / "ci" / "v.json"
    args = [str(manifest), "--model", str(tiny_model), "--out", str(out)]
    args += ["--single-stream", "10", "--no-verify", "--no-progress", "--fail-on", "reject"]
    for option, path in files.items():
        args += [option, str(path)]
    result = subprocess.run(
        [sys.executable, "-m", "auditkit", "audit", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    # 30 random images cannot meet min_n, but a random model's escapes in the nominal-light
    # slice already prove the 5 % limit broken (min_n guards PASS only): REJECT, which even
    # --fail-on reject fails on
    assert result.returncode == 1, result.stderr + result.stdout
    assert "verdict: REJECT" in result.stdout
    assert "below the rubric's minimum min_n=100" in result.stdout
    verdicts = json.loads((out / "verdicts.json").read_text())
    assert verdicts["verdict"] == "REJECT" and verdicts["exit_code"] == 1
    assert files["--json"].read_bytes() == (out / "verdicts.json").read_bytes()
    schema = etree.XMLSchema(etree.parse(str(JUNIT_XSD)))
    assert schema.validate(etree.parse(str(files["--junit"])))
    assert "**REJECT**" in files["--markdown"].read_text()
    assert (out / "report.pdf").exists()


def test_gate_options_are_checked_first(tmp_path: Path) -> None:
    for extra, text in (
        (["--fail-on", "never"], "--fail-on 'never': expected one of reject, hold, conditional"),
        (["--baseline", str(tmp_path)], "not a run directory (no run.json)"),
    ):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "auditkit",
                "evaluate",
                str(tmp_path),
                "-r",
                "industrial-aoi-acceptance",
                *extra,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 5 and "Traceback" not in result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and line.endswith(text)
