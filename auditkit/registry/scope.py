"""Who is asking, and what they may read (issue 15's roles; pure).

A :class:`Principal` is the account behind a request (a browser session or an API token) or
the local operator of the CLI. Its :class:`Scope` is the set of organisations whose
deployments and audits it may read: every one for a regulator (``organisations`` None), its
own for an organisation account, its own and those that authorised it for a test laboratory.
Every view and API route filters by the scope, so a deployment outside it is "not found"
(404), never "forbidden": its existence is not disclosed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    """The organisations (by database id) a principal may read; None: every one."""

    organisations: frozenset[int] | None

    def allows(self, organisation_id: int) -> bool:
        return self.organisations is None or organisation_id in self.organisations


#: a regulator's scope, and the local CLI operator's (who holds the database itself)
EVERYTHING = Scope(None)


@dataclass(frozen=True)
class Principal:
    """An account acting through the server, or the local operator (``account_id`` None,
    role "regulator": whoever can open the database file can read and write it anyway).

    ``organisation_id``: the account's organisation (None for a regulator account without
    one); ``scope``: what it may read (see the module doc)."""

    account_id: int | None
    username: str
    role: str
    organisation_id: int | None
    scope: Scope


#: the CLI working on a registry it opened itself
LOCAL_OPERATOR = Principal(None, "local", "regulator", None, EVERYTHING)
