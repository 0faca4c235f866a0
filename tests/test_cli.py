"""The CLI as a user meets it: exit codes of docs/cli.md and one-line errors, never a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import auditkit
from tests.conftest import write_dataset


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditkit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert text in lines[0]


def test_version_and_help() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"auditkit {auditkit.__version__}"
    for command in ("audit", "replay", "evaluate", "report", "verify", "keys", "sample", "rubric"):
        help_result = run_cli(command, "--help")
        assert help_result.returncode == 0, command
        assert "Usage" in help_result.stdout


def test_usage_error_exit_2() -> None:
    result = run_cli("audit")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_manifest_path_escaping_root_exits_5(tmp_path: Path, tiny_model: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "manifest.csv").write_text("path,label\n../../etc/passwd,good\n")
    result = run_cli(
        "replay",
        str(root / "manifest.csv"),
        "--model",
        str(tiny_model),
        "--out",
        str(tmp_path / "run"),
    )
    assert_one_line_error(result, 5, "escapes the data root")


def test_missing_inputs_exit_5(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=4)
    result = run_cli(
        "replay",
        str(tmp_path / "nope.csv"),
        "--model",
        str(tiny_model),
        "--out",
        str(tmp_path / "run"),
    )
    assert_one_line_error(result, 5, "manifest not found")
    result = run_cli(
        "replay",
        str(manifest),
        "--model",
        str(tmp_path / "nope.onnx"),
        "--out",
        str(tmp_path / "run"),
    )
    assert_one_line_error(result, 5, "model card not found")
    result = run_cli("evaluate", str(tmp_path / "no-run"))
    assert_one_line_error(result, 5, "run directory not found")


def test_malformed_rubric_exit_5(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: auditkit.rubric/v1\nid: x\nversion: 1\n")
    result = run_cli("rubric", "validate", str(bad))
    assert_one_line_error(result, 5, "bad.yaml")


def test_rubric_list_and_schema() -> None:
    assert "industrial-aoi-acceptance" in run_cli("rubric", "list").stdout
    assert '"$id": "auditkit.rubric/v1"' in run_cli("rubric", "schema").stdout


@pytest.mark.slow
def test_audit_end_to_end_with_tiny_model(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=30, corrupt=1)
    out = tmp_path / "run"
    result = run_cli(
        "audit",
        str(manifest),
        "--model",
        str(tiny_model),
        "--out",
        str(out),
        "--single-stream",
        "10",
    )
    # 30 random images cannot meet min_n, so nothing may PASS; but a random model's escapes
    # already prove a 5 % limit broken in a slice, and min_n guards PASS only: REJECT
    assert result.returncode == 1, result.stderr + result.stdout
    assert "verdict: REJECT" in result.stdout
    assert "below the rubric's minimum" in result.stdout
    assert "1 image(s) unreadable" in result.stdout
    assert (out / "report.pdf").exists()
    # the report counts the corrupt image (poppler-utils is installed by `make test`)
    text = subprocess.run(
        ["pdftotext", "-layout", str(out / "report.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.search(r"Unreadable images \(not\s*(scored\))?\s*1\b", text), text[:3000]
    verified = run_cli("verify", str(out / "report.pdf"), "--trust", str(out / "dev-keys/ca.pem"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    untrusted = run_cli("verify", str(out / "report.pdf"))
    assert untrusted.returncode == 1


def test_sample_make_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = run_cli("sample", "make", "--n", "6", "--seed", "5", "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    a = (tmp_path / "a/manifest.csv").read_text()
    assert a == (tmp_path / "b/manifest.csv").read_text()
    assert len(a.strip().splitlines()) == 7
    for image in (tmp_path / "a/images").iterdir():
        assert image.read_bytes() == (tmp_path / "b/images" / image.name).read_bytes()


def test_evaluate_without_rubric_writes_metrics_only(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=12)
    run = tmp_path / "run"
    replayed = run_cli(
        "replay",
        str(manifest),
        "--model",
        str(tiny_model),
        "--out",
        str(run),
        "--single-stream",
        "4",
    )
    assert replayed.returncode == 0, replayed.stderr
    judged = run_cli("evaluate", str(run), "--rubric", "industrial-aoi-acceptance")
    assert judged.returncode == 3 and (run / "verdicts.json").exists()
    result = run_cli("evaluate", str(run))
    assert result.returncode == 0, result.stderr
    assert "no verdict" in result.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["confidence_level"] == 0.95 and metrics["sided"] == "one"
    assert {"escape_rate", "kappa", "escape_rate_difference"} <= {
        m["name"] for m in metrics["metrics"]
    }
    # a verdict judged on other metrics must not stay beside them
    assert not (run / "verdicts.json").exists()


def test_audit_writes_html_unsigned_and_with_a_custom_template(
    tmp_path: Path, tiny_model: Path
) -> None:
    """``audit --no-sign --html FILE --template DIR`` gives what ``report`` gives with the same
    options: the same unsigned PDF bytes, no signature, the HTML beside it, and page 1 saying
    the pages came from a custom template."""
    import shutil

    template = tmp_path / "my-template"
    shutil.copytree(Path(__file__).parent.parent / "reports" / "templates", template)
    css = template / "report.css"
    css.write_text(css.read_text() + "\n/* our own */\n")
    manifest = write_dataset(tmp_path / "data", n=12)
    out, html = tmp_path / "run", tmp_path / "report.html"
    result = run_cli(
        "audit", str(manifest), "--model", str(tiny_model), "--out", str(out),
        "--single-stream", "5", "--no-sign", "--html", str(html), "--template", str(template),
    )  # fmt: skip
    assert result.returncode in (0, 1, 3, 4), result.stderr + result.stdout
    assert f"report: {out / 'report.pdf'} (unsigned)" in result.stdout
    assert f"html report: {html}" in result.stdout
    assert not (out / "dev-keys").exists()  # nothing signed, no keys made
    signatures = subprocess.run(
        ["pdfsig", str(out / "report.pdf")], capture_output=True, text=True, check=False
    )
    assert "does not contain any signatures" in signatures.stdout + signatures.stderr
    page1 = subprocess.run(
        ["pdftotext", "-l", "1", str(out / "report.pdf"), "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "custom template" in page1.lower()
    verdict = json.loads((out / "verdicts.json").read_text())["verdict"]
    assert verdict in html.read_text()
    again = tmp_path / "again.pdf"
    rendered = run_cli(
        "report", str(out), "--out", str(again), "--no-sign", "--template", str(template)
    )
    assert rendered.returncode == 0, rendered.stderr
    assert again.read_bytes() == (out / "report.pdf").read_bytes()
