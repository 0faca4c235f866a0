"""Rendering security: data and custom templates reach neither the file system nor the network.

Crafted values go into every kind of field the report prints (criterion title, slice labels
from metadata, model card, data-gap lines), including CSS ``url()`` and HTML ``<img>``/``<link>``
pointing at ``file:///etc/passwd`` and at a local HTTP server that counts its requests.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from auditkit.errors import InputError
from auditkit.report.render import EMBEDDED_FILES, SafeURLFetcher, render_html, render_report

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"
SIGNATORY = "Security test"
PASSWD = Path("/etc/passwd")


class RecordingFetcher(SafeURLFetcher):
    """The deny-by-default fetcher, recording every URL it is asked for."""

    def __init__(self) -> None:
        super().__init__(strict=True)
        self.asked: list[str] = []

    def fetch(self, url: str, headers: Any = None) -> Any:
        self.asked.append(url)
        return super().fetch(url, headers)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"body { background: red }")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def _payloads(base: str) -> list[str]:
    return [
        '<img src="file:///etc/passwd">',
        f'<img src="{base}/img.png">',
        '<link rel="attachment" href="file:///etc/passwd">',
        f'<link rel="stylesheet" href="{base}/evil.css">',
        "x</style><style>body { background: url(file:///etc/passwd) }</style>",
        f"url({base}/css-url.png)",
        '"><svg><image href="file:///etc/passwd"/></svg>',
    ]


@pytest.fixture(scope="module")
def crafted_run(tmp_path_factory: pytest.TempPathFactory, server: tuple[str, list[str]]) -> Path:
    base, _ = server
    payload = " ".join(_payloads(base))
    run_dir = tmp_path_factory.mktemp("crafted")
    shutil.copy(FIXTURE / "rubric.yaml", run_dir / "rubric.yaml")
    run = json.loads((FIXTURE / "run.json").read_text(encoding="utf-8"))
    run["model"]["card"]["vendor"] = payload
    run["model"]["card"]["name"] = "background: url(file:///etc/passwd)"
    run["dataset"]["labels"][payload] = 1
    metrics = json.loads((FIXTURE / "metrics.json").read_text(encoding="utf-8"))
    for entry in metrics["metrics"]:
        if entry["slice"].get("line") == "L1":
            entry["slice"]["line"] = '<img src="file:///etc/passwd">'
    verdicts = json.loads((FIXTURE / "verdicts.json").read_text(encoding="utf-8"))
    verdicts["criteria"][0]["title"] = payload
    verdicts["criteria"][0]["new_field_from_a_later_rubric"] = payload
    verdicts["data_gaps"].append(payload)
    for name, doc in (("run.json", run), ("metrics.json", metrics), ("verdicts.json", verdicts)):
        (run_dir / name).write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return run_dir


def _text(pdf: bytes, tmp: Path) -> str:
    path = tmp / "r.pdf"
    path.write_bytes(pdf)
    exe = shutil.which("pdftotext")
    assert exe is not None, "pdftotext not found: install poppler-utils"
    done = subprocess.run([exe, "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True)
    return done.stdout.decode("utf-8")


def test_crafted_metadata_leaves_no_trace(
    crafted_run: Path, server: tuple[str, list[str]], tmp_path: Path
) -> None:
    _, hits = server
    fetcher = RecordingFetcher()
    pdf = render_report(crafted_run, signatory=SIGNATORY, development_key=False, fetcher=fetcher)
    # the fetcher was only ever asked for our own data: URLs (charts, attachments)
    assert fetcher.asked and all(url.startswith("data:") for url in fetcher.asked)
    assert fetcher.blocked == []
    assert hits == []  # no connection reached the server
    reader = PdfReader(io.BytesIO(pdf))
    assert sorted(reader.attachments) == sorted(EMBEDDED_FILES)  # no passwd attachment
    text = _text(pdf, tmp_path)
    assert '<img src="file:///etc/passwd">' in text  # printed as literal text
    flat = "".join(text.split())
    for line in PASSWD.read_text().splitlines()[:3]:
        assert "".join(line.split()) not in flat
    assert "new_field_from_a_later_rubric" in text  # unknown criterion fields still show


def test_html_output_escapes_every_payload(crafted_run: Path) -> None:
    html = render_html(crafted_run, signatory=SIGNATORY, development_key=False)
    assert '<img src="file:' not in html and "<link rel=" not in html
    assert "<svg><image" not in html and "</style><style>" not in html
    assert "&lt;img src=&#34;file:///etc/passwd&#34;&gt;" in html


def _template_dir(tmp: Path, body: str, css: str | None = None) -> Path:
    folder = tmp / "tpl"
    folder.mkdir(exist_ok=True)
    (folder / "report.html.j2").write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>t</title>'
        "<style>{{ stylesheet }}</style></head><body>" + body + "</body></html>",
        encoding="utf-8",
    )
    if css is not None:
        (folder / "report.css").write_text(css, encoding="utf-8")
    return folder


def test_custom_template_renders_in_the_sandbox(tmp_path: Path) -> None:
    folder = _template_dir(tmp_path, "<h1>{{ t.verdict_heading }}: {{ verdict.label }}</h1>")
    pdf = render_report(FIXTURE, signatory=SIGNATORY, development_key=False, template_dir=folder)
    assert "Verdict: CONDITIONAL" in _text(pdf, tmp_path)


@pytest.mark.parametrize(
    ("body", "css", "message"),
    [
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", None, "sandbox"),
        ("{{ t.__class__.__init__.__globals__ }}", None, "sandbox"),
        ('<img src="file:///etc/passwd">', None, "external resource"),
        ('<link rel="attachment" href="file:///etc/passwd">', None, "external resource"),
        ("<p>x</p>", "body { background: url(file:///etc/passwd) }", "must not contain"),
        ("<p>x</p>", '@import "http://127.0.0.1:9/x.css";', "must not contain"),
    ],
)
def test_custom_template_cannot_escape(
    tmp_path: Path, body: str, css: str | None, message: str
) -> None:
    folder = _template_dir(tmp_path, body, css)
    fetcher = RecordingFetcher()
    with pytest.raises(InputError, match=message) as info:
        render_report(
            FIXTURE,
            signatory=SIGNATORY,
            development_key=False,
            template_dir=folder,
            fetcher=fetcher,
        )
    assert "\n" not in str(info.value)
    assert all(not url.startswith("data:") for url in fetcher.blocked)


def test_template_folder_without_template_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"has no report\.html\.j2"):
        render_html(FIXTURE, signatory=SIGNATORY, development_key=False, template_dir=tmp_path)
