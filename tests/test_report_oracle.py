"""The report oracle (issue 13, Acceptance): render real reports of the bundled models and
check, from the PDF text alone, that the pages say what the embedded evidence says; that
``auditkit verify --recompute`` accepts every genuine report; and that it rejects tampered ones.

The cells: every bundled model × every shipped rubric that applies to it × en/zh ×
unsigned/signed/countersigned × with and without ``--baseline`` (steel-v2 against steel-v1).
A rubric applies to a model when its ``applicability.task`` is the card's task; a model no
shipped rubric is written for (the detector, the anomaly model: every shipped rubric says
``classification``) gets the default rubric, as ``auditkit audit`` gives it.

* Default suite: a representative subset (classifier demo en signed and zh unsigned, the
  baseline comparison en countersigned, the detector zh signed) and the tampering variants.
  Each replay, evaluation and rendering is done once per module and shared by the checks.
* Full matrix: ``test_matrix_cell``, marked ``slow`` and ``matrix``; it runs only when
  ``AUDITKIT_ORACLE_MATRIX=1`` (``.ci/run`` sets it), since it renders about 90 reports.

How the pages are read and compared: tests/report_oracle.py.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from auditkit.audit import DEFAULT_RUBRIC, run_evaluate, run_replay
from auditkit.cli import app
from auditkit.data.interface import LoadOptions
from auditkit.energy.interface import EnergyOptions
from auditkit.errors import AuditkitError
from auditkit.replay.pipeline import ReplaySettings
from auditkit.report.keys import create_keys
from tests import report_oracle as oracle
from tests.test_keys_sign_verify import (
    tamper_attachment_incremental,
    tamper_one_byte,
    tamper_page_incremental,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
SIGNINGS = ("unsigned", "signed", "countersigned")
LANGS = ("en", "zh")
SITE_PARAMS = {"industrial-aoi-acceptance": {"latency_budget_ms": 50.0}}


@dataclass(frozen=True)
class Model:
    stem: str
    data: Path
    metadata: Path | None = None

    @property
    def task(self) -> str:
        card = yaml.safe_load((SAMPLE / "models" / f"{self.stem}.card.yaml").read_text())
        return str(card["task"])


MODELS = {
    "v1": Model("steel-v1", SAMPLE / "steel" / "manifest.csv"),
    "v2": Model("steel-v2", SAMPLE / "steel" / "manifest.csv"),
    "det": Model(
        "steel-det",
        SAMPLE / "steel-coco" / "annotations.json",
        SAMPLE / "steel-coco" / "metadata.csv",
    ),
    "anomaly": Model(
        "steel-anomaly", SAMPLE / "steel-mvtec" / "steel", SAMPLE / "steel-mvtec" / "metadata.csv"
    ),
}
BASELINE_OF = {"v2": "v1"}  # candidate -> production model, replayed on the same images


def rubric_tasks(path: Path) -> list[str]:
    """The tasks a rubric file judges (``applicability.task``: one or a list)."""
    task = (yaml.safe_load(path.read_text()).get("applicability") or {}).get(
        "task", "classification"
    )
    return list(task) if isinstance(task, list) else [task]


def applicable_rubrics(model: Model) -> list[str]:
    rubrics = sorted((ROOT / "rubrics").glob("*.yaml"))
    names = [p.stem for p in rubrics if model.task in rubric_tasks(p)]
    return names or [DEFAULT_RUBRIC]


@dataclass(frozen=True)
class Cell:
    model: str
    rubric: str
    lang: str
    signing: str
    baseline: bool

    def __str__(self) -> str:
        base = "+baseline" if self.baseline else ""
        return f"{self.model}{base}-{self.rubric}-{self.lang}-{self.signing}"


def all_cells() -> list[Cell]:
    return [
        Cell(name, rubric, lang, signing, baseline)
        for name, model in MODELS.items()
        for rubric in applicable_rubrics(model)
        for baseline in ((False, True) if name in BASELINE_OF else (False,))
        for lang in LANGS
        for signing in SIGNINGS
    ]


DEMO = Cell("v1", DEFAULT_RUBRIC, "en", "signed", False)
SUBSET = [
    DEMO,
    Cell("v1", DEFAULT_RUBRIC, "zh", "unsigned", False),
    Cell("v2", DEFAULT_RUBRIC, "en", "countersigned", True),
    Cell("det", "industrial-aoi-detection", "zh", "signed", False),  # a detector's own rubric
]


# --------------------------------------------------------------------------- the lab


class Lab:
    """Replays, evaluations, keys and rendered reports, each made once and reused."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._replays: dict[str, Path] = {}
        self._runs: dict[tuple[str, str, bool], Path] = {}
        self._pdfs: dict[Cell, Path] = {}
        self.author = create_keys(base / "keys-author", common_name="oracle test laboratory")
        self.regulator = create_keys(base / "keys-regulator", common_name="oracle regulator")

    def replay(self, name: str) -> Path:
        if name not in self._replays:
            model = MODELS[name]
            out = self.base / "replays" / name
            run_replay(
                model.data,
                SAMPLE / "models" / f"{model.stem}.onnx",
                out,
                settings=ReplaySettings(scenario="both", single_stream_samples=300, batch_size=64),
                data_options=LoadOptions(metadata=model.metadata) if model.metadata else None,
                # the modelled figure `audit` gives on a machine without power counters, with
                # its energy criteria; no 15 s idle + window of a measuring meter
                energy=EnergyOptions(method="model"),
            )
            self._replays[name] = out
        return self._replays[name]

    def run(self, cell: Cell) -> Path:
        """The run directory of the cell's model, evaluated with its rubric (and baseline)."""
        key = (cell.model, cell.rubric, cell.baseline)
        if key not in self._runs:
            out = self.base / "runs" / f"{cell.model}-{cell.rubric}-{int(cell.baseline)}"
            shutil.copytree(self.replay(cell.model), out)
            baseline = self.replay(BASELINE_OF[cell.model]) if cell.baseline else None
            run_evaluate(out, cell.rubric, params=SITE_PARAMS.get(cell.rubric), baseline=baseline)
            self._runs[key] = out
        return self._runs[key]

    def pdf(self, cell: Cell) -> Path:
        if cell not in self._pdfs:
            self._pdfs[cell] = self._render(cell)
        return self._pdfs[cell]

    def _render(self, cell: Cell) -> Path:
        from auditkit.audit import run_report
        from auditkit.report.sign import countersign_pdf

        out = self.base / "pdf" / f"{cell}.pdf"
        if cell.signing == "countersigned":
            signed = self.pdf(Cell(cell.model, cell.rubric, cell.lang, "signed", cell.baseline))
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(
                countersign_pdf(
                    signed.read_bytes(),
                    key_path=self.regulator.key,
                    cert_path=self.regulator.cert,
                    reason="received",
                )
            )
            return out
        signed = cell.signing == "signed"
        run_report(
            self.run(cell),
            out=out,
            sign=signed,
            sign_key=self.author.key if signed else None,
            sign_cert=self.author.cert if signed else None,
            lang=cell.lang,
        )
        return out

    def trust(self) -> list[str]:
        return ["--trust", str(self.author.ca), "--trust", str(self.regulator.ca)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return Lab(tmp_path_factory.mktemp("oracle"))


def verify(lab: Lab, pdf: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["verify", str(pdf), *lab.trust(), "--recompute"])
    return result.exit_code, result.output


# --------------------------------------------------------------------------- the checks


def check_table(lab: Lab, cell: Cell) -> list[str]:
    run = lab.run(cell)
    return oracle.check_criteria_table(
        oracle.pdf_words(lab.pdf(cell)),
        oracle.verdicts_of(run),
        json.loads((run / "metrics.json").read_text()),
        oracle.Catalogue.load(cell.lang),
    )


def check_slices(lab: Lab, cell: Cell) -> list[str]:
    return oracle.check_slice_tables(
        oracle.pdf_layout_pages(lab.pdf(cell)),
        oracle.verdicts_of(lab.run(cell)),
        oracle.Catalogue.load(cell.lang),
    )


def check_page1(lab: Lab, cell: Cell) -> list[str]:
    return oracle.check_page1_verdict(
        oracle.pdf_layout_pages(lab.pdf(cell)),
        oracle.verdicts_of(lab.run(cell)),
        oracle.Catalogue.load(cell.lang),
    )


def check_dumps(lab: Lab, cell: Cell) -> list[str]:
    return oracle.check_no_dumps(
        oracle.pdf_layout_pages(lab.pdf(cell)),
        (lab.run(cell) / "rubric.yaml").read_text(encoding="utf-8"),
        oracle.Catalogue.load(cell.lang),
    )


def check_zero_escape(lab: Lab, cell: Cell) -> list[str]:
    return oracle.check_zero_escape(
        oracle.pdf_layout_pages(lab.pdf(cell)),
        json.loads((lab.run(cell) / "metrics.json").read_text()),
        oracle.Catalogue.load(cell.lang),
    )


def check_recompute(lab: Lab, cell: Cell) -> list[str]:
    """Signed: ``auditkit verify --recompute`` exits 0. Unsigned (nothing to verify): the
    evidence embedded in the PDF recomputes to its own verdicts.json."""
    pdf = lab.pdf(cell)
    if cell.signing == "unsigned":
        from pypdf import PdfReader

        from auditkit.report.recompute import recompute

        files = {name: data[0] for name, data in PdfReader(pdf).attachments.items()}
        _, problems = recompute(files)
        return [f"recompute of the embedded evidence: {p}" for p in problems]
    code, output = verify(lab, pdf)
    return [] if code == 0 else [f"verify --recompute exit {code}:\n{output}"]


CHECKS = {
    "criteria-table": check_table,
    "slice-tables": check_slices,
    "page1-verdict": check_page1,
    "no-dumps": check_dumps,
    "zero-escape": check_zero_escape,
    "recompute": check_recompute,
}


def assert_clean(cell: Cell, check: str, problems: list[str]) -> None:
    assert not problems, f"{cell} {check}: {len(problems)} problem(s)\n" + "\n".join(problems)


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("cell", SUBSET, ids=str)
def test_report_says_what_the_evidence_says(lab: Lab, cell: Cell, check: str) -> None:
    assert_clean(cell, check, CHECKS[check](lab, cell))


@pytest.mark.slow
@pytest.mark.matrix
@pytest.mark.parametrize("cell", all_cells(), ids=str)
def test_matrix_cell(lab: Lab, cell: Cell) -> None:
    problems = [f"[{name}] {p}" for name, check in CHECKS.items() for p in check(lab, cell)]
    assert_clean(cell, "all checks", problems)


def test_matrix_covers_every_model_rubric_language_and_signing() -> None:
    cells = all_cells()
    assert {c.model for c in cells} == set(MODELS)
    assert {(c.lang, c.signing) for c in cells} == {(lang, s) for lang in LANGS for s in SIGNINGS}
    shipped = {p.stem for p in (ROOT / "rubrics").glob("*.yaml")}
    # every shipped rubric is rendered with a model of its task; v1 with every classification one
    assert {c.rubric for c in cells} == shipped
    classification = {
        p.stem for p in (ROOT / "rubrics").glob("*.yaml") if "classification" in rubric_tasks(p)
    }
    assert {c.rubric for c in cells if c.model == "v1"} == classification
    assert {c.rubric for c in cells if c.model == "det"} == {"industrial-aoi-detection"}
    assert {c.rubric for c in cells if c.model == "anomaly"} == {"anomaly-inspection"}
    assert any(c.baseline for c in cells)
    assert set(SUBSET) <= set(cells)


# --------------------------------------------------------------------------- the oracle itself


def test_oracle_reads_figures_at_their_printed_precision() -> None:
    pct = oracle.parse_number("5.88 %")
    assert pct is not None and pct.decimals == 2
    assert oracle.agrees(pct, 15 / 255)  # 5.882... % prints as 5.88
    assert not oracle.agrees(pct, 0.0590)
    big = oracle.parse_number("1,612")
    assert big is not None and big.value == 1612
    thin = oracle.parse_number("2\u202f000")
    assert thin is not None and thin.value == 2000
    assert oracle.agrees(oracle.parse_number("1.2") or pct, 1.1917)  # ms, one decimal


def test_oracle_finds_the_deciding_slice_by_its_figures() -> None:
    rows = [
        {
            "slice": {"line": "L1"},
            "outcome": "PASS",
            "value": 0.03,
            "bound": 0.05,
            "k": 3,
            "n": 100,
        },
        {
            "slice": {"line": "L2"},
            "outcome": "FAIL",
            "value": 0.12,
            "bound": 0.08,
            "k": 12,
            "n": 100,
        },
    ]
    crit = {"outcome": "FAIL", "value": 0.12, "bound": 0.08, "k": 12, "n": 100, "slices": rows}
    assert oracle.deciding_slice(crit) == rows[1]
    assert oracle.deciding_slice({**crit, "slice": {"line": "L1"}}) == rows[0]


# --------------------------------------------------------------------------- tampering


def _base_verifies(lab: Lab) -> Path:
    """The untampered demo report, which must verify: else a tampered copy failing proves
    nothing about the tampering."""
    pdf = lab.pdf(DEMO)
    code, output = verify(lab, pdf)
    assert code == 0, f"the untampered demo report does not verify (exit {code}):\n{output}"
    return pdf


def _edit_verdicts(run: Path, how: str) -> None:
    verdicts = json.loads((run / "verdicts.json").read_text())
    if how == "verdict":  # the blatant forgery: every failure passes, the verdict is ACCEPT
        verdicts["verdict"], verdicts["exit_code"] = "ACCEPT", 0
        for crit in verdicts["criteria"]:
            if crit["outcome"] in ("FAIL", "INCONCLUSIVE"):
                crit["outcome"] = "PASS"
                for row in crit.get("slices") or []:
                    row["outcome"] = "PASS"
    else:  # the quiet one: the worst slice's figures halved, outcomes left alone
        for crit in verdicts["criteria"]:
            for row in crit.get("slices") or []:
                for key in ("value", "low", "high"):
                    if isinstance(row.get(key), float):
                        row[key] /= 2
    (run / "verdicts.json").write_text(json.dumps(verdicts, indent=2, sort_keys=True) + "\n")


def _tampered_copy(lab: Lab, name: str) -> Path:
    run = lab.base / "tampered" / name
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(lab.run(DEMO), run)
    shutil.rmtree(run / "dev-keys", ignore_errors=True)
    return run


def _relabelled_templates(lab: Lab) -> Path:
    """A copy of the shipped template whose catalogue calls every verdict ACCEPT."""
    folder = lab.base / "templates-relabelled"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(oracle.TEMPLATES, folder)
    strings = yaml.safe_load((folder / "strings.yaml").read_text(encoding="utf-8"))
    strings["en"]["verdict"] = dict.fromkeys(strings["en"]["verdict"], "ACCEPT")
    (folder / "strings.yaml").write_text(yaml.safe_dump(strings, allow_unicode=True), "utf-8")
    return folder


def _sign_directly(lab: Lab, run: Path, out: Path, template: Path | None = None) -> Path:
    """Render and sign with the library functions, past any refusal of ``auditkit report``."""
    from auditkit.report.render import render_report
    from auditkit.report.sign import sign_pdf

    pdf = render_report(
        run,
        signatory="oracle test laboratory",
        development_key=True,
        lang="en",
        template_dir=template,
    )
    out.write_bytes(
        sign_pdf(pdf, key_path=lab.author.key, cert_path=lab.author.cert, reason="tampered")
    )
    return out


@pytest.mark.parametrize(
    "variant",
    ["flipped-byte", "incremental-page-change", "replaced-attachment"],
)
def test_tampered_report_is_rejected(lab: Lab, variant: str) -> None:
    signed = _base_verifies(lab).read_bytes()
    tamper = {
        "flipped-byte": tamper_one_byte,
        "incremental-page-change": tamper_page_incremental,
        "replaced-attachment": tamper_attachment_incremental,
    }[variant]
    out = lab.base / f"tampered-{variant}.pdf"
    out.write_bytes(tamper(signed))
    code, output = verify(lab, out)
    assert code == 1, f"{variant}: verify --recompute exit {code}, expected 1:\n{output}"


def test_edited_verdicts_are_refused_or_rejected(lab: Lab) -> None:
    """``auditkit report`` over a hand-edited verdicts.json: refused (exit 5, no report), or
    the signed report fails ``verify --recompute``."""
    _base_verifies(lab)
    run = _tampered_copy(lab, "edited-verdicts")
    _edit_verdicts(run, "verdict")
    out = run / "report.pdf"
    keys = lab.author
    result = CliRunner().invoke(
        app,
        [
            "report",
            str(run),
            "--out",
            str(out),
            "--sign-key",
            str(keys.key),
            "--sign-cert",
            str(keys.cert),
        ],
    )
    # errors reach their exit code in cli.main, which CliRunner does not run: read it off the
    # exception as main would
    code = result.exit_code
    if isinstance(result.exception, AuditkitError):
        code = result.exception.exit_code
    if code != 0:
        assert code == 5, f"{result.output}{result.exception}"
        assert not out.exists()
        return
    code, output = verify(lab, out)
    assert code == 1, f"edited verdicts.json signed by `report`: verify exit {code}:\n{output}"


@pytest.mark.parametrize("edit", ["verdict", "slice-figures"])
def test_hand_edited_verdicts_signed_are_rejected(lab: Lab, edit: str) -> None:
    _base_verifies(lab)
    run = _tampered_copy(lab, f"hand-edited-{edit}")
    _edit_verdicts(run, edit)
    out = _sign_directly(lab, run, lab.base / f"hand-edited-{edit}.pdf")
    code, output = verify(lab, out)
    assert code == 1, (
        f"hand-edited verdicts ({edit}) signed: verify exit {code}, expected 1:\n{output}"
    )


def test_relabelled_template_strings_are_rejected(lab: Lab) -> None:
    """A template whose catalogue prints ACCEPT over a REJECT/HOLD verdicts.json."""
    _base_verifies(lab)
    run = _tampered_copy(lab, "relabelled")
    out = _sign_directly(lab, run, lab.base / "relabelled.pdf", template=_relabelled_templates(lab))
    verdicts = oracle.verdicts_of(run)
    assert verdicts["verdict"] != "ACCEPT"
    # the oracle itself sees the lie (against the shipped catalogue) ...
    assert oracle.check_page1_verdict(
        oracle.pdf_layout_pages(out), verdicts, oracle.Catalogue.load("en")
    )
    # ... and so must verify
    code, output = verify(lab, out)
    assert code == 1, f"relabelled template strings: verify exit {code}, expected 1:\n{output}"


def test_pdf_attachments_are_the_run_files(lab: Lab) -> None:
    """What the oracle compares against (the run directory) is what the PDF embeds."""
    from pypdf import PdfReader

    run = lab.run(DEMO)
    attached = PdfReader(io.BytesIO(lab.pdf(DEMO).read_bytes())).attachments
    for name in ("metrics.json", "verdicts.json", "run.json", "rubric.yaml"):
        assert attached[name][0] == (run / name).read_bytes(), name


def _row(*cells: tuple[str, float, float]) -> oracle.Row:
    """A criteria-table row from (text, x, y) words 10 points high, 5 points per character."""
    words = [oracle.Word(t, x, y, x + 5 * len(t), y + 10) for t, x, y in cells]
    return oracle.Row("escape-line-supplier", 4, words)


def test_oracle_names_the_slice_whose_interval_a_row_borrowed() -> None:
    """The bug of issue 13: S2's value, bound and k/n beside L1's interval."""
    s1 = {"slice": {"line": "L1"}, "outcome": "INCONCLUSIVE", "value": 0.0368, "bound": 0.0688}
    s2 = {"slice": {"supplier": "S2"}, "outcome": "INCONCLUSIVE", "value": 15 / 255}
    crit = {
        "id": "escape-line-supplier",
        "outcome": "INCONCLUSIVE",
        "value": 15 / 255,
        "bound": 0.0891,
        "k": 15,
        "n": 255,
        "slices": [
            {**s1, "k": 12, "n": 326, "low": 0.02137, "high": 0.05896},
            {**s2, "bound": 0.0891, "k": 15, "n": 255, "low": 0.03661, "high": 0.0891},
        ],
    }
    cat = oracle.Catalogue.load("en")
    row = _row(
        ("5.88", 350, 100), ("%", 375, 100), ("Bound:", 350, 112), ("8.91", 350, 124),
        ("%", 375, 124), ("2.14", 410, 100), ("%", 432, 100), ("–", 440, 100),
        ("5.90", 418, 112), ("%", 440, 112), ("15/255", 470, 100), ("INCONCLUSIVE", 510, 100),
    )  # fmt: skip
    problems = oracle.check_row(crit, row, {}, cat)
    assert len(problems) == 1, problems
    assert "slice supplier=S2" in problems[0] and "printed '2.14'" in problems[0]
    assert "that is slice line=L1's interval" in problems[0]
    # the same row with S2's own interval is clean
    fixed = _row(
        *[(w.text.replace("2.14", "3.66").replace("5.90", "8.91"), w.x0, w.y0) for w in row.words]
    )
    assert oracle.check_row(crit, fixed, {}, cat) == []


def test_oracle_reads_slice_rows_whose_labels_wrap() -> None:
    page = "\n".join(
        [
            "escape-line-lighting: Escape rate in every line × lighting cell      INCONCLUSIVE",
            " line × lighting                Value    Bound        k/n Outcome           Reason",
            " lighting = dim, line        9.52 % 17.48 % 10/105           INCONCLUSIVE   value",
            " = L1                                                                       0.9833",
            " lighting = nominal,         0.90 %      3.75 %     2/221    PASS           upper",
            " line = L1",
        ]
    )
    rows = [
        {"slice": {"lighting": "dim", "line": "L1"}, "outcome": "INCONCLUSIVE", "k": 10, "n": 105,
         "value": 10 / 105, "bound": 0.1748},
        {"slice": {"lighting": "nominal", "line": "L1"}, "outcome": "PASS", "k": 2, "n": 221,
         "value": 2 / 221, "bound": 0.0375},
    ]  # fmt: skip
    verdicts = {"criteria": [{"id": "escape-line-lighting", "slices": rows}]}
    cat = oracle.Catalogue.load("en")
    assert oracle.check_slice_tables([page], verdicts, cat) == []
    rows[1]["bound"], rows[0]["n"] = 0.0475, 106
    problems = oracle.check_slice_tables([page], verdicts, cat)
    assert len(problems) == 2, problems
    assert "slice lighting=dim, line=L1: k/n: expected 10/106, printed '10/105'" in problems[0]
    assert "slice lighting=nominal, line=L1: bound" in problems[1] and "'3.75'" in problems[1]
