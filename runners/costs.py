"""Costs of an architecture (``docs/costs.md``): GMACs by two counters that must agree, and parameters.

GMACs are the multiply-accumulates of convolutions, linear layers, matrix products and RNNs; element-wise
ops, normalisation and pooling are not counted (torchvision's and fvcore-based model zoos' convention).

Two counters give the same number:

* :func:`fvcore_analysis` - the reference. fvcore ``FlopCountAnalysis`` (a ``torch.jit`` trace of a real
  forward on CPU) with handles for ``aten::lstm`` / ``aten::gru`` and every op that is not counted set to
  "ignore", so ``unsupported_ops()`` is empty: an op nobody classified is an error, never a silent zero.
* :func:`count_macs_meta` - the fast one the search uses. ``torch.utils.flop_counter.FlopCounterMode`` over
  a forward on the ``meta`` device (shapes only, no memory, no arithmetic), halved (it counts 2 FLOPs per
  MAC). Whatever it attributes to an RNN module is replaced by the exact RNN formula below, because how
  ``aten::lstm`` decomposes (and so whether it is counted at all) depends on the device and torch version.

RNN MACs: each weight matrix W (``weight_ih``, ``weight_hh``, ``weight_hr`` of every layer and direction)
is applied once per time step and sample, so MACs = sum(numel(W)) * T * B. For a unidirectional stack this
is exactly 4H(I+H)T per LSTM layer and 3H(I+H)T per GRU layer (I = that layer's input size), times batch.
Biases are additions, not MACs.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from runners.shape import Shape, parse_shape, shape_label
from space import ArchSpec, build_model
from space.errors import UserInputError

__all__ = [
    "COUNTING_METHODS",
    "RNN_OPS",
    "UNCOUNTED_OPS",
    "CostMismatchError",
    "GMACsPair",
    "ModelCosts",
    "count_gmacs",
    "count_gmacs_both",
    "count_macs_fvcore",
    "count_macs_meta",
    "count_params",
    "fvcore_analysis",
    "model_costs",
    "parse_shape",
    "rnn_macs",
    "shape_label",
]

COUNTING_METHODS = ("meta", "fvcore")
AGREEMENT_TOLERANCE = 1e-3  # fvcore and meta must agree within 0.1%

RNN_OPS = ("aten::lstm", "aten::gru", "aten::rnn_tanh", "aten::rnn_relu")

# Ops that cost no MACs by the convention of docs/costs.md, beyond fvcore's own zero-cost list (shape and copy ops).
# Kept explicit so a new op in a model is noticed (unsupported_ops() would list it) and classified here.
UNCOUNTED_OPS = (
    # normalisation
    "aten::batch_norm",
    "aten::group_norm",
    "aten::layer_norm",
    "aten::instance_norm",
    "aten::norm",
    "aten::linalg_vector_norm",
    # pooling
    "aten::adaptive_avg_pool3d",
    "aten::adaptive_avg_pool2d",
    "aten::avg_pool3d",
    "aten::avg_pool2d",
    "aten::max_pool3d",
    "aten::max_pool2d",
    # element-wise arithmetic and activations
    "aten::add",
    "aten::add_",
    "aten::sub",
    "aten::sub_",
    "aten::rsub",
    "aten::mul",
    "aten::mul_",
    "aten::div",
    "aten::div_",
    "aten::neg",
    "aten::abs",
    "aten::pow",
    "aten::sqrt",
    "aten::rsqrt",
    "aten::exp",
    "aten::log",
    "aten::tanh",
    "aten::tanh_",
    "aten::sigmoid",
    "aten::sigmoid_",
    "aten::softmax",
    "aten::log_softmax",
    "aten::round",
    "aten::clamp_min",
    "aten::clamp_min_",
    "aten::maximum",
    "aten::minimum",
    "aten::where",
    # reductions, comparisons, selection
    "aten::mean",
    "aten::sum",
    "aten::amax",
    "aten::min",
    "aten::argmin",
    "aten::argmax",
    "aten::all",
    "aten::any",
    "aten::le",
    "aten::lt",
    "aten::ne",
    "aten::logical_not",
    "aten::bitwise_and",
    "aten::__and__",
    "aten::__or__",
    # shape, views and creation not in fvcore's own list
    "aten::numel",
    "aten::unsqueeze",
    "aten::unfold",
    "aten::new_ones",
    "aten::view",
    "aten::expand_as",
    "aten::unbind",
    "aten::ones_like",
    "aten::zeros_like",
    "aten::zeros",
    "aten::ones",
    "aten::pad",
    "aten::max_pool3d_with_indices",
    "aten::clone",
    "aten::repeat",
    "aten::repeat_interleave",
)


class CostMismatchError(RuntimeError):
    """fvcore and the meta-device count disagree: one of them misses or double-counts an op (a bug)."""


# --------------------------------------------------------------------------------------------
# Shapes (parsing and labels: runners/shape.py)
# --------------------------------------------------------------------------------------------


def _check_shape(shape: Shape) -> Shape:
    if len(shape) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape):
        raise UserInputError(f"shape={shape!r} is not allowed; allowed: (T, H, W) with positive integers")
    return tuple(shape)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# RNN MACs
# --------------------------------------------------------------------------------------------


def rnn_macs(rnn: nn.RNNBase, inputs: Tensor | PackedSequence) -> int:
    """MACs of one RNN forward: (sum of its weight matrices' sizes) x (time steps x batch)."""
    data = inputs.data if isinstance(inputs, PackedSequence) else inputs
    rows = math.prod(data.shape[:-1])  # T x B (either layout), T unbatched, or the packed rows
    weights = sum(getattr(rnn, name).numel() for name in rnn._flat_weights_names if name.startswith("weight_"))
    return weights * rows


def _jit_shape(value: Any) -> list[int] | None:
    return value.type().sizes() if value.isCompleteTensor() else None


def _rnn_jit_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle for aten::lstm / gru / rnn_*: the same formula as :func:`rnn_macs`, from the trace.

    Schemas: ``(input, hx, params, has_biases, ...)`` or, for packed sequences,
    ``(data, batch_sizes, hx, params, has_biases, ...)``; ``params`` is the weight (and bias) list.
    """
    params = inputs[3] if str(inputs[3].type()).startswith("List") else inputs[2]
    shapes = [_jit_shape(v) for v in params.node().inputs()]
    if any(s is None for s in shapes):
        raise CostMismatchError("aten RNN op with parameters of unknown shape in the trace")
    weights = sum(math.prod(s) for s in shapes if len(s) == 2)  # biases are 1-D
    input_shape = _jit_shape(inputs[0])
    if input_shape is None:
        raise CostMismatchError("aten RNN op with an input of unknown shape in the trace")
    return weights * math.prod(input_shape[:-1])


# --------------------------------------------------------------------------------------------
# The two counters
# --------------------------------------------------------------------------------------------


def fvcore_analysis(model: nn.Module, x: Tensor):
    """fvcore ``FlopCountAnalysis`` configured for ``docs/costs.md`` (``unsupported_ops()`` must come out empty).

    ``model`` and ``x`` must be real (not meta) tensors: fvcore traces a real forward.
    """
    from fvcore.nn import FlopCountAnalysis

    from fvcore.nn import jit_handles

    analysis = FlopCountAnalysis(model, (x,))
    # Start from no handles: fvcore's defaults also count batch norm, upsampling and pooling, and its
    # ``set_op_handle(op, None)`` does not drop a default handle.
    analysis.clear_op_handles()
    analysis.set_op_handle(
        **{
            "aten::_convolution": jit_handles.conv_flop_jit,
            "aten::linear": jit_handles.linear_flop_jit,
            "aten::addmm": jit_handles.addmm_flop_jit,
            "aten::mm": jit_handles.matmul_flop_jit,
            "aten::matmul": jit_handles.matmul_flop_jit,
            "aten::bmm": jit_handles.bmm_flop_jit,
            "aten::einsum": jit_handles.einsum_flop_jit,
        }
    )
    analysis.set_op_handle(**{op: _rnn_jit_handle for op in RNN_OPS})
    analysis.set_op_handle(**{op: None for op in UNCOUNTED_OPS})
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    return analysis


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """The traced forward only needs shapes; one thread avoids OpenMP spinning on a busy machine (10x here)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def count_macs_fvcore(model: nn.Module, x: Tensor) -> int:
    """MACs by fvcore (eval mode, no grad); raises :class:`CostMismatchError` if any op is unclassified."""
    model.eval()
    with torch.no_grad(), _single_thread():
        analysis = fvcore_analysis(model, x)
        total = int(analysis.total())
        unsupported = analysis.unsupported_ops()
    if unsupported:
        names = ", ".join(sorted(unsupported))
        raise CostMismatchError(f"fvcore met ops not classified in runners.costs.UNCOUNTED_OPS: {names}")
    return total


class _ExactRNNCounts:
    """Forward hooks on every RNN module: note what FlopCounterMode attributed to it and the exact MACs."""

    def __init__(self, model: nn.Module, counter: Any) -> None:
        self.counter = counter
        self.rnns = [m for m in model.modules() if isinstance(m, nn.RNNBase)]
        self.counted_flops = 0  # what FlopCounterMode saw inside RNN modules (2 per MAC)
        self.exact_macs = 0
        self._before: list[int] = []
        self._handles: list[Any] = []

    def __enter__(self) -> "_ExactRNNCounts":
        for rnn in self.rnns:
            self._handles.append(rnn.register_forward_pre_hook(self._pre))
            self._handles.append(rnn.register_forward_hook(self._post))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()

    def _pre(self, module: nn.Module, args: tuple) -> None:
        self._before.append(self.counter.get_total_flops())

    def _post(self, module: nn.Module, args: tuple, output: Any) -> None:
        self.counted_flops += self.counter.get_total_flops() - self._before.pop()
        self.exact_macs += rnn_macs(module, args[0])


def count_macs_meta(model: nn.Module, x: Tensor) -> int:
    """MACs by ``FlopCounterMode`` (halved) with exact RNN MACs; use a meta-device model and input."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter, _ExactRNNCounts(model, counter) as rnns:
        model(x)
    return (counter.get_total_flops() - rnns.counted_flops) // 2 + rnns.exact_macs


# --------------------------------------------------------------------------------------------
# From a spec
# --------------------------------------------------------------------------------------------


def _input(shape: Shape, device: str, batch: int = 1) -> Tensor:
    generator = torch.Generator().manual_seed(0)
    if device == "meta":
        return torch.empty(batch, 3, *shape, device="meta")
    return torch.randn(batch, 3, *shape, generator=generator)


def _build(spec: ArchSpec, num_classes: int, device: str) -> nn.Module:
    """Build on ``meta``; for ``cpu`` materialise it with zero weights (counting needs shapes, not init)."""
    with torch.device("meta"):
        model = build_model(spec, num_classes=num_classes)
    if device == "meta":
        return model
    model = model.to_empty(device=device)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.zero_()  # no uninitialised memory (NaN, denormals) in the traced forward
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
    return model


def count_gmacs(spec: ArchSpec, shape: Shape = (16, 112, 112), num_classes: int = 400, method: str = "meta") -> float:
    """GMACs of ``spec`` (at width 1) for one clip of 1 x 3 x T x H x W; ``method`` is "meta" or "fvcore"."""
    shape = _check_shape(shape)
    if method not in COUNTING_METHODS:
        raise UserInputError(f"method={method!r} is not allowed; allowed: {', '.join(COUNTING_METHODS)}")
    if method == "meta":
        macs = count_macs_meta(_build(spec, num_classes, "meta"), _input(shape, "meta"))
    else:
        macs = count_macs_fvcore(_build(spec, num_classes, "cpu"), _input(shape, "cpu"))
    return macs / 1e9


@dataclass(frozen=True)
class GMACsPair:
    """The same GMACs by both counters (they agree within 0.1%, or :func:`count_gmacs_both` raised)."""

    fvcore: float
    meta: float
    shape: Shape

    @property
    def relative_difference(self) -> float:
        return abs(self.fvcore - self.meta) / max(abs(self.fvcore), 1e-12)


def count_gmacs_both(spec: ArchSpec, shape: Shape = (16, 112, 112), num_classes: int = 400) -> GMACsPair:
    """Count with fvcore and with the meta device; raise :class:`CostMismatchError` unless within 0.1%."""
    pair = GMACsPair(
        fvcore=count_gmacs(spec, shape, num_classes, method="fvcore"),
        meta=count_gmacs(spec, shape, num_classes, method="meta"),
        shape=tuple(shape),  # type: ignore[arg-type]
    )
    if pair.relative_difference > AGREEMENT_TOLERANCE:
        raise CostMismatchError(
            f"GMACs @ {shape_label(pair.shape)}: fvcore {pair.fvcore:.6f} vs meta {pair.meta:.6f} "
            f"({pair.relative_difference:.3%} apart, allowed 0.1%)"
        )
    return pair


def _rnn_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            yield from module.parameters()


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, recurrent): every parameter, and those of RNN modules (weights and biases)."""
    total = sum(p.numel() for p in model.parameters())
    recurrent = sum(p.numel() for p in _rnn_parameters(model))
    return total, recurrent


def spec_params(spec: ArchSpec, num_classes: int = 400) -> int:
    """Parameters of ``spec`` from a meta build alone (milliseconds: no forward pass)."""
    return count_params(_build(spec, num_classes, "meta"))[0]


@dataclass(frozen=True)
class ModelCosts:
    """Shape-only costs of one architecture: parameters and GMACs @ 1 x 3 x T x H x W."""

    key: str
    params: int
    recurrent_params: int
    gmacs: float
    shape: Shape
    num_classes: int

    @property
    def shape_label(self) -> str:
        return shape_label(self.shape)


def model_costs(spec: ArchSpec, shape: Shape = (16, 112, 112), num_classes: int = 400) -> ModelCosts:
    """Parameters and meta-device GMACs of ``spec`` in one meta build (milliseconds to a few seconds)."""
    shape = _check_shape(shape)
    model = _build(spec, num_classes, "meta")
    params, recurrent = count_params(model)
    macs = count_macs_meta(model, _input(shape, "meta"))
    return ModelCosts(
        key=spec.key(),
        params=params,
        recurrent_params=recurrent,
        gmacs=macs / 1e9,
        shape=shape,
        num_classes=num_classes,
    )
