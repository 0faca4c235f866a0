"""The template loader reads only files that resolve inside the template folder.

A template folder is someone else's files. A link in it to a local secret (here a file that
stands for the signing key) must be refused, exit 5, with nothing of the secret in any output:
``{% include %}``, ``{% import %}``, ``{% extends %}``, ``report.css`` and ``strings*.yaml``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from auditkit.errors import InputError
from auditkit.report import render
from auditkit.report.render import render_html

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"
SECRET = "BEGIN-PRIVATE-KEY-7f3a9c-do-not-print"
HEAD = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>t</title>'
    "<style>{{ stylesheet }}</style></head><body>"
)


@pytest.fixture()
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "signer.key"
    path.parent.mkdir()
    path.write_text(f"{SECRET}\n", encoding="utf-8")
    return path


def _folder(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "report.html.j2").write_text(HEAD + body + "</body></html>", encoding="utf-8")
    return folder


def _report(run: Path, folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditkit", "report", str(run), "--template", str(folder), *extra],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


CASES = [
    ("{% include 'part.html' %}", "part.html", False),
    ("{% import 'part.html' as p %}", "part.html", False),
    ("<p>x</p>", "report.css", False),
    ("<p>x</p>", "strings.yaml", False),
    ("{% include 'inc/part.html' %}", "inc", True),  # a linked sub-folder
]


@pytest.mark.parametrize(("body", "link", "folder_link"), CASES)
def test_a_link_out_of_the_template_folder_is_refused(
    tmp_path: Path, secret: Path, body: str, link: str, folder_link: bool
) -> None:
    folder = _folder(tmp_path, body)
    if folder_link:
        (secret.parent / "part.html").symlink_to(secret)
        (folder / link).symlink_to(secret.parent, target_is_directory=True)
    else:
        (folder / link).symlink_to(secret)
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    html = tmp_path / "report.html"
    result = _report(run, folder, "--html", str(html))
    assert result.returncode == 5, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "resolves outside the folder" in lines[0], result.stderr
    assert link in lines[0]
    assert SECRET not in result.stdout + result.stderr
    assert not (run / "report.pdf").exists() and not html.exists()


def test_a_link_inside_the_folder_is_allowed(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "<h1>{% include 'alias.html' %}</h1>")
    (folder / "part.html").write_text("Included {{ verdict.label }}", encoding="utf-8")
    (folder / "alias.html").symlink_to(folder / "part.html")
    page = render_html(FIXTURE, signatory="T", development_key=False, template_dir=folder)
    assert "<h1>Included CONDITIONAL</h1>" in page


def test_the_loader_checks_each_file_it_reads(tmp_path: Path, secret: Path) -> None:
    """The folder scan runs first; the loader checks again (a link made after the scan)."""
    folder = _folder(tmp_path, "{% include 'late.html' %}")
    env = render._environment(folder.resolve())
    (folder / "late.html").symlink_to(secret)
    with pytest.raises(InputError, match=r"late\.html resolves outside the folder"):
        env.get_template("late.html")
