"""The ``auditkit`` command: a thin layer over :mod:`auditkit.audit`.

Exit codes (contract, docs/cli.md): 0 ACCEPT / success, 1 REJECT or verification failed,
2 usage error, 3 HOLD, 4 CONDITIONAL, 5 input error, 70 internal error, 74 an output file could
not be written (disk full: the previous file is left intact).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

import typer

import auditkit
from auditkit.cli_data import (
    DataArg,
    FormatOpt,
    ImagesOpt,
    MetadataFromPathOpt,
    MetadataOpt,
    SplitOpt,
    data_app,
    load_options,
)
from auditkit.cli_model import model_app
from auditkit.cli_registry import registry_app
from auditkit.cli_serve import serve_cmd
from auditkit.errors import AuditkitError, ExitCode, InputError, VerificationError

app = typer.Typer(
    name="auditkit",
    help="Audit a visual-inspection model: replay labelled images through the deployed ONNX "
    "model, measure, judge against a standards rubric, and issue a signed PDF report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
keys_app = typer.Typer(help="Signing keys.", no_args_is_help=True)
sample_app = typer.Typer(help="Synthetic sample data.", no_args_is_help=True)
rubric_app = typer.Typer(help="Rubrics: list, show, validate, schema.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(sample_app, name="sample")
app.add_typer(rubric_app, name="rubric")
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(registry_app, name="registry")
app.command("serve")(serve_cmd)


def _say(message: str = "") -> None:
    typer.echo(message)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"auditkit {auditkit.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """auditkit: evidence a regulator can verify."""


# Options shared by several commands.
ReferenceOpt = Annotated[
    Path | None,
    typer.Option(
        "--reference-outputs",
        help="The vendor's own scores for some images (CSV/Parquet: sample_id or path, and "
        "score and/or score__<class>), compared with the replayed scores (runtime parity).",
    ),
]
ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="The deployed ONNX model file.")]
CardOpt = Annotated[
    Path | None,
    typer.Option(help="Model card YAML (default: <model stem>.card.yaml beside the model)."),
]
RubricOpt = Annotated[
    str,
    typer.Option(
        "--rubric",
        "-r",
        help="A shipped rubric's name (see `auditkit rubric list`) or a YAML file.",
    ),
]
SignKeyOpt = Annotated[
    Path | None,
    typer.Option(
        help="Signer's private key: PEM (with --sign-cert) or a PKCS#12 bundle (.p12/.pfx). "
        "Default: development keys."
    ),
]
SignCertOpt = Annotated[
    Path | None,
    typer.Option(help="Signer's certificate (PEM), issued by your CA (optional with PKCS#12)."),
]
PassphraseOpt = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="File whose first line is the key's passphrase. Otherwise the environment "
        "variable AUDITKIT_KEY_PASSPHRASE, else a prompt (never a command-line literal).",
    ),
]
AskPassphraseOpt = Annotated[
    bool,
    typer.Option(
        "--ask-passphrase",
        help="Prompt for the key's passphrase (also automatic on a terminal for an encrypted key).",
    ),
]
TsaOpt = Annotated[
    str | None,
    typer.Option("--tsa", help="RFC 3161 time-stamping server URL: adds a trusted signing time."),
]
LangOpt = Annotated[str, typer.Option(help="Report language: en or zh.")]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", help="Site parameter NAME=NUMBER for `threshold_ref: site.NAME`."),
]
PrevalenceOpt = Annotated[
    float | None,
    typer.Option(
        "--prevalence",
        help="Production prevalence of defective parts (e.g. 0.002) for escaped ppm; the same "
        "as --param prevalence=P.",
    ),
]
BaselineOpt = Annotated[
    Path | None,
    typer.Option(
        "--baseline",
        help="Run directory of the production model replayed on the same samples: enables the "
        "rubric's escape_rate_change / overkill_rate_change (non-inferiority) criteria and "
        "lists the changed decisions in verdicts.json. Different samples: exit 5.",
    ),
]
JunitOpt = Annotated[
    Path | None,
    typer.Option("--junit", help="Write JUnit XML: one testcase per criterion and slice."),
]
MarkdownOpt = Annotated[
    Path | None,
    typer.Option("--markdown", help="Write a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)."),
]
JsonOpt = Annotated[
    Path | None, typer.Option("--json", help="Write the verdicts as JSON (= verdicts.json).")
]
FailOnOpt = Annotated[
    str,
    typer.Option(
        "--fail-on",
        help="The least severe verdict that fails the gate (non-zero exit): conditional "
        "(default: anything but ACCEPT), hold (CONDITIONAL exits 0) or reject (only REJECT "
        "fails).",
    ),
]
BatchOpt = Annotated[int, typer.Option(min=1, help="Images per inference batch.")]
ThreadsOpt = Annotated[int, typer.Option(min=1, help="onnxruntime intra-op threads.")]
DecodeOpt = Annotated[int, typer.Option(min=1, help="Threads that decode images.")]
DecodeProcessesOpt = Annotated[
    int,
    typer.Option(
        min=0,
        help="Decode images in this many worker processes instead of threads (0: threads). "
        "Threads share one interpreter lock; processes let decoding use many cores.",
    ),
]
StreamsOpt = Annotated[
    int,
    typer.Option(
        min=1,
        help="Batches run through the model at once, each on its own thread (they share the "
        "session's --threads intra-op threads): with --threads 1, S streams use S cores.",
    ),
]
SingleOpt = Annotated[
    int,
    typer.Option(
        min=0,
        help="Images replayed one at a time for per-image latency with --scenario both "
        "(early-stopping p90 needs >= 64, p99 >= 662).",
    ),
]
SeedOpt = Annotated[int, typer.Option(help="Seed for choosing the single-stream images.")]
ScenarioOpt = Annotated[
    str,
    typer.Option(
        help="offline (batched throughput), single-stream (every image one at a time: latency) "
        "or both (offline, then --single-stream images one at a time; predictions must agree)."
    ),
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue the interrupted replay in --out (same model, data and options only).",
    ),
]
MaxErrorsOpt = Annotated[
    str | None,
    typer.Option(
        help="Stop (exit 5, resumable) once more than N images, or P% of them, failed "
        "(unreadable or error). Default: never stop."
    ),
]
ProgressOpt = Annotated[
    bool, typer.Option(help="Progress on standard error (a live line on a terminal).")
]
ProvidersOpt = Annotated[
    str,
    typer.Option(
        help="onnxruntime execution providers in order of preference, comma-separated: "
        "CPUExecutionProvider, CUDAExecutionProvider, TensorrtExecutionProvider, "
        "OpenVINOExecutionProvider (or cpu, cuda, tensorrt, openvino) when installed."
    ),
]
CheckpointOpt = Annotated[
    int,
    typer.Option(min=1, help="Write a checkpoint shard every N images (and at least every 30 s)."),
]
ExecutorOpt = Annotated[
    str,
    typer.Option(
        help="local (this process) or dask (offline batches on a Dask cluster: a local one, or "
        "--scheduler's; needs `pip install auditkit[dask]`, see docs/scale.md)."
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(help="With --executor dask: a running Dask scheduler, e.g. tcp://HOST:8786."),
]
WorkersOpt = Annotated[
    int,
    typer.Option(min=1, help="With --executor dask and no --scheduler: local worker processes."),
]
# Energy options (docs/energy.md)
EnergyOpt = Annotated[
    str,
    typer.Option(
        "--energy",
        help="auto (the best available of rapl, nvml, powerlog, model), rapl (CPU package and "
        "DRAM counters), nvml (NVIDIA GPU energy counter), powerlog (--power-log CSV of an "
        'external meter), model (declared or rated power; always labelled "modelled") or off.',
    ),
]
PowerLogOpt = Annotated[
    Path | None,
    typer.Option(
        "--power-log",
        help="CSV from an external power meter: columns timestamp (ISO 8601 or Unix seconds) "
        "and watts, covering the idle baseline and the replay.",
    ),
]
PowerLogOffsetOpt = Annotated[
    float | None,
    typer.Option(
        "--power-log-offset",
        help="Seconds to add to the power log's timestamps to get this machine's clock. "
        "Default: estimated by aligning the power rise with the replay's start.",
    ),
]
DeclaredWattsOpt = Annotated[
    float | None,
    typer.Option(help="Model: the machine draws this many watts while replaying (modelled)."),
]
RatedWattsOpt = Annotated[
    float | None,
    typer.Option(
        help="Model: rated watts x measured CPU utilisation (modelled). Default without "
        "--declared-watts: an assumed 10 W per logical CPU."
    ),
]
IdleSecondsOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        help="Idle baseline before the replay, seconds. Default: 5 for a measuring meter, "
        "0 for the model.",
    ),
]
EnergyWindowOpt = Annotated[
    float | None,
    typer.Option(
        "--energy-window-seconds",
        min=10.0,
        help="Minimum energy window; a shorter replay is repeated (extra passes, the first "
        "pass's predictions kept). Default: 10 for a measuring meter, none for the model.",
    ),
]
GridIntensityOpt = Annotated[
    float | None,
    typer.Option(help="Grid carbon intensity, gCO2e/kWh (default: world average, IEA 2019)."),
]
CountryOpt = Annotated[
    str | None,
    typer.Option(
        help="Grid carbon intensity of this country from the bundled table (EU-27 and UK, "
        "2020; ISO code such as DE or DEU)."
    ),
]
EmbodiedOpt = Annotated[
    float,
    typer.Option(
        "--embodied-g-per-1000",
        min=0.0,
        help="Embodied emissions M of the SCI formula, gCO2e per 1,000 inspections.",
    ),
]


def _passphrase(file: Path | None, ask: bool, key: Path | None) -> str | None:
    from auditkit.report.passphrase import resolve_passphrase

    return resolve_passphrase(file=file, ask=ask, key_path=key)


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


@dataclass(frozen=True)
class _ReportOptions:
    """What the report stage needs, checked (:func:`check`) before the stages before it."""

    sign: bool = True
    sign_key: Path | None = None
    sign_cert: Path | None = None
    passphrase_file: Path | None = None
    ask_passphrase: bool = False
    lang: str = "en"
    template: Path | None = None
    tsa: str | None = None

    def check(self, *outputs: Path | None) -> str | None:
        """Resolve the passphrase (a prompt comes now, not after the replay), check every
        signing and rendering option, print the warnings; return the passphrase."""
        from auditkit.report.preflight import check_report_options

        passphrase = (
            _passphrase(self.passphrase_file, self.ask_passphrase, self.sign_key)
            if self.sign
            else None
        )
        for warning in check_report_options(
            sign=self.sign,
            sign_key=self.sign_key,
            sign_cert=self.sign_cert,
            passphrase=passphrase,
            lang=self.lang,
            template_dir=self.template,
            tsa_url=self.tsa,
            outputs=outputs,
        ):
            _warn(warning)
        return passphrase


def _params(raw: list[str] | None, prevalence: float | None = None) -> dict[str, float]:
    params: dict[str, float] = {}
    for item in raw or []:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            params[name.strip()] = float(value)
        except ValueError:
            raise InputError(f"--param {item!r}: expected NAME=NUMBER") from None
    if prevalence is not None:
        params["prevalence"] = float(prevalence)
    if "prevalence" in params and not 0.0 < params["prevalence"] < 1.0:
        raise InputError(
            f"prevalence {params['prevalence']!r}: a share of defective parts in (0, 1)"
        )
    return params


@dataclass(frozen=True)
class _ReplayOptions:
    batch_size: int = 32
    threads: int = 1
    decode_threads: int = 1
    decode_processes: int = 0
    inference_streams: int = 1
    single_stream: int = 700
    seed: int = 0
    scenario: str = "both"
    resume: bool = False
    max_errors: str | None = None
    progress: bool = True
    providers: str = "CPUExecutionProvider"
    checkpoint_every: int = 4096
    executor: str = "local"
    scheduler: str | None = None
    workers: int = 2
    reference_outputs: Path | None = None
    data_format: str | None = None
    images: Path | None = None
    metadata: Path | None = None
    metadata_from_path: str | None = None
    split: str | None = None
    energy: str = "auto"
    power_log: Path | None = None
    power_log_offset: float | None = None
    declared_watts: float | None = None
    rated_watts: float | None = None
    idle_seconds: float | None = None
    energy_window_seconds: float | None = None
    grid_intensity: float | None = None
    country: str | None = None
    embodied_g_per_1000: float = 0.0

    @classmethod
    def from_command(cls, values: dict[str, Any]) -> _ReplayOptions:
        """The options from a command's parameters (``locals()``), which carry the same names:
        `audit` and `replay` share every replay option."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})

    def energy_options(self) -> Any:
        from auditkit.energy.interface import EnergyOptions

        return EnergyOptions(
            method=self.energy,
            power_log=self.power_log,
            power_log_offset_s=self.power_log_offset,
            declared_watts=self.declared_watts,
            rated_watts=self.rated_watts,
            idle_seconds=self.idle_seconds,
            window_seconds=self.energy_window_seconds,
            grid_intensity=self.grid_intensity,
            country=self.country,
            embodied_g_per_1000=self.embodied_g_per_1000,
        )


def _replay(data: Path, model: Path, out: Path, card: Path | None, opts: _ReplayOptions) -> None:
    from auditkit.audit import run_replay
    from auditkit.models.onnx_model import SessionSettings, parse_providers
    from auditkit.replay.checkpoint import ErrorLimit, ReplayInterrupted
    from auditkit.replay.progress import ProgressReporter
    from auditkit.run import RunDir

    settings = _replay_settings(opts)
    limit = ErrorLimit.parse(opts.max_errors)
    energy = _check_replay_options(opts)
    if out.is_dir():  # a link where a run file goes fails now, not after the replay
        RunDir(out).refuse_links()
    reporter = ProgressReporter() if opts.progress else None
    try:
        result = run_replay(
            data,
            model,
            out,
            card_path=card,
            settings=settings,
            session=SessionSettings(
                providers=parse_providers(opts.providers), intra_op_threads=opts.threads
            ),
            progress=reporter,
            resume=opts.resume,
            max_errors=limit,
            reference_outputs=opts.reference_outputs,
            data_options=load_options(
                opts.data_format, opts.images, opts.metadata, opts.metadata_from_path, opts.split
            ),
            energy=energy,
        )
    except (ReplayInterrupted, KeyboardInterrupt):  # also while loading, before the replay
        if reporter:
            reporter.close()
        typer.echo(str(ReplayInterrupted()), err=True)
        raise typer.Exit(ReplayInterrupted.exit_code) from None
    finally:
        if reporter:
            reporter.close()
    _print_replay(result)


def _replay_settings(opts: _ReplayOptions) -> Any:
    """The replay settings of the command line (their constructor checks the values)."""
    from auditkit.replay.pipeline import ReplaySettings

    return ReplaySettings(
        batch_size=opts.batch_size,
        decode_threads=opts.decode_threads,
        decode_processes=opts.decode_processes,
        inference_streams=opts.inference_streams,
        single_stream_samples=opts.single_stream,
        seed=opts.seed,
        scenario=opts.scenario,
        checkpoint_images=opts.checkpoint_every,
        executor=opts.executor,
        scheduler=opts.scheduler,
        workers=opts.workers,
    )


def _check_replay_options(opts: _ReplayOptions) -> Any:
    """Every replay option value, checked before anything is loaded (one line, exit 5); the
    energy options when they are valid."""
    from auditkit.energy.carbon import grid_intensity
    from auditkit.replay.checkpoint import ErrorLimit

    _replay_settings(opts)  # its own checks
    ErrorLimit.parse(opts.max_errors)
    if opts.reference_outputs is not None and not opts.reference_outputs.is_file():
        raise InputError(f"reference outputs not found: {opts.reference_outputs}")
    energy = opts.energy_options()
    if opts.energy != "off":
        grid_intensity(opts.grid_intensity, opts.country)
    return energy


def _print_replay(result: Any) -> None:
    tput = f"{result.throughput_ips:,.0f} images/s" if result.throughput_ips else "n/a"
    _say(
        f"replayed {result.n_images} images: {result.n_scored} scored, "
        f"{result.n_unreadable} unreadable, {result.n_error} failed; offline throughput {tput}"
    )
    _say(f"run directory: {result.run.path}")
    run = json.loads((result.run.path / "run.json").read_text(encoding="utf-8"))
    _print_energy(run.get("energy") or {})
    parity = run["replay"].get("runtime_parity")
    if parity:
        differences = parity["max_abs_difference"].items()
        diffs = ", ".join(f"{k} {v:.3g}" for k, v in differences if v is not None) or "n/a"
        n = parity["n_compared"]
        agree = "n/a" if parity["decisions_agree"] is None else f"{parity['decisions_agree']}/{n}"
        _say(
            f"runtime parity: {n} of {parity['n_reference']} reference images compared; "
            f"max |difference| {diffs}; decisions agree {agree}"
        )


def _print_energy(energy: dict[str, Any]) -> None:
    if energy.get("method") in (None, "off"):
        return
    if energy.get("not_measured_reason"):
        _say(f"energy NOT MEASURED ({energy['method']}): {energy['not_measured_reason']}")
        return
    if energy.get("j_per_image") is None:
        return
    window = energy["window"]
    carbon = energy.get("carbon") or {}
    scored = window.get("scored_images", window["images"])
    _say(
        f"energy ({energy['label'].upper()}, {energy['method']}, boundary {energy['boundary']}): "
        f"{energy['energy_j']:.3g} J over {window['seconds']:.1f} s, {window['images']} images "
        f"({scored} scored) in {window['passes']} pass(es); "
        f"{energy['j_per_image'] * 1000:.3g} mJ per scored image, "
        f"{energy['wh_per_1000_inspections']:.3g} Wh and "
        f"{carbon.get('gco2e_per_1000_inspections', float('nan')):.3g} gCO2e per 1,000 "
        f"inspections ({carbon.get('grid_intensity_g_per_kwh', float('nan')):g} g/kWh)"
    )


def _print_verdicts(verdicts: dict[str, Any]) -> None:
    for c in verdicts["criteria"]:
        # an undecided criterion that does not hold the verdict says so on its own line
        unheld = c["outcome"] == "SKIPPED" and c.get("requires")
        tail = " (conditional: does not hold the verdict)" if unheld else ""
        _say(f"  {c['outcome']:<12} {c['severity']:<8} {c['id']}: {c['reason']}{tail}")
    undecided = [u["id"] for u in verdicts.get("undecided") or []]
    if undecided:
        _say(f"  not decided: {', '.join(undecided)}")
    for gap in verdicts["data_gaps"]:
        _say(f"  data gap: {gap}")
    base = verdicts.get("baseline")
    if base:
        changed = base["changed_decisions"]
        kinds = ", ".join(f"{v} {k}" for k, v in sorted(changed["by_change"].items())) or "none"
        _say(f"  baseline {base['model']}: {changed['total']} decision(s) changed ({kinds})")
    _say(
        f"verdict: {verdicts['verdict']} "
        f"(rubric {verdicts['rubric']['id']} {verdicts['rubric']['version']}, "
        f"{verdicts['decision_rule'].replace('_', ' ')}, "
        f"{100 * verdicts['confidence_level']:.0f}% confidence)"
    )
    note = verdicts["rubric"].get("applicability_note")
    if note:
        _say(f"note: {' '.join(note.split())}")


@dataclass(frozen=True)
class _GateOptions:
    junit: Path | None = None
    markdown: Path | None = None
    json_file: Path | None = None
    fail_on: str = "conditional"
    baseline: Path | None = None

    def __post_init__(self) -> None:
        # checked before a long replay, not after it
        from auditkit.rubric.evaluate import FAIL_ON

        if self.fail_on not in FAIL_ON:
            raise InputError(f"--fail-on {self.fail_on!r}: expected one of {', '.join(FAIL_ON)}")
        if self.baseline is not None and not (self.baseline / "run.json").is_file():
            raise InputError(f"--baseline {self.baseline}: not a run directory (no run.json)")


def _gate(verdicts: dict[str, Any], opts: _GateOptions) -> int:
    """Write the CI files and return the gate's exit code."""
    from auditkit.report.ci import write_ci_outputs
    from auditkit.rubric.evaluate import gate_exit_code

    for path in write_ci_outputs(
        verdicts, junit=opts.junit, markdown=opts.markdown, json_file=opts.json_file
    ):
        _say(f"wrote {path}")
    code = gate_exit_code(verdicts["verdict"], opts.fail_on)
    if code != verdicts["exit_code"]:
        _say(f"gate: {verdicts['verdict']} passes with --fail-on {opts.fail_on} (exit {code})")
    return code


def _print_verify(path: Path, trust: list[Path] | None) -> bool:
    from auditkit.report.verify import format_result, verify_pdf

    # the whole check a regulator runs, recomputation and printed words included
    result = verify_pdf(path, trust=trust, recompute=True)
    _say(format_result(result))
    return result.ok


def _check_rubric_task(loaded: Any, model: Path, card: Path | None) -> None:
    """Refuse, before the replay, a rubric for another task than the model card's (exit 5)."""
    from auditkit.models.card import card_beside, load_card
    from auditkit.rubric.schema import check_task

    card_path = card or card_beside(model)
    if card_path.is_file():  # a missing card is refused by the replay with its own message
        check_task(loaded, load_card(card_path).task)


SignOpt = Annotated[
    bool, typer.Option(help="Sign the report (PAdES); --no-sign writes it unsigned.")
]
HtmlOpt = Annotated[
    Path | None,
    typer.Option("--html", help="Also write a self-contained HTML report to this file."),
]
TemplateOpt = Annotated[
    Path | None,
    typer.Option(
        "--template",
        help="Folder with your own report.html.j2 (and optional report.css, "
        "strings*.yaml), rendered in Jinja2's sandbox.",
    ),
]


@app.command()
def audit(
    data: DataArg,
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")],
    card: CardOpt = None,
    rubric: RubricOpt = "industrial-aoi-acceptance",
    sign_key: SignKeyOpt = None,
    sign_cert: SignCertOpt = None,
    passphrase_file: PassphraseOpt = None,
    ask_passphrase: AskPassphraseOpt = False,
    tsa: TsaOpt = None,
    lang: LangOpt = "en",
    sign: SignOpt = True,
    html: HtmlOpt = None,
    template: TemplateOpt = None,
    param: ParamOpt = None,
    prevalence: PrevalenceOpt = None,
    batch_size: BatchOpt = 32,
    threads: ThreadsOpt = 1,
    decode_threads: DecodeOpt = 1,
    decode_processes: DecodeProcessesOpt = 0,
    inference_streams: StreamsOpt = 1,
    single_stream: SingleOpt = 700,
    seed: SeedOpt = 0,
    scenario: ScenarioOpt = "both",
    resume: ResumeOpt = False,
    max_errors: MaxErrorsOpt = None,
    progress: ProgressOpt = True,
    providers: ProvidersOpt = "CPUExecutionProvider",
    checkpoint_every: CheckpointOpt = 4096,
    executor: ExecutorOpt = "local",
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = 2,
    reference_outputs: ReferenceOpt = None,
    data_format: FormatOpt = None,
    images: ImagesOpt = None,
    metadata: MetadataOpt = None,
    metadata_from_path: MetadataFromPathOpt = None,
    split: SplitOpt = None,
    energy: EnergyOpt = "auto",
    power_log: PowerLogOpt = None,
    power_log_offset: PowerLogOffsetOpt = None,
    declared_watts: DeclaredWattsOpt = None,
    rated_watts: RatedWattsOpt = None,
    idle_seconds: IdleSecondsOpt = None,
    energy_window_seconds: EnergyWindowOpt = None,
    grid_intensity: GridIntensityOpt = None,
    country: CountryOpt = None,
    embodied_g_per_1000: EmbodiedOpt = 0.0,
    verify: Annotated[bool, typer.Option(help="Verify the signed report after writing it.")] = True,
    baseline: BaselineOpt = None,
    junit: JunitOpt = None,
    markdown: MarkdownOpt = None,
    json_file: JsonOpt = None,
    fail_on: FailOnOpt = "conditional",
) -> None:
    """Replay, evaluate, report and sign in one go. Exit code = verdict (0/1/3/4).

    Every option is checked before the replay starts (exit 5): the rubric, --param, the key,
    passphrase and certificate, --tsa, --lang, and the run folder (in use, or links in it)."""
    from auditkit.audit import run_evaluate, run_report
    from auditkit.rubric.schema import load_rubric
    from auditkit.run import RunDir

    gate = _GateOptions(
        junit=junit, markdown=markdown, json_file=json_file, fail_on=fail_on, baseline=baseline
    )
    opts = _ReplayOptions.from_command(locals())
    _check_replay_options(opts)
    params = _params(param, prevalence)
    _check_rubric_task(load_rubric(rubric), model, card)
    run = RunDir(out)
    if run.path.is_dir():
        run.refuse_links()
    passphrase = _ReportOptions(
        sign=sign,
        sign_key=sign_key,
        sign_cert=sign_cert,
        passphrase_file=passphrase_file,
        ask_passphrase=ask_passphrase,
        lang=lang,
        template=template,
        tsa=tsa,
    ).check(RunDir(out).report, html)
    with contextlib.ExitStack() as held:
        if run.path.is_dir():  # refused at once when another command writes it
            held.enter_context(run.writing())
        _replay(data, model, out, card, opts)
        held.enter_context(run.writing())
        with _noting_stale_report(out, hint=False):
            verdicts = run_evaluate(out, rubric, params=params, baseline=baseline)
        _print_verdicts(verdicts)
        report = run_report(
            out,
            sign_key=sign_key,
            sign_cert=sign_cert,
            passphrase=passphrase,
            sign=sign,
            lang=lang,
            html=html,
            template_dir=template,
            tsa_url=tsa,
        )
        _say(f"report: {report.pdf}" + ("" if sign else " (unsigned)"))
        if html is not None:
            _say(f"html report: {html}")
        if report.keys is not None:
            _say(f"signed with DEVELOPMENT keys in {report.keys.ca.parent} (not for submission)")
        if verify and sign:
            trust = [report.keys.ca] if report.keys else None
            if trust is None and sign_cert is not None and (sign_cert.parent / "ca.pem").exists():
                trust = [sign_cert.parent / "ca.pem"]
            if trust:
                _say(f"verify (trusting {trust[0]}):")
                if not _print_verify(report.pdf, trust):
                    raise VerificationError("the report just written failed verification")
    raise typer.Exit(_gate(verdicts, gate))


@app.command("replay")
def replay_cmd(
    data: DataArg,
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")],
    card: CardOpt = None,
    batch_size: BatchOpt = 32,
    threads: ThreadsOpt = 1,
    decode_threads: DecodeOpt = 1,
    decode_processes: DecodeProcessesOpt = 0,
    inference_streams: StreamsOpt = 1,
    single_stream: SingleOpt = 700,
    seed: SeedOpt = 0,
    scenario: ScenarioOpt = "both",
    resume: ResumeOpt = False,
    max_errors: MaxErrorsOpt = None,
    progress: ProgressOpt = True,
    providers: ProvidersOpt = "CPUExecutionProvider",
    checkpoint_every: CheckpointOpt = 4096,
    executor: ExecutorOpt = "local",
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = 2,
    reference_outputs: ReferenceOpt = None,
    data_format: FormatOpt = None,
    images: ImagesOpt = None,
    metadata: MetadataOpt = None,
    metadata_from_path: MetadataFromPathOpt = None,
    split: SplitOpt = None,
    energy: EnergyOpt = "auto",
    power_log: PowerLogOpt = None,
    power_log_offset: PowerLogOffsetOpt = None,
    declared_watts: DeclaredWattsOpt = None,
    rated_watts: RatedWattsOpt = None,
    idle_seconds: IdleSecondsOpt = None,
    energy_window_seconds: EnergyWindowOpt = None,
    grid_intensity: GridIntensityOpt = None,
    country: CountryOpt = None,
    embodied_g_per_1000: EmbodiedOpt = 0.0,
) -> None:
    """Replay labelled images through the model and write the run directory.

    Progress goes to standard error; Ctrl-C stops cleanly (exit 130) and `--resume` continues.
    """
    opts = _ReplayOptions.from_command(locals())
    _replay(data, model, out, card, opts)


@app.command("evaluate")
def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory written by `auditkit replay`.")],
    rubric: Annotated[
        str | None,
        typer.Option(
            "--rubric",
            "-r",
            help="A shipped rubric's name or a YAML file. Without it, only metrics.json is "
            "written (95 % one-sided Clopper-Pearson bounds) and no verdict is given.",
        ),
    ] = None,
    param: ParamOpt = None,
    prevalence: PrevalenceOpt = None,
    baseline: BaselineOpt = None,
    junit: JunitOpt = None,
    markdown: MarkdownOpt = None,
    json_file: JsonOpt = None,
    fail_on: FailOnOpt = "conditional",
) -> None:
    """Compute metrics and judge them against a rubric. Exit code = verdict (0/1/3/4).

    A signed report.pdf whose verdicts no longer match is moved to report.stale.pdf."""
    params = _params(param, prevalence)
    with _noting_stale_report(run):
        _evaluate(run, rubric, params, baseline, junit, markdown, json_file, fail_on)


@contextlib.contextmanager
def _noting_stale_report(run: Path, hint: bool = True) -> Any:
    """Say so when evaluating set the run's signed report aside (its verdicts changed)."""
    from auditkit.audit import STALE_REPORT

    report = run / "report.pdf"
    before = report.is_file() and not report.is_symlink()
    try:
        yield
    finally:
        if before and not report.exists() and (run / STALE_REPORT).is_file():
            then = f"; run `auditkit report {run}` for a new one" if hint else ""
            _say(
                f"moved the signed report, which no longer matches the verdicts, to "
                f"{run / STALE_REPORT}{then}"
            )


def _evaluate(
    run: Path,
    rubric: str | None,
    params: dict[str, float],
    baseline: Path | None,
    junit: Path | None,
    markdown: Path | None,
    json_file: Path | None,
    fail_on: str,
) -> None:
    from auditkit.audit import run_evaluate, write_metrics_only
    from auditkit.run import RunDir

    if run.is_dir():
        RunDir(run).refuse_links()
    if rubric is None:
        if baseline or junit or markdown or json_file:
            raise typer.BadParameter(
                "--baseline, --junit, --markdown and --json need --rubric", param_hint="--rubric"
            )
        metrics = write_metrics_only(run, params.get("prevalence"))
        _say(f"metrics.json: {len(metrics['metrics'])} metrics written to {run / 'metrics.json'}")
        _say("no rubric given: no verdict (use --rubric NAME to judge them)")
        return
    gate = _GateOptions(
        junit=junit, markdown=markdown, json_file=json_file, fail_on=fail_on, baseline=baseline
    )
    verdicts = run_evaluate(run, rubric, params=params, baseline=baseline)
    _print_verdicts(verdicts)
    raise typer.Exit(_gate(verdicts, gate))


@app.command("report")
def report_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory with metrics.json and verdicts.json.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="PDF to write (default RUN/report.pdf).")
    ] = None,
    sign_key: SignKeyOpt = None,
    sign_cert: SignCertOpt = None,
    passphrase_file: PassphraseOpt = None,
    ask_passphrase: AskPassphraseOpt = False,
    sign: SignOpt = True,
    lang: LangOpt = "en",
    html: HtmlOpt = None,
    template: TemplateOpt = None,
    tsa: TsaOpt = None,
) -> None:
    """Render the PDF/A-3b report with the evidence embedded, and sign it.

    Every option is checked before anything is rendered (exit 5). The report is written to a
    temporary file and renamed: a full disk (exit 74) leaves the previous report intact."""
    from auditkit.audit import run_report
    from auditkit.run import RunDir

    target = out or RunDir(run).report
    passphrase = _ReportOptions(
        sign=sign,
        sign_key=sign_key,
        sign_cert=sign_cert,
        passphrase_file=passphrase_file,
        ask_passphrase=ask_passphrase,
        lang=lang,
        template=template,
        tsa=tsa,
    ).check(target, html)
    if RunDir(run).path.is_dir():
        RunDir(run).refuse_links()
    result = run_report(
        run,
        out=out,
        sign_key=sign_key,
        sign_cert=sign_cert,
        passphrase=passphrase,
        sign=sign,
        lang=lang,
        html=html,
        template_dir=template,
        tsa_url=tsa,
    )
    _say(f"report: {result.pdf}")
    if html is not None:
        _say(f"html report: {html}")
    if result.keys is not None:
        _say(f"signed with DEVELOPMENT keys in {result.keys.ca.parent} (not for submission)")


@app.command()
def countersign(
    report: Annotated[Path, typer.Argument(help="The signed PDF report.")],
    sign_key: SignKeyOpt = None,
    sign_cert: SignCertOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="PDF to write (default: in place).")
    ] = None,
    passphrase_file: PassphraseOpt = None,
    ask_passphrase: AskPassphraseOpt = False,
    reason: Annotated[str, typer.Option(help="Reason recorded in the signature.")] = (
        "countersigned"
    ),
    tsa: TsaOpt = None,
) -> None:
    """Add a second signature (regulator, second signatory) without breaking the first."""
    from auditkit.report.sign import countersign_pdf

    if sign_key is None:
        raise InputError("countersign needs --sign-key (and --sign-cert for a PEM key)")
    from auditkit.report.keys import key_file_warning
    from auditkit.run import refuse_symlink, write_atomic

    refuse_symlink(out or report)
    warning = key_file_warning(sign_key)
    if warning:
        _warn(warning)
    try:
        data = report.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {report}: {exc.strerror or exc}") from None
    signed = countersign_pdf(
        data,
        key_path=sign_key,
        cert_path=sign_cert,
        passphrase=_passphrase(passphrase_file, ask_passphrase, sign_key),
        reason=reason,
        tsa_url=tsa,
    )
    target = out or report
    write_atomic(target, signed)  # a full disk leaves the signed original intact
    _say(f"countersigned report: {target}")


@app.command()
def verify(
    report: Annotated[Path, typer.Argument(help="The signed PDF report.")],
    trust: Annotated[
        list[Path] | None,
        typer.Option(help="CA certificate (PEM) to trust; repeat for several."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    recompute: Annotated[
        bool,
        typer.Option(
            "--recompute",
            help="Re-derive the verdicts from the embedded metrics and rubric and compare.",
        ),
    ] = False,
) -> None:
    """Check a report's signatures and embedded evidence. Exit 0 verified, 1 not."""
    from auditkit.report.verify import format_result, verify_pdf

    result = verify_pdf(report, trust=trust, recompute=recompute)
    if as_json:
        _say(json.dumps(result.to_json(), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        _say(format_result(result))
    if not result.ok:
        raise typer.Exit(ExitCode.VERIFICATION_FAILED)


CaPassphraseOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-passphrase-file",
        help="File whose first line is the CA key's passphrase. Otherwise the environment "
        "variable AUDITKIT_CA_PASSPHRASE, else a prompt on a terminal.",
    ),
]
DaysOpt = Annotated[int, typer.Option(min=1, help="Validity of the signer's certificate, days.")]


@keys_app.command("create")
def keys_create(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write ca.pem, signer.*")],
    passphrase_file: PassphraseOpt = None,
    ask_passphrase: Annotated[
        bool,
        typer.Option("--ask-passphrase", help="Type the signer key's passphrase (asked twice)."),
    ] = False,
    common_name: Annotated[
        str | None, typer.Option(help="Signer's name (default: a development signer).")
    ] = None,
    organisation: Annotated[str | None, typer.Option(help="Signer's organisation.")] = None,
    days: DaysOpt = 365,
    ca_days: Annotated[
        int | None,
        typer.Option(
            min=1, help="Validity of the CA, days (default: 5 years when its key is kept)."
        ),
    ] = None,
    keep_ca: Annotated[
        bool | None,
        typer.Option(
            "--keep-ca/--no-keep-ca",
            help="Keep the CA's key, encrypted, as ca.key, to issue further signers with "
            "`auditkit keys issue` (default: when a CA passphrase is given or can be typed).",
        ),
    ] = None,
    ca_passphrase_file: CaPassphraseOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing key files.")] = False,
) -> None:
    """Create a private CA and an ECDSA P-256 signing key and certificate."""
    from auditkit.report.keys import create_keys
    from auditkit.report.passphrase import CA_ENV_VAR, new_passphrase

    passphrase = new_passphrase(file=passphrase_file, ask=ask_passphrase, what="signer key")
    ca_secret = None
    if keep_ca is not False:
        can_type = keep_ca is True or sys.stdin.isatty()
        ca_secret = new_passphrase(
            file=ca_passphrase_file, ask=can_type, env_var=CA_ENV_VAR, what="CA key"
        )
        if ca_secret is None and keep_ca:
            raise InputError(
                "--keep-ca needs the CA key's passphrase: --ca-passphrase-file FILE or "
                f"the environment variable {CA_ENV_VAR}"
            )
    kwargs: dict[str, Any] = {
        "passphrase": passphrase,
        "days": days,
        "ca_days": ca_days,
        "overwrite": overwrite,
        "ca_passphrase": ca_secret,
    }
    if common_name:
        kwargs["common_name"] = common_name
    if organisation:
        kwargs["organisation"] = organisation
    files = create_keys(out, **kwargs)
    _say(f"CA certificate:     {files.ca}  (give it to verifiers: --trust)")
    if files.ca_key is not None:
        _say(f"CA key:             {files.ca_key}  (encrypted; issue more signers: keys issue)")
    else:
        _say("CA key:             not kept (no CA passphrase): no further signer under this CA")
    _say(f"signer certificate: {files.cert}")
    _say(f"signer key:         {files.key}  (mode 0600; keep it secret)")


@keys_app.command("issue")
def keys_issue(
    ca: Annotated[
        Path, typer.Option("--ca", help="Folder with ca.pem and ca.key (keys create --keep-ca).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write signer.* and ca.pem")],
    common_name: Annotated[str, typer.Option(help="The new signer's name.")],
    organisation: Annotated[
        str | None, typer.Option(help="Signer's organisation (default: the CA's).")
    ] = None,
    passphrase_file: PassphraseOpt = None,
    ask_passphrase: Annotated[
        bool,
        typer.Option("--ask-passphrase", help="Type the new key's passphrase (asked twice)."),
    ] = False,
    ca_passphrase_file: CaPassphraseOpt = None,
    days: DaysOpt = 365,
    overwrite: Annotated[bool, typer.Option(help="Replace existing key files.")] = False,
) -> None:
    """Issue a further signing key and certificate under a CA kept by `keys create`."""
    from auditkit.report.keys import CA_KEY_FILE, issue_signer
    from auditkit.report.passphrase import ca_passphrase, new_passphrase

    secret = ca_passphrase(file=ca_passphrase_file, ca_key=ca / CA_KEY_FILE)
    passphrase = new_passphrase(file=passphrase_file, ask=ask_passphrase, what="signer key")
    files = issue_signer(
        ca,
        out,
        ca_passphrase=secret,
        common_name=common_name,
        organisation=organisation,
        passphrase=passphrase,
        days=days,
        overwrite=overwrite,
    )
    _say(f"signer certificate: {files.cert}  (issued by {files.ca})")
    _say(f"signer key:         {files.key}  (mode 0600; keep it secret)")


@sample_app.command("make")
def sample_make(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for images/ and manifest.csv.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of images.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same images.")] = 2026,
) -> None:
    """Generate synthetic steel-surface inspection images with a manifest."""
    from auditkit.sample.generator import generate

    manifest = generate(n=n, seed=seed, out_dir=out)
    _say(f"wrote {n} images and {manifest}")


@rubric_app.command("list")
def rubric_list() -> None:
    """List the shipped rubrics."""
    from auditkit.rubric.schema import load_rubric, shipped_rubrics

    for name in shipped_rubrics():
        r = load_rubric(name).rubric
        _say(f"{name}  {r.version}  {','.join(r.applicability.tasks)}  {r.title}")


@rubric_app.command("show")
def rubric_show(rubric: Annotated[str, typer.Argument(help="Name or file.")]) -> None:
    """Print a rubric as a table: criterion, severity, metric, requirement, provenance, min n,
    clauses."""
    from auditkit.rubric.schema import load_rubric
    from auditkit.rubric.show import rubric_table

    _say(rubric_table(load_rubric(rubric)))


@rubric_app.command("validate")
def rubric_validate(rubric: Annotated[str, typer.Argument(help="Name or file.")]) -> None:
    """Check a rubric file; exit 5 with file, line and field when it is malformed."""
    from auditkit.rubric.schema import load_rubric

    loaded = load_rubric(rubric)
    _say(
        f"ok: {loaded.path} ({loaded.rubric.id} {loaded.rubric.version}, "
        f"{len(loaded.rubric.criteria)} criteria)"
    )


@rubric_app.command("schema")
def rubric_schema() -> None:
    """Print the JSON Schema of auditkit.rubric/v1."""
    from auditkit.rubric.schema import json_schema

    _say(json.dumps(json_schema(), indent=2))


def main() -> None:
    """Entry point: one line and a documented exit code for every user error.

    Typer handles usage errors (exit 2) and ``typer.Exit``; what reaches here is ours to map.
    """
    try:
        app()
    except AuditkitError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        if exc.errno not in _NO_SPACE or os.environ.get("AUDITKIT_DEBUG"):
            _internal(exc)
        # a full disk outside the atomic writer (a folder, a library's own file)
        where = f" ({exc.filename})" if exc.filename else ""
        typer.echo(f"error: no space left on the device{where}", err=True)
        sys.exit(ExitCode.OUTPUT)
    except Exception as exc:
        _internal(exc)


_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _internal(exc: BaseException) -> None:
    if os.environ.get("AUDITKIT_DEBUG"):
        raise exc
    typer.echo(
        f"internal error: {type(exc).__name__}: {exc} "
        "(a bug in auditkit; rerun with AUDITKIT_DEBUG=1 for the traceback)",
        err=True,
    )
    sys.exit(ExitCode.INTERNAL)
