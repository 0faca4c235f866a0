"""The Chinese report is Chinese: the demo (classifier, default rubric), the same with
``--baseline`` and the bundled anomaly model are replayed, evaluated and rendered in ``zh``;
the text pdftotext reads back holds no English phrase outside identifiers, units, hashes and
the rubric's own text (criterion ids, clause references, titles the rubric gives only in
English, Appendix B which reproduces the rubric file), and no Python repr on any page.

Replays run through the CLI, as a user would; the three runs take about a minute together."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditkit.report.formatting import Formatter
from auditkit.report.render import load_strings, render_report
from tests.conftest import needs_pdftotext

ROOT = Path(__file__).parent.parent
SAMPLE = ROOT / "sample_data"

pytestmark = needs_pdftotext

#: three or more words of Latin letters in a row: an English phrase
ENGLISH = re.compile(r"[A-Za-z]{2,}(?:[ ,;:'’()/\-]+[A-Za-z]{2,}){2,}")
#: commands and options named in the report's own sentences (identifiers, not English)
COMMANDS = (
    "auditkit report --no-sign",
    "auditkit verify --recompute",
    "auditkit countersign",
    "/sys/class/powercap",
)
REPRS = re.compile(r"\b(None|True|False)\b|\{'|\{\"|\": ")


def _cli(*args: str | Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "auditkit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode in (0, 1, 3, 4), done.stderr  # a verdict, not an error


def _replay(out: Path, data: Path, model: str, *extra: str | Path) -> Path:
    _cli("replay", data, "--model", SAMPLE / "models" / model, "--out", out, "--no-progress",
         "--energy", "model", *extra)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("zh-runs")
    steel = SAMPLE / "steel" / "manifest.csv"
    demo = _replay(root / "demo", steel, "steel-v1.onnx")
    rubric = ("--rubric", "industrial-aoi-acceptance")
    _cli("evaluate", demo, *rubric, "--param", "latency_budget_ms=50")
    base = _replay(root / "baseline", steel, "steel-v2.onnx")
    _cli("evaluate", base, *rubric, "--param", "latency_budget_ms=50", "--baseline", demo)
    mvtec = SAMPLE / "steel-mvtec"
    anomaly = _replay(root / "anomaly", mvtec / "steel", "steel-anomaly.onnx",
                      "--metadata", mvtec / "metadata.csv")  # fmt: skip
    _cli("evaluate", anomaly, "--rubric", "anomaly-inspection")  # an anomaly model's own rubric
    return {"demo": demo, "baseline": base, "anomaly": anomaly}


def _text(pdf: bytes, tmp: Path) -> str:
    path = tmp / "report.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True, timeout=60
    )
    return done.stdout.decode("utf-8")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _rubric_and_data_text(run_dir: Path, fmt: Formatter) -> list[str]:
    """What the report may print as written: the rubric's identifiers, references and the
    titles it gives only in English, and the names the data and the model card use."""
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    verdicts = json.loads((run_dir / "verdicts.json").read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    card = run["model"]["card"]
    allowed = [str(card.get(k, "")) for k in ("name", "vendor", "version")]
    allowed += [str(run["host"].get(k, "")) for k in ("platform", "processor")]
    labels = list((run.get("dataset") or {}).get("labels") or {})
    allowed += [", ".join(labels), ", ".join(card.get("positive_classes") or [])]
    allowed += [str(verdicts["rubric"].get("id", ""))]
    for crit in verdicts["criteria"]:
        allowed.append(str(crit["id"]))
        for ref in crit.get("maps_to") or []:
            allowed += [str(ref.get("ref", "")), str(ref.get("clause", ""))]
        if fmt.text(crit.get("title", "")) == crit.get("title"):  # no Chinese title
            allowed.append(str(crit["title"]))
    for entry in metrics["metrics"]:
        allowed += [str(v) for v in _strings(entry.get("slice") or {})]
    return sorted({a for a in allowed if a.strip()}, key=len, reverse=True)


def _outside_rubric_appendix(text: str, t: dict[str, Any]) -> str:
    start = text.find(t["appendix_rubric"])
    end = text.find(t["appendix_environment"])
    assert 0 < start < end, "the appendices are missing"
    return text[:start] + text[end:]


@pytest.mark.parametrize("name", ["demo", "baseline", "anomaly"])
def test_chinese_report_has_no_english_sentence(
    runs: dict[str, Path], name: str, tmp_path: Path
) -> None:
    run_dir = runs[name]
    t = load_strings("zh")
    fmt = Formatter(t, 0.95)
    pdf = render_report(run_dir, signatory="审核员 李梅", development_key=True, lang="zh")
    text = _outside_rubric_appendix(_text(pdf, tmp_path), t)
    for allowed in [*_rubric_and_data_text(run_dir, fmt), *COMMANDS]:
        text = text.replace(allowed, " § ")
    english = sorted({m.group(0) for m in ENGLISH.finditer(text)})
    assert english == [], f"English on the Chinese {name} report: {english}"
    assert REPRS.search(text) is None, REPRS.search(text)


def test_every_outcome_severity_and_relation_has_a_chinese_word() -> None:
    en, zh = load_strings("en"), load_strings("zh")
    from auditkit.rubric import schema

    outcomes = schema.Outcome.__args__  # type: ignore[attr-defined]
    severities = schema.Severity.__args__  # type: ignore[attr-defined]
    for table, codes in (("outcome", outcomes), ("severity", severities)):
        for code in codes:
            assert code in en[table] and code in zh[table], (table, code)
            assert not re.search("[A-Za-z]", zh[table][code]), (table, code, zh[table][code])
    relation = schema.MapsTo.model_fields["relation"].annotation.__args__  # type: ignore[union-attr]
    for code in relation:
        assert not re.search("[A-Za-z]", zh["relation"][code]), code
    for code in outcomes:
        assert not re.search("[A-Za-z]", zh["outcome_counted"][code]), code


def test_baseline_and_anomaly_reports_show_their_sections_in_chinese(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    t = load_strings("zh")
    pdf = render_report(runs["baseline"], signatory="审核员", development_key=True, lang="zh")
    text = "".join(_text(pdf, tmp_path).split())
    assert "".join(t["baseline_paired_heading"].split()) in text
    baseline = json.loads((runs["baseline"] / "verdicts.json").read_text())["baseline"]
    for change, n in baseline["changed_decisions"]["by_change"].items():
        assert f"{t['decision_change'][change]}{n}" in text
    # no flattened keys of the baseline block
    assert "changed_decisions" not in text and "by_change" not in text


def test_unsigned_chinese_report_names_no_english_signatory(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    t = load_strings("zh")
    # what `auditkit report --no-sign --lang zh` renders (audit.run_report)
    pdf = render_report(
        runs["demo"], signatory="unsigned", development_key=True, lang="zh", signed=False
    )
    text = _text(pdf, tmp_path)
    assert "unsigned" not in text and "PAdES" not in text
    assert t["unsigned_title"] in text
