"""Secrets at rest (auditkit.registry.credentials): Argon2id password hashes checked with
argon2-cffi's own low-level API, tokens stored only as their SHA-256 (hashlib)."""

from __future__ import annotations

import hashlib

from auditkit.registry import credentials
from auditkit.registry.scope import EVERYTHING, Scope


def test_password_hash_is_argon2id_with_owasp_parameters_and_verifies() -> None:
    from argon2.low_level import Type, verify_secret

    stored = credentials.hash_password("correct horse")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    # the reference: argon2's C library checks the PHC string itself
    assert verify_secret(stored.encode(), b"correct horse", Type.ID)
    assert credentials.verify_password(stored, "correct horse")
    assert not credentials.verify_password(stored, "correct horsE")
    assert not credentials.verify_password("not a hash", "correct horse")
    assert credentials.hash_password("correct horse") != stored  # a fresh salt each time


def test_tokens_are_long_random_and_stored_as_sha256() -> None:
    a, b = credentials.new_token(), credentials.new_token()
    assert a != b and a.startswith(credentials.TOKEN_PREFIX)
    assert len(a) == len(credentials.TOKEN_PREFIX) + 43  # 32 bytes, URL-safe base64
    assert credentials.secret_digest(a) == hashlib.sha256(a.encode()).hexdigest()
    assert credentials.shown_prefix(a) == a[:10] and a[:10] in a


def test_scope() -> None:
    assert EVERYTHING.allows(7)
    own = Scope(frozenset({1, 3}))
    assert own.allows(3) and not own.allows(2)


def test_a_column_added_later_counts_in_the_digest_only_when_set() -> None:
    """Rows recorded before revision 0002 had no ``task``: their digests must not change."""
    from auditkit.registry.chain import row_digest
    from auditkit.registry.models import Audit
    from auditkit.registry.rows import values

    audit = Audit(id=1, report_id="r", verdict="ACCEPT", task=None)
    before = values(audit)
    assert "task" not in before and "report_id" in before
    audit.task = "detection"
    assert values(audit) == {**before, "task": "detection"}
    assert row_digest(values(audit)) != row_digest(before)
