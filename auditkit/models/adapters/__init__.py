"""Output adapters: one per output convention (docs/model-conventions.md).

:func:`detect_convention` reads the convention from the card, or else from the graph's output
names and shapes, and refuses clearly when the graph could be read two ways.
:func:`make_adapter` builds the adapter and checks the outputs against the card.
"""

from __future__ import annotations

from typing import Any

from auditkit.errors import ModelError
from auditkit.models.adapters.classifier import ClassifierAdapter
from auditkit.models.adapters.detection import (
    BoxesScoresLabelsAdapter,
    NmsIncludedAdapter,
    UltralyticsRawAdapter,
)
from auditkit.models.adapters.end2end import MmdeployAdapter, RtDetrAdapter, TorchvisionAdapter
from auditkit.models.adapters.interface import (
    Adapter,
    Decoded,
    Dtypes,
    Signature,
    Sizes,
    auxiliary_inputs,
    is_integer,
)
from auditkit.models.adapters.maps import (
    AnomalibAdapter,
    SegmentationClassesAdapter,
    SegmentationDefectMapAdapter,
    SegmentationLabelsAdapter,
)
from auditkit.models.adapters.paddle import (
    GflRawAdapter,
    PaddleNmsAdapter,
    gfl_outputs,
    paddle_nms_outputs,
)
from auditkit.models.card import CONVENTIONS, ModelCard

__all__ = [
    "ADAPTERS",
    "CLASS_INDEX_MAPS",
    "Adapter",
    "Decoded",
    "Dtypes",
    "Signature",
    "Sizes",
    "auxiliary_inputs",
    "detect_convention",
    "make_adapter",
    "task_of",
]

ADAPTERS: dict[str, type[Adapter]] = {
    a.convention: a
    for a in (
        ClassifierAdapter,
        UltralyticsRawAdapter,
        NmsIncludedAdapter,
        BoxesScoresLabelsAdapter,
        RtDetrAdapter,
        TorchvisionAdapter,
        MmdeployAdapter,
        PaddleNmsAdapter,
        GflRawAdapter,
        AnomalibAdapter,
        SegmentationClassesAdapter,
        SegmentationDefectMapAdapter,
        SegmentationLabelsAdapter,
    )
}

#: conventions whose label maps hold class indices (not a 0/1 predicted mask)
CLASS_INDEX_MAPS = ("segmentation_classes", "segmentation_labels")


def task_of(convention: str) -> str:
    return next(task for task, conventions in CONVENTIONS.items() if convention in conventions)


def _static(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _by_shape(
    name: str, shape: list[Any], card: ModelCard | None, integer: bool = False
) -> list[str]:
    """Conventions a single output of this shape (and element type) could follow."""
    rank = len(shape)
    if integer and (rank == 3 or (rank == 4 and _static(shape[1]) == 1)):
        return ["segmentation_labels"]  # a class-index map (PaddleSeg argmax)
    if rank == 2:
        return ["classifier"]
    if rank == 4:
        channels = _static(shape[1])
        if channels == 1:
            return ["segmentation_defect_map"]
        if channels is not None:
            return ["segmentation_classes"]
        return ["segmentation_defect_map", "segmentation_classes"]
    if rank == 3:
        d1, d2 = _static(shape[1]), _static(shape[2])
        found = []
        if d2 == 6:
            found.append("nms_included")
        nc = len(card.classes) if card is not None and card.task == "detection" else None
        if nc is not None:
            if d1 == 4 + nc:
                found.append("ultralytics_raw")
            if d2 == 4 + nc:
                found.append("rtdetr")
        else:
            if d1 is not None and d1 >= 5 and (d2 is None or d2 > d1):
                found.append("ultralytics_raw")
            if d2 is not None and d2 >= 5 and d2 != 6 and (d1 is None or d1 > d2):
                found.append("rtdetr")
        if card is not None and card.task == "segmentation" and not found:
            found.append("segmentation_defect_map")  # (batch, H, W)
        return found
    return []


def detect_convention(
    signature: Signature,
    card: ModelCard | None = None,
    model_name: str = "the model",
    dtypes: Dtypes = None,
) -> str:
    """The output convention: the card's ``output.convention``, else read from the graph.

    Rules, in order: outputs named ``pred_score``/``anomaly_map`` -> ``anomalib``; outputs
    ``dets`` and ``labels`` -> ``mmdeploy_end2end``; outputs ``boxes``, ``scores``,
    ``labels`` -> ``torchvision`` when ``boxes`` is ``(K, 4)`` (no batch axis), else
    ``boxes_scores_labels``; a rank-2 output of width 6 with a rank-1 output ->
    ``paddle_nms``; ``2 L >= 4`` rank-3 outputs of per-level class scores then box
    distributions -> ``gfl_raw``; else the one output (or the card's ``output.name``) by
    shape: an integer ``(batch, H, W)`` or ``(batch, 1, H, W)`` ``segmentation_labels``;
    ``(batch, C)`` classifier; ``(batch, K, 6)`` ``nms_included``; ``(batch, 4 + nc, N)``
    ``ultralytics_raw`` and ``(batch, K, 4 + nc)`` ``rtdetr`` (``nc`` the card's class count;
    without a card, any ``(batch, R >= 5, N > R)`` and ``(batch, K > R, R >= 5)``, ``R != 6``);
    ``(batch, 1, H, W)`` ``segmentation_defect_map``; ``(batch, C > 1, H, W)``
    ``segmentation_classes``. Two readings, none, or several outputs with none named: a
    :class:`ModelError` asking for ``output.convention`` in the card. A detected convention
    that does not fit the card's task is refused too.
    """
    if card is not None and card.output.convention is not None:
        return card.output.convention
    names = set(signature)
    role = card.output.output_name if card is not None else (lambda r: r)
    single_named = card is not None and card.output.name is not None
    if role("pred_score") in names or role("anomaly_map") in names:
        found = "anomalib"
    elif {role("dets"), role("labels")} <= names:
        found = "mmdeploy_end2end"
    elif {role("boxes"), role("scores"), role("labels")} <= names:
        found = "torchvision" if len(signature[role("boxes")]) == 2 else "boxes_scores_labels"
    elif not single_named and len(signature) > 1 and paddle_nms_outputs(signature, card):
        found = "paddle_nms"
    elif not single_named and gfl_outputs(signature, card) is not None:
        found = "gfl_raw"
    else:
        name = card.output.name if card is not None and card.output.name else None
        if name is None:
            if len(signature) != 1:
                raise ModelError(
                    f"cannot tell the output convention of {model_name}: it has "
                    f"{len(signature)} outputs ({', '.join(signature)}) and none is named; "
                    "set output.convention (and output.name) in the card"
                )
            name = next(iter(signature))
        if name not in signature:
            raise ModelError(
                f"card output {name!r} is not an output of {model_name} "
                f"(model outputs: {', '.join(signature)})"
            )
        candidates = _by_shape(name, signature[name], card, is_integer(dtypes, name))
        if card is not None:
            fitting = [c for c in candidates if c in CONVENTIONS[card.task]]
            candidates = fitting or candidates
        shape = signature[name]
        if not candidates and card is not None and card.task == "detection" and len(shape) == 3:
            rows, nc = _static(shape[1]), len(card.classes)
            if rows is not None and rows >= 5 and _static(shape[2]) != 6:
                raise ModelError(
                    f"model output {name!r} has {rows} rows, i.e. {rows - 4} classes, but the "
                    f"card declares {nc} classes (Ultralytics raw layout (batch, 4 + classes, "
                    f"anchors): expected 4 + {nc} = {4 + nc} rows)"
                )
        if len(candidates) != 1:
            readings = " or ".join(candidates) if candidates else "no known convention"
            raise ModelError(
                f"cannot tell the output convention of {model_name}: output {name!r} of shape "
                f"{signature[name]} reads as {readings}; set output.convention in the card"
            )
        found = candidates[0]
    if card is not None and found not in CONVENTIONS[card.task]:
        raise ModelError(
            f"{model_name}'s outputs follow the {found} convention (task {task_of(found)}), "
            f"but the card declares task {card.task!r}"
        )
    return found


def make_adapter(
    card: ModelCard, signature: Signature, model_name: str, dtypes: Dtypes = None
) -> Adapter:
    """The adapter of the card's (or the detected) convention, its outputs checked."""
    convention = detect_convention(signature, card, model_name, dtypes)
    adapter = ADAPTERS[convention](card, signature, dtypes)
    adapter.check(model_name)
    return adapter
