"""Fixtures of the registry tests: a real PostgreSQL server, fresh registries on both
backends, and signed reports made once per session.

PostgreSQL: Debian's ``postgresql`` package (tools/system-deps.sh installs it). ``initdb`` and
``pg_ctl`` are taken from PATH, else from the newest ``/usr/lib/postgresql/*/bin`` (where
Debian puts them, off PATH). The server runs from a temporary folder, listens on 127.0.0.1 on a
free port (and a Unix socket in that folder only), uses ``trust`` authentication for its one
user ``auditkit``, and is stopped (``pg_ctl stop -m fast``, then the postmaster's pid killed if
that failed) and its folder removed at the end of the session: no process is left behind.

Running as root: ``initdb`` and ``postgres`` refuse to run as root, so the folder is given to an
unprivileged user and both run as that user through ``runuser -u USER --``: the ``postgres``
user when it exists (the Debian package creates it), else ``nobody``. A missing PostgreSQL
fails the tests; it never skips them.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from auditkit.registry.location import Location
from tests.conftest import copy_small_run
from tests.test_keys_sign_verify import tamper_one_byte


def pg_binary(name: str) -> str:
    """``initdb`` or ``pg_ctl``: on PATH, else in the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0,
    )
    if not candidates:
        pytest.fail(
            f"PostgreSQL's {name} not found (PATH, /usr/lib/postgresql/*/bin): install the "
            "postgresql package (tools/system-deps.sh, run by `make test`, does as root)"
        )
    return candidates[-1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unprivileged_user() -> str:
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return user
    pytest.fail("running as root and neither a postgres nor a nobody user exists")


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this session (see module doc)."""
    initdb, pg_ctl = pg_binary("initdb"), pg_binary("pg_ctl")
    folder = Path(tempfile.mkdtemp(prefix="auditkit-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = _unprivileged_user()
        info = pwd.getpwnam(user)
        os.chown(folder, info.pw_uid, info.pw_gid)
        prefix = ["runuser", "-u", user, "--"]
    data, log = folder / "data", folder / "server.log"
    initdb_args = ["-D", str(data), "-U", "auditkit", "--auth=trust", "-E", "UTF8", "--no-sync"]
    made = subprocess.run([*prefix, initdb, *initdb_args], capture_output=True, text=True)
    if made.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"initdb failed (exit {made.returncode}): {made.stderr.strip()[-2000:]}")
    port = 0
    started = False
    try:
        for _attempt in range(3):  # another process may take the free port first
            port = _free_port()
            proc = subprocess.run(
                [
                    *prefix,
                    pg_ctl,
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    f"-p {port} -h 127.0.0.1 -k {folder} -F",
                    "start",
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode == 0:
                started = True
                break
        if not started:
            pytest.fail(f"PostgreSQL did not start: {log.read_text()[-2000:]}")
        yield PostgresServer("127.0.0.1", port, "auditkit")
    finally:
        if started:
            stop = subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
            )
            pidfile = data / "postmaster.pid"
            if stop.returncode != 0 and pidfile.exists():
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
                    time.sleep(0.5)
        shutil.rmtree(folder, ignore_errors=True)


_DATABASES = iter(range(1, 10_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """A fresh, initialised registry: a SQLite file, or a new database on the session's
    PostgreSQL server (blob folder under tmp_path)."""
    from auditkit.registry.db import upgrade
    from auditkit.registry.location import resolve

    if request.param == "sqlite":
        where = resolve(str(tmp_path / "registry.sqlite"))
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"registry_{next(_DATABASES)}")
        where = resolve(url, tmp_path / "blobs")
    upgrade(where)
    return where


@dataclass(frozen=True)
class Reports:
    """Signed reports and their keys, made once per session.

    ``signed``: the small fixture run signed by the laboratory; ``countersigned``: that file
    with the regulator's countersignature; ``tampered``: ``signed`` with one signed byte changed;
    ``later``: a second audit of the same model (another run, energy figures, a later date);
    ``forged``: a run whose verdicts.json had its slices' figures halved after evaluation,
    rendered and signed by the laboratory's key past ``auditkit report``'s refusal (so only
    ``--recompute`` can tell); ``run``/``later_run``: the run folders of ``signed`` and
    ``later`` (the evidence the tests read independently)."""

    lab_ca: Path
    regulator_ca: Path
    stranger_ca: Path
    signed: Path
    countersigned: Path
    tampered: Path
    later: Path
    forged: Path
    run: Path
    later_run: Path

    @property
    def model(self) -> str:
        return json.loads((self.run / "run.json").read_text())["model"]["card"]["name"]


@pytest.fixture(scope="session")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Reports:
    from auditkit.audit import run_report
    from auditkit.report.keys import create_keys
    from auditkit.report.render import render_report
    from auditkit.report.sign import countersign_pdf, sign_pdf

    base = tmp_path_factory.mktemp("registry-reports")
    lab = create_keys(base / "lab", common_name="registry test laboratory")
    regulator = create_keys(base / "regulator", common_name="registry regulator")
    stranger = create_keys(base / "stranger", common_name="registry stranger")
    run = copy_small_run(base / "run")
    signed = base / "signed.pdf"
    run_report(run, out=signed, sign_key=lab.key, sign_cert=lab.cert, lang="en")
    countersigned = base / "countersigned.pdf"
    countersigned.write_bytes(
        countersign_pdf(
            signed.read_bytes(),
            key_path=regulator.key,
            cert_path=regulator.cert,
            reason="received by the regulator",
        )
    )
    tampered = base / "tampered.pdf"
    tampered.write_bytes(tamper_one_byte(signed.read_bytes()))

    later_run = copy_small_run(base / "later-run")
    for name in ("run.json", "metrics.json", "verdicts.json"):
        document = json.loads((later_run / name).read_text())
        document["run_id"] += "-later"
        if name == "run.json":
            document["started_at"] = "2027-01-10T08:00:00Z"
            document["finished_at"] = "2027-01-10T08:05:00Z"
            document["energy"] = {
                "method": "model",
                "label": "modelled",
                "measured": False,
                "boundary": "device",
                "joules": 12.5,
                "j_per_image": 1.5556,
                "wh_per_1000_inspections": 0.4321,
            }
        (later_run / name).write_text(json.dumps(document))
    later = base / "later.pdf"
    run_report(later_run, out=later, sign_key=lab.key, sign_cert=lab.cert, lang="en")
    forged_run = copy_small_run(base / "forged-run")
    verdicts = json.loads((forged_run / "verdicts.json").read_text())
    for crit in verdicts["criteria"]:
        for row in crit.get("slices") or []:
            for key in ("value", "low", "high"):
                if isinstance(row.get(key), float):
                    row[key] /= 2
    (forged_run / "verdicts.json").write_text(json.dumps(verdicts, indent=2, sort_keys=True))
    forged = base / "forged.pdf"
    forged.write_bytes(
        sign_pdf(
            render_report(
                forged_run, signatory="registry test laboratory", development_key=False, lang="en"
            ),
            key_path=lab.key,
            cert_path=lab.cert,
            reason="forged",
        )
    )
    return Reports(
        lab_ca=lab.ca,
        regulator_ca=regulator.ca,
        stranger_ca=stranger.ca,
        signed=signed,
        countersigned=countersigned,
        tampered=tampered,
        later=later,
        forged=forged,
        run=run,
        later_run=later_run,
    )


def deployment_of(reports: Reports) -> str:
    """The deployment the tests submit the fixture reports for."""
    return f"Acme Castings/Plant Linz/Line 3/{reports.model}"


def rows(location: Location, sql: str) -> list[dict[str, Any]]:
    """The rows of ``sql`` read straight from the database (no registry code)."""
    engine = create_engine(location.url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- rows by hand


@dataclass(frozen=True)
class Figure:
    """One overall criteria row of a hand-made audit."""

    metric: str
    value: float | None
    low: float | None = None
    high: float | None = None
    k: int | None = None
    n: int | None = None
    outcome: str = "PASS"
    threshold: float | None = None


_HAND = iter(range(1, 10**9))


def add_deployment(s: Any, organisation: str, site: str, station: str, model: str) -> int:
    """Insert (or find) the organisation, site and station and a new deployment; its id.
    Rows written straight to the tables, for volume and edge cases (the event log does not
    vouch for them: ``registry check`` is not the point of such tests)."""
    from sqlalchemy import select

    from auditkit.registry.models import Deployment, Organisation, Site, Station

    org = s.scalars(select(Organisation).filter_by(name=organisation)).first()
    if org is None:
        org = Organisation(name=organisation, kind="enterprise")
        s.add(org)
        s.flush()
    where = s.scalars(select(Site).filter_by(organisation_id=org.id, name=site)).first()
    if where is None:
        where = Site(organisation_id=org.id, name=site)
        s.add(where)
        s.flush()
    line = s.scalars(select(Station).filter_by(site_id=where.id, name=station)).first()
    if line is None:
        line = Station(site_id=where.id, name=station)
        s.add(line)
        s.flush()
    dep = Deployment(organisation_id=org.id, site_id=where.id, station_id=line.id, model_name=model)
    s.add(dep)
    s.flush()
    return int(dep.id)


def add_audit(
    s: Any,
    deployment_id: int,
    *,
    signed_at: str | None,
    verdict: str = "ACCEPT",
    rubric_id: str | None = "rubric-a",
    task: str | None = None,
    version: str = "1.0",
    figures: tuple[Figure, ...] = (),
    finished_at: str | None = None,
) -> int:
    """Insert an audit of the deployment (model version ``version``) with these overall
    criteria rows; its id."""
    from sqlalchemy import select

    from auditkit.registry.models import Audit, Criterion, ModelVersion

    number = next(_HAND)
    sha = hashlib.sha256(version.encode()).hexdigest()
    mv = s.scalars(
        select(ModelVersion).filter_by(deployment_id=deployment_id, model_sha256=sha)
    ).first()
    if mv is None:
        mv = ModelVersion(deployment_id=deployment_id, model_sha256=sha, version=version)
        s.add(mv)
        s.flush()
    audit = Audit(
        deployment_id=deployment_id,
        model_version_id=mv.id,
        report_id=f"AR-HAND-{number}",
        run_id=f"run-{number}",
        started_at=None,
        finished_at=finished_at,
        signed_at=signed_at,
        rubric_id=rubric_id,
        rubric_version="1" if rubric_id else None,
        verdict=verdict,
        pdf_sha256=f"{number:064x}",
        evidence={"verdicts.json": f"{number:064x}"},
        submitted_at="2026-12-01T00:00:00Z",
        task=task,
    )
    s.add(audit)
    s.flush()
    for position, fig in enumerate(figures):
        s.add(
            Criterion(
                audit_id=audit.id,
                position=position,
                criterion_id=f"{fig.metric}-overall",
                parent=None,
                severity="blocking",
                metric=fig.metric,
                statistic="upper_bound",
                op="<=",
                threshold=fig.threshold,
                outcome=fig.outcome,
                value=fig.value,
                bound=fig.high,
                low=fig.low,
                high=fig.high,
                k=fig.k,
                n=fig.n,
                slice={},
            )
        )
    s.flush()
    return int(audit.id)
