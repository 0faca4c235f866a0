"""``auditkit registry ...``: the supervision registry (registered in :mod:`auditkit.cli`).

Everything that loads SQLAlchemy is imported inside the commands, so ``auditkit --help`` and the
other commands never pay for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from auditkit.errors import ExitCode

if TYPE_CHECKING:
    from auditkit.registry.location import Location

registry_app = typer.Typer(
    help="The supervision registry: init, submit signed reports, check, list, history.",
    no_args_is_help=True,
)

RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        envvar="AUDITKIT_REGISTRY",
        help="The registry: a SQLite file (default: registry.sqlite in the user's data folder, "
        "$XDG_DATA_HOME/auditkit) or a URL postgresql+psycopg://USER@HOST:PORT/DB.",
    ),
]
BlobsOpt = Annotated[
    Path | None,
    typer.Option(
        "--blobs",
        envvar="AUDITKIT_REGISTRY_BLOBS",
        help="Folder of the submitted PDFs (default for a SQLite file: FILE.blobs next to it; "
        "required for a database server).",
    ),
]


def _location(registry: str | None, blobs: Path | None) -> Location:
    from auditkit.registry.location import resolve

    return resolve(registry, blobs)


@registry_app.command("init")
def init_cmd(registry: RegistryOpt = None, blobs: BlobsOpt = None) -> None:
    """Create the registry, or bring it to this auditkit's schema (Alembic upgrade head)."""
    from auditkit.registry.db import upgrade

    where = _location(registry, blobs)
    before, after = upgrade(where)
    if before == after:
        typer.echo(f"registry {where.display}: already at schema {after}")
    elif before is None:
        typer.echo(f"registry {where.display}: created (schema {after}); PDFs in {where.blobs}")
    else:
        typer.echo(f"registry {where.display}: upgraded from schema {before} to {after}")


@registry_app.command("submit")
def submit_cmd(
    report: Annotated[Path, typer.Argument(help="The signed PDF report.")],
    deployment: Annotated[
        str,
        typer.Option(help="ORGANISATION/SITE/STATION/MODEL; MODEL is the model card's name."),
    ],
    trust: Annotated[
        list[Path] | None,
        typer.Option(
            help="CA certificate (PEM) the signatures must chain to; repeat for several. "
            "Default: the registry's trust roots for the organisation and registry-wide."
        ),
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            help="The organisation's kind when it is new: enterprise, test_laboratory or regulator."
        ),
    ] = "enterprise",
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
    server: Annotated[
        str | None,
        typer.Option(
            help="Submit to a registry server (URL) over its API instead; the API token is "
            "read from the environment variable AUDITKIT_TOKEN. The server checks the "
            "signatures against its own trust roots."
        ),
    ] = None,
) -> None:
    """Verify a signed report (every signature against --trust or the registry's trust roots,
    and verify --recompute) and register it. Refused: exit 1 (fails verification) or 5
    (duplicate, wrong model, no trust root, bad input); every acceptance and refusal is logged.
    With --server, the server does all of this (docs/registry.md, "Server and API")."""
    from auditkit.registry.ingest import Submission, submit

    if server is not None:
        from auditkit.registry.remote import submit_to_server

        done: Submission = submit_to_server(server, report, deployment, trust=trust)
    else:
        done = submit(
            _location(registry, blobs), report, deployment, trust=trust or None, kind=kind
        )
    what = "countersignature recorded for" if done.kind == "countersigned" else "accepted:"
    typer.echo(
        f"{what} report {done.report_id} ({done.verdict}) for {deployment}; "
        f"PDF sha256 {done.pdf_sha256}; event {done.event_seq}"
    )


@registry_app.command("check")
def check_cmd(
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
    head: Annotated[
        str | None,
        typer.Option(help="A head hash printed by an earlier check: it must still be in the log."),
    ] = None,
) -> None:
    """Walk the event log's hash chain and every recorded row and file. Exit 0 intact, 1 not
    (naming the first edited, deleted or added event or row)."""
    from auditkit.registry.check import check

    result = check(_location(registry, blobs), head=head)
    if not result.ok:
        more = len(result.problems) - 1
        typer.echo(
            "registry check FAILED: "
            + result.problems[0]
            + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""),
            err=True,
        )
        raise typer.Exit(ExitCode.VERIFICATION_FAILED)
    typer.echo(
        f"registry check: intact; {result.events} events, {result.rows} rows; "
        f"head {result.head or '(empty log)'}"
    )


@registry_app.command("list")
def list_cmd(
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every deployment with its latest audit's verdict and date."""
    from auditkit.registry.queries import as_json as to_json
    from auditkit.registry.queries import as_table, deployments

    rows = deployments(_location(registry, blobs))
    if as_json:
        typer.echo(json.dumps(to_json(rows), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        typer.echo(as_table(rows))


@registry_app.command("history")
def history_cmd(
    deployment: Annotated[str, typer.Argument(help="ORGANISATION/SITE/STATION/MODEL.")],
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every audit of one deployment, oldest first, each compared with the one before it
    (REGRESSION: ACCEPT to REJECT/HOLD, or a significant rise of escape or overkill rate)."""
    from auditkit.registry.queries import history, history_json, history_lines

    rows = history(_location(registry, blobs), deployment)
    if as_json:
        typer.echo(json.dumps(history_json(rows), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        typer.echo("\n".join(history_lines(rows)))
