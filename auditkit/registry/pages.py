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
from functools import lru_cache, partial
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


def _lang_query(lang: str) -> dict[str, str]:
    return {} if language(lang) == DEFAULT_LANG else {"lang": language(lang)}


def regression_lines(
    previous_verdict: str | None, current_verdict: str, regression: Any, lang: str
) -> list[str]:
    """The reasons of a regression flag in the page's language, from the comparison's data
    (:class:`~auditkit.registry.regression.Regression`), not its English text: the verdict
    change, then each rate whose difference interval lies above 0."""
    from auditkit.registry.regression import WORSE_VERDICTS

    t, rt, f = strings(lang)["registry"], strings(lang), formatter(lang)
    lines: list[str] = []
    verdict = rt["verdict"]
    if regression is None:
        return lines
    current = current_verdict
    if previous_verdict == "ACCEPT" and current in WORSE_VERDICTS:
        lines.append(
            t["regression_verdict"].format(
                before=verdict.get(previous_verdict, previous_verdict),
                after=verdict.get(current, current),
            )
        )
    for change in regression.changes:
        if change.worse:
            lines.append(_change_line(change, t["regression_rate"], f))
    return lines


def _change_line(change: Any, template: str, f: Formatter) -> str:
    return template.format(
        metric=f.metric(change.metric),
        before=f.kn(*change.previous),
        after=f.kn(*change.current),
        difference=f.pp(change.difference),
        level=f.level_text(),
        low=f.pp(change.low),
        high=f.pp(change.high),
    )


def render_deployment(view: Any, chrome: Chrome) -> str:
    """``GET /deployments/{id}``: the deployment's facts, its audits as a timeline (SVG and a
    table, each audit linking ``/audits/{id}``, regression flags with their reasons), and
    each metric across the audits and model versions (SVG and a table)."""
    from auditkit.registry import svg as charts

    lang = language(chrome.lang)
    t, rt, f = strings(lang)["registry"], strings(lang), formatter(lang)
    q = _lang_query(lang)
    entries = []
    previous = None
    for entry in view.audits:
        changes = [] if entry.regression is None else entry.regression.changes
        entries.append(
            {
                "entry": entry,
                "href": url(f"/audits/{entry.audit_id}", q),
                "flagged": entry.regression is not None and entry.regression.flagged,
                "reasons": _reasons(previous, entry, lang),
                "changes": [_change_line(c, t["change_line"], f) for c in changes],
            }
        )
        previous = entry
    from auditkit.registry.views import audit_day

    marks = [
        charts.TimelineMark(
            day=audit_day(e["entry"].audited_at) or view.today,
            verdict=e["entry"].verdict,
            flagged=e["flagged"],
            href=e["href"],
            label=f"{e['entry'].report_id} · {rt['verdict'].get(e['entry'].verdict, '')} · "
            f"{f.when(e['entry'].audited_at)}",
        )
        for e in entries
    ]
    timeline_svg = charts.timeline(marks, title=t["timeline_title"], flag_word=t["flag_short"])
    metrics = []
    for series in view.metrics:
        metric = series.metric
        thresholds = {p.threshold for p in series.points}
        threshold = thresholds.pop() if len(thresholds) == 1 else None
        chart_marks = [
            charts.IntervalMark(
                value=p.value,
                low=p.low,
                high=p.high,
                outcome=p.outcome,
                label=p.model_version or p.model_sha256[:8],
                tip=f"{p.report_id} · {f.value(metric, p.value)} "
                f"[{f.value(metric, p.low)}, {f.value(metric, p.high)}]",
            )
            for p in series.points
        ]
        metrics.append(
            {
                "metric": metric,
                "name": f.metric(metric),
                "points": [
                    {
                        "p": p,
                        "href": url(f"/audits/{p.audit_id}", q),
                        "value": f.value(metric, p.value),
                        "interval": _interval(f, metric, p.low, p.high),
                        "kn": f.kn(p.k, p.n),
                        "threshold": f.threshold(metric, p.op, p.threshold),
                    }
                    for p in series.points
                ],
                "svg": svg(
                    charts.intervals(
                        chart_marks,
                        threshold=threshold,
                        tick=partial(f.value, metric),
                        title=t["metric_chart_title"].format(metric=f.metric(metric)),
                    )
                ),
            }
        )
    path = f"/deployments/{view.deployment_id}"
    return _render(
        "deployment.html.j2",
        lang,
        chrome=chrome,
        view=view,
        entries=entries,
        timeline_svg=svg(timeline_svg),
        metrics=metrics,
        switch=_other_languages(path, {}, lang),
        exports={"csv": url(path, format="csv"), "json": url(path, format="json")},
        fleet_href=url("/", q),
    )


def _reasons(previous: Any, entry: Any, lang: str) -> list[str]:
    previous_verdict = previous.verdict if previous is not None else None
    return regression_lines(previous_verdict, entry.verdict, entry.regression, lang)


def _interval(f: Formatter, metric: str, low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return f.na
    return f"[{f.value(metric, low)}, {f.value(metric, high)}]"


def render_audit(view: Any, chrome: Chrome) -> str:
    """``GET /audits/{id}``: the audit's facts, the criteria table (value, bound, interval,
    k/n, slice, outcome), the signatures with their trust status, the PDFs
    (``a#download-pdf`` → ``/audits/{id}/report.pdf``) and the evidence files
    (``/audits/{id}/evidence/{name}``) with their SHA-256."""
    from urllib.parse import quote

    lang = language(chrome.lang)
    f = formatter(lang)
    q = _lang_query(lang)
    rows = []
    for c in view.criteria:
        metric = c.metric or ""
        rows.append(
            {
                "c": c,
                "metric": f.metric(metric) if metric else f.na,
                "threshold": f.threshold(metric, c.op, c.threshold),
                "value": f.value(metric, c.value),
                "bound": f.value(metric, c.bound),
                "interval": _interval(f, metric, c.low, c.high),
                "kn": f.kn(c.k, c.n),
                "slice": f.slice(c.slice),
            }
        )
    path = f"/audits/{view.audit_id}"
    return _render(
        "audit.html.j2",
        lang,
        chrome=chrome,
        view=view,
        rows=rows,
        energy=f.quantity(view.energy_wh_per_1000, "Wh"),
        pdf_href=f"{path}/report.pdf",
        evidence=[
            {"file": e, "href": f"{path}/evidence/{quote(e.name, safe='')}"} for e in view.evidence
        ],
        deployment_href=url(f"/deployments/{view.deployment_id}", q),
        fleet_href=url("/", q),
        switch=_other_languages(path, {}, lang),
        exports={"csv": url(path, format="csv"), "json": url(path, format="json")},
    )
