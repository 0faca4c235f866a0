"""The supervisor's views on a large registry: ``views.fleet`` and ``views.deployment`` with
their pages rendered (``pages.render_fleet`` / ``render_deployment``), p50 and p95 latency.

The registry is filled with rows written straight to its tables (bulk inserts, not submitted
reports: ingest has its own benchmark), shaped like issue 15's goal: ``--orgs`` organisations
× ``--deployments-per-org`` deployments × ``--audits-per-deployment`` audits, each audit with
five criteria rows (overall escape and overkill rates with k/n and interval, two slices of the
escape rate, a latency), one signature and one report file.

```
.venv/bin/python benchmarks/registry_views.py                          # SQLite, 100,000 audits
.venv/bin/python benchmarks/registry_views.py --registry postgresql+psycopg://u@h:5432/db
```

Measured: the regulator's fleet (page 1 of everything, default 50 rows), the fleet with an
organisation filter, with a search, an organisation's own fleet (its Scope), and random
deployments' pages; each sample is the view's queries plus the page's rendering, in a fresh
session, after one warm-up call.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from auditkit.registry import pages, views
from auditkit.registry.db import open_registry, session, upgrade
from auditkit.registry.location import resolve
from auditkit.registry.models import (
    Audit,
    Criterion,
    Deployment,
    ModelVersion,
    Organisation,
    ReportFile,
    Signature,
    Site,
    Station,
)
from auditkit.registry.scope import EVERYTHING, Scope

TODAY = date(2027, 3, 1)
CHUNK = 5000


def fill(location: Any, orgs: int, per_org: int, per_dep: int, seed: int = 1) -> int:
    """Bulk-insert the registry described in the module doc; returns the number of audits."""
    rng = random.Random(seed)
    engine = open_registry(location)
    audits = 0
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(Organisation),
                [{"id": o + 1, "name": f"Org {o:04d}", "kind": "enterprise"} for o in range(orgs)],
            )
            conn.execute(
                insert(Site),
                [{"id": o + 1, "organisation_id": o + 1, "name": "Plant"} for o in range(orgs)],
            )
            deps, stations, versions = [], [], []
            for o in range(orgs):
                for d in range(per_org):
                    dep_id = o * per_org + d + 1
                    stations.append({"id": dep_id, "site_id": o + 1, "name": f"Line {d}"})
                    deps.append(
                        {
                            "id": dep_id,
                            "organisation_id": o + 1,
                            "site_id": o + 1,
                            "station_id": dep_id,
                            "model_name": f"model-{d % 3}",
                        }
                    )
                    versions += [
                        {
                            "id": dep_id * 2 - 1 + v,
                            "deployment_id": dep_id,
                            "model_sha256": f"{dep_id:032x}{v:032x}",
                            "version": f"1.{v}",
                        }
                        for v in range(2)
                    ]
            conn.execute(insert(Station), stations)
            conn.execute(insert(Deployment), deps)
            conn.execute(insert(ModelVersion), versions)
            batch: dict[str, list[dict[str, Any]]] = {"a": [], "c": [], "s": [], "f": []}

            def flush() -> None:
                for key, table in (
                    ("a", Audit),
                    ("c", Criterion),
                    ("s", Signature),
                    ("f", ReportFile),
                ):
                    if batch[key]:
                        conn.execute(insert(table), batch[key])
                        batch[key] = []

            criterion_id = 0
            for dep in deps:
                start = date(2023, 1, 1) + timedelta(days=rng.randint(0, 600))
                for i in range(per_dep):
                    audits += 1
                    day = start + timedelta(days=40 * i + rng.randint(0, 20))
                    sha = f"{audits:064x}"
                    batch["a"].append(
                        {
                            "id": audits,
                            "deployment_id": dep["id"],
                            "model_version_id": dep["id"] * 2 - 1 + (i * 2 // per_dep),
                            "report_id": f"AR-{audits}",
                            "run_id": f"run-{audits}",
                            "started_at": f"{day}T08:00:00Z",
                            "finished_at": f"{day}T08:05:00Z",
                            "signed_at": f"{day}T09:00:00Z",
                            "rubric_id": rng.choice(["rubric-a", "rubric-b"]),
                            "rubric_version": "1",
                            "rubric_sha256": "0" * 64,
                            "decision_rule": "guarded_acceptance",
                            "verdict": rng.choice(["ACCEPT", "ACCEPT", "CONDITIONAL", "REJECT"]),
                            "pdf_sha256": sha,
                            "evidence": {"verdicts.json": sha},
                            "submitted_at": f"{day}T10:00:00Z",
                            "task": rng.choice([None, "detection"]),
                        }
                    )
                    k, ko = rng.randint(0, 20), rng.randint(5, 40)
                    for position, (metric, parent, slc, kk, n) in enumerate(
                        [
                            ("escape_rate", None, {}, k, 1000),
                            ("overkill_rate", None, {}, ko, 1000),
                            ("escape_rate", "escape-by-line", {"line": "A"}, k // 2, 500),
                            ("escape_rate", "escape-by-line", {"line": "B"}, k - k // 2, 500),
                            ("latency_p99_ms", None, {}, None, 700),
                        ]
                    ):
                        criterion_id += 1
                        value = None if kk is None else kk / n
                        batch["c"].append(
                            {
                                "id": criterion_id,
                                "audit_id": audits,
                                "position": position,
                                "criterion_id": f"{metric}-{position}",
                                "parent": parent,
                                "severity": "blocking",
                                "metric": metric,
                                "statistic": "upper_bound",
                                "op": "<=",
                                "threshold": 0.03,
                                "outcome": "PASS",
                                "value": value if value is not None else 21.4,
                                "bound": None if value is None else value + 0.01,
                                "low": None if value is None else max(0.0, value - 0.01),
                                "high": None if value is None else value + 0.01,
                                "k": kk,
                                "n": n,
                                "slice": slc,
                            }
                        )
                    batch["s"].append(
                        {
                            "id": audits,
                            "audit_id": audits,
                            "position": 0,
                            "role": "author",
                            "field": "Signature1",
                            "signer": "laboratory",
                            "signing_time": f"{day}T09:00:00Z",
                            "timestamp": None,
                            "development_key": False,
                            "pdf_sha256": sha,
                        }
                    )
                    batch["f"].append(
                        {
                            "id": audits,
                            "audit_id": audits,
                            "pdf_sha256": sha,
                            "size": 400_000,
                            "signatures": 1,
                            "submitted_at": f"{day}T10:00:00Z",
                        }
                    )
                    if len(batch["c"]) >= CHUNK:
                        flush()
            flush()
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return audits


def timed(engine: Any, samples: int, work: Callable[[Any, int], str]) -> tuple[float, float]:
    """p50 and p95 in ms of ``work(session, i)`` over ``samples`` calls (one warm-up)."""
    with session(engine) as s:
        work(s, -1)
    times = []
    for i in range(samples):
        t0 = time.perf_counter()
        with session(engine) as s:
            html = work(s, i)
        times.append((time.perf_counter() - t0) * 1000)
        assert html.startswith("<!DOCTYPE html>")
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="a database URL (default: a new SQLite file)")
    parser.add_argument("--orgs", type=int, default=1000)
    parser.add_argument("--deployments-per-org", type=int, default=5)
    parser.add_argument("--audits-per-deployment", type=int, default=20)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="auditkit-registry-bench-"))
    location = resolve(args.registry or str(folder / "registry.sqlite"), folder / "blobs")
    upgrade(location)
    t0 = time.perf_counter()
    n = fill(location, args.orgs, args.deployments_per_org, args.audits_per_deployment)
    print(
        f"{location.url.split(':')[0]}: {n:,} audits, {args.orgs:,} organisations, "
        f"{args.orgs * args.deployments_per_org:,} deployments, filled in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    chrome = pages.Chrome("bench", "regulator", "token", "en")
    deployments = args.orgs * args.deployments_per_org
    rng = random.Random(2)
    picks = [rng.randint(1, deployments) for _ in range(args.samples + 1)]
    one_org = Scope(frozenset({7}))

    def fleet(filters: views.FleetFilters, scope: Scope = EVERYTHING) -> Callable[[Any, int], str]:
        return lambda s, _i: pages.render_fleet(views.fleet(s, scope, filters, today=TODAY), chrome)

    def deployment(s: Any, i: int) -> str:
        view = views.deployment(s, EVERYTHING, picks[i], today=TODAY)
        assert view is not None
        return pages.render_deployment(view, chrome)

    engine = open_registry(location)
    try:
        for label, work in (
            ("fleet, everything, page 1", fleet(views.FleetFilters())),
            ("fleet, everything, page 40", fleet(views.FleetFilters(page=40))),
            ("fleet, organisation filter", fleet(views.FleetFilters(organisation="Org 0500"))),
            ("fleet, search 'line 3'", fleet(views.FleetFilters(q="line 3"))),
            ("fleet, one organisation's scope", fleet(views.FleetFilters(), one_org)),
            ("deployment page", deployment),
        ):
            p50, p95 = timed(engine, args.samples, work)
            print(f"  {label:<34} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
