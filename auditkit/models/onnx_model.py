"""The deployed model: an onnxruntime session, its fingerprint, and its I/O contract.

Preprocessing is part of the deployed model (the card declares it); it lives in
:mod:`auditkit.models.preprocess`, which decode worker processes import without onnxruntime.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from auditkit.errors import ModelError, first_line
from auditkit.models.adapters import Adapter, Decoded, Sizes, auxiliary_inputs, make_adapter
from auditkit.models.adapters.interface import PADDLE_AUXILIARY_INPUTS
from auditkit.models.card import ModelCard
from auditkit.models.contract import check_input, read_model_bytes


@dataclass(frozen=True)
class SessionSettings:
    """onnxruntime options. Spinning is off by default: busy-waiting intra-op threads compete
    with the decode threads and cost 15–55 % throughput on a 2-core machine (replay spike)."""

    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_threads: int = 1
    graph_optimization: str = "all"
    allow_spinning: bool = False


#: short names accepted by ``--providers`` (any full onnxruntime provider name works too)
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "rocm": "ROCMExecutionProvider",
}


_NVIDIA_PROVIDERS = {"CUDAExecutionProvider", "TensorrtExecutionProvider"}


def parse_providers(text: str | None) -> tuple[str, ...]:
    """``"cuda,cpu"`` or ``"CUDAExecutionProvider,CPUExecutionProvider"`` → provider names, in
    order of preference; empty → the CPU provider. Availability is checked when loading."""
    names = [part.strip() for part in (text or "").split(",") if part.strip()]
    if not names:
        return ("CPUExecutionProvider",)
    resolved: list[str] = []
    for name in names:
        full = PROVIDER_ALIASES.get(name.lower(), name)
        if full not in resolved:
            resolved.append(full)
    return tuple(resolved)


_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def _signature(args: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": a.name,
            "shape": [str(d) if d is not None else "?" for d in a.shape],
            "type": a.type,
        }
        for a in args
    ]


def _classes_from_metadata(card: ModelCard, session: Any, model_name: str) -> ModelCard:
    """A card without classes takes them from the model's ``metadata_props`` (``names`` as
    Ultralytics writes it, or a JSON list under ``classes``)."""
    from auditkit.models.inspect import metadata_classes

    meta = dict(session.get_modelmeta().custom_metadata_map)
    names = metadata_classes(meta)
    if not names:
        raise ModelError(
            f"the card lists no classes and {model_name}'s metadata_props name none "
            "(keys 'names' or 'classes'); list them in the card"
        )
    try:
        return card.with_classes(names)
    except ValueError as exc:
        raise ModelError(
            f"classes from {model_name}'s metadata_props {names}: {first_line(exc)}"
        ) from None


#: how far a row of declared probabilities may sum from 1 (float16 exports round to ~1e-3)
SUM_TOLERANCE = 1e-3


class NotProbabilities(ModelError):
    """Outputs declared as probabilities that are not: a fault of the model or its card, not
    of an image, so the replay stops (exit 5) instead of failing image by image."""


def check_probabilities(scores: np.ndarray, model_name: str, output: str) -> None:
    """Refuse (:class:`NotProbabilities`, one line) a batch of class scores declared as
    probabilities (``output.kind: probabilities``, a softmax) when a finite row sums to more
    than :data:`SUM_TOLERANCE` away from 1 or holds a value outside [0, 1] (by more than
    1e-5). Logits that happen to lie in [0, 1] sum to anything: they are caught here too.
    Rows with NaN or infinity stay per-image errors."""
    rows = np.asarray(scores, dtype=np.float64)
    finite = rows[np.isfinite(rows).all(axis=1)]
    if not len(finite):
        return
    sums = finite.sum(axis=1)
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    outside = (finite.min(axis=1) < -1e-5) | (finite.max(axis=1) > 1 + 1e-5)
    bad = off | outside
    if bad.any():
        raise NotProbabilities(
            f"{model_name}: output {output!r} is declared as probabilities (card output.kind) "
            f"but {int(bad.sum())} of {len(finite)} rows of a batch are not: row sums "
            f"{sums.min():.4g} to {sums.max():.4g} (must be 1 within {SUM_TOLERANCE:g}), "
            f"values {finite.min():.4g} to {finite.max():.4g} (must lie in [0, 1]); "
            "if the model outputs logits, declare output.kind: logits"
        )


def _check_metadata(card: ModelCard, session: Any, model_name: str) -> None:
    """Refuse a card whose class order, input size or preprocessing differs from what the
    model's ``metadata_props`` declare (the check ``model inspect`` shows,
    :func:`auditkit.models.inspect.metadata_disagreements`): scores read in another class
    order relabel images silently. One line naming both; the first disagreement of several."""
    from auditkit.models.inspect import metadata_disagreements

    meta = dict(session.get_modelmeta().custom_metadata_map)
    found = metadata_disagreements(card, meta)
    if found:
        more = f" (and {len(found) - 1} more: see `auditkit model inspect`)" if found[1:] else ""
        raise ModelError(f"{model_name} and its card disagree: {found[0]}{more}")


@dataclass
class DeployedModel:
    """An onnxruntime session over the exact model file, checked against its card."""

    path: Path
    card: ModelCard
    settings: SessionSettings = field(default_factory=SessionSettings)
    sha256: str = ""
    session: ort.InferenceSession | None = None
    adapter: Adapter | None = None
    #: feeds besides the image (PaddleDetection's im_shape, scale_factor), set at load
    _auxiliary: tuple[str, ...] = ()

    @classmethod
    def load(
        cls, path: Path, card: ModelCard, settings: SessionSettings | None = None
    ) -> DeployedModel:
        settings = settings or SessionSettings()
        data = read_model_bytes(path)
        options = ort.SessionOptions()
        options.graph_optimization_level = _OPT_LEVELS[settings.graph_optimization]
        options.intra_op_num_threads = settings.intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        spin = "1" if settings.allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        available = set(ort.get_available_providers())
        unknown = [p for p in settings.providers if p not in available]
        if unknown:
            raise ModelError(
                f"execution provider(s) {', '.join(unknown)} not available; "
                f"installed: {', '.join(sorted(available))}"
            )
        try:
            session = ort.InferenceSession(data, options, providers=list(settings.providers))
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(
                f"cannot load ONNX model {path.name}: {first_line(exc, 200)}"
            ) from None
        if not card.classes:
            card = _classes_from_metadata(card, session, path.name)
        _check_metadata(card, session, path.name)
        model = cls(
            path=path,
            card=card,
            settings=settings,
            sha256=hashlib.sha256(data).hexdigest(),
            session=session,
        )
        model._check_contract()
        return model

    def _check_contract(self) -> None:
        """Refuse a model whose inputs/outputs do not match its card, before replaying anything."""
        assert self.session is not None
        inputs = {i.name: list(i.shape) for i in self.session.get_inputs()}
        check_input(self.card.input, inputs, self.path.name)
        unfed = [
            n for n in inputs if n != self.card.input.name and n not in PADDLE_AUXILIARY_INPUTS
        ]
        if unfed:
            raise ModelError(
                f"model input(s) {', '.join(unfed)} of {self.path.name} are not the card's "
                f"input {self.card.input.name!r} and auditkit cannot feed them (it feeds the "
                f"image and PaddleDetection's {', '.join(PADDLE_AUXILIARY_INPUTS)})"
            )
        self._auxiliary = tuple(n for n in inputs if n in PADDLE_AUXILIARY_INPUTS)
        outputs = self.session.get_outputs()
        signature = {o.name: list(o.shape) for o in outputs}
        dtypes = {o.name: str(o.type) for o in outputs}
        self.adapter = make_adapter(self.card, signature, self.path.name, dtypes)

    @property
    def fixed_batch(self) -> int | None:
        """The input's static batch size, or None when the batch axis is dynamic; 1 when the
        output convention decodes one image per call (torchvision, PP-PicoDet heads)."""
        assert self.session is not None and self.adapter is not None
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        if self.adapter.one_image_per_call or self._unbatched:
            return 1
        first = inputs[self.card.input.name][0]
        return first if isinstance(first, int) and first > 0 else None

    @functools.cached_property
    def _unbatched(self) -> bool:
        """The image input has no batch axis (rank 3): one image per call, fed as ``(C, H, W)``."""
        assert self.session is not None
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        return len(inputs[self.card.input.name]) == 3

    @property
    def convention(self) -> str:
        assert self.adapter is not None
        return self.adapter.convention

    @property
    def score_columns(self) -> list[str]:
        """Names of the per-image summary scores (the class probabilities of a classifier)."""
        assert self.adapter is not None
        return self.adapter.columns

    def run(self, batch: np.ndarray, sizes: Sizes = None) -> Decoded:
        """Predictions for one batch: summary scores, per-image errors, and detections and
        maps in original-image pixels when ``sizes`` (``(width, height)`` per image) is given."""
        assert self.session is not None and self.adapter is not None
        tensor = batch.astype(np.float32, copy=False)
        if self._unbatched:
            if len(tensor) != 1:
                raise ModelError(
                    f"{self.path.name} takes one image without a batch axis, got a batch of "
                    f"{len(tensor)}"
                )
            tensor = tensor[0]
        feeds = {self.card.input.name: tensor}
        if self._auxiliary:
            spec = self.card.input
            feeds.update(auxiliary_inputs(self._auxiliary, len(batch), (spec.height, spec.width)))
        raw = self.session.run(self.adapter.output_names, feeds)
        decoded = self.adapter.decode([np.asarray(r) for r in raw], sizes)
        if self.card.task == "classification" and self.card.output.kind == "probabilities":
            check_probabilities(decoded.scores, self.path.name, self.adapter.output_names[0])
        return decoded

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Summary scores, shape (batch, columns), float64: for a classifier, the class
        probabilities."""
        return self.run(batch).scores

    @property
    def runs_on_gpu(self) -> bool:
        """Whether onnxruntime runs this model on an NVIDIA GPU (what an energy meter must see)."""
        assert self.session is not None
        return bool(_NVIDIA_PROVIDERS & set(self.session.get_providers()))

    def description(self) -> dict[str, Any]:
        assert self.session is not None
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "inputs": _signature(self.session.get_inputs()),
            "outputs": _signature(self.session.get_outputs()),
            "providers_used": self.session.get_providers(),
            "metadata_props": dict(self.session.get_modelmeta().custom_metadata_map),
            "convention": self.convention,
            "complexity": self.complexity(),
        }

    def complexity(self) -> dict[str, Any]:
        """Parameters, FLOPs per image and file size (:mod:`auditkit.models.inspect`)."""
        from auditkit.models.inspect import complexity  # imports onnx: only when recording

        return complexity(self.path, self.card)
