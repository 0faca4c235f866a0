"""A synthetic audit of 100 criteria and 50 slices paginates cleanly: every criterion and every
slice is printed, and the results table repeats its header on every page it spans."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from auditkit.report.render import render_report
from tests.conftest import needs_pdftotext

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"
N_CRITERIA = 100
N_SLICES = 50
N_SLICED = 3  # criteria judged per slice (50 rows each, two interval charts each)


def _interval(k: int, n: int) -> dict[str, Any]:
    p = k / n
    return {"low": max(0.0, p - 0.02), "high": min(1.0, p + 0.03), "method": "clopper_pearson",
            "level": 0.95, "sided": "one"}  # fmt: skip


def _synthetic_run(folder: Path) -> None:
    run = json.loads((FIXTURE / "run.json").read_text(encoding="utf-8"))
    metrics = json.loads((FIXTURE / "metrics.json").read_text(encoding="utf-8"))
    lines = [f"L{i:02d}" for i in range(1, N_SLICES + 1)]
    entries = []
    for name in ("escape_rate", "overkill_rate"):
        entries.append({"name": name, "slice": {}, "unit": "part", "value": 0.02, "k": 20,
                        "n": 1000, "interval": _interval(20, 1000)})  # fmt: skip
        for i, line in enumerate(lines):
            k = i % 7
            entries.append({"name": name, "slice": {"line": line}, "unit": "part",
                            "value": k / 120, "k": k, "n": 120,
                            "interval": _interval(k, 120)})  # fmt: skip
    metrics["metrics"] = entries
    rubric = b"schema: auditkit.rubric/v1\nid: synthetic\nversion: 1.0.0\n"
    criteria = []
    for c in range(N_CRITERIA):
        sliced = c < N_SLICED
        metric = "escape_rate" if c % 2 == 0 else "overkill_rate"
        outcome = ("PASS", "FAIL", "INCONCLUSIVE")[c % 3]
        crit: dict[str, Any] = {
            "id": f"crit-{c:03d}",
            "title": f"Synthetic criterion number {c:03d} with a title long enough to wrap",
            "severity": ("blocker", "major", "minor")[c % 3],
            "maps_to": [{"ref": "EU-AIA", "clause": f"Art. {c % 20}", "relation": "supports"}],
            "metric": metric,
            "slice_by": ["line"] if sliced else None,
            "statistic": "upper_bound",
            "decision_rule": "guarded_acceptance",
            "op": "<=",
            "threshold": 0.05,
            "threshold_provenance": "organisation",
            "min_n": 100,
            "outcome": outcome,
            "value": 0.02,
            "bound": 0.05,
            "k": 20,
            "n": 1000,
            "reason": f"synthetic reason {c:03d}",
            "slices": [],
        }
        if sliced:
            crit["slices"] = [
                {"slice": {"line": line}, "unit": "part", "value": (i % 7) / 120,
                 "k": i % 7, "n": 120, "low": 0.0, "high": 0.05, "bound": 0.05,
                 "outcome": "PASS" if i % 7 < 5 else "INCONCLUSIVE", "reason": "synthetic"}
                for i, line in enumerate(lines)
            ]  # fmt: skip
        criteria.append(crit)
    verdicts = json.loads((FIXTURE / "verdicts.json").read_text(encoding="utf-8"))
    verdicts.update(criteria=criteria, verdict="REJECT", exit_code=1, data_gaps=[])
    verdicts["rubric"]["sha256"] = hashlib.sha256(rubric).hexdigest()
    for name, doc in (("run.json", run), ("metrics.json", metrics), ("verdicts.json", verdicts)):
        (folder / name).write_text(json.dumps(doc), encoding="utf-8")
    (folder / "rubric.yaml").write_bytes(rubric)


@pytest.mark.slow
def test_hundred_criteria_and_fifty_slices_paginate(tmp_path: Path) -> None:
    _synthetic_run(tmp_path)
    pdf = render_report(tmp_path, signatory="Pagination test", development_key=False)
    path = tmp_path / "big.pdf"
    path.write_bytes(pdf)
    exe = shutil.which("pdftotext")
    assert exe is not None, "pdftotext not found: install poppler-utils"
    text = subprocess.run(
        [exe, "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True, timeout=300
    ).stdout.decode("utf-8")
    pages = text.split("\f")[:-1]
    assert len(pages) > 10

    # every criterion row is printed in full: id, its own title and its own reason
    flat = "".join(text.split())
    for c in range(N_CRITERIA):
        assert f"crit-{c:03d}" in flat
        assert f"synthetic reason {c:03d}".replace(" ", "") in flat
        assert f"Syntheticcriterionnumber{c:03d}withatitlelongenoughtowrap" in flat

    # the results table spans several pages and repeats its header on each one
    start = next(i for i, p in enumerate(pages) if "Results by criterion" in p)
    end = next(i for i, p in enumerate(pages) if "Slice analysis" in p)
    table_pages = (
        pages[start : end + 1]
        if "crit-" in pages[end].split("Slice analysis")[0]
        else (pages[start:end])
    )
    assert len(table_pages) >= 5
    for page in table_pages:
        assert "Criterion / Clauses" in page and "Outcome" in page

    # every slice is shown in each sliced criterion's table
    for i in range(1, N_SLICES + 1):
        assert flat.count(f"L{i:02d}") >= N_SLICED


def _page_texts(pdf: bytes, tmp: Path) -> list[str]:
    path = tmp / "report.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True, timeout=60
    )
    return done.stdout.decode("utf-8").split("\f")[:-1]


@needs_pdftotext
def test_glossary_stays_on_one_page_and_ids_break_only_at_hyphens(tmp_path: Path) -> None:
    from auditkit.report.catalogue import load_strings

    t = load_strings("en")
    pages = _page_texts(render_report(FIXTURE, signatory="Layout", development_key=False), tmp_path)
    terms = [str(e["term"]) for e in t["glossary"]]
    heading = next(i for i, p in enumerate(pages) if t["appendix_glossary"] in p)
    # the whole glossary on the page of its heading: no page holds a lone glossary row
    page = "".join(pages[heading].split())
    assert all("".join(term.split()) in page for term in terms), "the glossary was split"
    text = "\f".join(pages)
    ids = [c["id"] for c in json.loads((FIXTURE / "verdicts.json").read_text())["criteria"]]
    for ident in ids:
        for k in range(1, len(ident)):
            if ident[k - 1] != "-":  # a line break inside a word of the identifier
                assert f"{ident[:k]}\n{ident[k:]}" not in text, (ident, k)
