"""Checks of everything a report needs, made before the work that precedes it.

``auditkit audit`` replays for minutes or hours before it renders and signs; ``report``
re-derives verdicts before it signs. A typo in ``--tsa``, a missing key or passphrase file, an
encrypted key without a passphrase, ``--lang fr`` or a template folder with a link out of it
must fail at once, with one line (exit 5), not after that work. :func:`check_report_options`
does every check the signing and rendering stages would do, without rendering or signing.
"""

from __future__ import annotations

from pathlib import Path

from auditkit.errors import InputError
from auditkit.run import refuse_symlink


def check_report_options(
    *,
    sign: bool,
    sign_key: Path | None,
    sign_cert: Path | None,
    passphrase: str | None,
    lang: str,
    template_dir: Path | None = None,
    tsa_url: str | None = None,
    outputs: tuple[Path | None, ...] = (),
) -> list[str]:
    """Raise a one-line :class:`InputError` for the first option the report stage would refuse;
    return the warnings to show (a key file readable by others). ``outputs``: files the stage
    will write (a link among them is refused, :func:`auditkit.run.refuse_symlink`)."""
    # WeasyPrint and pyHanko are imported only by commands that render
    from auditkit.report.keys import key_file_warning
    from auditkit.report.render import check_template
    from auditkit.report.sign import check_signing_key, check_tsa_url

    if sign_cert is not None and sign_key is None:
        raise InputError("--sign-cert needs --sign-key (the certificate's private key)")
    for path in outputs:
        if path is not None:
            refuse_symlink(path)
    check_template(template_dir, lang)
    warnings: list[str] = []
    if sign:
        if tsa_url is not None:
            check_tsa_url(tsa_url)
        if sign_key is not None:
            check_signing_key(sign_key, sign_cert, passphrase)
            warning = key_file_warning(sign_key)
            if warning:
                warnings.append(warning)
    return warnings
