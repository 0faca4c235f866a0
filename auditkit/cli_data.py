"""``auditkit data ...``: look at a labelled data set before auditing with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from auditkit.errors import ExitCode

data_app = typer.Typer(help="Labelled data sets: check.", no_args_is_help=True)

#: problems of each kind printed in the table; --json has them all
MAX_PER_KIND = 20
#: characters of a problem's detail printed in the table
MAX_DETAIL = 300

DataArg = Annotated[
    Path,
    typer.Argument(
        help="Labelled images: a manifest (CSV/Parquet), a COCO JSON, or a folder (image "
        "folder, MVTec AD, YOLO, Pascal VOC); see docs/data-formats.md."
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="Layout of DATA: manifest, imagefolder, mvtec, coco, yolo or voc "
        "(default: detected; see docs/data-formats.md).",
    ),
]
ImagesOpt = Annotated[
    Path | None,
    typer.Option(
        "--images",
        help="COCO only: the folder the JSON's file_name entries are relative to "
        "(default: the JSON's folder, else images/ beside it).",
    ),
]
MetadataOpt = Annotated[
    Path | None,
    typer.Option(
        "--metadata",
        help="Side table (CSV/Parquet) of metadata, one row per image, joined on its column "
        "'path' (relative to the data root) or 'file_name'.",
    ),
]
MetadataFromPathOpt = Annotated[
    str | None,
    typer.Option(
        "--metadata-from-path",
        help="Regular expression with named groups searched in each image's path, e.g. "
        "'(?P<line>L\\d)/(?P<shift>day|night)/'; each group becomes a metadata column.",
    ),
]
SplitOpt = Annotated[
    str | None,
    typer.Option(
        "--split",
        help="train, val, test or all: which split of a layout that has them (MVTec AD: test "
        "by default; YOLO and VOC: all by default).",
    ),
]


def load_options(
    data_format: str | None,
    images: Path | None,
    metadata: Path | None,
    metadata_from_path: str | None,
    split: str | None,
    **extra: Any,
) -> Any:
    """The :class:`~auditkit.data.interface.LoadOptions` of the shared data options."""
    from auditkit.data.interface import LoadOptions

    return LoadOptions(
        format=data_format,
        images=images,
        metadata=metadata,
        metadata_from_path=metadata_from_path,
        split=split,
        **extra,
    )


def _print_counts(title: str, counts: dict[str, int]) -> None:
    typer.echo(f"{title}: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none"))


def _print_summary(report: dict[str, Any]) -> None:
    typer.echo(f"data: {report['data']} (format: {report['format']}, root: {report['root']})")
    typer.echo(
        f"images: {report['n_images']} ({report['n_defect']} defect, "
        f"{report['n_unreadable']} unreadable), parts: {report['n_parts']}"
    )
    _print_counts("classes", report["classes"])
    for column, counts in report["metadata"].items():
        _print_counts(f"metadata {column}", counts)
    _print_counts("image sizes", report["image_sizes"])
    _print_counts("image modes", report["image_modes"])
    per_image = report["boxes_per_image"]
    if per_image is not None:
        typer.echo(
            f"boxes: {report['n_boxes']}; per image min {per_image['min']}, "
            f"mean {per_image['mean']:.2f}, max {per_image['max']}; "
            f"images without boxes: {per_image['images_without_boxes']}"
        )
        _print_counts("box classes", report["box_classes"])
    if report["n_masks"]:
        typer.echo(f"masks: {report['n_masks']}")


def _print_problems(problems: list[dict[str, str]]) -> None:
    """The count per kind, then the first :data:`MAX_PER_KIND` problems of each kind (a detail
    clipped to :data:`MAX_DETAIL` characters); ``--json`` lists them all."""
    counts: dict[str, int] = {}
    first: dict[str, list[dict[str, str]]] = {}
    for p in problems:
        counts[p["kind"]] = counts.get(p["kind"], 0) + 1
        examples = first.setdefault(p["kind"], [])
        if len(examples) < MAX_PER_KIND:
            examples.append(p)
    by_kind = ", ".join(f"{kind} {n}" for kind, n in counts.items())
    typer.echo(f"problems: {len(problems)} ({by_kind})")
    shown = [p for examples in first.values() for p in examples]
    kind_w = max(len("kind"), *(len(p["kind"]) for p in shown))
    path_w = min(60, max(len("path"), *(len(p["path"]) for p in shown)))
    typer.echo(f"  {'kind':<{kind_w}}  {'path':<{path_w}}  detail")
    for kind, examples in first.items():
        for p in examples:
            typer.echo(f"  {p['kind']:<{kind_w}}  {p['path']:<{path_w}}  {_clip(p['detail'])}")
        if counts[kind] > len(examples):
            typer.echo(f"  ... {counts[kind] - len(examples)} more {kind} (--json lists them all)")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


@data_app.command("check")
def check_cmd(
    data: DataArg,
    data_format: FormatOpt = None,
    images: ImagesOpt = None,
    metadata: MetadataOpt = None,
    metadata_from_path: MetadataFromPathOpt = None,
    split: SplitOpt = None,
    classes: Annotated[
        str | None,
        typer.Option(
            help="Expected class names, comma-separated (e.g. the card's): any other label or "
            "box class is an unknown_class problem."
        ),
    ] = None,
    good_label: Annotated[str, typer.Option(help="The class of an image with no defect.")] = "good",
    card: Annotated[
        Path | None,
        typer.Option(
            help="A model card: its classes are the expected ones (as --classes) and its good "
            "class the good label."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of the summary.")
    ] = False,
) -> None:
    """Describe a labelled data set and list its problems. Exit 0 when clean, 5 when not."""
    from auditkit.data.check import check_data

    expected = tuple(c.strip() for c in classes.split(",") if c.strip()) if classes else None
    if card is not None:
        from auditkit.models.card import load_card

        loaded = load_card(card)
        expected, good_label = (expected or tuple(loaded.classes)), loaded.good_class
    options = load_options(
        data_format,
        images,
        metadata,
        metadata_from_path,
        split,
        good_label=good_label,
        classes=expected,
    )
    report = check_data(data, options)
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        _print_summary(report)
        if report["problems"]:
            _print_problems(report["problems"])
        else:
            typer.echo("problems: none")
    if report["problems"]:
        raise typer.Exit(ExitCode.INPUT)
