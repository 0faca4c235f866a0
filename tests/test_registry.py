"""The supervision registry against SQLite and a real PostgreSQL server, the same tests on both
(``registry`` fixture, tests/registry_fixtures.py): submission that verifies everything,
refusals that are logged, the event-log check, the deployment list, and the migration.

The expected figures are read here from the run folder's JSON files with ``json`` and from the
PDF with ``hashlib``, not through the registry's own extraction."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from auditkit.registry.location import Location
from tests.registry_fixtures import (  # noqa: F401  (fixtures; F811: pyproject)
    Reports,
    deployment_of,
    postgres_server,
    registry,
    reports,
    rows,
)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``auditkit ARGS`` in this process through its real entry point (the one that maps
    errors to exit codes); returns (exit code, stdout, stderr)."""
    from auditkit.cli import main

    capsys.readouterr()
    saved = sys.argv
    sys.argv = ["auditkit", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = saved
    out, err = capsys.readouterr()
    return code, out, err


def where(location: Location) -> list[str]:
    return [
        "--registry",
        location.url if "postgresql" in location.url else location.display,
        "--blobs",
        str(location.blobs),
    ]


def submit(
    capsys: pytest.CaptureFixture[str],
    location: Location,
    pdf: Path,
    deployment: str,
    *trust: Path,
) -> tuple[int, str, str]:
    args = ["registry", "submit", str(pdf), "--deployment", deployment]
    for ca in trust:
        args += ["--trust", str(ca)]
    return cli(capsys, *args, *where(location))


def execute(location: Location, sql: str) -> None:
    engine = create_engine(location.url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def payload(row: dict[str, Any]) -> dict[str, Any]:
    value = row["payload"]
    return json.loads(value) if isinstance(value, str) else value


def expected_criteria(verdicts: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(criterion, parent, outcome, value, bound, low, high, k, n, slice) of every criterion
    and then its slices, in file order."""
    out = []
    for c in verdicts["criteria"]:
        for row, parent in [(c, None)] + [(s, c["id"]) for s in c.get("slices") or []]:
            out.append(
                (
                    c["id"],
                    parent,
                    row["outcome"],
                    row.get("value"),
                    row.get("bound"),
                    row.get("low"),
                    row.get("high"),
                    row.get("k"),
                    row.get("n"),
                    row.get("slice") or {},
                )
            )
    return out


# --------------------------------------------------------------------------- submit


def test_accepted_submission_records_the_signed_evidence(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    code, out, err = submit(
        capsys, registry, reports.signed, deployment_of(reports), reports.lab_ca
    )
    assert code == 0, err
    pdf = reports.signed.read_bytes()
    sha = hashlib.sha256(pdf).hexdigest()
    assert f"PDF sha256 {sha}" in out
    verdicts = json.loads((reports.run / "verdicts.json").read_text())
    run = json.loads((reports.run / "run.json").read_text())

    [audit] = rows(registry, "SELECT * FROM audit")
    assert audit["verdict"] == verdicts["verdict"]
    assert audit["run_id"] == run["run_id"]
    assert (audit["started_at"], audit["finished_at"]) == (run["started_at"], run["finished_at"])
    assert (audit["rubric_id"], audit["rubric_version"], audit["rubric_sha256"]) == (
        verdicts["rubric"]["id"],
        verdicts["rubric"]["version"],
        verdicts["rubric"]["sha256"],
    )
    assert audit["pdf_sha256"] == sha
    assert audit["energy_wh_per_1000"] is None  # the fixture run measured no energy
    # the report ID is the one page 1 prints
    import subprocess

    page1 = subprocess.run(
        ["pdftotext", "-l", "1", str(reports.signed), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert audit["report_id"] in page1

    stored = rows(registry, "SELECT * FROM criterion ORDER BY position")
    got = [
        (
            r["criterion_id"],
            r["parent"],
            r["outcome"],
            r["value"],
            r["bound"],
            r["low"],
            r["high"],
            r["k"],
            r["n"],
            json.loads(r["slice"]) if isinstance(r["slice"], str) else r["slice"],
        )
        for r in stored
    ]
    assert got == expected_criteria(verdicts)
    assert len(got) > len(verdicts["criteria"])  # slices are rows too

    [model] = rows(registry, "SELECT * FROM model_version")
    assert model["model_sha256"] == run["model"]["sha256"]
    [signature] = rows(registry, "SELECT * FROM signature")
    assert (signature["role"], signature["signer"]) == ("author", "registry test laboratory")
    [org] = rows(registry, "SELECT * FROM organisation")
    assert (org["name"], org["kind"]) == ("Acme Castings", "enterprise")

    blob = registry.blobs / sha[:2] / f"{sha}.pdf"
    assert blob.read_bytes() == pdf
    [event] = rows(registry, "SELECT * FROM event")
    assert (event["seq"], event["kind"], payload(event)["pdf_sha256"]) == (1, "accepted", sha)


def test_energy_and_dates_of_a_later_audit(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    assert submit(capsys, registry, reports.later, deployment_of(reports), reports.lab_ca)[0] == 0
    run = json.loads((reports.later_run / "run.json").read_text())
    [audit] = rows(registry, "SELECT * FROM audit")
    assert audit["energy_wh_per_1000"] == run["energy"]["wh_per_1000_inspections"]
    assert audit["energy_method"] == "model"
    assert audit["started_at"] == "2027-01-10T08:00:00Z"


def assert_refused_and_logged(
    registry: Location, code: int, err: str, expected_code: int, words: str, sha: str
) -> None:
    assert code == expected_code
    line = err.strip()
    assert "\n" not in line and line.startswith("error: ") and words in line, err
    assert "Traceback" not in err
    [event] = [
        e for e in rows(registry, "SELECT * FROM event ORDER BY seq") if e["kind"] == "refused"
    ][-1:]
    detail = payload(event)
    assert detail["pdf_sha256"] == sha and words in detail["reason"]
    assert detail["exit_code"] == expected_code


def test_tampered_report_is_refused_and_logged(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    code, _, err = submit(
        capsys, registry, reports.tampered, deployment_of(reports), reports.lab_ca
    )
    sha = hashlib.sha256(reports.tampered.read_bytes()).hexdigest()
    assert_refused_and_logged(registry, code, err, 1, "failed verification", sha)
    assert "changed after signing" in err
    assert rows(registry, "SELECT * FROM audit") == []
    assert not list(registry.blobs.rglob("*.pdf"))


def test_untrusted_signer_is_refused_and_logged(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    code, _, err = submit(
        capsys, registry, reports.signed, deployment_of(reports), reports.stranger_ca
    )
    sha = hashlib.sha256(reports.signed.read_bytes()).hexdigest()
    assert_refused_and_logged(registry, code, err, 1, "does not chain to a trusted", sha)
    assert rows(registry, "SELECT * FROM audit") == []


def test_recompute_mismatch_is_refused_and_logged(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    code, _, err = submit(capsys, registry, reports.forged, deployment_of(reports), reports.lab_ca)
    sha = hashlib.sha256(reports.forged.read_bytes()).hexdigest()
    assert_refused_and_logged(registry, code, err, 1, "failed verification: recompute:", sha)
    assert rows(registry, "SELECT * FROM audit") == []


def test_duplicate_is_refused_and_logged(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    dep = deployment_of(reports)
    assert submit(capsys, registry, reports.signed, dep, reports.lab_ca)[0] == 0
    code, _, err = submit(capsys, registry, reports.signed, dep, reports.lab_ca)
    sha = hashlib.sha256(reports.signed.read_bytes()).hexdigest()
    assert_refused_and_logged(registry, code, err, 5, "duplicate", sha)
    assert len(rows(registry, "SELECT * FROM audit")) == 1
    assert [e["kind"] for e in rows(registry, "SELECT * FROM event ORDER BY seq")] == [
        "accepted",
        "refused",
    ]


def test_wrong_model_name_is_refused(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    code, _, err = submit(
        capsys, registry, reports.signed, "Acme/Linz/Line 3/some-other-model", reports.lab_ca
    )
    sha = hashlib.sha256(reports.signed.read_bytes()).hexdigest()
    assert_refused_and_logged(registry, code, err, 5, "not 'some-other-model'", sha)


def test_countersigned_report_is_recorded_as_a_countersignature(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    dep = deployment_of(reports)
    trust = (reports.lab_ca, reports.regulator_ca)
    assert submit(capsys, registry, reports.signed, dep, *trust)[0] == 0
    code, out, err = submit(capsys, registry, reports.countersigned, dep, *trust)
    assert code == 0, err
    assert out.startswith("countersignature recorded for report ")
    assert len(rows(registry, "SELECT * FROM audit")) == 1
    signatures = rows(registry, "SELECT * FROM signature ORDER BY position")
    assert [(s["role"], s["signer"]) for s in signatures] == [
        ("author", "registry test laboratory"),
        ("countersignature", "registry regulator"),
    ]
    countersigned_sha = hashlib.sha256(reports.countersigned.read_bytes()).hexdigest()
    assert signatures[1]["pdf_sha256"] == countersigned_sha
    assert (registry.blobs / countersigned_sha[:2] / f"{countersigned_sha}.pdf").read_bytes() == (
        reports.countersigned.read_bytes()
    )
    assert [e["kind"] for e in rows(registry, "SELECT * FROM event ORDER BY seq")] == [
        "accepted",
        "countersigned",
    ]
    # the original again adds nothing: a duplicate
    code, _, err = submit(capsys, registry, reports.signed, dep, *trust)
    assert code == 5 and "duplicate" in err


def test_countersigned_copy_for_another_deployment_is_refused(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    dep = deployment_of(reports)
    trust = (reports.lab_ca, reports.regulator_ca)
    assert submit(capsys, registry, reports.signed, dep, *trust)[0] == 0
    elsewhere = dep.replace("Line 3", "Line 4")
    code, _, err = submit(capsys, registry, reports.countersigned, elsewhere, *trust)
    sha = hashlib.sha256(reports.countersigned.read_bytes()).hexdigest()
    assert_refused_and_logged(registry, code, err, 5, f"registered for deployment {dep};", sha)
    assert len(rows(registry, "SELECT * FROM signature")) == 1


def test_countersignature_needs_the_regulators_trust_root(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    code, _, err = submit(
        capsys, registry, reports.countersigned, deployment_of(reports), reports.lab_ca
    )
    assert code == 1 and "countersignature" in err and "registry regulator" in err


def test_concurrent_submissions_keep_one_chain(registry: Location, reports: Reports) -> None:
    """Three submissions at once (the same report twice, another once): two accepted, the
    second copy refused as a duplicate, the one superseded by the other, the events numbered
    1..4 in one intact chain."""
    from concurrent.futures import ThreadPoolExecutor

    from auditkit.errors import AuditkitError
    from auditkit.registry.check import check as check_registry
    from auditkit.registry.ingest import submit as submit_report

    def one(pdf: Path) -> str:
        try:
            return submit_report(registry, pdf, deployment_of(reports), trust=[reports.lab_ca]).kind
        except AuditkitError as exc:
            return f"refused {exc.exit_code}: {exc}"

    with ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(one, [reports.signed, reports.signed, reports.later]))
    assert sorted(o.split(":")[0] for o in outcomes) == ["accepted", "accepted", "refused 5"]
    assert "duplicate" in next(o for o in outcomes if o.startswith("refused"))
    events = rows(registry, "SELECT seq, kind FROM event ORDER BY seq")
    # the later audit of the same model version and rubric supersedes the other: one more event
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert sorted(e["kind"] for e in events) == ["accepted", "accepted", "refused", "superseded"]
    assert check_registry(registry).ok


# --------------------------------------------------------------------------- check


def check(capsys: pytest.CaptureFixture[str], registry: Location) -> tuple[int, str]:
    code, out, err = cli(capsys, "registry", "check", *where(registry))
    return code, (out + err).strip()


def test_check_detects_edited_and_deleted_rows_and_events(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    dep = deployment_of(reports)
    trust = (reports.lab_ca, reports.regulator_ca)
    assert submit(capsys, registry, reports.signed, dep, *trust)[0] == 0
    assert submit(capsys, registry, reports.tampered, dep, *trust)[0] == 1  # a refusal event
    assert submit(capsys, registry, reports.countersigned, dep, *trust)[0] == 0
    code, out = check(capsys, registry)
    assert code == 0 and out.startswith("registry check: intact; 3 events"), out
    [audit] = rows(registry, "SELECT id, verdict FROM audit")

    # an edited verdict
    other = "ACCEPT" if audit["verdict"] != "ACCEPT" else "REJECT"
    execute(registry, f"UPDATE audit SET verdict = '{other}'")
    code, out = check(capsys, registry)
    assert code == 1
    assert f"audit row {audit['id']} (recorded by event 1, accepted)" in out and "edited" in out
    execute(registry, f"UPDATE audit SET verdict = '{audit['verdict']}'")
    assert check(capsys, registry)[0] == 0

    # an edited criterion figure: the audit's digest covers its criteria
    [crit] = rows(registry, "SELECT id, bound FROM criterion WHERE position = 0")
    execute(registry, f"UPDATE criterion SET bound = 0.001 WHERE id = {crit['id']}")
    code, out = check(capsys, registry)
    assert code == 1 and f"audit row {audit['id']}" in out
    execute(registry, f"UPDATE criterion SET bound = {crit['bound']!r} WHERE id = {crit['id']}")
    assert check(capsys, registry)[0] == 0

    # a deleted countersignature row
    [sig] = rows(registry, "SELECT * FROM signature WHERE position = 1")
    execute(registry, f"DELETE FROM signature WHERE id = {sig['id']}")
    code, out = check(capsys, registry)
    assert code == 1
    assert f"signature row {sig['id']} (recorded by event 3, countersigned) was deleted" in out

    # a deleted event (the refusal in the middle of the log)
    execute(registry, "DELETE FROM event WHERE seq = 2")
    code, out = check(capsys, registry)
    assert code == 1 and out.startswith("registry check FAILED: event 2 is missing"), out


def test_check_detects_an_edited_event_and_a_row_added_by_hand(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    assert (
        submit(capsys, registry, reports.tampered, deployment_of(reports), reports.lab_ca)[0] == 1
    )
    assert submit(capsys, registry, reports.signed, deployment_of(reports), reports.lab_ca)[0] == 0
    code, out = check(capsys, registry)
    head = out.rsplit("head ", 1)[1]
    assert code == 0 and len(head) == 64
    execute(registry, "UPDATE event SET subject = 'renamed.pdf' WHERE seq = 1")
    code, out = check(capsys, registry)
    assert code == 1 and "event 1 (refused) was edited after it was recorded" in out
    execute(registry, "UPDATE event SET subject = 'tampered.pdf' WHERE seq = 1")
    assert check(capsys, registry)[0] == 0
    execute(registry, "INSERT INTO organisation (id, name, kind) VALUES (99, 'Ghost', 'regulator')")
    code, out = check(capsys, registry)
    assert code == 1 and "organisation row 99 was not recorded by any event" in out
    execute(registry, "DELETE FROM organisation WHERE id = 99")
    # the newest event removed: consistent in itself, caught against the head kept
    [accepted] = rows(registry, "SELECT * FROM event WHERE seq = 2")
    vouched = len(payload(accepted)["rows"])
    execute(registry, "DELETE FROM event WHERE seq = 2")
    code, out, err = cli(capsys, "registry", "check", *where(registry), "--head", head)
    assert code == 1 and err.startswith(f"registry check FAILED: the head {head[:16]}")
    # and each row the deleted event vouched for is now unrecorded
    assert f"(and {vouched} more problems)" in err
    assert vouched == len(
        [
            "organisation",
            "site",
            "station",
            "deployment",
            "model_version",
            "audit",
            "report_file",
            "signature",
        ]
    )


# --------------------------------------------------------------------------- list


def test_list_shows_each_deployment_with_its_latest_audit(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    dep = deployment_of(reports)
    assert submit(capsys, registry, reports.signed, dep, reports.lab_ca)[0] == 0
    assert submit(capsys, registry, reports.later, dep, reports.lab_ca)[0] == 0
    code, out, _ = cli(capsys, "registry", "list", *where(registry), "--json")
    assert code == 0
    listed = json.loads(out)
    later = json.loads((reports.later_run / "verdicts.json").read_text())
    [row] = listed["deployments"]
    assert (row["organisation"], row["site"], row["station"], row["model"]) == tuple(dep.split("/"))
    assert row["audits"] == 2
    assert row["verdict"] == later["verdict"]
    assert row["report_id"].startswith("AR-") and "later" in row["report_id"]
    assert row["rubric"] == f"{later['rubric']['id']} {later['rubric']['version']}"
    code, out, _ = cli(capsys, "registry", "list", *where(registry))
    header, line = out.strip().splitlines()
    assert header.split() == [
        "organisation",
        "site",
        "station",
        "model",
        "audits",
        "verdict",
        "audited",
        "report",
    ]
    assert "Acme Castings  Plant Linz  Line 3" in line and row["report_id"] in line


def test_history_compares_each_audit_with_the_one_before(
    capsys: pytest.CaptureFixture[str], registry: Location, reports: Reports
) -> None:
    from statsmodels.stats.proportion import confint_proportions_2indep

    dep = deployment_of(reports)
    trust = (reports.lab_ca, reports.regulator_ca)
    assert submit(capsys, registry, reports.countersigned, dep, *trust)[0] == 0
    assert submit(capsys, registry, reports.later, dep, *trust)[0] == 0
    code, out, err = cli(capsys, "registry", "history", dep, *where(registry), "--json")
    assert code == 0, err
    first, second = json.loads(out)["audits"]
    assert "later" in second["report_id"] and "later" not in first["report_id"]
    assert first["regression"] is None and first["countersignatures"] == 1
    # the later run has the same figures: no significant change
    verdicts = json.loads((reports.later_run / "verdicts.json").read_text())
    [escape] = [
        c for c in verdicts["criteria"] if c["metric"] == "escape_rate" and not c.get("slice_by")
    ]
    k, n = escape["k"], escape["n"]
    low, high = confint_proportions_2indep(k, n, k, n, method="newcomb", compare="diff")
    [change] = [c for c in second["regression"]["changes"] if c["metric"] == "escape_rate"]
    assert (change["low"], change["high"]) == pytest.approx((low, high), abs=1e-12)
    assert change["previous"] == change["current"] == [k, n]
    assert second["regression"]["flagged"] is False
    code, out, _ = cli(capsys, "registry", "history", dep, *where(registry))
    assert code == 0 and out.count("no significant change") == 1
    code, _, err = cli(capsys, "registry", "history", "No/Such/Line/model", *where(registry))
    assert code == 5 and err.startswith("error: no deployment No/Such/Line/model in registry")


# --------------------------------------------------------------------------- schema


def test_init_creates_the_schema_of_the_models(
    capsys: pytest.CaptureFixture[str], registry: Location
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from auditkit.registry.models import Base

    engine = create_engine(registry.url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn)
            assert context.get_current_revision() == "0002"
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
    code, out, _ = cli(capsys, "registry", "init", *where(registry))
    assert code == 0 and "already at schema 0002" in out
