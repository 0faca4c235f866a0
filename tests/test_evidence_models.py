"""The typed evidence models (auditkit/evidence.py) read every run file the CLI writes without
losing or changing a field, and malformed evidence stops `auditkit report` with one line.

Runs are made with the CLI on the bundled sample (steel-v1; steel-v2 judged against steel-v1 as
its baseline) and the test fixture; the expected values are `json.loads` of the files and the
fields the tests themselves broke, never output of the code under test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from auditkit.errors import RunDirError
from auditkit.evidence import (
    MODELS,
    CriterionResult,
    MetricsDocument,
    RunRecord,
    VerdictsDocument,
    load_evidence_file,
)

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "sample_data" / "steel" / "manifest.csv"
MODEL_DIR = ROOT / "sample_data" / "models"
SMALL_RUN = ROOT / "tests" / "fixtures" / "run_small"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditkit", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def _audit(model: str, out: Path, *more: str) -> Path:
    done = _cli(
        "audit",
        str(MANIFEST),
        "--model",
        str(MODEL_DIR / f"{model}.onnx"),
        "--rubric",
        "industrial-aoi-acceptance",
        "--param",
        "latency_budget_ms=50",
        "--out",
        str(out),
        *more,
    )
    assert (out / "verdicts.json").is_file(), done.stdout + done.stderr
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("evidence")
    v1 = _audit("steel-v1", base / "v1")
    v2 = _audit("steel-v2", base / "v2", "--baseline", str(v1))
    return {"v1": v1, "v2-baseline": v2, "fixture": SMALL_RUN}


@pytest.mark.parametrize("run", ["v1", "v2-baseline", "fixture"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_run_file_round_trips(runs: dict[str, Path], run: str, name: str) -> None:
    path = runs[run] / name
    written = json.loads(path.read_bytes())
    document = load_evidence_file(path, MODELS[name], name)
    dumped = document.model_dump(mode="json")
    assert dumped == written
    # == says 1 == 1.0; the dump must keep JSON's own types too (no int made a float)
    assert json.dumps(dumped, sort_keys=True) == json.dumps(written, sort_keys=True)


def test_typed_fields_read_what_the_file_says(runs: dict[str, Path]) -> None:
    run_dir = runs["v2-baseline"]
    written = json.loads((run_dir / "verdicts.json").read_bytes())
    verdicts = load_evidence_file(run_dir / "verdicts.json", VerdictsDocument)
    assert verdicts.verdict == written["verdict"]
    assert [c.id for c in verdicts.criteria] == [c["id"] for c in written["criteria"]]
    sliced = [c for c in verdicts.criteria if c.slices]
    assert sliced, "the default rubric has slice_by criteria"
    first = sliced[0]
    raw = next(c for c in written["criteria"] if c["id"] == first.id)
    assert first.slices is not None
    assert [(s.slice, s.k, s.n, s.low, s.high) for s in first.slices] == [
        (s["slice"], s["k"], s["n"], s["low"], s["high"]) for s in raw["slices"]
    ]
    assert "baseline" in written and verdicts.baseline == written["baseline"]
    # a newer field the models do not declare survives (extra="allow")
    assert "verdict_policy" in written and verdicts.model_extra is not None
    assert verdicts.model_extra["verdict_policy"] == written["verdict_policy"]

    metrics = load_evidence_file(run_dir / "metrics.json", MetricsDocument)
    raw_metrics = json.loads((run_dir / "metrics.json").read_bytes())["metrics"]
    escape = next(m for m in metrics.metrics if m.name == "escape_rate" and m.slice == {})
    raw_escape = next(m for m in raw_metrics if m["name"] == "escape_rate" and m["slice"] == {})
    assert escape.interval is not None
    assert (escape.k, escape.n, escape.interval.low, escape.interval.high) == (
        raw_escape["k"],
        raw_escape["n"],
        raw_escape["interval"]["low"],
        raw_escape["interval"]["high"],
    )
    record = load_evidence_file(run_dir / "run.json", RunRecord)
    assert record.run_id == verdicts.run_id == metrics.run_id


def test_models_are_frozen(runs: dict[str, Path]) -> None:
    verdicts = load_evidence_file(runs["v1"] / "verdicts.json", VerdictsDocument)
    with pytest.raises(ValueError, match="frozen"):
        verdicts.criteria[0].outcome = "PASS"  # type: ignore[misc]


def test_load_names_the_file_and_the_field() -> None:
    data: dict[str, Any] = json.loads((SMALL_RUN / "verdicts.json").read_bytes())
    data["criteria"][1]["n"] = "many"
    with pytest.raises(RunDirError) as caught:
        load_evidence_file(json.dumps(data).encode(), VerdictsDocument, "verdicts.json")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("verdicts.json")
    assert "criteria[1].n" in message
    with pytest.raises(RunDirError, match="not valid UTF-8 JSON"):
        load_evidence_file(b"{", CriterionResult, "verdicts.json")


def _break(run_dir: Path, edit: Any) -> None:
    path = run_dir / "verdicts.json"
    data = json.loads(path.read_bytes())
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def _set_outcome_number(data: dict[str, Any]) -> None:
    data["criteria"][2]["outcome"] = 3


def _drop_severity(data: dict[str, Any]) -> None:
    del data["criteria"][0]["severity"]


def _slice_k_text(data: dict[str, Any]) -> None:
    crit = next(i for i, c in enumerate(data["criteria"]) if c.get("slices"))
    data["criteria"][crit]["slices"][1]["k"] = "twelve"
    data["_where"] = f"criteria[{crit}].slices[1].k"


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_set_outcome_number, "criteria[2].outcome"),
        (_drop_severity, "criteria[0].severity"),
        (_slice_k_text, None),
        (lambda d: d.pop("verdict"), "verdict"),
    ],
    ids=["wrong-type", "missing-field", "slice-field", "missing-verdict"],
)
def test_malformed_verdicts_is_one_line_exit_5(
    runs: dict[str, Path], tmp_path: Path, edit: Any, field: str | None
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(runs["v1"], run_dir)
    previous = (run_dir / "report.pdf").read_bytes()
    _break(run_dir, edit)
    field = field or json.loads((run_dir / "verdicts.json").read_bytes())["_where"]
    done = _cli("report", str(run_dir), "--no-sign")
    assert done.returncode == 5, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(run_dir / "verdicts.json") in lines[0]
    assert f"evidence: {field}: " in lines[0]
    # nothing was rendered: the previous report is untouched
    assert (run_dir / "report.pdf").read_bytes() == previous


def test_ci_formats_read_an_older_verdicts_file_through_the_typed_model(tmp_path: Path) -> None:
    """The fixture's verdicts.json predates ``kind``: the Markdown summary and JUnit still list
    every criterion (a mapping lookup crashed on it), and the files are written whole."""
    from xml.etree import ElementTree as ET

    from auditkit.report import ci

    written = json.loads((SMALL_RUN / "verdicts.json").read_bytes())
    assert all("kind" not in c for c in written["criteria"])
    markdown = ci.markdown_summary(written)
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and ": " in line]
    assert [r.split(" | ")[1].split(":")[0] for r in rows] == [c["id"] for c in written["criteria"]]
    paths = ci.write_ci_outputs(
        written, junit=tmp_path / "ci" / "junit.xml", json_file=tmp_path / "ci" / "v.json"
    )
    suite = ET.parse(paths[0]).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") is not None
    assert json.loads(paths[1].read_bytes()) == written
    assert sorted(p.name for p in (tmp_path / "ci").iterdir()) == ["junit.xml", "v.json"]
