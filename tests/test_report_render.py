"""Rendering of the unsigned PDF/A-3b report from the hand-made run directory ``run_small``."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
from pypdf import PdfReader

from auditkit.errors import RunDirError
from auditkit.report.render import (
    EMBEDDED_FILES,
    SafeURLFetcher,
    render_html,
    render_report,
    report_id_for,
)
from tests.conftest import needs_pdftotext

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"
SIGNATORY = "Dr. Mei Lin, Head of Quality Assurance"
INJECTION = '<img src="file:///etc/passwd"> <link rel="attachment" href="file:///etc/hostname">'


def _pdftotext(pdf: bytes, tmp: Path, first: int = 1, last: int | None = None) -> str:
    path = tmp / "report.pdf"
    path.write_bytes(pdf)
    args = ["pdftotext", "-enc", "UTF-8", "-f", str(first), "-l", str(last or first)]
    done = subprocess.run([*args, str(path), "-"], capture_output=True, check=True, timeout=60)
    return done.stdout.decode("utf-8")


def _squash(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return render_report(FIXTURE, signatory=SIGNATORY, development_key=True)


@pytest.fixture(scope="module")
def injected_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("injected")
    for name in ("run.json", "metrics.json", "rubric.yaml"):
        shutil.copy(FIXTURE / name, run_dir / name)
    verdicts = json.loads((FIXTURE / "verdicts.json").read_text(encoding="utf-8"))
    verdicts["criteria"][0]["title"] = INJECTION
    verdicts["data_gaps"].append(INJECTION)
    (run_dir / "verdicts.json").write_text(json.dumps(verdicts, indent=2), encoding="utf-8")
    return run_dir


@pytest.fixture(scope="module")
def injected_pdf(injected_run: Path) -> bytes:
    # Not a development key: this render doubles as the "no banner" case.
    return render_report(injected_run, signatory=SIGNATORY, development_key=False)


def _report_id() -> str:
    run_id = json.loads((FIXTURE / "run.json").read_text(encoding="utf-8"))["run_id"]
    return report_id_for(run_id, (FIXTURE / "verdicts.json").read_bytes())


def test_report_id_is_derived_from_run_id_and_verdicts() -> None:
    digest = hashlib.sha256((FIXTURE / "verdicts.json").read_bytes()).hexdigest()
    assert _report_id() == f"AR-1dfb21ba66d6-{digest[:8]}"


def test_pdf_is_pdfa3b_with_deduplicated_af(pdf: bytes) -> None:
    assert pdf.startswith(b"%PDF-1.7")
    reader = PdfReader(io.BytesIO(pdf))
    root = cast(Any, reader.root_object)
    xmp = root["/Metadata"].get_object().get_data()
    assert b"<pdfaid:part>3</pdfaid:part>" in xmp or b'pdfaid:part="3"' in xmp
    assert b"<pdfaid:conformance>B</pdfaid:conformance>" in xmp or b'conformance="B"' in xmp
    assert "/OutputIntents" in root
    af = [ref.idnum for ref in root["/AF"]]
    assert len(af) == len(set(af)) == len(EMBEDDED_FILES) == 5
    trailer = cast(Any, reader.trailer)
    assert "/Producer" not in (trailer.get("/Info") or {})
    assert str(trailer["/ID"][0]) == _report_id()
    width, height = (float(v) for v in reader.pages[0].mediabox[2:])
    assert (round(width), round(height)) == (595, 842)  # A4


def test_attachments_are_the_exact_file_bytes(pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(pdf))
    attachments = reader.attachments
    assert sorted(attachments) == sorted(EMBEDDED_FILES)
    for name in EMBEDDED_FILES:
        if name != "presentation.json":  # made by the render, not a run file (below)
            assert attachments[name] == [(FIXTURE / name).read_bytes()]
    presentation = json.loads(attachments["presentation.json"][0])
    shipped = Path(__file__).parent.parent / "reports" / "templates"
    assert presentation["shipped"] is True and presentation["lang"] == "en"
    assert (
        presentation["template"]["sha256"]
        == hashlib.sha256((shipped / "report.html.j2").read_bytes()).hexdigest()
    )
    for ref in cast(Any, reader.root_object)["/AF"]:
        spec = ref.get_object()
        assert spec["/AFRelationship"] == "/Data"
        mime = "/application/yaml" if spec["/F"].endswith(".yaml") else "/application/json"
        assert spec["/EF"]["/F"].get_object()["/Subtype"] == mime


@needs_pdftotext
def test_page_one_identifies_verdict_objects_and_evidence(pdf: bytes, tmp_path: Path) -> None:
    text = _pdftotext(pdf, tmp_path)
    flat = _squash(text)
    run = json.loads((FIXTURE / "run.json").read_text(encoding="utf-8"))
    verdicts = json.loads((FIXTURE / "verdicts.json").read_text(encoding="utf-8"))
    assert "CONDITIONAL" in text
    assert _report_id() in flat
    assert run["model"]["sha256"] in flat
    assert run["dataset"]["manifest_sha256"] in flat
    assert verdicts["rubric"]["sha256"] in flat
    for name in EMBEDDED_FILES:
        if name != "presentation.json":
            assert hashlib.sha256((FIXTURE / name).read_bytes()).hexdigest() in flat
    embedded = PdfReader(io.BytesIO(pdf)).attachments["presentation.json"][0]
    assert hashlib.sha256(embedded).hexdigest() in flat
    assert SIGNATORY in text
    assert "Guarded acceptance" in text
    assert "not a conformity assessment" in text
    assert "2026-11-26 23:00:04 UTC" in text
    assert "development key" in text.lower()


@needs_pdftotext
def test_later_pages_have_header_footer_and_formatted_rates(pdf: bytes, tmp_path: Path) -> None:
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    text = _pdftotext(pdf, tmp_path, 2)
    assert _report_id() in text
    assert f"Page 2 of {pages}" in text
    everything = _pdftotext(pdf, tmp_path, 1, pages)
    assert "1.30 %" in everything and "9/690" in everything  # overall escape rate with k/n
    assert "INCONCLUSIVE" in everything and "FAIL" in everything
    needles = ("overkill", "escape", "Data gaps and deviations", "relate only to the items tested")
    for needle in needles:
        assert needle in everything
    assert f"Page {pages} of {pages}" in everything


def test_two_renders_are_byte_identical(pdf: bytes) -> None:
    assert render_report(FIXTURE, signatory=SIGNATORY, development_key=True) == pdf


@needs_pdftotext
def test_injected_markup_is_literal_text_and_nothing_is_fetched(
    injected_run: Path, injected_pdf: bytes, tmp_path: Path
) -> None:
    html = render_html(injected_run, signatory=SIGNATORY, development_key=False)
    assert '<img src="file:' not in html and '<link rel="attachment"' not in html
    assert "&lt;img src=&#34;file:///etc/passwd&#34;&gt;" in html
    # The render ran with the strict fetcher, so any fetch would have aborted it; the only
    # attachments are ours.
    assert sorted(PdfReader(io.BytesIO(injected_pdf)).attachments) == sorted(EMBEDDED_FILES)
    pages = len(PdfReader(io.BytesIO(injected_pdf)).pages)
    text = _pdftotext(injected_pdf, tmp_path, 1, pages)
    assert '<img src="file:///etc/passwd">' in text
    assert "root:" not in text


def test_fetcher_refuses_everything_but_data_urls() -> None:
    from weasyprint.urls import FatalURLFetchingError

    fetcher = SafeURLFetcher(strict=True)
    for url in ("file:///etc/passwd", "http://127.0.0.1/x.css", "https://example.com/a.png"):
        with pytest.raises(FatalURLFetchingError):
            fetcher.fetch(url)
    assert len(fetcher.blocked) == 3
    lenient = SafeURLFetcher(strict=False)
    with pytest.raises(ValueError):
        lenient.fetch("file:///etc/passwd")
    response = fetcher.fetch("data:text/plain;base64,aGk=")
    assert response is not None


@needs_pdftotext
def test_development_key_banner_only_when_asked(injected_pdf: bytes, tmp_path: Path) -> None:
    with_key = render_html(FIXTURE, signatory=SIGNATORY, development_key=True)
    without_key = render_html(FIXTURE, signatory=SIGNATORY, development_key=False)
    assert 'class="devkey"' in with_key
    assert 'class="devkey"' not in without_key
    assert "development key" not in without_key.lower()
    text = _pdftotext(injected_pdf, tmp_path, 1)
    assert "development key" not in text.lower()


def test_missing_verdicts_is_a_run_dir_error(tmp_path: Path) -> None:
    for name in ("run.json", "metrics.json", "rubric.yaml"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    with pytest.raises(RunDirError, match=r"verdicts\.json") as caught:
        render_report(tmp_path, signatory=SIGNATORY, development_key=False)
    assert "\n" not in str(caught.value)


def test_wrong_format_and_mismatched_run_are_run_dir_errors(tmp_path: Path) -> None:
    for name in ("run.json", "metrics.json", "verdicts.json", "rubric.yaml"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    metrics["run_id"] = "run-000000000000"
    (tmp_path / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    with pytest.raises(RunDirError, match="belongs to run"):
        render_html(tmp_path, signatory=SIGNATORY, development_key=False)
    (tmp_path / "metrics.json").write_text('{"format": "auditkit.metrics/9"}', encoding="utf-8")
    with pytest.raises(RunDirError, match="format"):
        render_html(tmp_path, signatory=SIGNATORY, development_key=False)


def test_html_has_language_and_no_external_references() -> None:
    html = render_html(FIXTURE, signatory=SIGNATORY, development_key=False)
    assert '<html lang="en">' in html
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sources and all(src.startswith("data:image/svg+xml;base64,") for src in sources)
    assert "url(" not in html and "@import" not in html


def test_clean_run_says_none_and_tolerates_empty_slices(tmp_path: Path) -> None:
    run = json.loads((FIXTURE / "run.json").read_text(encoding="utf-8"))
    metrics = json.loads((FIXTURE / "metrics.json").read_text(encoding="utf-8"))
    verdicts = json.loads((FIXTURE / "verdicts.json").read_text(encoding="utf-8"))
    run["dataset"]["n_unreadable"] = 0
    metrics["counts"].update(images_unreadable=0, images_error=0, parts_unscored=0)
    metrics["metrics"].append(
        {"name": "escape_rate", "slice": {"line": "L4"}, "unit": "part", "value": None,
         "k": 0, "n": 0, "interval": None}
    )  # fmt: skip
    verdicts["criteria"] = [c for c in verdicts["criteria"] if c["outcome"] == "PASS"]
    verdicts.update(verdict="ACCEPT", exit_code=0, data_gaps=[])
    for name, data in (("run.json", run), ("metrics.json", metrics), ("verdicts.json", verdicts)):
        (tmp_path / name).write_text(json.dumps(data), encoding="utf-8")
    shutil.copy(FIXTURE / "rubric.yaml", tmp_path / "rubric.yaml")
    html = render_html(tmp_path, signatory=SIGNATORY, development_key=False)
    assert "verdict-accept" in html and ">ACCEPT<" in html
    assert "None: every image was read and scored" in html
    assert "None recorded by the tool." in html
    assert "<td>L4</td>" in html


def test_methods_name_how_the_replay_decoded_and_ran_the_images(tmp_path: Path) -> None:
    for name in ("run.json", "metrics.json", "verdicts.json", "rubric.yaml"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    run = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    for settings, line in [
        ({"decode_threads": 1}, "decoding in 1 thread(s), 1 inference stream(s)"),
        (
            {"decode_threads": 1, "decode_processes": 6, "inference_streams": 3},
            "decoding in 6 worker process(es), 3 inference stream(s)",
        ),
    ]:
        run["replay"].update(settings)
        (tmp_path / "run.json").write_text(json.dumps(run), encoding="utf-8")
        html = render_html(tmp_path, signatory=SIGNATORY, development_key=False)
        assert f"<td>{line}</td>" in html


# --------------------------------------------------------------------------- issue 13: pages


def _run_with(tmp: Path, edit: Any) -> Path:
    """A copy of the fixture run with verdicts.json edited by ``edit(verdicts)``."""
    for name in ("run.json", "metrics.json", "rubric.yaml"):
        shutil.copy(FIXTURE / name, tmp / name)
    verdicts = json.loads((FIXTURE / "verdicts.json").read_text(encoding="utf-8"))
    edit(verdicts)
    (tmp / "verdicts.json").write_text(json.dumps(verdicts, indent=2), encoding="utf-8")
    return tmp


def _blockers_and_skips(verdicts: dict[str, Any]) -> None:
    lighting = verdicts["criteria"][2]  # escape-by-lighting: value 0.063158, bound 0.120848
    lighting["severity"] = "blocker"
    for row in lighting["slices"]:
        if row["slice"] == {"lighting": "dim"}:
            row.update(value=lighting["value"], low=0.0231, high=lighting["bound"])
    skipped = {
        "id": "escape-vs-baseline",
        "title": "Escape rate not worse than the baseline",
        "severity": "blocker",
        "metric": "escape_rate_change",
        "outcome": "SKIPPED",
        "reason": "needs --baseline RUN: not evaluated",
        "value": None,
        "bound": None,
    }
    attested = {
        "id": "fmea-reviewed",
        "title": "FMEA reviewed",
        "severity": "minor",
        "metric": "fmea",
        "kind": "attestation",
        "outcome": "ATTESTED",
        "reason": "attested, not verified",
    }
    verdicts["criteria"] += [skipped, attested]
    verdicts["verdict"] = "REJECT"


@needs_pdftotext
def test_page_one_names_each_open_blocker_with_figure_and_bound(tmp_path: Path) -> None:
    run_dir = _run_with(tmp_path, _blockers_and_skips)
    pdf = render_report(run_dir, signatory=SIGNATORY, development_key=True)
    page1 = _squash(_pdftotext(pdf, tmp_path, 1))
    # hand-worked from the fixture: dim lighting 0.063158 → 6.32 %, its upper bound
    # 0.120848 → 12.08 %, above the 0.02 limit
    assert _squash("escape rate, lighting = dim: 6.32 %, upper bound 12.08 % > 2.00 %") in page1
    assert _squash("escape-vs-baseline") in page1 and "SKIPPED" in page1
    assert _squash("needs --baseline RUN: not evaluated") in page1
    # the passed blockers (escape-overall, overkill-overall) are not listed
    assert "escape-overall" not in page1
    # 7 criteria: 3 PASS, 1 FAIL, 1 INCONCLUSIVE, 1 SKIPPED, 1 ATTESTED: every one counted
    tally = (
        "7 criteria: 3 passed, 1 failed, 1 inconclusive, 1 not evaluated, 1 attested, not verified"
    )
    assert _squash(tally) in page1
    zh = render_report(run_dir, signatory=SIGNATORY, development_key=True, lang="zh")
    page1_zh = _squash(_pdftotext(zh, tmp_path, 1))
    assert _squash("漏检率，光照 = dim：6.32 %，置信上限 12.08 % > 2.00 %") in page1_zh
    assert _squash("共 7 项准则：3 项合格，1 项不合格，1 项无法判定，1 项未评估") in page1_zh


def test_every_outcome_has_a_badge_style() -> None:
    from auditkit.rubric.schema import Outcome

    css = (Path(__file__).parent.parent / "reports" / "templates" / "report.css").read_text()
    for outcome in Outcome.__args__:  # type: ignore[attr-defined]
        rule = re.search(rf"\.outcome-{outcome.lower()}\s*\{{([^}}]*)\}}", css)
        assert rule is not None and "background" in rule.group(1), outcome
    html = render_html(FIXTURE, signatory=SIGNATORY, development_key=False)
    assert 'class="outcome outcome-pass"' in html


@needs_pdftotext
def test_unsigned_report_says_so_and_claims_no_signature(tmp_path: Path) -> None:
    unsigned = render_report(FIXTURE, signatory="unsigned", development_key=True, signed=False)
    page1 = _pdftotext(unsigned, tmp_path, 1)
    assert "PAdES" not in page1 and "Digitally signed" not in page1
    assert "not signed" in page1.lower()
    assert _squash("rendered without a digital signature") in _squash(page1)
    assert "development key" not in page1.lower()
    # `auditkit countersign` refuses an unsigned report: the box must not offer it
    assert "auditkit countersign" not in page1
    pages = len(PdfReader(io.BytesIO(unsigned)).pages)
    last = _pdftotext(unsigned, tmp_path, pages - 3, pages)
    assert "The digital signature of this PDF identifies" not in last
    signed = render_report(FIXTURE, signatory=SIGNATORY, development_key=True)
    assert "PAdES" in _pdftotext(signed, tmp_path, 1)


def test_html_copy_does_not_claim_attachments_or_a_signature() -> None:
    html = render_html(FIXTURE, signatory=SIGNATORY, development_key=False)
    assert "These files are attached to this PDF" not in html
    assert "carries no attached files and no digital signature" in html
    assert "PAdES" not in html
    # the PDF's own input still names its attachments and its signature
    pdf_input = render_html(FIXTURE, signatory=SIGNATORY, development_key=False, for_pdf=True)
    assert "These files are attached to this PDF" in pdf_input and "PAdES" in pdf_input


@needs_pdftotext
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_no_python_repr_or_json_outside_the_rubric_appendix(lang: str, tmp_path: Path) -> None:
    from auditkit.report.catalogue import load_strings

    t = load_strings(lang)
    run_dir = _run_with(tmp_path, _blockers_and_skips)
    pdf = render_report(run_dir, signatory=SIGNATORY, development_key=True, lang=lang)
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    text = _pdftotext(pdf, tmp_path, 1, pages)
    start, end = text.find(t["appendix_rubric"]), text.find(t["appendix_environment"])
    assert 0 < start < end
    outside = text[:start] + text[end:]
    assert re.search(r"\b(None|True|False)\b(?!-)", outside) is None  # not "False-call"
    assert re.search(r"\{['\"]|['\"]: |\[\{", outside) is None
    assert "Threshold set by: None" not in outside
