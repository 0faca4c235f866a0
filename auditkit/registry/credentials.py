"""Secrets at rest (pure): passwords as Argon2id hashes, API tokens and session cookies as
SHA-256 of a 256-bit random secret.

Passwords use Argon2id (RFC 9106) with OWASP's minimum (19 MiB memory, 2 passes, 1 lane):
memory-hard, so a stolen database is slow to attack. Tokens are random and long, so a fast
hash is enough and lets every request be checked in microseconds.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

#: the start of every API token, so a leaked one is recognisable (secret scanners, logs)
TOKEN_PREFIX = "akt_"
_PREFIX_SHOWN = 10  # TOKEN_PREFIX and six characters of the secret: enough to tell tokens apart


def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    """The Argon2id hash (PHC string, with its own random salt) of ``password``."""
    return str(_hasher().hash(password))


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; False for a malformed hash."""
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(_hasher().verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A new API token: :data:`TOKEN_PREFIX` and 43 URL-safe characters (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_secret() -> str:
    """A session cookie's or CSRF token's secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def secret_digest(secret: str) -> str:
    """What the database stores of a token or session secret: SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def shown_prefix(token: str) -> str:
    """The part of a token that may be shown (listing tokens, logs)."""
    return token[:_PREFIX_SHOWN]
