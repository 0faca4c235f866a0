"""``auditkit model ...``: what a model file is (registered in :mod:`auditkit.cli`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from auditkit.errors import ModelError

model_app = typer.Typer(help="Models: inspect an ONNX file (and its card).", no_args_is_help=True)


def _shape(shape: list[Any]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _text(report: dict[str, Any], card_path: Path | None) -> list[str]:
    lines = [
        f"model: {report['path']}",
        f"  sha256 {report['sha256']}, {report['file_bytes']:,} bytes",
        f"  producer {report['producer']['name'] or '?'} {report['producer']['version']}".rstrip()
        + f"; ir_version {report['ir_version']}; opsets "
        + ", ".join(f"{d} {v}" for d, v in sorted(report["opsets"].items())),
        "inputs:",
    ]
    lines += [f"  {i['name']}: {i['dtype']} {_shape(i['shape'])}" for i in report["inputs"]]
    lines.append("outputs:")
    lines += [f"  {o['name']}: {o['dtype']} {_shape(o['shape'])}" for o in report["outputs"]]
    if report["metadata_props"]:
        lines.append("metadata_props:")
        lines += [f"  {k}: {v}" for k, v in sorted(report["metadata_props"].items())]
    conv = report["convention"]
    if conv["name"]:
        lines.append(f"convention: {conv['name']} (task {conv['task']}, from the {conv['from']})")
    else:
        lines.append(f"convention: undetermined: {conv['problem']}")
    source = report["parameters_by_source"]
    lines.append(
        f"parameters: {report['parameters']:,} (weights stored as initializers "
        f"{source['initializers']:,} and in Constant nodes {source['constant_nodes']:,}; "
        "shapes, scalars and resize settings not counted)"
    )
    by_op = ", ".join(f"{op} {v:,}" for op, v in report["flops_by_op"].items() if v)
    size = report["flops_input_size"]
    at = f" at input {size[0]}x{size[1]}" if size else ""
    lines.append(
        f"FLOPs per image{at}: {report['flops_per_image']:,} ({by_op or 'none counted'}); "
        "1 multiply-add = 2 FLOPs, Conv/Gemm/MatMul only, batch 1"
    )
    lines += _uncounted(report)
    if card_path is not None:
        if report["disagreements"]:
            lines.append(f"card {card_path} disagrees with the model:")
            lines += [f"  - {d}" for d in report["disagreements"]]
        else:
            lines.append(f"card {card_path}: agrees with the model")
    return lines


def _uncounted(report: dict[str, Any]) -> list[str]:
    """One line: op type x count of the nodes not counted, and how to count them."""
    by_op = report["flops_uncounted_by_op"]
    if not by_op:
        return []
    total = sum(by_op.values())
    ops = ", ".join(f"{op} x {n}" for op, n in sorted(by_op.items(), key=lambda kv: -kv[1]))
    size = report["flops_input_size"]
    hint = (
        "; the input size is dynamic: give --input-size HxW or a card"
        if not size or not all(isinstance(d, int) and d > 0 for d in size)
        else ""
    )
    return [f"  not counted (shapes unknown): {total} node(s): {ops}{hint}"]


@model_app.command("inspect")
def inspect_cmd(
    model: Annotated[Path, typer.Argument(help="The ONNX model file.")],
    card: Annotated[
        Path | None,
        typer.Option(help="A model card YAML to check against the graph (every disagreement)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of text.")
    ] = False,
    input_size: Annotated[
        str | None,
        typer.Option(
            "--input-size",
            help="HxW to count FLOPs at when the graph's input size is dynamic "
            "(default: the card's input size).",
        ),
    ] = None,
) -> None:
    """Inputs, outputs, opsets, producer, metadata, output convention, parameters, FLOPs per
    image, SHA-256 and size. Exit 5 when the card disagrees with the model."""
    from auditkit.models.card import load_card
    from auditkit.models.inspect import inspect_model, parse_input_size

    try:
        hw = parse_input_size(input_size) if input_size is not None else None
    except ModelError as exc:  # a malformed option value is a usage error (exit 2)
        raise typer.BadParameter(str(exc), param_hint="--input-size") from None
    loaded = load_card(card) if card is not None else None
    report = inspect_model(model, loaded, hw)
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        for line in _text(report, card):
            typer.echo(line)
    if report["disagreements"]:
        first = report["disagreements"][0]
        more = len(report["disagreements"]) - 1
        raise ModelError(
            f"the card disagrees with the model: {first}" + (f" (and {more} more)" if more else "")
        )
