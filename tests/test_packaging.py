"""The wheel carries the shipped rubrics, report templates and registry migrations, for a
non-editable install."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_rubrics_and_templates(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("auditkit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for rubric in (ROOT / "rubrics").glob("*.yaml"):
        assert f"auditkit/_shipped/rubrics/{rubric.name}" in names
    for template in (ROOT / "reports/templates").iterdir():
        assert f"auditkit/_shipped/templates/{template.name}" in names
    assert "auditkit/cli.py" in names
    # the registry's migrations run from the installed package (`registry init`)
    for script in (ROOT / "auditkit/registry/migrations").rglob("*"):
        if script.is_file() and "__pycache__" not in script.parts:
            assert script.relative_to(ROOT).as_posix() in names
    assert "auditkit/registry/migrations/script.py.mako" in names
    assert "auditkit/registry/migrations/versions/0001_initial.py" in names
