"""The audit: the stages in a row, each one call for the CLI, a notebook or another tool.

replay(data, model) -> run dir      evaluate(run dir, rubric) -> metrics.json, verdicts.json
report(run dir) -> signed PDF       verify(PDF, trust) -> result
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from auditkit.data.interface import LoadOptions
from auditkit.data.loaders import load_dataset
from auditkit.energy.interface import EnergyOptions
from auditkit.errors import DataError, InputError, RunDirError
from auditkit.models.card import ModelCard, card_beside, load_card
from auditkit.models.onnx_model import DeployedModel, SessionSettings
from auditkit.replay.checkpoint import ErrorLimit
from auditkit.replay.parity import compare_reference_outputs
from auditkit.replay.pipeline import Progress, ReplayResult, ReplaySettings, replay
from auditkit.replay.task_metrics import task_metric_entries
from auditkit.report.keys import KeyFiles, create_keys
from auditkit.rubric.schema import LoadedRubric, check_task, load_rubric
from auditkit.run import (
    BASELINE_FILE,
    BASELINE_FORMAT,
    METRICS_FORMAT,
    RUN_FORMAT,
    VERDICTS_FORMAT,
    RunDir,
    dumps,
    refuse_symlink,
    write_atomic,
)

if TYPE_CHECKING:
    from auditkit.energy.protocol import EnergyRun

DEFAULT_RUBRIC = "industrial-aoi-acceptance"
#: escape rates whose certified operating point every metrics.json has (docs/metrics.md)
ESCAPE_TARGETS = (0.01, 0.05)
#: cluster-bootstrap resamples of every bootstrap interval
BOOTSTRAP_RESAMPLES = 1000
#: where :func:`set_aside_stale_report` moves a report whose verdicts no longer exist
STALE_REPORT = "report.stale.pdf"

_Stage = TypeVar("_Stage", bound=Callable[..., Any])


def holding_run_dir(stage: _Stage) -> _Stage:
    """Run ``stage(run_dir, ...)`` holding the run folder's lock (``RunDir.writing``): a second
    command on the same folder is refused at once (exit 5), and ``audit`` holding it across
    its stages is not (the lock is re-entrant within a process)."""

    @functools.wraps(stage)
    def locked(run_dir: Path, *args: Any, **kwargs: Any) -> Any:
        run = RunDir(Path(run_dir))
        if not run.path.is_dir():  # the stage's own "not found" message, not the lock's
            return stage(run_dir, *args, **kwargs)
        with run.writing():
            return stage(run_dir, *args, **kwargs)

    return locked  # type: ignore[return-value]


def set_aside_stale_report(run_dir: Path) -> Path | None:
    """Move ``report.pdf`` to :data:`STALE_REPORT` (replacing an older one) when the verdicts it
    was signed over are gone or changed: a signed report must never sit beside evidence that
    contradicts it. The file is moved, not deleted: it stays a verifiable record of what was
    signed. Returns the new path, or None when there was no report."""
    run = RunDir(Path(run_dir))
    if not run.report.is_file() or run.report.is_symlink():
        return None
    target = run.path / STALE_REPORT
    refuse_symlink(target)
    run.report.replace(target)
    return target


def run_replay(
    data: Path,
    model_path: Path,
    out: Path,
    *,
    card_path: Path | None = None,
    settings: ReplaySettings | None = None,
    session: SessionSettings | None = None,
    progress: Progress | None = None,
    resume: bool = False,
    max_errors: ErrorLimit | str | None = None,
    executor: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    reference_outputs: Path | None = None,
    data_options: LoadOptions | None = None,
    energy: EnergyOptions | None = None,
) -> ReplayResult:
    """Load the manifest and the model (checked against its card), then replay.

    ``resume`` continues an interrupted replay in ``out``; ``max_errors`` (``N`` or ``"P%"``)
    stops the replay, resumably, once more images than that have failed. ``executor`` (``local``
    or ``dask``), ``scheduler`` and ``workers``, when given, override those of ``settings``
    (docs/scale.md). ``reference_outputs``: the vendor's own scores for some images, compared
    with the replayed ones after the replay (``run.json`` ``replay.runtime_parity``).
    ``data_options``: how to read ``data`` (layout, metadata; docs/data-formats.md); its
    ``good_label`` is replaced by the card's good class.
    ``energy``: measure energy over the replay (docs/energy.md); None: not measured.
    """
    if reference_outputs is not None and not reference_outputs.is_file():
        raise DataError(f"reference outputs not found: {reference_outputs}")
    settings = settings or ReplaySettings()
    overrides: dict[str, Any] = {}
    if executor is not None:
        overrides["executor"] = executor
    if scheduler is not None:
        overrides["scheduler"] = scheduler
    if workers is not None:
        overrides["workers"] = workers
    if overrides:
        settings = replace(settings, **overrides)
    limit = max_errors if isinstance(max_errors, ErrorLimit) else ErrorLimit.parse(max_errors)
    card_path = card_path or card_beside(model_path)
    if not card_path.exists():
        raise InputError(
            f"model card not found: {card_path} (give --card, or put "
            f"{model_path.stem}.card.yaml beside the model)"
        )
    card = load_card(card_path)
    options = replace(data_options or LoadOptions(), good_label=card.good_class)
    dataset = load_dataset(data, options)
    model = DeployedModel.load(model_path, card, session)
    card = model.card  # classes may come from the model's metadata_props
    unknown = sorted(set(dataset.samples["label"]) - set(card.classes))
    # detectors, anomaly and segmentation models do not classify images: any label is data
    if unknown and card.task == "classification":
        raise DataError(
            f"labels not among the model card's classes: {', '.join(unknown)} "
            f"(card classes: {', '.join(card.classes)})"
        )
    card_sha = hashlib.sha256(card_path.read_bytes()).hexdigest()
    # an unusable meter fails before the run directory is touched
    energy_run = _energy_run(energy, gpu_inference=model.runs_on_gpu)
    result = replay(
        dataset,
        model,
        out,
        settings,
        card_path=card_path,
        card_sha256=card_sha,
        progress=progress,
        resume=resume,
        max_errors=limit,
        energy=energy_run,
    )
    if reference_outputs is not None:
        record_runtime_parity(result.run.path, reference_outputs)
    return result


def _energy_run(options: EnergyOptions | None, *, gpu_inference: bool) -> EnergyRun | None:
    from auditkit.energy.protocol import EnergyRun, select_meter

    if options is None:
        return None
    meter, skipped = select_meter(options, gpu_inference=gpu_inference)
    return EnergyRun(meter, options, skipped=skipped) if meter is not None else None


@holding_run_dir
def record_runtime_parity(run_dir: Path, reference_outputs: Path) -> dict[str, Any]:
    """Compare the vendor's reference outputs with a finished replay; record it in run.json."""
    run = RunDir(run_dir)
    run.require_replay()
    info = run.read_json(run.run_json, RUN_FORMAT)
    card = ModelCard.model_validate(info["model"]["card"])
    parity = compare_reference_outputs(
        reference_outputs,
        run.read_table(run.samples),
        run.read_table(run.predictions),
        operating_threshold=card.operating_threshold,
    )
    info["replay"]["runtime_parity"] = parity
    run.write_json(run.run_json, info)
    return parity


def run_metrics(
    run_dir: Path,
    *,
    level: float = 0.95,
    method: str = "clopper_pearson",
    sided: str = "one",
    intersections: list[list[str]] | None = None,
    escape_targets: list[float] | None = None,
    prevalence: tuple[float, str] | None = None,
) -> dict[str, Any]:
    """Compute the full metric set of a replayed run (``metrics.json`` content, not written).

    ``intersections``: slicings by several columns to add to the one-column slicings (those
    naming a column the samples lack are left out: the rubric reports them as data gaps).
    ``escape_targets``: escape rates whose certified operating point is written (default
    :data:`ESCAPE_TARGETS`, plus those given); ``prevalence``: ``(pi, source)`` for
    ``escaped_ppm``. Bootstrap intervals: :data:`BOOTSTRAP_RESAMPLES` resamples by part, seeded
    with the replay's ``--seed`` (run.json ``replay.seed``), recorded in ``bootstrap``.
    """
    from auditkit.metrics.classification import metadata_columns
    from auditkit.metrics.compute import compute_metrics  # scipy.stats: ~1 s, not for replay
    from auditkit.metrics.tasks import Bootstrap

    run = RunDir(run_dir)
    run.require_replay()
    info = run.read_json(run.run_json, RUN_FORMAT)
    card = ModelCard.model_validate(info["model"]["card"])
    samples = run.read_table(run.samples)
    predictions = run.read_table(run.predictions)
    timings = run.read_table(run.timings) if run.timings.exists() else None
    latency = None
    if timings is not None and not timings.empty:
        single = timings[timings["scenario"] == "single-stream"]
        latency = single["e2e_s"].to_numpy() if not single.empty else None
    slice_columns: list[str | list[str]] | None = None
    if intersections:
        meta = metadata_columns(samples)
        slice_columns = [*meta, *(cols for cols in intersections if set(cols) <= set(meta))]
    seed = info.get("replay", {}).get("seed")
    bootstrap = Bootstrap(
        level=level,
        sided=sided,
        resamples=BOOTSTRAP_RESAMPLES,
        seed=int(seed) if isinstance(seed, int) else 0,
    )
    metrics = compute_metrics(
        samples,
        predictions,
        classes=list(card.classes),
        positive_classes=list(card.positive_classes),
        good_class=card.good_class,
        level=level,
        method=method,
        sided=sided,
        latency_e2e_s=latency,
        throughput_ips=info["replay"].get("offline_throughput_ips"),
        slice_columns=slice_columns,
        bootstrap=bootstrap,
        escape_targets=sorted({*ESCAPE_TARGETS, *(escape_targets or [])}),
        prevalence=prevalence,
    )
    from auditkit.energy.protocol import metric_entries

    metrics["metrics"].extend(metric_entries(info.get("energy")))
    # detection, anomaly and segmentation metrics, and the model's size and compute
    metrics["metrics"] += task_metric_entries(
        run.path,
        info,
        card,
        samples,
        predictions,
        level=level,
        method=method,
        sided=sided,
        bootstrap=bootstrap,
    )
    metrics["task"] = card.task
    metrics["bootstrap"] = bootstrap.record()
    metrics["prevalence"] = (
        {"value": prevalence[0], "source": prevalence[1]} if prevalence is not None else None
    )
    return {"format": METRICS_FORMAT, "run_id": info["run_id"], **metrics}


@holding_run_dir
def write_metrics_only(run_dir: Path, prevalence: float | None = None) -> dict[str, Any]:
    """``auditkit evaluate RUN`` without a rubric: write ``metrics.json`` (95 %, one-sided
    Clopper–Pearson) and remove a ``verdicts.json`` that no longer matches it;
    ``prevalence`` (``--prevalence``, else the card's ``declared.production_prevalence``):
    for ``escaped_ppm``."""
    run = RunDir(run_dir)
    run.require_replay()
    card = ModelCard.model_validate(run.read_json(run.run_json, RUN_FORMAT)["model"]["card"])
    given = {"prevalence": prevalence} if prevalence is not None else {}
    metrics = run_metrics(run_dir, prevalence=stated_prevalence(given, None, card))
    run.write_json(run.metrics, metrics)
    run.verdicts.unlink(missing_ok=True)
    set_aside_stale_report(run_dir)  # the verdicts it shows are gone
    return metrics


@holding_run_dir
def run_evaluate(
    run_dir: Path,
    rubric: str = DEFAULT_RUBRIC,
    *,
    params: dict[str, float] | None = None,
    baseline: Path | None = None,
) -> dict[str, Any]:
    """Compute ``metrics.json`` with the rubric's statistics, judge it, write both files.

    ``baseline``: a run of the production model on the same samples, for the rubric's
    ``escape_rate_change`` / ``overkill_rate_change`` criteria (exit 5 when its samples differ).
    """
    from auditkit.rubric.baseline import compare_runs
    from auditkit.rubric.evaluate import evaluate  # scipy.stats (~1 s): not for replay

    run = RunDir(run_dir)
    run.require_replay()
    loaded = load_rubric(rubric)
    stats = loaded.rubric.defaults.statistics
    intersections = [
        list(c.metric.slice_by)
        for c in loaded.rubric.criteria
        if c.metric is not None and c.metric.intersect and c.metric.slice_by
    ]
    info = run.read_json(run.run_json, RUN_FORMAT)
    card = ModelCard.model_validate(info["model"]["card"])
    check_task(loaded, card.task)  # before anything is computed or written
    targets = [
        float(c.metric.params["target"])
        for c in loaded.rubric.criteria
        if c.metric is not None and "target" in c.metric.params
    ]
    metrics = run_metrics(
        run_dir,
        level=stats.confidence_level,
        method=stats.interval,
        sided=stats.sided,
        intersections=intersections,
        escape_targets=targets,
        prevalence=stated_prevalence(params or {}, loaded, card),
    )
    paired = (
        compare_runs(run_dir, baseline, level=stats.confidence_level, sided=stats.sided)
        if baseline is not None
        else None
    )
    # judge exactly what is written (and embedded, and recomputed by verify --recompute): the
    # JSON round trip sorts keys, and a slice's label follows its keys' order
    metrics = json.loads(dumps(metrics))
    paired = json.loads(dumps(paired)) if paired is not None else None
    verdicts = {
        "format": VERDICTS_FORMAT,
        "run_id": metrics["run_id"],
        **evaluate(metrics, loaded, card=card, params=params, run=info, baseline=paired),
    }
    previous = run.verdicts.read_bytes() if run.verdicts.is_file() else None
    run.write_json(run.metrics, metrics)
    if run.write_json(run.verdicts, verdicts) != previous:
        set_aside_stale_report(run_dir)  # it shows verdicts that are no longer the run's
    # the exact rubric bytes (hashed in verdicts.json) travel with the run: the report embeds them
    write_atomic(run.path / "rubric.yaml", loaded.path.read_bytes())
    # the paired comparison judged is evidence too: the report embeds it and verify --recompute
    # passes it to evaluate again; a stale one from an earlier --baseline must not stay behind
    if paired is not None and baseline is not None:
        run.write_json(
            run.path / BASELINE_FILE, baseline_document(metrics["run_id"], baseline, paired)
        )
    else:
        (run.path / BASELINE_FILE).unlink(missing_ok=True)
    return verdicts


def stated_prevalence(
    params: dict[str, float], loaded: LoadedRubric | None, card: ModelCard
) -> tuple[float, str] | None:
    """The production prevalence for ``escaped_ppm`` and where it was stated, first found of:
    ``--prevalence`` / ``--param prevalence=P`` (``site``), the rubric's
    ``applicability.production_prevalence`` (``rubric``), the model card's
    ``declared.production_prevalence`` (``card``). None: no escaped-ppm figure."""
    if "prevalence" in params:
        value = float(params["prevalence"])
        if not 0.0 < value < 1.0:
            raise InputError(f"prevalence {value!r}: a share of defective parts in (0, 1)")
        return value, "site"
    if loaded is not None and loaded.rubric.applicability.production_prevalence is not None:
        return float(loaded.rubric.applicability.production_prevalence), "rubric"
    declared = getattr(card.declared, "production_prevalence", None)
    if isinstance(declared, (int, float)) and 0.0 < float(declared) < 1.0:
        return float(declared), "card"
    return None


def baseline_document(run_id: str, baseline_dir: Path, paired: dict[str, Any]) -> dict[str, Any]:
    """``baseline.json`` (``auditkit.baseline/1``): which baseline run was compared (its id and
    the SHA-256 of the files the comparison read) and the comparison itself, exactly as
    :func:`auditkit.rubric.baseline.compare_runs` returned it to ``evaluate``."""
    base = RunDir(baseline_dir)
    files = {
        name: hashlib.sha256(path.read_bytes()).hexdigest()
        for name, path in (
            ("run.json", base.run_json),
            ("samples.parquet", base.samples),
            ("predictions.parquet", base.predictions),
        )
    }
    return {
        "format": BASELINE_FORMAT,
        "run_id": run_id,
        "baseline_run": {
            "run_id": paired.get("run_id"),
            "model_sha256": paired.get("model_sha256"),
            "files_sha256": files,
        },
        "comparison": paired,
    }


@dataclass(frozen=True)
class ReportResult:
    pdf: Path
    signed: bool
    signatory: str
    development_key: bool
    keys: KeyFiles | None


def require_consistent_verdicts(run_dir: Path) -> None:
    """Refuse (exit 5) a ``verdicts.json`` that does not follow from the evidence the report
    would embed: the same recomputation as ``verify --recompute``, before anything is signed,
    so a hand-edited verdict never gets a signature from auditkit's own ``report``."""
    from auditkit.report.recompute import recompute
    from auditkit.report.render import load_evidence

    _, problems = recompute(load_evidence(run_dir))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RunDirError(
            f"verdicts.json in {run_dir} does not follow from its evidence, not signed: "
            f"{problems[0]}{more}; rerun `auditkit evaluate`"
        )


def development_keys(folder: Path) -> KeyFiles:
    """Development keys in ``folder``, made once and reused."""
    existing = KeyFiles(ca=folder / "ca.pem", cert=folder / "signer.pem", key=folder / "signer.key")
    present = [p for p in (existing.ca, existing.cert, existing.key) if p.exists()]
    if len(present) == 3:
        return existing
    if present:  # create_keys would refuse with advice (--overwrite) that `report` lacks
        missing = sorted({"ca.pem", "signer.pem", "signer.key"} - {p.name for p in present})
        raise InputError(
            f"{folder} holds an incomplete set of development keys ({', '.join(missing)} "
            "missing); remove the folder to have new ones made"
        )
    return create_keys(folder)


@holding_run_dir
def run_report(
    run_dir: Path,
    *,
    out: Path | None = None,
    sign_key: Path | None = None,
    sign_cert: Path | None = None,
    passphrase: str | None = None,
    dev_keys_dir: Path | None = None,
    sign: bool = True,
    lang: str = "en",
    html: Path | None = None,
    template_dir: Path | None = None,
    tsa_url: str | None = None,
) -> ReportResult:
    """Render the report and sign it: with the given key (PEM key + certificate, or a PKCS#12
    bundle), else with development keys. ``html``: also write the self-contained HTML report.
    ``tsa_url``: add an RFC 3161 time stamp from that server."""
    # WeasyPrint and pyHanko take ~1.5 s to import; only this stage needs them
    from auditkit.report.keys import is_development_certificate, load_signing_material
    from auditkit.report.render import render_html, render_report
    from auditkit.report.sign import sign_pdf, signer_identity

    run = RunDir(run_dir)
    out = out or run.report
    keys: KeyFiles | None = None
    require_consistent_verdicts(run.path)
    if sign_cert is not None and sign_key is None:
        raise InputError("give --sign-key with --sign-cert")
    if sign and sign_key is None:
        keys = development_keys(dev_keys_dir or run.path / "dev-keys")
        sign_key, sign_cert = keys.key, keys.cert
    if sign:
        assert sign_key is not None
        material = load_signing_material(sign_key, sign_cert, passphrase)
        signatory = signer_identity(material)
        development = is_development_certificate(material.cert)
    else:
        signatory, development = "unsigned", True
    pdf = render_report(
        run.path,
        signatory=signatory,
        development_key=development,
        lang=lang,
        template_dir=template_dir,
        signed=sign,
    )
    if sign:
        assert sign_key is not None
        verdicts = run.read_json(run.verdicts, VERDICTS_FORMAT)
        pdf = sign_pdf(
            pdf,
            key_path=sign_key,
            cert_path=sign_cert,
            passphrase=passphrase,
            reason=f"auditkit audit report: verdict {verdicts['verdict']}",
            tsa_url=tsa_url,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, pdf)
    if html is not None:
        page = render_html(
            run.path,
            signatory=signatory,
            development_key=development,
            lang=lang,
            template_dir=template_dir,
            signed=sign,
        )
        html.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(html, page.encode("utf-8"))
    return ReportResult(
        pdf=out, signed=sign, signatory=signatory, development_key=development, keys=keys
    )
