"""Report rendering: auditkit's render + sign against WeasyPrint alone on the same HTML.

* **auditkit**: ``render_report`` (view model, charts, Jinja2 in the sandbox, WeasyPrint
  PDF/A-3b with four attachments) followed by ``sign_pdf`` (PAdES certification signature on
  the cover's signature box, development key);
* **WeasyPrint alone**: ``weasyprint.HTML(string=html).write_pdf()`` on the exact HTML that
  auditkit produced (so the page count is the same): the floor any HTML-to-PDF report pays.

Both run in the same process, in interleaved rounds after one warm-up each; the script prints
the medians, the ratio (goal <= 1.5x) and seconds per page. Usage:

    python benchmarks/report.py [--run RUN_DIR] [--lang en|zh] [--rounds 5]

Without ``--run`` it uses the bundled fixture run (tests/fixtures/run_small).
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import weasyprint
from pypdf import PdfReader

from auditkit.report.keys import create_keys
from auditkit.report.render import SafeURLFetcher, render_html, render_report
from auditkit.report.sign import sign_pdf

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "run_small"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=FIXTURE, help="run directory")
    parser.add_argument("--lang", default="en")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        keys = create_keys(Path(tmp) / "keys")
        html = render_html(args.run, signatory="Benchmark", development_key=True, lang=args.lang)

        def ours() -> bytes:
            pdf = render_report(
                args.run, signatory="Benchmark", development_key=True, lang=args.lang
            )
            return sign_pdf(pdf, key_path=keys.key, cert_path=keys.cert, reason="benchmark")

        def weasyprint_alone() -> bytes:
            document = weasyprint.HTML(
                string=html, base_url=None, url_fetcher=SafeURLFetcher()
            ).write_pdf()
            assert isinstance(document, bytes)
            return document

        pages = {
            "auditkit": len(PdfReader(io.BytesIO(ours())).pages),  # warm-up
            "weasyprint": len(PdfReader(io.BytesIO(weasyprint_alone())).pages),
        }
        times: dict[str, list[float]] = {"auditkit": [], "weasyprint": []}
        for r in range(args.rounds):
            order = [("auditkit", ours), ("weasyprint", weasyprint_alone)]
            if r % 2:
                order.reverse()
            for name, fn in order:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)

    ours_s = statistics.median(times["auditkit"])
    peer_s = statistics.median(times["weasyprint"])
    n = pages["auditkit"]
    print(
        f"run: {args.run}  lang: {args.lang}  pages: {n} (WeasyPrint alone: {pages['weasyprint']})"
    )
    for name, values in times.items():
        print(
            f"{name:<11} median {statistics.median(values):6.2f} s "
            f"(min {min(values):.2f}, max {max(values):.2f}) "
            f"= {statistics.median(values) / n:.3f} s/page"
        )
    print(f"ratio auditkit render+sign / WeasyPrint alone: {ours_s / peer_s:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
