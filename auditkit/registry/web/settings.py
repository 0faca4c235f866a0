"""The server's settings (pure): one frozen value, built by ``auditkit serve`` from its options."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    """How the server protects itself and its users.

    ``max_upload_bytes``: the largest request body a submission may have (50 MiB by default:
    a signed report of the bundled samples is well under 1 MiB, a large one with many slices a
    few MiB); a larger one is refused with 413 before it is read to the end.
    ``session_seconds``: how long a browser session lasts after login (8 hours: a working day).
    ``login_failures`` / ``login_window_seconds``: after that many failed logins for one
    username from one client address within the window, further attempts get 429 until the
    oldest failure leaves the window (5 per 15 minutes, OWASP's suggestion).
    ``secure_cookies``: cookies carry ``Secure`` (sent over HTTPS only); off only for plain
    http on localhost (``--insecure-cookies``).
    ``trusted_proxy``: the client address is the last entry of ``X-Forwarded-For`` (the one the
    reverse proxy added), not the socket's peer; only behind a proxy that sets it."""

    max_upload_bytes: int = 50 * MIB
    session_seconds: int = 8 * 3600
    login_failures: int = 5
    login_window_seconds: int = 15 * 60
    secure_cookies: bool = True
    trusted_proxy: bool = False
