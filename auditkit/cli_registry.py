"""``auditkit registry ...``: the supervision registry (registered in :mod:`auditkit.cli`).

Everything that loads SQLAlchemy is imported inside the commands, so ``auditkit --help`` and the
other commands never pay for it."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from auditkit.errors import ExitCode, InputError, OutputError, first_line

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from auditkit.registry.location import Location

T = TypeVar("T")

registry_app = typer.Typer(
    help="The supervision registry: init, submit signed reports, check, list, history; "
    "accounts, API tokens, laboratory authorisations, trust roots, re-audit policies.",
    no_args_is_help=True,
)
account_app = typer.Typer(help="Registry accounts: add, list, disable.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)
trust_app = typer.Typer(help="Trust roots of submitted reports.", no_args_is_help=True)
policy_app = typer.Typer(help="Re-audit periods by rubric.", no_args_is_help=True)
registry_app.add_typer(account_app, name="account", short_help="Accounts: add, list, disable.")
registry_app.add_typer(token_app, name="token", short_help="API tokens: create, list, revoke.")
registry_app.add_typer(trust_app, name="trust", short_help="Trust roots: add, list, remove.")
registry_app.add_typer(policy_app, name="policy", short_help="Re-audit periods: set, list.")

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


PasswordEnvOpt = Annotated[
    str | None,
    typer.Option(
        help="Read the password from this environment variable (never from an argument); "
        "default: ask for it twice."
    ),
]


def _location(registry: str | None, blobs: Path | None) -> Location:
    from auditkit.registry.location import resolve

    return resolve(registry, blobs)


def _shown(where: Location) -> str:
    """The --registry value to print back: the path, or the URL without its password."""
    return where.display


def _password(env: str | None) -> str:
    """The new password: from the environment variable ``env``, else asked twice (hidden)."""
    from auditkit.registry.accounts import check_password

    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise InputError(f"--password-env {env}: that environment variable is not set or empty")
    else:
        if not sys.stdin.isatty():
            raise InputError(
                "no terminal to ask for the password: set it in an environment variable and "
                "name it with --password-env VAR"
            )
        value = str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    check_password(value)
    return value


@contextmanager
def _registry_session(where: Location) -> Iterator[Session]:
    """A session on the existing registry, for reading (writes go through :func:`_write`)."""
    from sqlalchemy.exc import DatabaseError

    from auditkit.registry.db import open_registry, session

    engine = open_registry(where)
    try:
        with session(engine) as s:
            yield s
    except DatabaseError as exc:
        raise OutputError(
            f"registry {where.display} cannot be written: {first_line(exc.orig or exc, 200)}"
        ) from None
    finally:
        engine.dispose()


_ATTEMPTS = 5


def _write(where: Location, change: Callable[[Session], T]) -> T:
    """Run ``change`` in one transaction on the existing registry and commit it; retried when
    a concurrent writer (a submission, another command, the server) appended the same event
    number first — the next attempt sees its rows. :class:`OutputError` (exit 74) when the
    database cannot be written."""
    from sqlalchemy.exc import DatabaseError, IntegrityError

    from auditkit.registry.db import open_registry, session

    engine = open_registry(where)
    try:
        for attempt in range(_ATTEMPTS):
            try:
                with session(engine) as s:
                    return change(s)
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")
    except DatabaseError as exc:
        raise OutputError(
            f"registry {where.display} cannot be written: {first_line(exc.orig or exc, 200)}"
        ) from None
    finally:
        engine.dispose()


def _print_json(document: object) -> None:
    typer.echo(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False))


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)).rstrip()
        for line in [header, *rows]
    )


@registry_app.command("init", short_help="Create or upgrade the registry; first regulator account.")
def init_cmd(
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
    username: Annotated[
        str | None,
        typer.Option(
            help="Create this regulator account (the first one; asks for its password "
            "twice, or reads it from --password-env)."
        ),
    ] = None,
    password_env: PasswordEnvOpt = None,
) -> None:
    """Create the registry, or bring it to this auditkit's schema (Alembic upgrade head); with
    --username, also create a regulator account and print how to log in."""
    from auditkit.registry.db import upgrade

    where = _location(registry, blobs)
    password = _password(password_env) if username else None  # asked before anything is made
    before, after = upgrade(where)
    if before == after:
        typer.echo(f"registry {where.display}: already at schema {after}")
    elif before is None:
        typer.echo(f"registry {where.display}: created (schema {after}); PDFs in {where.blobs}")
    else:
        typer.echo(f"registry {where.display}: upgraded from schema {before} to {after}")
    if username is None:
        return
    from sqlalchemy import select

    from auditkit.registry.accounts import add_account
    from auditkit.registry.models import Account

    def first_account(s: Session) -> None:
        if s.scalars(select(Account).limit(1)).first() is not None:
            raise InputError(
                "the registry has accounts already: add more with `auditkit registry account "
                "add USERNAME --role regulator`"
            )
        add_account(s, username, "regulator", organisation=None, password=password)

    _write(where, first_account)
    typer.echo(
        f"regulator account {username!r} created. To log in: auditkit serve --registry "
        f"{_shown(where)} then open http://127.0.0.1:8000/login"
    )


@registry_app.command("submit", short_help="Verify a signed report and register it.")
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


@registry_app.command("check", short_help="Check the event log, every row and PDF.")
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


@registry_app.command("list", short_help="Every deployment with its latest audit.")
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


@registry_app.command("history", short_help="One deployment's audits, with regressions.")
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


# --------------------------------------------------------------------------- accounts

OrganisationOpt = Annotated[
    str | None,
    typer.Option(help="The account's organisation (created when new; needed but for a regulator)."),
]


def _rows_json(kind: str, rows: list[object]) -> dict[str, object]:
    return {
        "format": f"auditkit.registry.{kind}/1",
        kind: [dataclasses.asdict(r) for r in rows],  # type: ignore[call-overload]
    }


@account_app.command("add", short_help="Add an account with a role.")
def account_add_cmd(
    username: Annotated[str, typer.Argument(help="The login name.")],
    role: Annotated[str, typer.Option(help="regulator, organisation or test_laboratory.")],
    organisation: OrganisationOpt = None,
    password_env: PasswordEnvOpt = None,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="An account that only uses API tokens.")
    ] = False,
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
) -> None:
    """Add an account: a regulator reads everything; an organisation account submits and
    reads its own organisation's audits; a test laboratory submits for (and reads) the
    organisations that authorised it."""
    from auditkit.registry.accounts import add_account

    where = _location(registry, blobs)
    if no_password and password_env:
        raise InputError("give --no-password or --password-env, not both")
    password = None if no_password else _password(password_env)
    _write(
        where,
        lambda s: add_account(s, username, role, organisation=organisation, password=password),
    )
    org = f", organisation {organisation!r}" if organisation else ""
    typer.echo(f"account {username!r} ({role}{org}) added")


@account_app.command("list", short_help="Every account, its role and organisation.")
def account_list_cmd(
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every account: username, role, organisation, created, disabled or not."""
    from auditkit.registry.accounts import list_accounts

    with _registry_session(_location(registry, blobs)) as s:
        rows = list_accounts(s)
    if as_json:
        _print_json(_rows_json("accounts", list(rows)))
        return
    typer.echo(
        _table(
            ["username", "role", "organisation", "created", "status"],
            [
                [
                    r.username,
                    r.role,
                    r.organisation or "-",
                    r.created_at,
                    "disabled" if r.disabled else "active",
                ]
                for r in rows
            ],
        )
    )


@account_app.command("disable", short_help="Disable an account (login, tokens, submit).")
def account_disable_cmd(
    username: Annotated[str, typer.Argument(help="The login name.")],
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
) -> None:
    """Disable an account: it can no longer log in, use its API tokens or submit; its
    browser sessions end. The row stays (the log names it)."""
    from auditkit.registry.accounts import disable_account

    _write(_location(registry, blobs), lambda s: disable_account(s, username))
    typer.echo(f"account {username!r} disabled")


# --------------------------------------------------------------------------- tokens


@token_app.command("create", short_help="Create an API token (shown once).")
def token_create_cmd(
    username: Annotated[str, typer.Argument(help="The account the token acts as.")],
    name: Annotated[str, typer.Option(help="What the token is for (e.g. ci-gate).")],
    days: Annotated[
        int | None, typer.Option(help="Valid this many days (default: until revoked).")
    ] = None,
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
) -> None:
    """Create an API token and print its secret once: the registry keeps only its SHA-256
    and its first characters."""
    from auditkit.registry.accounts import create_token

    def create(s: Session) -> tuple[int, str | None, str]:
        token, secret = create_token(s, username, name, days=days)
        return token.id, token.expires_at, secret

    token_id, expires, secret = _write(_location(registry, blobs), create)
    typer.echo(secret)
    typer.echo(
        f"API token {token_id} for {username!r} ({name}; "
        f"{'expires ' + expires if expires else 'no expiry'}): copy it now, it is not shown again",
        err=True,
    )


@token_app.command("list", short_help="Every API token (prefix, never the secret).")
def token_list_cmd(
    account: Annotated[str | None, typer.Option(help="Only this account's tokens.")] = None,
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every API token: id, account, name, prefix, created, expiry, revoked, last used."""
    from auditkit.registry.accounts import list_tokens

    with _registry_session(_location(registry, blobs)) as s:
        rows = list_tokens(s, account)
    if as_json:
        _print_json(_rows_json("tokens", list(rows)))
        return
    typer.echo(
        _table(
            ["id", "account", "name", "prefix", "created", "expires", "revoked", "last used"],
            [
                [
                    str(r.id),
                    r.username,
                    r.name,
                    r.prefix,
                    r.created_at,
                    r.expires_at or "-",
                    r.revoked_at or "-",
                    r.last_used_at or "-",
                ]
                for r in rows
            ],
        )
    )


@token_app.command("revoke", short_help="Revoke an API token by its id.")
def token_revoke_cmd(
    token_id: Annotated[int, typer.Argument(help="The token's id (token list).")],
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
) -> None:
    """Revoke an API token: requests with it are refused from now on."""
    from auditkit.registry.accounts import revoke_token

    prefix = _write(_location(registry, blobs), lambda s: revoke_token(s, token_id).prefix)
    typer.echo(f"API token {token_id} ({prefix}…) revoked")


# --------------------------------------------------------------------------- authorisations


@registry_app.command("authorise", short_help="Let a laboratory submit for an organisation.")
def authorise_cmd(
    laboratory: Annotated[str, typer.Argument(help="The test laboratory (organisation name).")],
    organisation: Annotated[str, typer.Argument(help="The organisation that authorises it.")],
    revoke: Annotated[bool, typer.Option("--revoke", help="End the authorisation.")] = False,
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
) -> None:
    """Let the test laboratory LAB submit (and read) audits of ORG's deployments, or with
    --revoke end that. Both are created when new."""
    from auditkit.registry.accounts import authorise

    _write(
        _location(registry, blobs), lambda s: authorise(s, laboratory, organisation, revoke=revoke)
    )
    if revoke:
        typer.echo(f"laboratory {laboratory!r} no longer authorised by {organisation!r}")
    else:
        typer.echo(f"laboratory {laboratory!r} authorised by {organisation!r}")


# --------------------------------------------------------------------------- trust roots


@trust_app.command("add", short_help="Trust a CA certificate (PEM).")
def trust_add_cmd(
    pem: Annotated[Path, typer.Argument(help="CA certificate file (PEM; several allowed).")],
    organisation: Annotated[
        str | None,
        typer.Option(help="Trust it for this organisation's reports only (default: all)."),
    ] = None,
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
) -> None:
    """Trust the CA certificates of PEM for ORG's reports (--organisation), or for every
    organisation's; submit then checks signatures against them when no --trust is given."""
    from auditkit.registry.trust import add_roots

    added = _write(
        _location(registry, blobs),
        lambda s: [
            (r.id, r.sha256, r.subject) for r in add_roots(s, pem, organisation=organisation)
        ],
    )
    where = f"organisation {organisation!r}" if organisation else "every organisation"
    for root_id, sha, subject in added:
        typer.echo(f"trust root {root_id} added for {where}: {subject} (sha256 {sha})")


@trust_app.command("list", short_help="The trust roots, by organisation.")
def trust_list_cmd(
    include_removed: Annotated[bool, typer.Option("--all", help="Also the removed ones.")] = False,
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The trust roots: id, organisation (- for every one), subject, SHA-256, added, removed."""
    from auditkit.registry.trust import list_roots

    with _registry_session(_location(registry, blobs)) as s:
        rows = list_roots(s, include_removed=include_removed)
    if as_json:
        _print_json(_rows_json("trust_roots", list(rows)))
        return
    typer.echo(
        _table(
            ["id", "organisation", "subject", "sha256", "added", "removed"],
            [
                [
                    str(r.id),
                    r.organisation or "-",
                    r.subject,
                    r.sha256[:16],
                    r.added_at,
                    r.removed_at or "-",
                ]
                for r in rows
            ],
        )
    )


@trust_app.command("remove", short_help="Stop trusting a root by its id.")
def trust_remove_cmd(
    root_id: Annotated[int, typer.Argument(help="The root's id (trust list).")],
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
) -> None:
    """Stop trusting a root: later submissions no longer chain to it; audits already
    accepted stay. The row stays, marked removed."""
    from auditkit.registry.trust import remove_root

    subject = _write(_location(registry, blobs), lambda s: remove_root(s, root_id).subject)
    typer.echo(f"trust root {root_id} removed: {subject}")


# --------------------------------------------------------------------------- policies


@policy_app.command("set", short_help="Set the re-audit period of a rubric.")
def policy_set_cmd(
    days: Annotated[int, typer.Option(help="Days after signing that a re-audit is due.")],
    rubric: Annotated[
        str | None, typer.Option(help="The rubric's id (default: the registry's default).")
    ] = None,
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
) -> None:
    """Set how many days after its signing an audit judged by RUBRIC (or by any rubric
    without its own period) stays current."""
    from auditkit.registry.policy import set_policy

    _write(_location(registry, blobs), lambda s: set_policy(s, rubric, days))
    typer.echo(f"re-audit period for {rubric or 'the default'}: {days} days")


@policy_app.command("list", short_help="The re-audit periods.")
def policy_list_cmd(
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The re-audit periods: the default's and each rubric's (365 days when none is set)."""
    from auditkit.registry.policy import DEFAULT_REAUDIT_DAYS, list_policies

    with _registry_session(_location(registry, blobs)) as s:
        rows = list_policies(s)
    if as_json:
        _print_json(_rows_json("policies", list(rows)))
        return
    lines = [[r.rubric_id or "(default)", str(r.reaudit_days)] for r in rows]
    if not any(r.rubric_id is None for r in rows):
        lines.insert(0, ["(default)", f"{DEFAULT_REAUDIT_DAYS} (built in)"])
    typer.echo(_table(["rubric", "days"], lines))
