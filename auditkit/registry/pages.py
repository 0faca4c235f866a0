"""The supervisor's pages as HTML (issue 15): fleet, deployment, audit, login and error pages,
in English and Chinese, rendered on the server from :mod:`auditkit.registry.views`.

* Jinja2 with autoescape on (``templates/*.html.j2``); no template marks data ``|safe``: the
  only markup not escaped is the SVG this module draws (:mod:`auditkit.registry.svg`), whose
  text is escaped where it is drawn.
* No script and no ``style`` attribute anywhere: the server's Content-Security-Policy is
  ``default-src 'self'``; the stylesheet is ``static/registry.css``, served at
  :data:`STYLESHEET_URL`.
* Words: the report's catalogue mechanism (:func:`auditkit.report.catalogue.load_strings`)
  with this package's ``templates/strings*.yaml`` as the custom folder, so the report's
  words (verdicts, outcomes, metric names) are shared and the registry's own sit under the
  ``registry`` key. Numbers: the report's :class:`~auditkit.report.formatting.Formatter`, so a
  page prints a figure exactly as the signed PDF does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup

from auditkit.report.catalogue import DEFAULT_LANG, LANGUAGES, load_strings
from auditkit.report.formatting import Formatter

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STYLESHEET_URL = "/static/registry.css"
#: the confidence level used to word a statistic when the audit does not say (the rubrics')
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Chrome:
    """What every page of a logged-in user shows around the view: who is logged in (the
    logout form carries ``csrf_token``) and the page's language (``en`` or ``zh``)."""

    username: str
    role: str
    csrf_token: str
    lang: str


def language(lang: str | None) -> str:
    """``lang`` when it is one of the catalogue's languages, else English."""
    return lang if lang in LANGUAGES else DEFAULT_LANG


@lru_cache(maxsize=len(LANGUAGES))
def strings(lang: str) -> dict[str, Any]:
    """The report's catalogue merged with the registry's, in ``lang`` (read once)."""
    return load_strings(language(lang), TEMPLATES)


@lru_cache(maxsize=len(LANGUAGES))
def formatter(lang: str) -> Formatter:
    return Formatter(strings(lang), DEFAULT_LEVEL)


@lru_cache(maxsize=1)
def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,  # a missing word is an error in the tests, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["url"] = url
    return env


def url(path: str, query: dict[str, str] | None = None, **more: str) -> str:
    """``path`` with its query string (values percent-encoded; empty ones dropped)."""
    params = {k: v for k, v in {**(query or {}), **more}.items() if v not in (None, "")}
    return f"{path}?{urlencode(params)}" if params else path


def _render(template: str, lang: str, **context: Any) -> str:
    lang = language(lang)
    all_strings = strings(lang)
    return str(
        _environment()
        .get_template(template)
        .render(
            lang=lang,
            t=all_strings["registry"],
            rt=all_strings,
            f=formatter(lang),
            stylesheet=STYLESHEET_URL,
            languages=LANGUAGES,
            **context,
        )
    )


def _other_languages(path: str, query: dict[str, str], lang: str) -> list[dict[str, str]]:
    """The language switch: a link to this page in each other language."""
    return [
        {"lang": other, "href": url(path, query, lang=other)}
        for other in LANGUAGES
        if other != language(lang)
    ]


# --------------------------------------------------------------------------- pages


def render_fleet(view: Any, chrome: Chrome) -> str:
    """``GET /``: the fleet table (``table#fleet``, one ``tr[data-deployment-id]`` per
    deployment), the filter form (``form#filters``), totals, pages and exports."""
    from auditkit.registry.views import DUE_SOON_DAYS, STATUSES

    query = view.filters.query()
    pages = []
    for number in _page_numbers(view.filters.page, view.pages):
        pages.append(
            None
            if number is None
            else {
                "number": number,
                "href": url("/", view.filters.query(page=number), lang=chrome.lang),
                "current": number == view.filters.page,
            }
        )
    return _render(
        "fleet.html.j2",
        chrome.lang,
        chrome=chrome,
        view=view,
        statuses=STATUSES,
        due_soon_days=DUE_SOON_DAYS,
        pages=pages,
        switch=_other_languages("/", query, chrome.lang),
        exports={
            "csv": url("/", query, format="csv"),
            "json": url("/", query, format="json"),
        },
    )


def _page_numbers(current: int, pages: int, around: int = 2) -> list[int | None]:
    """Page links: the first, the last, and ``around`` either side of the current (None: a
    gap)."""
    wanted = {1, pages, *range(current - around, current + around + 1)}
    shown = sorted(p for p in wanted if 1 <= p <= pages)
    out: list[int | None] = []
    for p in shown:
        if out and out[-1] is not None and p - out[-1] > 1:
            out.append(None)
        out.append(p)
    return out


def render_login(
    chrome_or_none: Chrome | None, *, error: str | None, lang: str, csrf_token: str
) -> str:
    """``GET /login``: ``form#login`` (``username``, ``password``, hidden ``csrf_token``)
    posting to ``/login``. ``error``: a key of the catalogue's ``login_errors``
    (``invalid``, ``rate_limited``, ``csrf``, ``expired``) shown in the page's language, or
    a message shown as given."""
    t = strings(lang)["registry"]
    message = None if error is None else t["login_errors"].get(error, error)
    return _render(
        "login.html.j2",
        lang,
        chrome=chrome_or_none,
        error=message,
        csrf_token=csrf_token,
        switch=_other_languages("/login", {}, lang),
    )


def render_error(status: int, message: str, lang: str) -> str:
    """An error page: the status, its meaning in the page's language, and ``message``
    (shown as given, escaped; the server passes its one-line reason)."""
    t = strings(lang)["registry"]
    title = t["status_titles"].get(status) or t["status_titles"].get(str(status)) or str(status)
    return _render(
        "error.html.j2",
        lang,
        chrome=None,
        status=status,
        title=title,
        message=message,
        switch=[],
    )


def svg(markup: str) -> Markup:
    """Our own SVG (:mod:`auditkit.registry.svg`, which escapes every text it draws) as markup."""
    return Markup(markup)
