"""The signed pages are bound to the evidence, and `verify` says what it verified.

On the bundled sample (steel-v1, and steel-v2 judged against steel-v1 as its baseline):
`verify --recompute` exits 0 on genuine reports (en, zh, with and without `--baseline`);
`report` refuses a hand-edited verdicts.json; every kind of tampering, a relabelling custom
template and hand-edited verdicts signed with the low-level call exit 1 with one clear line;
each signature carries its own trust; a damaged CMS signature is named in the user's words.

Expected values come from the run directory files (json, hashlib) and from the PDF text
(pdftotext), never from the code under test. Expensive objects are module fixtures.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from auditkit.audit import development_keys, run_evaluate, run_replay, run_report
from auditkit.replay.pipeline import ReplaySettings
from auditkit.report.keys import KeyFiles, create_keys
from auditkit.report.presentation import (
    check_outcome_words,
    check_page_words,
    check_verdict_word,
)
from auditkit.report.render import render_report
from auditkit.report.sign import countersign_pdf, sign_pdf
from auditkit.report.verify import format_result, verify_pdf
from tests.conftest import needs_pdftotext
from tests.test_keys_sign_verify import tamper_one_byte, tamper_page_incremental

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "sample_data" / "steel" / "manifest.csv"
MODELS = ROOT / "sample_data" / "models"
SHIPPED = ROOT / "reports" / "templates"
RUBRIC = "industrial-aoi-acceptance"
PARAMS = {"latency_budget_ms": 50.0}

pytestmark = needs_pdftotext


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditkit", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def _text(pdf: Path, *more: str) -> str:
    done = subprocess.run(
        ["pdftotext", *more, "-enc", "UTF-8", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _replay(model: str, out: Path) -> Path:
    settings = ReplaySettings(batch_size=64, single_stream_samples=50, seed=0)
    run_replay(MANIFEST, MODELS / f"{model}.onnx", out, settings=settings)
    return out


def _failed_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Error:" not in done.stdout
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("FAILED: ")
    return line


def replace_attachment(signed: bytes, name: str, data: bytes) -> bytes:
    """Attacker's incremental update (pypdf): repoint attachment ``name`` to ``data``."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import DecodedStreamObject, NameObject

    writer = PdfWriter(PdfReader(io.BytesIO(signed)), incremental=True)
    root: Any = writer._root_object
    names = root["/Names"]["/EmbeddedFiles"]["/Names"]
    for i in range(0, len(names), 2):
        if names[i] == name:
            filespec = names[i + 1].get_object()
            old = filespec["/EF"]["/F"].get_object()
            forged = DecodedStreamObject()
            forged.set_data(data)
            forged[NameObject("/Type")] = NameObject("/EmbeddedFile")
            forged[NameObject("/Subtype")] = old["/Subtype"]
            ref = writer._add_object(forged)  # pypdf has no public add_object
            for key in ("/F", "/UF"):
                if key in filespec["/EF"]:
                    filespec["/EF"][NameObject(key)] = ref
            out = io.BytesIO()
            writer.write(out)
            return out.getvalue()
    raise AssertionError(f"{name} not embedded")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("binding")


@pytest.fixture(scope="module")
def v1(work: Path) -> Path:
    """The demo: steel-v1 judged by the default rubric, no baseline; signed report."""
    out = _replay("steel-v1", work / "v1")
    run_evaluate(out, RUBRIC, params=PARAMS)
    run_report(out)
    return out


@pytest.fixture(scope="module")
def v2(work: Path, v1: Path) -> Path:
    """steel-v2, the candidate, judged against steel-v1 (production) as its baseline."""
    out = _replay("steel-v2", work / "v2")
    run_evaluate(out, RUBRIC, params=PARAMS, baseline=v1)
    run_report(out)
    return out


@pytest.fixture(scope="module")
def keys(v1: Path) -> KeyFiles:
    return development_keys(v1 / "dev-keys")


@pytest.fixture(scope="module")
def v2_keys(v2: Path) -> KeyFiles:
    return development_keys(v2 / "dev-keys")


# --------------------------------------------------------------------------- genuine reports


def test_demo_verifies_with_recompute_and_says_what_it_verified(v1: Path, keys: KeyFiles) -> None:
    done = _cli("verify", str(v1 / "report.pdf"), "--trust", str(keys.ca), "--recompute")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    verdicts, run = _json(v1 / "verdicts.json"), _json(v1 / "run.json")
    card = run["model"]["card"]
    page1 = _text(v1 / "report.pdf", "-l", "1")
    report_id = next(w for w in page1.split() if w.startswith("AR-"))  # as printed on page 1
    assert f"verdict:       {verdicts['verdict']}" in out
    assert f"report ID:     {report_id}" in out
    assert f"{card['name']} {card['version']}, SHA-256 {run['model']['sha256']}" in out
    rubric = verdicts["rubric"]
    assert f"rubric:        {rubric['id']} version {rubric['version']}" in out
    assert "template:      the shipped one" in out
    assert "recomputed:    verdicts match the evidence" in out
    assert "printed words: verdict and outcomes as recomputed" in out
    assert out.strip().splitlines()[-1] == "VERIFIED"
    # the energy-measured criterion failed recomputation before run.json was passed
    assert any(c["id"] == "energy-measured" for c in verdicts["criteria"])


def test_verify_json_carries_the_same_facts(v1: Path, keys: KeyFiles) -> None:
    done = _cli("verify", str(v1 / "report.pdf"), "--trust", str(keys.ca), "--recompute", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    verdicts, run = _json(v1 / "verdicts.json"), _json(v1 / "run.json")
    assert result["verdict"] == verdicts["verdict"]
    assert result["model"]["sha256"] == run["model"]["sha256"]
    assert result["rubric"]["id"] == verdicts["rubric"]["id"]
    assert result["template_shipped"] is True and result["lang"] == "en"
    assert result["recomputed"] is True and result["page_words_match"] is True
    assert [s["trusted"] for s in result["signatures"]] == [True]


def test_baseline_comparison_is_written_embedded_and_recomputed(
    v1: Path, v2: Path, v2_keys: KeyFiles
) -> None:
    baseline = _json(v2 / "baseline.json")
    verdicts = _json(v2 / "verdicts.json")
    assert baseline["format"] == "auditkit.baseline/1"
    assert baseline["run_id"] == verdicts["run_id"]
    assert baseline["comparison"] == verdicts["baseline"]  # exactly what evaluate judged
    assert baseline["baseline_run"]["run_id"] == _json(v1 / "run.json")["run_id"]
    files = baseline["baseline_run"]["files_sha256"]
    assert files["run.json"] == _sha(v1 / "run.json")
    assert files["predictions.parquet"] == _sha(v1 / "predictions.parquet")
    judged = {c["id"]: c["outcome"] for c in verdicts["criteria"] if "baseline" in c["id"]}
    assert judged and "SKIPPED" not in judged.values()

    from pypdf import PdfReader

    pdf = v2 / "report.pdf"
    embedded = PdfReader(pdf).attachments["baseline.json"][0]
    assert embedded == (v2 / "baseline.json").read_bytes()
    flat = "".join(_text(pdf, "-l", "1").split())
    assert _sha(v2 / "baseline.json") in flat  # printed on page 1 like the others

    done = _cli("verify", str(pdf), "--trust", str(v2_keys.ca), "--recompute")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "printed words: verdict and outcomes as recomputed" in done.stdout


def test_evaluate_without_baseline_removes_a_stale_baseline_json(work: Path, v2: Path) -> None:
    copy = work / "v2-no-baseline"
    shutil.copytree(v2, copy, ignore=shutil.ignore_patterns("*.pdf", "dev-keys"))
    run_evaluate(copy, RUBRIC, params=PARAMS)
    assert not (copy / "baseline.json").exists()
    assert "baseline" not in _json(copy / "verdicts.json")


def test_chinese_report_verifies_with_recompute(work: Path, v1: Path, keys: KeyFiles) -> None:
    pdf = work / "v1-zh.pdf"
    run_report(v1, out=pdf, lang="zh")
    done = _cli("verify", str(pdf), "--trust", str(keys.ca), "--recompute", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["lang"] == "zh"
    zh = yaml.safe_load((SHIPPED / "strings.zh.yaml").read_text(encoding="utf-8"))["zh"]
    verdict = _json(v1 / "verdicts.json")["verdict"]
    assert zh["verdict"][verdict] in _text(pdf, "-l", "1")


# --------------------------------------------------------------------------- presentation


def _custom_folder(path: Path, strings: dict[str, Any] | None) -> Path:
    path.mkdir()
    shutil.copy(SHIPPED / "report.html.j2", path / "report.html.j2")
    if strings is not None:
        (path / "strings.yaml").write_text(yaml.safe_dump(strings, allow_unicode=True))
    return path


def test_presentation_records_the_template_and_page_one_says_custom(work: Path, v1: Path) -> None:
    from pypdf import PdfReader

    shipped = PdfReader(v1 / "report.pdf").attachments["presentation.json"][0]
    record = json.loads(shipped)
    assert record["shipped"] is True and record["lang"] == "en"
    assert record["template"]["sha256"] == _sha(SHIPPED / "report.html.j2")
    assert record["stylesheet"]["sha256"] == _sha(SHIPPED / "report.css")
    catalogues = {c["file"]: c["sha256"] for c in record["catalogues"]}
    assert catalogues["strings.yaml"] == _sha(SHIPPED / "strings.yaml")
    assert catalogues["strings.zh.yaml"] == _sha(SHIPPED / "strings.zh.yaml")
    assert "custom template" not in _text(v1 / "report.pdf", "-l", "1").lower()

    folder = _custom_folder(work / "tpl-note", {"en": {"doc_title": "Our own title"}})
    for lang, note in (("en", "custom template"), ("zh", "自定义模板")):
        pdf = work / f"custom-{lang}.pdf"
        pdf.write_bytes(
            render_report(v1, signatory="Lab", development_key=True, lang=lang, template_dir=folder)
        )
        assert note in _text(pdf, "-l", "1").lower()
        record = json.loads(PdfReader(pdf).attachments["presentation.json"][0])
        assert record["shipped"] is False and record["lang"] == lang
        custom = [c for c in record["catalogues"] if not c["shipped"]]
        assert [c["sha256"] for c in custom] == [_sha(folder / "strings.yaml")]


def test_an_exact_copy_of_the_shipped_template_counts_as_shipped(work: Path, v1: Path) -> None:
    from pypdf import PdfReader

    folder = _custom_folder(work / "tpl-copy", None)
    pdf = render_report(v1, signatory="Lab", development_key=True, template_dir=folder)
    assert json.loads(PdfReader(io.BytesIO(pdf)).attachments["presentation.json"][0])["shipped"]


def test_relabelled_template_strings_fail_recompute(
    work: Path, v2: Path, v2_keys: KeyFiles
) -> None:
    """A custom catalogue maps HOLD to "ACCEPT": signed by auditkit's own report command, the
    signature and the evidence hold, and only the printed words give it away."""
    assert _json(v2 / "verdicts.json")["verdict"] == "HOLD"
    folder = _custom_folder(work / "tpl-relabel", {"en": {"verdict": {"HOLD": "ACCEPT"}}})
    pdf = work / "relabelled.pdf"
    run_report(v2, out=pdf, template_dir=folder)
    assert "ACCEPT" in _text(pdf, "-l", "1")
    assert _cli("verify", str(pdf), "--trust", str(v2_keys.ca)).returncode == 0
    line = _failed_line(_cli("verify", str(pdf), "--trust", str(v2_keys.ca), "--recompute"))
    assert line == (
        "FAILED: printed pages: page 1 prints the verdict 'ACCEPT', "
        "but the evidence gives HOLD ('HOLD')"
    )


def test_relabelled_outcome_words_fail_recompute(work: Path, v1: Path, keys: KeyFiles) -> None:
    verdicts = _json(v1 / "verdicts.json")
    failed = sorted(c["id"] for c in verdicts["criteria"] if c["outcome"] == "FAIL")
    assert failed
    folder = _custom_folder(work / "tpl-outcome", {"en": {"outcome": {"FAIL": "PASS"}}})
    pdf = work / "relabelled-outcomes.pdf"
    run_report(v1, out=pdf, template_dir=folder)
    line = _failed_line(_cli("verify", str(pdf), "--trust", str(keys.ca), "--recompute"))
    for cid in failed:
        assert (
            f"criterion {cid}: the signed pages print 'PASS', but the evidence gives FAIL" in line
        )


def test_outcome_words_never_read_a_longer_word_as_a_shorter_one() -> None:
    """不合格 (FAIL) contains 合格 (PASS): a FAIL row must not confirm PASS."""
    criteria = [{"id": "escape-a", "outcome": "PASS"}, {"id": "escape-b", "outcome": "FAIL"}]
    good = "escape-a   合格\nescape-b   不合格\n"
    assert check_outcome_words(good, criteria, "zh") == []
    swapped = "escape-a   不合格\nescape-b   合格\n"
    problems = check_outcome_words(swapped, criteria, "zh")
    assert len(problems) == 2 and "'不合格'" in problems[0] and "'合格'" in problems[1]
    assert check_outcome_words("escape-a\n", criteria[:1], "en") == [
        "criterion escape-a: its outcome 'PASS' is not printed"
    ]
    # an id wrapped at a hyphen in a narrow cell still carries its row's outcome
    wrapped = [{"id": "thresholds-fixed-before-testing", "outcome": "FAIL"}]
    cell = " thresholds-fixed-      major    n/a   FAIL\n before-testing         d_before\n"
    assert check_outcome_words(cell, wrapped, "en") == []
    assert check_outcome_words(cell.replace("FAIL", "PASS"), wrapped, "en") != []
    # the verdict word after the heading, whatever case the stylesheet gives the heading
    assert check_verdict_word("Title\nVERDICT\nHOLD\n", "HOLD", "en") == []
    assert check_verdict_word("VERDICT\nACCEPT\n", "HOLD", "en") != []
    # page 1 must print the report ID the evidence gives (it may wrap)
    doc = {"verdict": "HOLD", "criteria": []}
    assert (
        check_page_words(["Report ID: AR-1234-\nabcd\nVERDICT HOLD"], doc, "en", "AR-1234-abcd")
        == []
    )
    assert check_page_words(
        ["Report ID: AR-1234-ffff\nVERDICT HOLD"], doc, "en", "AR-1234-abcd"
    ) == ["page 1 does not print the report ID AR-1234-abcd of the evidence"]


# --------------------------------------------------------------------------- report refuses


@pytest.mark.parametrize("edit", ["outcome", "verdict", "reason"])
def test_report_refuses_hand_edited_verdicts(work: Path, v1: Path, edit: str) -> None:
    copy = work / f"edited-{edit}"
    shutil.copytree(v1, copy, ignore=shutil.ignore_patterns("*.pdf"))
    verdicts = _json(copy / "verdicts.json")
    target = next(c for c in verdicts["criteria"] if c["outcome"] == "FAIL")
    if edit == "outcome":
        target["outcome"] = "PASS"
    elif edit == "verdict":
        verdicts["verdict"] = "ACCEPT"
    else:
        target["reason"] = "all fine"
    (copy / "verdicts.json").write_text(json.dumps(verdicts, indent=2))
    done = _cli("report", str(copy))
    assert done.returncode == 5, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not follow from its evidence, not signed" in lines[0]
    expected = {
        "outcome": f"criterion {target['id']}: outcome 'PASS' in verdicts.json, 'FAIL' recomputed",
        "verdict": "verdict ACCEPT in verdicts.json, REJECT recomputed",
        "reason": "verdicts.json differs from the recomputation at criteria[",
    }[edit]
    assert expected in lines[0]
    assert not (copy / "report.pdf").exists()


# --------------------------------------------------------------------------- tampering


@pytest.fixture(scope="module")
def hand_edited_signed(work: Path, v1: Path, keys: KeyFiles) -> Path:
    """Hand-edited verdicts rendered and signed with the library's lower-level calls, which do
    not recompute (the refusal of `report` is bypassed)."""
    copy = work / "edited-signed"
    shutil.copytree(v1, copy, ignore=shutil.ignore_patterns("*.pdf", "dev-keys"))
    verdicts = _json(copy / "verdicts.json")
    for c in verdicts["criteria"]:
        if c["outcome"] == "FAIL":
            c["outcome"] = "PASS"
    verdicts["verdict"] = "ACCEPT"
    (copy / "verdicts.json").write_text(json.dumps(verdicts, indent=2))
    pdf = render_report(copy, signatory="Lab", development_key=True)
    path = work / "edited-signed.pdf"
    path.write_bytes(sign_pdf(pdf, key_path=keys.key, cert_path=keys.cert, reason="edited"))
    return path


def test_each_tampering_fails_with_one_clear_line(
    work: Path, v1: Path, keys: KeyFiles, hand_edited_signed: Path
) -> None:
    signed = (v1 / "report.pdf").read_bytes()
    verdicts = _json(v1 / "verdicts.json")
    verdicts["verdict"] = "ACCEPT"
    edited_verdicts = json.dumps(verdicts, indent=2).encode()
    cases = {
        "byte": (tamper_one_byte(signed), "the signed bytes were changed after signing"),
        "page": (tamper_page_incremental(signed), "modified after signing in a way"),
        "attachment": (
            replace_attachment(signed, "metrics.json", b'{"forged": true}'),
            "embedded file metrics.json was replaced after signing",
        ),
        "verdicts": (
            replace_attachment(signed, "verdicts.json", edited_verdicts),
            "embedded file verdicts.json was replaced after signing",
        ),
        "hand-edited-signed": (
            hand_edited_signed.read_bytes(),
            "recompute: verdict ACCEPT in verdicts.json, REJECT recomputed from the evidence",
        ),
    }
    for name, (data, expected) in cases.items():
        path = work / f"tampered-{name}.pdf"
        path.write_bytes(data)
        line = _failed_line(_cli("verify", str(path), "--trust", str(keys.ca), "--recompute"))
        assert expected in line, (name, line)


def test_hand_edited_signed_report_verifies_without_recompute_only(
    hand_edited_signed: Path, keys: KeyFiles
) -> None:
    assert verify_pdf(hand_edited_signed, trust=[keys.ca]).ok  # the signature alone holds
    result = verify_pdf(hand_edited_signed, trust=[keys.ca], recompute=True)
    assert not result.ok and result.recomputed is False


# --------------------------------------------------------------------------- signatures


def test_each_signature_has_its_own_trust(work: Path, v1: Path, keys: KeyFiles) -> None:
    regulator = create_keys(work / "regulator", common_name="Market surveillance desk")
    path = work / "countersigned.pdf"
    path.write_bytes(
        countersign_pdf(
            (v1 / "report.pdf").read_bytes(), key_path=regulator.key, cert_path=regulator.cert
        )
    )
    done = _cli("verify", str(path), "--trust", str(keys.ca))
    assert done.returncode == 1
    blocks = done.stdout.split("signature 2:")
    assert len(blocks) == 2
    author, counter = blocks
    assert "trusted:      yes" in author.split("signature 1:")[1]
    assert "Market surveillance desk" in counter and "trusted:      no" in counter
    assert "'Market surveillance desk' does not chain to a trusted certificate" in done.stdout
    trusting_both = _cli(
        "verify", str(path), "--trust", str(keys.ca), "--trust", str(regulator.ca), "--recompute"
    )
    assert trusting_both.returncode == 0, trusting_both.stdout


def test_damaged_cms_is_named_in_the_users_words(work: Path, v1: Path, keys: KeyFiles) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    data = (v1 / "report.pdf").read_bytes()
    sig = PdfFileReader(io.BytesIO(data)).embedded_signatures[0]
    start, end = int(sig.byte_range[1]) + 1, int(sig.byte_range[2]) - 1  # the hex digits
    der_end = start + len(bytes(sig.pkcs7_content).rstrip(b"\0")) * 2
    path = work / "damaged-cms.pdf"
    seen = set()
    for pos in range(start, min(der_end, end), 97):
        damaged = bytearray(data)
        damaged[pos : pos + 2] = b"ff" if damaged[pos : pos + 2] != b"ff" else b"00"
        path.write_bytes(bytes(damaged))
        result = verify_pdf(path, trust=[keys.ca])
        text = format_result(result)
        for python_words in ("object has no attribute", "asn1crypto", "Insufficient data"):
            assert python_words not in text, (pos, text.splitlines()[-1])
        seen.add(result.ok)
        if not result.ok:
            assert len(result.problems) >= 1
    assert False in seen
    flipped = bytearray(data)
    flipped[start : start + 2] = b"00"  # the CMS's outer tag
    path.write_bytes(bytes(flipped))
    line = _failed_line(_cli("verify", str(path), "--trust", str(keys.ca)))
    assert line == "FAILED: the signature's data (CMS) is damaged and cannot be read: " + (
        "the file was altered"
    )


def test_page_words_are_read_without_pdftotext_too(
    work: Path, v1: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pypdf's layout extraction stands in for pdftotext: the same verdicts either way."""
    import auditkit.report.verify as verify_module

    folder = _custom_folder(work / "tpl-fallback", {"en": {"verdict": {"REJECT": "ACCEPT"}}})
    relabelled = work / "relabelled-fallback.pdf"
    run_report(v1, out=relabelled, template_dir=folder)
    monkeypatch.setattr(verify_module.shutil, "which", lambda name: None)
    genuine = verify_pdf(v1 / "report.pdf", trust=[keys.ca], recompute=True)
    assert genuine.ok and genuine.page_words_match, genuine.problems
    result = verify_pdf(relabelled, trust=[keys.ca], recompute=True)
    assert result.page_words_match is False
    assert "page 1 prints the verdict 'ACCEPT'" in result.problems[0]


def test_incomplete_development_keys_are_named_without_foreign_advice(tmp_path: Path) -> None:
    from auditkit.errors import InputError

    full = create_keys(tmp_path / "keys")
    full.key.unlink()
    with pytest.raises(InputError, match=r"incomplete set of development keys \(signer.key") as e:
        development_keys(tmp_path / "keys")
    assert "--overwrite" not in str(e.value)
