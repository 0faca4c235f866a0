"""The supervisor's views and pages (auditkit.registry.views, .pages) on SQLite and a real
PostgreSQL server (the ``registry`` fixture): registries built by submitting the real signed
fixture reports (auditkit.registry.ingest.submit) and, for volume and edge cases, rows written
straight to the tables.

Expectations are computed here independently: figures from the run folders' JSON files and
the PDF's own text (pdftotext), rows with plain SQL, due dates with ``datetime`` by hand,
filters and search in Python over the rows inserted, regression intervals with statsmodels.
Pages are parsed with the standard library's ``html.parser``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from auditkit.registry.location import Location
from auditkit.registry.scope import EVERYTHING, Scope
from tests.registry_fixtures import (  # noqa: F401  (fixtures; F811: pyproject)
    Figure,
    Reports,
    add_audit,
    add_deployment,
    deployment_of,
    postgres_server,
    registry,
    reports,
    rows,
)

TODAY = date(2027, 3, 1)


# --------------------------------------------------------------------------- helpers


@contextmanager
def opened(location: Location) -> Iterator[Any]:
    from auditkit.registry.db import open_registry, session

    engine = open_registry(location)
    try:
        with session(engine) as s:
            yield s
    finally:
        engine.dispose()


@dataclass
class Node:
    """An element of a parsed page."""

    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children).strip()

    def iter(self) -> Iterator[Node]:
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if n.tag == tag and all(n.attrs.get(k) == v for k, v in attrs.items())
        ]

    def find(self, tag: str, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag} {attrs}>"
        return found[0]

    def cells(self) -> list[str]:
        return [c.text() for c in self.children if isinstance(c, Node) and c.tag in ("td", "th")]


_VOID = {"meta", "link", "input", "br", "img", "hr"}


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


def body_rows(table: Node) -> list[Node]:
    return [tr for tr in table.find("tbody").find_all("tr")]


def chrome(lang: str = "en") -> Any:
    from auditkit.registry.pages import Chrome

    return Chrome(username="inspector", role="regulator", csrf_token="tok-123", lang=lang)


def submit_fixture_reports(registry: Location, reports: Reports) -> None:
    """The signed report, its countersigned copy and the later audit, for one deployment."""
    from auditkit.registry.ingest import submit

    trust = [reports.lab_ca, reports.regulator_ca]
    for pdf in (reports.signed, reports.countersigned, reports.later):
        submit(registry, pdf, deployment_of(reports), trust=trust)


def pdf_text(pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def pct(value: float) -> str:
    """A rate as the report prints it (hand-written: two decimals, a space, %)."""
    return f"{value * 100:.2f} %"


# --------------------------------------------------------------------------- fleet


def test_fleet_page_shows_each_deployment_with_its_latest_audit(
    registry: Location, reports: Reports
) -> None:
    from auditkit.registry import pages, views

    submit_fixture_reports(registry, reports)
    with opened(registry) as s:
        never = add_deployment(s, "Beta Works", "Plant Graz", "Line 1", "unaudited-model")
        view = views.fleet(s, EVERYTHING, views.FleetFilters(), today=TODAY)
    later = json.loads((reports.later_run / "verdicts.json").read_text())
    [latest] = rows(registry, "SELECT * FROM audit WHERE run_id LIKE '%-later'")
    assert view.total == 2
    first, second = view.rows
    assert (first.deployment_id, first.status, first.audits, first.verdict) == (
        never,
        "never_audited",
        0,
        None,
    )
    assert second.verdict == later["verdict"] == latest["verdict"]
    assert second.report_id == latest["report_id"] and second.audits == 2
    assert second.audited_at == latest["signed_at"]
    # no policy rows: a year after the day it was signed
    signed = date.fromisoformat(latest["signed_at"][:10])
    assert second.due == signed + timedelta(days=365)

    html = pages.render_fleet(view, chrome())
    page = parse(html)
    table = page.find("table", id="fleet")
    shown = body_rows(table)
    assert [tr.attrs["data-deployment-id"] for tr in shown] == [
        str(never),
        str(second.deployment_id),
    ]
    cells = shown[1].cells()
    assert later["verdict"] in cells  # the report's own word in English
    assert latest["report_id"] in cells
    assert (signed + timedelta(days=365)).isoformat() in cells
    links = {a.attrs["href"] for a in shown[1].find_all("a")}
    assert f"/deployments/{second.deployment_id}" in links
    assert f"/audits/{latest['id']}" in links
    assert table.find("caption").text()
    assert all(th.attrs.get("scope") == "col" for th in table.find("thead").find_all("th"))


def test_fleet_filter_form_and_page_hooks(registry: Location) -> None:
    from auditkit.registry import pages, views

    with opened(registry) as s:
        dep = add_deployment(s, "Acme", "Linz", "L3", "m")
        add_audit(s, dep, signed_at="2027-01-01T00:00:00Z")
        view = views.fleet(s, EVERYTHING, views.FleetFilters(q="acme"), today=TODAY)
    page = parse(pages.render_fleet(view, chrome()))
    form = page.find("form", id="filters")
    assert (form.attrs["method"], form.attrs["action"]) == ("get", "/")
    names = {n.attrs["name"] for n in form.find_all("select")}
    assert names == {"organisation", "site", "task", "verdict", "rubric"}
    [q] = [n for n in form.find_all("input") if n.attrs.get("name") == "q"]
    assert q.attrs["value"] == "acme"
    logout = page.find("form", id="logout")
    assert (logout.attrs["method"], logout.attrs["action"]) == ("post", "/logout")
    [token] = [n for n in logout.find_all("input") if n.attrs.get("name") == "csrf_token"]
    assert token.attrs["value"] == "tok-123" and token.attrs["type"] == "hidden"
    switch = page.find("a", id="lang-zh")
    assert switch.attrs["href"] == "/?q=acme&lang=zh"
    assert page.find("a", id="export-csv").attrs["href"] == "/?q=acme&format=csv"


def test_login_and_error_pages(registry: Location) -> None:
    from auditkit.registry import pages

    page = parse(pages.render_login(None, error="invalid", lang="en", csrf_token="c-1"))
    form = page.find("form", id="login")
    assert (form.attrs["method"], form.attrs["action"]) == ("post", "/login")
    inputs = {n.attrs["name"]: n.attrs for n in form.find_all("input")}
    assert inputs["csrf_token"] == {"type": "hidden", "name": "csrf_token", "value": "c-1"}
    assert inputs["username"]["type"] == "text" and inputs["password"]["type"] == "password"
    assert page.find("p", id="login-error").text() == "Wrong user name or password."
    assert not page.find_all("form", id="logout")  # nobody logged in yet
    zh = parse(pages.render_login(None, error="rate_limited", lang="zh", csrf_token="c-1"))
    assert zh.find("html").attrs["lang"] == "zh-CN"
    assert zh.find("p", id="login-error").text() == "失败次数过多：请等待几分钟后再试。"
    error = parse(pages.render_error(404, "no audit 7 <b>here</b>", "en"))
    assert error.find("h1", id="error-status").text() == "404 Not found"
    assert error.find("p", id="error-message").text() == "no audit 7 <b>here</b>"  # escaped
    assert parse(pages.render_error(413, "", "zh")).find("h1").text() == "413 文件过大"


def _hand_registry(s: Any, seed: int = 7) -> list[dict[str, Any]]:
    """A registry of 3 organisations × 2 sites × 2 stations × 2 models with random latest
    verdicts, tasks, rubrics and dates (some never audited); the expected fleet row of each
    deployment, computed here."""
    rng = random.Random(seed)
    expected = []
    for org in ("Acme Castings", "Beta Works", "Gamma 光学"):
        for site in ("North", "South"):
            for station in ("Line 1", "Line 2"):
                for model in ("cls-a", "det-b"):
                    dep = add_deployment(s, org, site, station, model)
                    latest = None
                    for _ in range(rng.randint(0, 3)):
                        day = date(2025, 1, 1) + timedelta(days=rng.randint(0, 800))
                        audit = {
                            "signed_at": f"{day.isoformat()}T{rng.randint(0, 23):02d}:00:00Z",
                            "verdict": rng.choice(["ACCEPT", "REJECT", "HOLD", "CONDITIONAL"]),
                            "rubric_id": rng.choice(["rubric-a", "rubric-b"]),
                            "task": rng.choice([None, "detection", "classification"]),
                        }
                        add_audit(s, dep, **audit)
                        if latest is None or audit["signed_at"] > latest["signed_at"]:
                            latest = audit
                    expected.append(
                        {
                            "deployment_id": dep,
                            "organisation": org,
                            "site": site,
                            "station": station,
                            "model": model,
                            "latest": latest,
                        }
                    )
    return expected


def _expected_due(latest: dict[str, Any] | None) -> date | None:
    if latest is None:
        return None
    return date.fromisoformat(latest["signed_at"][:10]) + timedelta(days=365)


def _expected_status(due: date | None) -> str:
    if due is None:
        return "never_audited"
    if due < TODAY:
        return "overdue"
    return "due_soon" if (due - TODAY).days <= 30 else "current"


def _rank(d: dict[str, Any]) -> tuple[Any, ...]:
    due = _expected_due(d["latest"])
    order = ["never_audited", "overdue", "due_soon", "current"]
    return (
        order.index(_expected_status(due)),
        due or date.min,
        d["organisation"],
        d["site"],
        d["station"],
        d["model"],
    )


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"organisation": "Beta Works"},
        {"site": "South"},
        {"task": "classification"},  # an audit without a task counts as classification
        {"task": "detection", "verdict": "REJECT"},
        {"rubric": "rubric-b", "site": "North"},
        {"q": "LINE 2"},
        {"q": "光学"},
        {"q": "det-"},
        {"q": "%"},  # a LIKE wildcard is a plain character
    ],
)
def test_fleet_filters_and_search_match_a_python_expectation(
    registry: Location, filters: dict[str, str]
) -> None:
    from auditkit.registry import views

    with opened(registry) as s:
        expected = _hand_registry(s)
        view = views.fleet(s, EVERYTHING, views.FleetFilters(**filters, page_size=500), today=TODAY)

    def keep(d: dict[str, Any]) -> bool:
        latest = d["latest"]
        if filters.get("organisation") and d["organisation"] != filters["organisation"]:
            return False
        if filters.get("site") and d["site"] != filters["site"]:
            return False
        task = None if latest is None else (latest["task"] or "classification")
        if filters.get("task") and task != filters["task"]:
            return False
        if filters.get("verdict") and (latest is None or latest["verdict"] != filters["verdict"]):
            return False
        if filters.get("rubric") and (latest is None or latest["rubric_id"] != filters["rubric"]):
            return False
        if filters.get("q"):
            words = (d["organisation"], d["site"], d["station"], d["model"])
            if not any(filters["q"].lower() in w.lower() for w in words):
                return False
        return True

    wanted = sorted((d for d in expected if keep(d)), key=_rank)
    assert [r.deployment_id for r in view.rows] == [d["deployment_id"] for d in wanted]
    assert view.total == len(wanted)
    for row, d in zip(view.rows, wanted, strict=True):
        assert row.due == _expected_due(d["latest"])
        assert row.status == _expected_status(row.due)
        assert row.verdict == (d["latest"] or {}).get("verdict")
    counted = {
        s: sum(1 for d in wanted if _expected_status(_expected_due(d["latest"])) == s)
        for s in views.STATUSES
    }
    assert view.by_status == counted
    assert set(view.options.organisations) == {"Acme Castings", "Beta Works", "Gamma 光学"}
    assert set(view.options.tasks) <= {"classification", "detection"}


def test_fleet_pages_cover_every_deployment_once(registry: Location) -> None:
    from auditkit.registry import pages, views

    with opened(registry) as s:
        expected = _hand_registry(s, seed=3)
        seen: list[int] = []
        page_count = None
        for number in range(1, 20):
            view = views.fleet(
                s, EVERYTHING, views.FleetFilters(page=number, page_size=5), today=TODAY
            )
            page_count = view.pages
            if number > view.pages:
                assert view.rows == []
                break
            assert len(view.rows) == (
                5 if number < view.pages else len(expected) - 5 * (number - 1)
            )
            seen += [r.deployment_id for r in view.rows]
            if number == 2:
                html = parse(pages.render_fleet(view, chrome()))
                current = html.find("nav", **{"class": "pages"}).find_all(
                    "span", **{"aria-current": "page"}
                )
                assert [c.text() for c in current] == ["2"]
    assert page_count == -(-len(expected) // 5)
    assert seen == [d["deployment_id"] for d in sorted(expected, key=_rank)]


def test_due_dates_and_status_from_the_policies_by_hand(registry: Location) -> None:
    """Re-audit periods: rubric-short 30 days, the registry default 180 days; TODAY is
    2027-03-01. Every expected date below is worked out by hand."""
    from auditkit.registry import views
    from auditkit.registry.models import Policy

    cases = [
        # (signed_at, rubric, expected due, expected status)
        ("2027-01-29T23:59:59Z", "rubric-short", date(2027, 2, 28), "overdue"),  # due yesterday
        ("2027-01-30T00:00:00Z", "rubric-short", date(2027, 3, 1), "due_soon"),  # due today
        ("2027-02-27T08:00:00Z", "rubric-short", date(2027, 3, 29), "due_soon"),  # 28 days left
        ("2026-10-02T12:00:00Z", None, date(2027, 3, 31), "due_soon"),  # 180 days: 30 left
        ("2026-10-03T12:00:00Z", "rubric-other", date(2027, 4, 1), "current"),  # 31 left
        ("2026-09-01T00:00:00Z", "rubric-other", date(2027, 2, 28), "overdue"),
    ]
    with opened(registry) as s:
        s.add_all(
            [
                Policy(rubric_id="rubric-short", reaudit_days=30),
                Policy(rubric_id=None, reaudit_days=180),
            ]
        )
        ids = []
        for i, (signed, rubric, _due, _status) in enumerate(cases):
            dep = add_deployment(s, "Acme", "Linz", f"L{i}", "m")
            add_audit(s, dep, signed_at="2020-01-01T00:00:00Z", rubric_id=rubric)  # older
            add_audit(s, dep, signed_at=signed, rubric_id=rubric)
            ids.append(dep)
        view = views.fleet(s, EVERYTHING, views.FleetFilters(), today=TODAY)
        by_id = {r.deployment_id: r for r in view.rows}
        for dep, (_signed, _rubric, due, status) in zip(ids, cases, strict=True):
            assert (by_id[dep].due, by_id[dep].status) == (due, status), _signed
            detail = views.deployment(s, EVERYTHING, dep, today=TODAY)
            assert detail is not None and (detail.due, detail.status) == (due, status)
    assert [r.status for r in view.rows] == ["overdue"] * 2 + ["due_soon"] * 3 + ["current"]
    # overdue first, the longest overdue first
    assert [r.due for r in view.rows[:2]] == [date(2027, 2, 28)] * 2


# --------------------------------------------------------------------------- scope


def test_an_organisations_scope_never_shows_another_organisation(
    registry: Location, reports: Reports
) -> None:
    from auditkit.registry import pages, views

    submit_fixture_reports(registry, reports)
    with opened(registry) as s:
        other = add_deployment(s, "Beta Works", "Plant Graz", "Line 1", "beta-model")
        other_audit = add_audit(s, other, signed_at="2027-01-05T00:00:00Z")
    [acme] = rows(registry, "SELECT id FROM organisation WHERE name = 'Acme Castings'")
    [beta] = rows(registry, "SELECT id FROM organisation WHERE name = 'Beta Works'")
    acme_audits = [
        r["id"] for r in rows(registry, "SELECT id FROM audit WHERE report_id NOT LIKE 'AR-HAND-%'")
    ]
    assert len(acme_audits) == 2
    [acme_dep] = rows(registry, f"SELECT id FROM deployment WHERE organisation_id = {acme['id']}")
    with opened(registry) as s:
        beta_only = Scope(frozenset({beta["id"]}))
        fleet = views.fleet(s, beta_only, views.FleetFilters(), today=TODAY)
        assert [r.deployment_id for r in fleet.rows] == [other] and fleet.total == 1
        assert fleet.options.organisations == ["Beta Works"]
        assert fleet.options.sites == ["Plant Graz"]
        for q in ("Acme", "Linz", reports.model):
            assert views.fleet(s, beta_only, views.FleetFilters(q=q), today=TODAY).total == 0
        assert views.deployment(s, beta_only, acme_dep["id"], today=TODAY) is None
        for audit_id in acme_audits:
            assert views.audit(s, beta_only, audit_id) is None
            assert views.report_file(s, beta_only, audit_id) is None
        assert views.audit(s, beta_only, other_audit) is not None
        assert views.deployment(s, beta_only, 10**6, today=TODAY) is None  # missing: the same
        nothing = Scope(frozenset())
        assert views.fleet(s, nothing, views.FleetFilters(), today=TODAY).total == 0
        assert views.audit(s, nothing, other_audit) is None
        html = pages.render_fleet(fleet, chrome())
        exported = json.dumps(views.as_json(fleet)) + repr(views.as_rows(fleet))
        for word in ("Acme", "Linz", reports.model, "Line 3"):
            assert word not in html and word not in exported
        # and the regulator sees both
        assert views.fleet(s, EVERYTHING, views.FleetFilters(), today=TODAY).total == 2


# --------------------------------------------------------------------------- deployment


def test_deployment_page_timeline_and_metrics_from_the_signed_evidence(
    registry: Location, reports: Reports
) -> None:
    from statsmodels.stats.proportion import confint_proportions_2indep

    from auditkit.registry import pages, views

    submit_fixture_reports(registry, reports)
    [dep] = rows(registry, "SELECT id FROM deployment")
    audits = rows(registry, "SELECT * FROM audit ORDER BY signed_at, id")
    with opened(registry) as s:
        view = views.deployment(s, EVERYTHING, dep["id"], today=TODAY)
    assert view is not None
    assert [e.report_id for e in view.audits] == [a["report_id"] for a in audits]
    assert "later" in view.audits[1].run_id
    assert view.audits[0].countersignatures == 1 and view.audits[1].countersignatures == 0
    assert view.audits[0].regression is None
    second = view.audits[1].regression
    assert second is not None and not second.flagged
    later = json.loads((reports.later_run / "verdicts.json").read_text())
    [escape] = [c for c in later["criteria"] if c["id"] == "escape-overall"]
    low, high = confint_proportions_2indep(
        escape["k"], escape["n"], escape["k"], escape["n"], method="newcomb", compare="diff"
    )
    [change] = [c for c in second.changes if c.metric == "escape_rate"]
    assert (change.low, change.high) == pytest.approx((low, high), abs=1e-12)

    metrics = [m.metric for m in view.metrics]
    assert metrics[:2] == ["escape_rate", "overkill_rate"] and "latency_p99_ms" in metrics

    html = pages.render_deployment(view, chrome())
    page = parse(html)
    timeline = body_rows(page.find("table", id="timeline"))
    assert [tr.attrs["data-audit-id"] for tr in timeline] == [str(a["id"]) for a in audits]
    assert [tr.attrs["data-regression"] for tr in timeline] == ["first", "no"]
    assert {a.attrs["href"] for tr in timeline for a in tr.find_all("a")} == {
        f"/audits/{a['id']}" for a in audits
    }
    svg = page.find("figure", id="timeline-chart").find("svg")
    assert len(svg.find_all("circle")) == 2
    text = pdf_text(reports.later)
    for run in (reports.run, reports.later_run):
        verdicts = json.loads((run / "verdicts.json").read_text())
        for crit in verdicts["criteria"]:
            if crit["metric"] not in ("escape_rate", "overkill_rate") or crit.get("slice_by"):
                continue
            table = page.find("table", **{"data-metric": crit["metric"]})
            [row] = [
                tr
                for tr in body_rows(table)
                if tr.find("a").text()
                == next(a["report_id"] for a in audits if a["run_id"] == verdicts["run_id"])
            ]
            cells = row.cells()
            assert pct(crit["value"]) in cells
            assert f"{crit['k']}/{crit['n']}" in cells
            assert pct(crit["value"]) in text  # the signed PDF prints the same figure
            point = next(
                p
                for m in view.metrics
                if m.metric == crit["metric"]
                for p in m.points
                if p.report_id == row.find("a").text()
            )
            assert (point.value, point.k, point.n) == (crit["value"], crit["k"], crit["n"])


def test_regression_flag_on_the_deployment_page(registry: Location) -> None:
    """Three audits: the second's escape rate rises significantly (4/1000 → 30/1000); the
    third goes from ACCEPT to REJECT with the same rates. Expected intervals: statsmodels."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    from auditkit.registry import pages, views

    with opened(registry) as s:
        dep = add_deployment(s, "Acme", "Linz", "L3", "m")

        def figs(k: int) -> tuple[Figure, ...]:
            return (
                Figure("escape_rate", k / 1000, k=k, n=1000, low=0.0, high=(k + 5) / 1000),
                Figure("overkill_rate", 0.02, k=20, n=1000),
            )

        add_audit(s, dep, signed_at="2026-01-01T00:00:00Z", figures=figs(4), version="1.0")
        add_audit(s, dep, signed_at="2026-06-01T00:00:00Z", figures=figs(30), version="1.1")
        add_audit(
            s,
            dep,
            signed_at="2026-09-01T00:00:00Z",
            figures=figs(30),
            verdict="REJECT",
            version="1.1",
        )
        view = views.deployment(s, EVERYTHING, dep, today=TODAY)
    assert view is not None
    flags = [None if e.regression is None else e.regression.flagged for e in view.audits]
    assert flags == [None, True, True]  # rates up (ACCEPT → ACCEPT); ACCEPT → REJECT
    low, high = confint_proportions_2indep(30, 1000, 4, 1000, method="newcomb", compare="diff")
    [rise] = [c for c in view.audits[1].regression.changes if c.metric == "escape_rate"]
    assert (rise.low, rise.high) == pytest.approx((low, high), abs=1e-12) and low > 0
    page = parse(pages.render_deployment(view, chrome()))
    timeline = body_rows(page.find("table", id="timeline"))
    assert [tr.attrs["data-regression"] for tr in timeline] == ["first", "yes", "yes"]
    reasons = [li.text() for li in timeline[1].find_all("li", **{"class": "reason"})]
    assert reasons == [
        f"escape rate rose from 4/1000 to 30/1000: difference {0.026 * 100:.2f} pp, 95 % "
        f"interval ({low * 100:.2f} pp, {high * 100:.2f} pp) excludes 0"
    ]
    third = [li.text() for li in timeline[2].find_all("li", **{"class": "reason"})]
    assert third == ["verdict ACCEPT → REJECT"]
    # the ring of a flagged audit in the timeline chart
    rings = [
        c
        for c in page.find("figure", id="timeline-chart").find_all("circle")
        if c.attrs.get("fill") == "none"
    ]
    assert len(rings) == 2
    zh = parse(pages.render_deployment(view, chrome("zh")))
    zh_reasons = [li.text() for li in body_rows(zh.find("table", id="timeline"))[2].find_all("li")]
    assert zh_reasons == ["结论由接受变为拒收"]
    # metric table across model versions: 1.0, 1.1, 1.1
    table = page.find("table", **{"data-metric": "escape_rate"})
    assert [tr.cells()[2] for tr in body_rows(table)] == ["1.0", "1.1", "1.1"]
    assert [tr.cells()[4] for tr in body_rows(table)] == ["0.40 %", "3.00 %", "3.00 %"]
    assert [tr.cells()[5] for tr in body_rows(table)] == [
        "[0.00 %, 0.90 %]",
        "[0.00 %, 3.50 %]",
        "[0.00 %, 3.50 %]",
    ]


# --------------------------------------------------------------------------- audit


def test_audit_page_criteria_signatures_files_and_evidence(
    registry: Location, reports: Reports
) -> None:
    from pypdf import PdfReader

    from auditkit.registry import pages, views

    submit_fixture_reports(registry, reports)
    [audit_row] = rows(registry, "SELECT * FROM audit WHERE run_id NOT LIKE '%-later'")
    stored = rows(
        registry, f"SELECT * FROM criterion WHERE audit_id = {audit_row['id']} ORDER BY position"
    )
    with opened(registry) as s:
        view = views.audit(s, EVERYTHING, audit_row["id"])
        original = views.report_file(s, EVERYTHING, audit_row["id"])
    assert view is not None and original is not None
    assert original.pdf_sha256 == hashlib.sha256(reports.signed.read_bytes()).hexdigest()
    page = parse(pages.render_audit(view, chrome()))
    assert (
        page.find("a", id="download-pdf").attrs["href"] == f"/audits/{audit_row['id']}/report.pdf"
    )
    criteria = body_rows(page.find("table", id="criteria"))
    assert len(criteria) == len(stored)
    text = pdf_text(reports.signed)
    for tr, row in zip(criteria, stored, strict=True):
        cells = tr.cells()
        assert cells[0] == row["criterion_id"]
        if row["metric"] in ("escape_rate", "overkill_rate") and row["value"] is not None:
            assert cells[4] == pct(row["value"])
            assert cells[4] in text  # the figure the signed PDF prints
            if row["low"] is not None:
                assert cells[6] == f"[{pct(row['low'])}, {pct(row['high'])}]"
        if row["k"] is not None:
            assert cells[7] == f"{row['k']}/{row['n']}"
        assert tr.attrs["class"] == ("child" if row["parent"] else "criterion")
    signers = [tr.cells()[1] for tr in body_rows(page.find("table", id="signatures"))]
    assert signers == ["registry test laboratory", "registry regulator"]
    assert [sig.role for sig in view.signatures] == ["author", "countersignature"]
    assert all(not sig.development_key for sig in view.signatures)
    files = body_rows(page.find("table", id="report-files"))
    assert [tr.attrs["data-sha256"] for tr in files] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (reports.signed, reports.countersigned)
    ]
    # evidence: the attachments of the signed PDF, hashed here with pypdf's reader
    attached = {
        name: hashlib.sha256(data[0]).hexdigest()
        for name, data in PdfReader(reports.signed).attachments.items()
    }
    evidence = {
        tr.attrs["data-name"]: tr.cells()[1] for tr in body_rows(page.find("table", id="evidence"))
    }
    assert evidence and all(attached[name] == sha for name, sha in evidence.items())
    assert set(evidence) == set(
        json.loads(json.dumps(audit_row["evidence"]))
        if isinstance(audit_row["evidence"], dict)
        else json.loads(audit_row["evidence"])
    )
    hrefs = [a.attrs["href"] for a in page.find("table", id="evidence").find_all("a")]
    assert f"/audits/{audit_row['id']}/evidence/verdicts.json" in hrefs


def test_chinese_pages_show_the_same_figures_and_no_english(
    registry: Location, reports: Reports
) -> None:
    from auditkit.registry import pages, views

    submit_fixture_reports(registry, reports)
    [audit_row] = rows(registry, "SELECT id, deployment_id FROM audit WHERE run_id LIKE '%-later'")
    with opened(registry) as s:
        audit_view = views.audit(s, EVERYTHING, audit_row["id"])
        dep_view = views.deployment(s, EVERYTHING, audit_row["deployment_id"], today=TODAY)
        fleet_view = views.fleet(s, EVERYTHING, views.FleetFilters(), today=TODAY)
    assert audit_view is not None and dep_view is not None

    def figures(html: str, table: str) -> list[list[str]]:
        page = parse(html)
        return [
            [
                td.text()
                for td in tr.find_all("td")
                if td.attrs.get("class", "").split()[-1:]
                in (["value"], ["bound"], ["interval"], ["kn"])
            ]
            for tr in body_rows(page.find("table", id=table))
        ]

    en = pages.render_audit(audit_view, chrome("en"))
    zh = pages.render_audit(audit_view, chrome("zh"))
    na = {"en": "n/a", "zh": "不适用"}  # the report's words for "not applicable"

    def same(lang: str, html: str) -> list[list[str]]:
        return [[c.replace(na[lang], "—") for c in row] for row in figures(html, "criteria")]

    assert same("en", en) == same("zh", zh) and figures(en, "criteria")[0]
    assert parse(zh).find("html").attrs["lang"] == "zh-CN"
    en_strings = pages.strings("en")["registry"]
    zh_strings = pages.strings("zh")["registry"]

    def leaves(d: Any, prefix: str = "") -> dict[str, str]:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(leaves(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = str(v)
        return out

    import yaml

    from auditkit.registry.pages import TEMPLATES

    zh_file = yaml.safe_load((TEMPLATES / "strings.zh.yaml").read_text(encoding="utf-8"))
    en_file = yaml.safe_load((TEMPLATES / "strings.yaml").read_text(encoding="utf-8"))
    assert set(leaves(zh_file["zh"])) == set(leaves(en_file["en"]))  # nothing falls back
    same = {k for k in leaves(en_strings) if leaves(en_strings)[k] == leaves(zh_strings)[k]}
    assert same <= {"language_names.en", "language_names.zh", "flag_short", "col.kn"}
    data = [sig.signer or "" for sig in audit_view.signatures] + [
        audit_view.organisation,
        audit_view.site,
        audit_view.station,
        audit_view.model,
    ]
    for page_html in (
        zh,
        pages.render_deployment(dep_view, chrome("zh")),
        pages.render_fleet(fleet_view, chrome("zh")),
    ):
        html = parse(page_html).text()  # the words shown, not attribute values
        for value in data:  # names from the evidence are shown as they are
            html = html.replace(value, "")
        for key, words in leaves(en_strings).items():
            if key in same or len(words) < 4:
                continue
            assert words.split("{")[0] not in html or not words.split("{")[0].strip(), (key, words)
        for english in ("Fleet", "Verdict", "Log out", "REGRESSION", "never audited", "Signed"):
            assert english not in html


# --------------------------------------------------------------------------- exports


def _typed(cell_text: str, value: Any) -> bool:
    """A CSV cell holds the JSON value: empty for null, true/false, the same number."""
    if value is None:
        return cell_text == ""
    if isinstance(value, bool):
        return cell_text == ("true" if value else "false")
    if isinstance(value, int):
        return int(cell_text) == value
    if isinstance(value, float):
        return float(cell_text) == value
    if isinstance(value, dict | list):
        return json.loads(cell_text) == value
    return cell_text == value


def test_csv_and_json_exports_hold_the_same_rows(registry: Location, reports: Reports) -> None:
    from auditkit.registry import views

    submit_fixture_reports(registry, reports)
    [audit_row] = rows(
        registry, "SELECT id, deployment_id FROM audit WHERE run_id NOT LIKE '%-later'"
    )
    with opened(registry) as s:
        add_deployment(s, "Beta", "B", "B1", "never")
        fleet = views.fleet(s, EVERYTHING, views.FleetFilters(), today=TODAY)
        dep = views.deployment(s, EVERYTHING, audit_row["deployment_id"], today=TODAY)
        audit = views.audit(s, EVERYTHING, audit_row["id"])
    for view, key, count in (
        (fleet, "deployments", 2),
        (dep, "audits", 2),
        (audit, "criteria", None),
    ):
        header, body = views.as_rows(view)
        buffer = io.StringIO()
        csv.writer(buffer).writerows([header, *body])
        parsed = list(csv.reader(io.StringIO(buffer.getvalue())))
        document = json.loads(json.dumps(views.as_json(view)))  # through real JSON text
        records = document[key]
        assert parsed[0] == header and len(parsed) - 1 == len(records)
        if count is not None:
            assert len(records) == count
        for line, record in zip(parsed[1:], records, strict=True):
            assert set(record) == set(header)
            for name, text in zip(header, line, strict=True):
                assert _typed(text, record[name]), (name, text, record[name])
    stored = rows(
        registry, f"SELECT * FROM criterion WHERE audit_id = {audit_row['id']} ORDER BY position"
    )
    exported = views.as_json(audit)["criteria"]
    assert [(c["criterion_id"], c["value"], c["k"], c["n"]) for c in exported] == [
        (r["criterion_id"], r["value"], r["k"], r["n"]) for r in stored
    ]
    dep_json = views.as_json(dep)
    verdicts = json.loads((reports.run / "verdicts.json").read_text())
    [escape] = [c for c in verdicts["criteria"] if c["id"] == "escape-overall"]
    assert dep_json["audits"][0]["escape_rate_value"] == escape["value"]
    assert dep_json["audits"][0]["escape_rate_k"] == escape["k"]


# --------------------------------------------------------------------------- pages are safe


def test_pages_have_no_script_no_inline_style_and_escape_names(registry: Location) -> None:
    from auditkit.registry import pages, views
    from auditkit.registry.pages import STATIC

    hostile = '<script>alert("x")</script>'
    with opened(registry) as s:
        dep = add_deployment(s, hostile, 'Site " onmouseover="x', "L1", "m<b>")
        audit_id = add_audit(
            s,
            dep,
            signed_at="2026-01-01T00:00:00Z",
            figures=(Figure("escape_rate", 0.01, k=1, n=100),),
        )
        html = [
            pages.render_fleet(
                views.fleet(s, EVERYTHING, views.FleetFilters(q="script"), today=TODAY), chrome()
            ),
            pages.render_deployment(views.deployment(s, EVERYTHING, dep, today=TODAY), chrome()),
            pages.render_audit(views.audit(s, EVERYTHING, audit_id), chrome("zh")),
            pages.render_login(chrome(), error=hostile, lang="en", csrf_token="x"),
            pages.render_error(500, hostile, "zh"),
        ]
    for text in html:
        page = parse(text)
        assert not page.find_all("script") and not page.find_all("style")
        for node in page.iter():
            assert "style" not in node.attrs, node.tag
            assert not any(k.startswith("on") for k in node.attrs), node.attrs
            for attr in ("href", "src", "action"):
                assert not node.attrs.get(attr, "").lower().startswith(("javascript:", "data:"))
        [sheet] = page.find_all("link", rel="stylesheet")
        assert sheet.attrs["href"] == "/static/registry.css"
    assert hostile not in "".join(html) and "&lt;script&gt;" in html[0]
    assert parse(html[0]).find("table", id="fleet").find("td").text()  # the row is there
    assert (STATIC / "registry.css").is_file()


def test_query_count_does_not_grow_with_the_registry(registry: Location) -> None:
    """No N+1: the fleet and deployment views issue the same number of statements for 2 and
    for 40 deployments, 1 and 12 audits each."""
    from auditkit.registry import views
    from auditkit.registry.db import open_registry, session

    def counted(deployments: int, audits: int) -> tuple[int, int]:
        engine = open_registry(registry)
        statements: list[str] = []
        try:
            with session(engine) as s:
                ids = []
                for i in range(deployments):
                    dep = add_deployment(s, f"Org {i % 5} {deployments}", "S", f"L{i}", "m")
                    for j in range(audits):
                        add_audit(
                            s,
                            dep,
                            signed_at=f"2026-{1 + j % 12:02d}-01T00:00:00Z",
                            figures=(
                                Figure("escape_rate", 0.01, k=1, n=100),
                                Figure("overkill_rate", 0.02, k=2, n=100),
                            ),
                        )
                    ids.append(dep)

                def listen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                    statements.append(statement)

                event.listen(engine, "before_cursor_execute", listen)
                views.fleet(s, EVERYTHING, views.FleetFilters(), today=TODAY)
                fleet_n = len(statements)
                statements.clear()
                views.deployment(s, EVERYTHING, ids[-1], today=TODAY)
                return fleet_n, len(statements)
        finally:
            engine.dispose()

    assert counted(2, 1) == counted(40, 12)
