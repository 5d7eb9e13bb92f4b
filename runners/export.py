"""Export a model for deployment (ONNX, TorchScript, torch.export) and check it against eager PyTorch.

:func:`export_model` is what ``nas export`` calls. It writes nothing until the exported artefact has been
loaded back in its own runtime and its outputs match eager PyTorch on random clips:

1. the model is put in its deployed state (eval mode; a ``warmup`` SRTG gate switched on, as it is after
   its warm-up epochs) and exported with an example batch of :data:`EXPORT_BATCH` clips; the batch
   dimension is dynamic, time and space are fixed (SoftPool's ceil-mode padding and the gate's frame count
   are computed from them at export time);
2. the artefact is loaded back (ONNX Runtime for ONNX, ``torch.jit.load``, ``torch.export.load``) and run
   on seeded random clips at :data:`CHECK_BATCHES` (both differ from the export's batch);
3. the outputs must agree: ``max |exported - eager| <= RTOL * max |eager| + ATOL`` over every check
   batch (see :class:`Tolerance`); otherwise :class:`ExportError` names the largest difference;
4. only then are the file and ``export.json`` (the :class:`ExportReport`) written, into a hidden sibling
   of the output folder renamed into place (:func:`space.files.atomic_dir`): a full disk or a kill leaves
   no partial ``model.onnx`` (docs/export.md).

A model that does not export gets an :class:`ExportError` naming the operator the exporter rejected.

ONNX goes through the ``torch.export``-based ("dynamo") exporter, torch's default since 2.9: the
TorchScript-based one is deprecated in torch 2.13 and rejects ``Tensor.unfold`` on a tensor whose batch
is dynamic (SoftPool's overlapping-window path), while the dynamo exporter exports every catalog family
(see docs/export.md for the comparison).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from space.errors import UserInputError
from space.files import atomic_dir
from space.srtg import srtg_modules

__all__ = [
    "CHECK_BATCHES",
    "EXPORT_BATCH",
    "FORMATS",
    "ONNX_OPSET",
    "TOLERANCE",
    "ExportError",
    "ExportReport",
    "OnnxRunner",
    "Tolerance",
    "compare_outputs",
    "deployed",
    "export_artifact",
    "export_model",
    "load_artifact",
    "random_clips",
]

FORMATS: dict[str, str] = {"onnx": "model.onnx", "torchscript": "model.ts", "exported-program": "model.pt2"}
ONNX_OPSET = 20  # what torch 2.13's exporter targets by default; ONNX Runtime 1.17+ runs it
EXPORT_BATCH = 2  # an example batch of 1 would let torch.export specialise the batch dimension to 1
CHECK_BATCHES = (1, 3)
INPUT_NAME, OUTPUT_NAME = "clip", "logits"


class ExportError(UserInputError):
    """The model does not export in a format, or the exported model's outputs differ from eager PyTorch."""


@dataclass(frozen=True)
class Tolerance:
    """Exported and eager outputs agree when ``max |a - b| <= rtol * max |eager| + atol``.

    Relative to the largest logit, because logits of a freshly initialised network can be ~1e-5 while a
    trained one's are ~10; ``atol`` only matters for an all-zero output. Float32 kernels of two runtimes
    differ by reduction order, ~1e-7 of the output's scale per layer; a sample whose SRTG gate decided
    differently would differ by the whole fused activation, far above the tolerance.
    """

    rtol: float = 1e-4
    atol: float = 1e-7

    def bound(self, scale: float) -> float:
        return self.rtol * scale + self.atol

    def label(self) -> str:
        return f"max|exported - eager| <= {self.rtol:g} * max|eager| + {self.atol:g}"


TOLERANCE = Tolerance()


@dataclass(frozen=True)
class ExportReport:
    """What ``nas export`` prints and writes to ``export.json``."""

    format: str
    path: str
    size_bytes: int
    opset: int | None
    input_shape: str  # "N x 3 x T x H x W" with N dynamic
    check_batches: tuple[int, ...]
    max_abs_diff: float
    output_scale: float  # max |eager| over the check batches
    tolerance: str
    export_seconds: float

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["check_batches"] = list(self.check_batches)
        return d


# --------------------------------------------------------------------------------------------
# The deployed model and its inputs
# --------------------------------------------------------------------------------------------


def deployed(model: nn.Module) -> nn.Module:
    """``model`` in the state it is deployed in: eval mode, every ``warmup`` SRTG gate switched on.

    A ``warmup`` gate is inactive only during its first training epochs; a freshly built or freshly
    loaded model starts inactive, which is not how it ran at the end of training.
    """
    for module in srtg_modules(model).values():
        if module.gate_mode == "warmup":
            module.gate_active = True
    return model.eval()


def random_clips(batch: int, shape: tuple[int, int, int], seed: int) -> Tensor:
    """``batch x 3 x T x H x W`` standard-normal clips from a seeded generator (the space of normalised clips)."""
    return torch.randn(batch, 3, *shape, generator=torch.Generator().manual_seed(seed))


def shape_text(shape: tuple[int, int, int]) -> str:
    return "N x 3 x " + " x ".join(str(v) for v in shape)


# --------------------------------------------------------------------------------------------
# Exporters: model + example clip -> a file
# --------------------------------------------------------------------------------------------


def _batch_dim() -> Any:
    return torch.export.Dim("batch", min=1, max=4096)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters print progress and warnings meant for their developers; keep the CLI's output clean."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _export_onnx(model: nn.Module, example: Tensor, path: Path) -> None:
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        opset_version=ONNX_OPSET,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: _batch_dim()},),
        external_data=False,  # one self-contained file (every catalog model is far below ONNX's 2 GB limit)
        verbose=False,
    )


def _export_torchscript(model: nn.Module, example: Tensor, path: Path) -> None:
    traced = torch.jit.trace(model, example, check_trace=False)  # the check below runs at other batch sizes
    torch.jit.save(traced, str(path))


def _export_program(model: nn.Module, example: Tensor, path: Path) -> None:
    program = torch.export.export(model, (example,), dynamic_shapes=({0: _batch_dim()},))
    torch.export.save(program, str(path))


_EXPORTERS: dict[str, Callable[[nn.Module, Tensor, Path], None]] = {
    "onnx": _export_onnx,
    "torchscript": _export_torchscript,
    "exported-program": _export_program,
}

_OP_PATTERNS = (
    r"op='([\w.]+)', overload='(\w+)'",  # the dynamo exporter: <OpOverload(op='aten.histc', overload='default')>
    r"torch\.ops\.([\w.]+)",
    r"aten::(\w+)",
    r"[Oo]perator (\w+(?:::\w+)?)",
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes, outermost first (the exporters wrap the real reason several times)."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return chain


def failing_op(messages: list[str]) -> str | None:
    """The operator the innermost error that names one names (``aten.histc.default``, ``aten::unfold``...)."""
    for message in reversed(messages):
        for pattern in _OP_PATTERNS:
            match = re.search(pattern, message)
            if match:
                return ".".join(match.groups())
    return None


def export_artifact(model: nn.Module, fmt: str, example: Tensor, path: Path) -> None:
    """Export ``model`` (deployed state) to ``path`` in ``fmt``; :class:`ExportError` names the failing op."""
    try:
        with torch.no_grad(), _quiet():
            _EXPORTERS[fmt](model, example, path)
    except Exception as exc:  # the exporters raise many unrelated types; all mean "does not export"
        chain = _chain(exc)
        messages = [_ANSI.sub("", str(e)) for e in chain]
        op = failing_op(messages)
        reason = next((m for m in reversed(messages) if m.strip()), type(exc).__name__)
        first_line = " ".join(reason.strip().splitlines()[0].split())[:240]
        where = f" at op {op}" if op else ""
        raise ExportError(f"{fmt} export failed{where}: {type(chain[-1]).__name__}: {first_line}") from exc


# --------------------------------------------------------------------------------------------
# Loaders: a file -> a callable on clips, in the format's own runtime
# --------------------------------------------------------------------------------------------


class OnnxRunner:
    """An ONNX Runtime session on one model file: ``runner(clips) -> logits`` (numpy in, numpy out).

    CPU: ``threads`` intra-op threads, one inter-op thread, sequential execution (the same fixed thread
    count as an eager profile). CUDA needs ``onnxruntime-gpu``; inputs and outputs are bound on the GPU
    with an I/O binding so a timed call does not include host <-> device copies of the clip.
    """

    def __init__(self, path: Path | str, *, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = threads
        self.device = device
        providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UserInputError("ONNX Runtime has no CUDA execution provider here (install onnxruntime-gpu)")
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, clips: np.ndarray | Tensor) -> np.ndarray:
        array = clips.numpy() if isinstance(clips, Tensor) else clips
        return self.session.run(None, {self.input_name: np.ascontiguousarray(array, dtype=np.float32)})[0]

    def bound_step(self, clips: np.ndarray) -> Callable[[], None]:
        """A zero-argument call that runs the model on ``clips`` already placed on the device (for timing)."""
        if self.device != "cuda":
            feed = {self.input_name: np.ascontiguousarray(clips, dtype=np.float32)}

            def cpu_step() -> None:
                self.session.run(None, feed)

            return cpu_step
        import onnxruntime as ort

        binding = self.session.io_binding()
        on_gpu = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(clips, dtype=np.float32), "cuda", 0)
        binding.bind_ortvalue_input(self.input_name, on_gpu)
        binding.bind_output(self.session.get_outputs()[0].name, "cuda", 0)

        def step() -> None:
            self.session.run_with_iobinding(binding)  # returns after the CUDA stream is synchronised

        return step


def load_artifact(fmt: str, path: Path) -> Callable[[Tensor], np.ndarray]:
    """Run the exported file the way a deployment would: its own runtime, not our Python classes."""
    if fmt == "onnx":
        return OnnxRunner(path)
    if fmt == "torchscript":
        module = torch.jit.load(str(path)).eval()
    else:
        module = torch.export.load(str(path)).module()

    def run(clips: Tensor) -> np.ndarray:
        with torch.no_grad():
            return module(clips).numpy()

    return run


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    max_abs_diff: float
    output_scale: float
    worst_batch: int

    def within(self, tolerance: Tolerance) -> bool:
        return self.max_abs_diff <= tolerance.bound(self.output_scale)


def compare_outputs(model: nn.Module, run: Callable[[Tensor], np.ndarray], batches: list[Tensor]) -> Comparison:
    """Largest |exported - eager| over ``batches`` and the largest |eager| (NaN or a wrong shape: infinite)."""
    worst, scale, worst_batch = 0.0, 0.0, 0
    for clips in batches:
        with torch.no_grad():
            eager = model(clips).numpy()
        exported = np.asarray(run(clips))
        if exported.shape != eager.shape:
            return Comparison(float("inf"), float(np.abs(eager).max()), int(clips.shape[0]))
        diff = np.abs(exported.astype(np.float64) - eager.astype(np.float64))
        largest = float(diff.max()) if np.isfinite(diff).all() else float("inf")
        scale = max(scale, float(np.abs(eager).max()))
        if largest >= worst:
            worst, worst_batch = largest, int(clips.shape[0])
    return Comparison(worst, scale, worst_batch)


# --------------------------------------------------------------------------------------------
# The whole step
# --------------------------------------------------------------------------------------------


def check_out_dir(out_dir: Path) -> None:
    """Refuse a non-empty output folder before any work (the same rule as ``nas retrain --out``)."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserInputError(f"output folder {out_dir} is not empty; choose another --out")


def check_runs_eagerly(model: nn.Module, example: Tensor) -> None:
    """A clip shape the model cannot take is bad input, not an export failure: say so first."""
    try:
        with torch.no_grad():
            model(example)
    except (RuntimeError, ValueError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise UserInputError(f"the model does not run on clips of {tuple(example.shape[1:])}: {first}") from exc


def export_model(
    model: nn.Module,
    *,
    fmt: str,
    out_dir: Path | str,
    shape: tuple[int, int, int],
    seed: int = 0,
    check_batches: tuple[int, ...] = CHECK_BATCHES,
    tolerance: Tolerance = TOLERANCE,
    source: dict[str, Any] | None = None,
    on_stage: Callable[[str], None] = lambda stage: None,
) -> ExportReport:
    """Export ``model`` in ``fmt`` to ``out_dir/model.*``, checked against eager PyTorch first.

    ``shape`` is the clip's T x H x W (the batch stays dynamic). ``source`` (what was exported: spec,
    weights) is recorded in ``export.json``; ``on_stage`` hears each step's name (for a progress line).
    Raises :class:`ExportError` and writes nothing when the model does not export or its exported outputs
    differ by more than ``tolerance``.
    """
    if fmt not in FORMATS:
        raise UserInputError(f"--format {fmt!r} is not allowed; allowed: {', '.join(FORMATS)}")
    if any(batch < 1 for batch in check_batches):
        raise UserInputError(f"check batches {check_batches} must be >= 1")
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    model = deployed(model)
    example = random_clips(EXPORT_BATCH, shape, seed)
    check_runs_eagerly(model, example)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="videonas-export-") as tmp:
        staged = Path(tmp) / FORMATS[fmt]
        on_stage(f"exporting to {fmt}")
        export_artifact(model, fmt, example, staged)
        seconds = time.perf_counter() - started
        on_stage(f"checking against eager PyTorch at batch {', '.join(map(str, check_batches))}")
        batches = [random_clips(batch, shape, seed + 1 + i) for i, batch in enumerate(check_batches)]
        result = compare_outputs(model, load_artifact(fmt, staged), batches)
        if not result.within(tolerance):
            raise ExportError(
                f"{fmt} export differs from eager PyTorch: largest difference {result.max_abs_diff:.3g} at batch "
                f"{result.worst_batch} (output scale {result.output_scale:.3g}; allowed {tolerance.label()})"
            )
        report = ExportReport(
            format=fmt,
            path=str(out_dir / FORMATS[fmt]),
            size_bytes=staged.stat().st_size,
            opset=onnx_opset(staged) if fmt == "onnx" else None,
            input_shape=shape_text(shape),
            check_batches=tuple(check_batches),
            max_abs_diff=result.max_abs_diff,
            output_scale=result.output_scale,
            tolerance=tolerance.label(),
            export_seconds=round(seconds, 2),
        )
        record = {"export": report.as_dict(), "source": source or {}, "torch": torch.__version__}
        with atomic_dir(out_dir) as folder:  # both files or neither: a full disk leaves no partial model
            shutil.copyfile(staged, folder / FORMATS[fmt])
            (folder / "export.json").write_text(json.dumps(record, indent=2))
    return report


def onnx_opset(path: Path) -> int:
    """The default-domain opset a model file declares."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(int(entry.version) for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
