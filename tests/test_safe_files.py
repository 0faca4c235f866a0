"""Safe files: every write goes to a temporary file, is fsynced and renamed; no write follows a
link; the run folder's lock covers every stage; a full disk leaves the previous report intact.

Disk full is tested twice: with ENOSPC injected into ``os.write`` / ``os.fsync`` (always), and
for real on a small tmpfs (only where this process may mount one, i.e. as root on Linux).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditkit.audit import STALE_REPORT, run_report, write_metrics_only
from auditkit.errors import InputError, OutputError, RunDirError
from auditkit.report.verify import verify_pdf
from auditkit.run import RunDir, write_atomic
from tests.conftest import copy_small_run

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditkit", *args],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    return copy_small_run(folder)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --------------------------------------------------------------------------- the writer


def test_write_atomic_writes_with_the_umask_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    old = os.umask(0o027)
    try:
        write_atomic(target, b"one")
        write_atomic(target, b"two")
        write_atomic(tmp_path / "k.key", b"secret", private=True)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # 0o666 & ~0o027
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600
    assert _leftovers(tmp_path) == []


def test_write_atomic_refuses_a_link_and_leaves_its_target(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("keep me")
    (tmp_path / "report.pdf").symlink_to(secret)
    with pytest.raises(InputError, match="symbolic link"):
        write_atomic(tmp_path / "report.pdf", b"%PDF-1.7 overwritten")
    assert secret.read_text() == "keep me"


@pytest.mark.parametrize("call", ["write", "fsync"])
def test_injected_disk_full_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    target = tmp_path / "metrics.json"
    write_atomic(target, b"old contents")

    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(f"auditkit.run.os.{call}", full)
    with pytest.raises(OutputError, match="no space left on the device"):
        write_atomic(target, b"new contents that do not fit")
    assert target.read_bytes() == b"old contents"
    assert _leftovers(tmp_path) == []
    assert OutputError.exit_code == 74


# --------------------------------------------------------------------------- reports


def test_disk_full_while_re_rendering_keeps_the_signed_report(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_report(run)
    before = first.pdf.read_bytes()
    real_write = os.write

    def full_for_pdfs(fd: int, data: object) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)  # type: ignore[arg-type]

    monkeypatch.setattr("auditkit.run.os.write", full_for_pdfs)
    with pytest.raises(OutputError, match=r"report\.pdf: no space left"):
        run_report(run)
    assert first.pdf.read_bytes() == before
    assert verify_pdf(first.pdf, trust=[run / "dev-keys" / "ca.pem"]).ok
    assert _leftovers(run) == []


def test_symlinked_report_in_the_run_folder_is_refused(run: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "precious.txt"
    elsewhere.write_text("not a report")
    (run / "report.pdf").symlink_to(elsewhere)
    line = one_line(run_cli("report", str(run)), 5)
    assert "report.pdf is a symbolic link" in line
    assert elsewhere.read_text() == "not a report"
    assert not (run / "dev-keys").exists()  # refused before anything was made


def test_symlinked_html_output_is_refused(run: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "index.html"
    elsewhere.write_text("mine")
    link = tmp_path / "out.html"
    link.symlink_to(elsewhere)
    line = one_line(run_cli("report", str(run), "--no-sign", "--html", str(link)), 5)
    assert "out.html is a symbolic link" in line
    assert elsewhere.read_text() == "mine" and not (run / "report.pdf").exists()


# --------------------------------------------------------------------------- the lock


@pytest.fixture()
def held(run: Path) -> Iterator[Path]:
    """The run folder locked by someone else (another open file description: flock sees it
    as a second holder, as it would another process)."""
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        yield run
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def test_report_and_evaluate_are_refused_while_the_folder_is_in_use(held: Path) -> None:
    before = {p.name: p.read_bytes() for p in held.iterdir() if p.is_file()}
    for args in (
        ["report", str(held)],
        ["evaluate", str(held)],
        ["evaluate", str(held), "-r", "industrial-aoi-acceptance"],
    ):
        line = one_line(run_cli(*args), 5)
        assert "is in use by another auditkit command" in line, args
    after = {p.name: p.read_bytes() for p in held.iterdir() if p.is_file()}
    assert after == before  # nothing written, nothing removed


def test_library_stages_take_the_lock_too(held: Path) -> None:
    with pytest.raises(RunDirError, match="in use"):
        run_report(held)
    with pytest.raises(RunDirError, match="in use"):
        write_metrics_only(held)


def test_the_lock_is_re_entrant_in_one_process(run: Path) -> None:
    with RunDir(run).writing(), RunDir(run).writing():
        pass
    with RunDir(run).writing():  # released: taken again
        pass


def test_a_linked_lock_file_is_refused(run: Path, tmp_path: Path) -> None:
    (run / ".lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="symbolic link"), RunDir(run).writing():
        pass
    assert not (tmp_path / "elsewhere").exists()


# --------------------------------------------------------------------------- stale report


def test_evaluate_without_rubric_sets_the_stale_report_aside(
    tmp_path: Path, tiny_model: Path
) -> None:
    from tests.conftest import write_dataset

    manifest = write_dataset(tmp_path / "data", n=9)
    out = tmp_path / "run"
    for args in (
        [
            "replay",
            str(manifest),
            "--model",
            str(tiny_model),
            "--out",
            str(out),
            "--single-stream",
            "2",
            "--no-progress",
        ],
        ["evaluate", str(out), "-r", "industrial-aoi-acceptance"],
        ["report", str(out)],
    ):
        done = run_cli(*args)
        assert done.returncode in (0, 1, 3, 4), done.stderr
    signed = (out / "report.pdf").read_bytes()
    result = run_cli("evaluate", str(out))
    assert result.returncode == 0, result.stderr
    assert not (out / "verdicts.json").exists() and not (out / "report.pdf").exists()
    assert (out / STALE_REPORT).read_bytes() == signed  # moved, byte for byte
    assert (
        f"moved the signed report, which no longer matches the verdicts, to {out / STALE_REPORT}"
        in result.stdout
    )


# --------------------------------------------------------------------------- a real full disk


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    # CI runs as root on Linux, where mounting works: there a refusal is a failure; a
    # developer's machine without root skips (the injected-ENOSPC tests above still run)
    give_up = pytest.fail if os.environ.get("CI") == "true" else pytest.skip
    if sys.platform != "linux" or os.geteuid() != 0:
        give_up("mounting a tmpfs needs root on Linux")
    where = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        give_up(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_real_disk_full_during_report_keeps_the_previous_report(small_disk: Path) -> None:
    run = small_disk / "run"
    copy_small_run(run)
    first = run_cli("report", str(run))
    assert first.returncode == 0, first.stderr
    before = (run / "report.pdf").read_bytes()
    free = os.statvfs(small_disk)
    left = free.f_bavail * free.f_frsize
    # leave less room than one report: the new one cannot be written beside the old one
    with open(small_disk / "filler", "wb") as filler:
        filler.write(b"\0" * max(0, left - len(before) // 4))
    line = one_line(run_cli("report", str(run)), 74)
    assert "report.pdf: no space left on the device; the previous file is unchanged" in line
    assert (run / "report.pdf").read_bytes() == before
    assert _leftovers(run) == []
    (small_disk / "filler").unlink()
    verified = run_cli("verify", str(run / "report.pdf"), "--trust", str(run / "dev-keys/ca.pem"))
    assert verified.returncode == 0, verified.stdout


def test_audit_into_a_folder_in_use_is_refused_before_replaying(
    held: Path, tiny_model: Path, tmp_path: Path
) -> None:
    from tests.conftest import write_dataset

    manifest = write_dataset(tmp_path / "data", n=6)
    before = sorted(p.name for p in held.iterdir())
    line = one_line(
        run_cli("audit", str(manifest), "--model", str(tiny_model), "--out", str(held)), 5
    )
    assert "is in use by another auditkit command" in line
    assert sorted(p.name for p in held.iterdir()) == before
