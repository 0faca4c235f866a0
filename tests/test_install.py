"""The install stays light: auditkit/ imports no package that only the dev extra installs, each
dependency is listed once, and the replay path (`auditkit replay`, its `--help`) loads no SciPy,
checked with ``python -X importtime`` (benchmarks/README.md has the figures)."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.conftest import write_dataset

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    """The PEP 503 normalised distribution name of a requirement string."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _imported_top_names() -> dict[str, set[str]]:
    """Top-level module name -> files of auditkit/ importing it (lazy imports included)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "auditkit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_auditkit_imports_no_dev_only_package() -> None:
    runtime = {_name(r) for r in PROJECT["dependencies"]}
    dev_only = {_name(r) for r in PROJECT["optional-dependencies"]["dev"]} - runtime
    assert {"scikit-learn", "statsmodels"} <= dev_only  # reference libraries, tests only
    # import name -> distributions, from the installed metadata (sklearn -> scikit-learn)
    dev_modules = {
        module
        for module, dists in packages_distributions().items()
        if any(_name(d) in dev_only for d in dists)
    }
    assert {"sklearn", "statsmodels"} <= dev_modules
    imported = _imported_top_names()
    assert "scipy" in imported  # the walk sees the package's imports
    offending = {m: sorted(imported[m]) for m in dev_modules & imported.keys()}
    assert offending == {}


def test_each_dependency_is_listed_once() -> None:
    runtime = [_name(r) for r in PROJECT["dependencies"]]
    assert len(runtime) == len(set(runtime))
    for extra, requirements in PROJECT["optional-dependencies"].items():
        names = [_name(r) for r in requirements]
        assert len(names) == len(set(names)), extra
        assert not set(names) & set(runtime), f"{extra} repeats a runtime dependency"


def _imported_modules(stderr: str) -> set[str]:
    """Module names in ``-X importtime`` output ("import time: self | cumulative | name")."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


def _importtime(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "auditkit", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_replay_help_imports_no_scipy() -> None:
    proc = _importtime("replay", "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--model" in proc.stdout
    modules = _imported_modules(proc.stderr)
    assert "auditkit.cli" in modules  # the output was parsed
    assert not {m for m in modules if m.split(".")[0] == "scipy"}


def test_replay_imports_no_scipy(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=24)
    out = tmp_path / "run"
    # both scenarios: the single-stream latency estimates are on the path too
    proc = _importtime(
        "replay", str(manifest), "--model", str(tiny_model), "--out", str(out), "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = json.loads((out / "run.json").read_text())
    assert run["replay"]["latency"]["n"] > 0
    modules = _imported_modules(proc.stderr)
    assert {"auditkit.audit", "auditkit.replay.pipeline", "auditkit.metrics.efficiency"} <= modules
    assert not {m for m in modules if m.split(".")[0] == "scipy"}


def test_metrics_package_names_load_their_own_module() -> None:
    import auditkit.metrics as metrics

    for name in metrics.__all__:
        module = importlib.import_module(f"auditkit.metrics.{metrics._MODULE_OF[name]}")
        assert getattr(metrics, name) is getattr(module, name)
    assert sorted(metrics._MODULE_OF) == sorted(metrics.__all__)
    with pytest.raises(AttributeError, match="no_such_metric"):
        metrics.no_such_metric  # noqa: B018
