"""Where a signing key's passphrase comes from: a file, an environment variable or a prompt.

Never from a command-line argument: those end up in shell history, ``ps`` output and CI logs.
Order: ``--passphrase-file`` (first line, trailing newline removed), then the environment
variable :data:`ENV_VAR`, then an interactive prompt (``--ask-passphrase``, or automatically
when the key is encrypted and standard input is a terminal).
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from auditkit.errors import SigningKeyError

ENV_VAR = "AUDITKIT_KEY_PASSPHRASE"
#: the passphrase of a kept CA key (``keys create --keep-ca``, ``keys issue``)
CA_ENV_VAR = "AUDITKIT_CA_PASSPHRASE"


def read_passphrase_file(path: Path) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SigningKeyError(f"passphrase file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"cannot read passphrase file {path}: {exc}") from None
    first = text.splitlines()[0] if text else ""
    if not first:
        raise SigningKeyError(f"passphrase file {path} is empty")
    return first


def resolve_passphrase(
    *, file: Path | None = None, ask: bool = False, key_path: Path | None = None
) -> str | None:
    """The passphrase from the first source that has one (see module doc), or None."""
    if file is not None:
        return read_passphrase_file(file)
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    from auditkit.report.keys import key_needs_passphrase

    needs = key_path is not None and key_needs_passphrase(key_path)
    if ask or (needs and sys.stdin.isatty()):
        what = f" for {key_path}" if key_path is not None else ""
        try:
            return getpass.getpass(f"passphrase{what}: ") or None
        except EOFError:
            return None
    return None


def _prompt(text: str) -> str:
    try:
        return getpass.getpass(text)
    except EOFError:
        return ""


def new_passphrase(
    *, file: Path | None = None, ask: bool = False, env_var: str = ENV_VAR, what: str = "key"
) -> str | None:
    """The passphrase for a key about to be created: from ``file``, else ``env_var``, else
    (``ask``) typed twice on the terminal, which must agree: a typo in a passphrase nobody
    sees would lock the key for good. None: no passphrase (the key is not encrypted)."""
    if file is not None:
        return read_passphrase_file(file)
    if os.environ.get(env_var):
        return os.environ[env_var]
    if not ask:
        return None
    first = _prompt(f"new passphrase for the {what}: ")
    if not first:
        raise SigningKeyError(f"no passphrase typed for the {what}")
    if _prompt(f"repeat the passphrase for the {what}: ") != first:
        raise SigningKeyError(f"the two passphrases typed for the {what} differ; nothing written")
    return first


def ca_passphrase(*, file: Path | None = None, ca_key: Path) -> str | None:
    """The passphrase of an existing CA key: ``file``, else :data:`CA_ENV_VAR`, else a prompt
    on a terminal."""
    if file is not None:
        return read_passphrase_file(file)
    if os.environ.get(CA_ENV_VAR):
        return os.environ[CA_ENV_VAR]
    if sys.stdin.isatty():
        return _prompt(f"passphrase for {ca_key}: ") or None
    return None
