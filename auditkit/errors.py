"""Errors that the CLI maps to exit codes (contract: docs/cli.md).

Every user-facing problem is an :class:`AuditkitError` with a one-line message; the CLI prints
``error: <message>`` and exits with ``exit_code``. Anything else is a bug (exit 70).
"""

from __future__ import annotations

import re


class ExitCode:
    ACCEPT = 0
    REJECT = 1
    VERIFICATION_FAILED = 1
    USAGE = 2
    HOLD = 3
    CONDITIONAL = 4
    INPUT = 5
    INTERNAL = 70
    OUTPUT = 74  # sysexits EX_IOERR: an output file could not be written (disk full, ...)
    PERMISSION = 77  # sysexits EX_NOPERM: the account may not do this (registry roles)


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message, at most ``limit`` characters (its type's
    name when the message is empty): the one line a user is shown."""
    text = _REPR.sub("", str(exc)).strip()  # "<_io.BytesIO object at 0x...>" means nothing
    return text.splitlines()[0][:limit] if text else type(exc).__name__


#: Python object reprs some libraries put in messages (Pillow: the file object it was given)
_REPR = re.compile(r"\s*<[\w.]+ (?:object at 0x[0-9a-fA-F]+|name=[^>]*)>")


def not_utf8_place(data: bytes) -> str:
    """Where ``data`` first stops being UTF-8: ``byte 0xe9 at offset 57 (line 4, column 11)``
    (offset from 0 in the whole file, line and column in bytes from 1). A decoder's own
    "position" counts from the chunk it was given (pandas reads in chunks: a Latin-1 manifest
    said "position 1")."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        return f"byte 0x{data[start]:02x} at offset {start} (line {line}, column {column})"
    return "a byte sequence the reader refused"


class AuditkitError(Exception):
    """Base class: a problem the user can act on."""

    exit_code = ExitCode.INTERNAL


class InputError(AuditkitError):
    """Bad data, model, card, rubric or key: exit 5."""

    exit_code = ExitCode.INPUT


class DataError(InputError):
    """The labelled data (manifest, paths, images) cannot be used as given."""


class ModelError(InputError):
    """The ONNX model or its card cannot be used as given."""


class RubricError(InputError):
    """The rubric file is malformed or refers to something unknown."""


class SigningKeyError(InputError):
    """A signing key or certificate cannot be loaded (wrong passphrase, wrong file)."""


class RunDirError(InputError):
    """A run directory is missing files or was written by an incompatible version."""


class OutputError(AuditkitError):
    """An output file could not be written (disk full, permission, I/O error): exit 74. The file
    it would have replaced is left as it was."""

    exit_code = ExitCode.OUTPUT


class VerificationError(AuditkitError):
    """A report failed verification: exit 1."""

    exit_code = ExitCode.VERIFICATION_FAILED


class PermissionDenied(AuditkitError):
    """The registry account acting may not do this (submit for another organisation, for an
    organisation that has not authorised its laboratory, with a disabled account): exit 77
    (sysexits EX_NOPERM); the server answers 403."""

    exit_code = ExitCode.PERMISSION
