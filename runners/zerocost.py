"""Zero-cost proxies: scores of an untrained network that are meant to rank architectures like training does.

Each score takes a freshly initialised model (normally the proxy-width build, ``build_model(spec, classes,
width_mult=0.25)``) and one batch ``x`` (B x 3 x T x H x W, normalised as the proxy trains on it; ``y`` its
labels where a loss is needed). Every score works on a deep copy, so the caller's model is left untouched, and
is a handful of whole-tensor operations (no Python loop over the batch). Higher means "predicted better" for
all four. Formulas (``W`` ranges over the weight tensors with >= 2 dimensions: convolution kernels, linear and
recurrent weight matrices; biases and BatchNorm affines are left out, as the references leave them out):

- :func:`synflow` (Tanaka et al., NeurIPS 2020, "Pruning neural networks without any data by iteratively
  conserving synaptic flow"; used as a NAS proxy by Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies for
  Lightweight NAS", reference code ``SamsungLabs/zero-cost-nas``, ``measures/synflow.py``): every parameter is
  replaced by its absolute value, the network runs in float64 on one all-ones input, ``R = sum(f(1))``, and
  ``synflow = sum_W sum |W * dR/dW|``. Data-free. BatchNorm is in eval mode with its initial statistics
  (mean 0, variance 1), i.e. an identity up to ``1/sqrt(1+eps)``, where the reference builds the network
  without BatchNorm: the same thing at initialisation. Returned as ``log(synflow)`` (the raw value spans
  hundreds of orders of magnitude across depths; the log keeps the ranking and stays printable).
- :func:`naswot` (Mellor et al., ICML 2021, "Neural Architecture Search without Training", reference code
  ``BayesWatch/nas_without_training``): each ReLU call gives every clip ``i`` a binary code ``c_i`` (which
  units are active); ``K[i, j] = sum over ReLU calls of (c_i . c_j + (1 - c_i) . (1 - c_j))`` (the number of
  units on which clips i and j agree), and ``naswot = log |det K|``. BatchNorm uses batch statistics (train
  mode, as the reference); ``K`` is accumulated as ``C C^T + (1 - C)(1 - C)^T`` per ReLU call.
- :func:`grad_norm` (Abdelfattah et al. 2021, ``measures/grad_norm.py``): one cross-entropy backward pass on
  ``(x, y)`` in train mode, ``grad_norm = sum_W ||dL/dW||_2`` (Frobenius norm per tensor, summed).
- :func:`temporal_sensitivity` (ours; the video-specific score): how much of the variation of the classifier's
  input features at initialisation is caused by the order of the frames. With ``g(x)`` the input of the final
  classifier (the last ``nn.Linear`` registered: ``fc`` in both families; pooled features, B x D) and ``x~`` each clip played backwards,
  ``temporal_sensitivity = mean_i ||g(x_i) - g(x~_i)||^2 / mean_{i,j} ||g(x_i) - g(x_j)||^2`` (clips and their
  reversals in one train-mode batch, so BatchNorm sees both). It is 0 for a network blind to frame order and
  scale-free. Why not E3D's analytic STEntr-Score (Wang et al., ICLR 2023, "Maximizing Spatio-Temporal Entropy
  of Deep 3D CNNs for Efficient Video Recognition"): that formula sums per-layer log entropies of plain 3D
  convolution stacks with a refinement factor fitted to X3D-like spaces; this space has recurrent SRTG gates
  and MTNet's grouped multi-stream blocks, which it does not model. We keep its idea (a training-free score
  of spatio-temporal expressiveness) and measure it on the model itself; the synthetic data's reversed-pair
  classes make order sensitivity a requirement of the task (docs/data.md).
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ZERO_COST_SCORES", "grad_norm", "naswot", "synflow", "temporal_sensitivity"]


def _weights(model: nn.Module) -> list[nn.Parameter]:
    """The weight tensors the scores sum over: >= 2 dimensions (kernels and matrices, no biases or BN)."""
    return [p for p in model.parameters() if p.dim() >= 2]


def synflow(model: nn.Module, x: Tensor, y: Tensor | None = None) -> float:
    """log of the synaptic flow of ``model`` on an all-ones input of ``x``'s clip shape (``y`` unused)."""
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    net.zero_grad(set_to_none=True)
    net(ones).sum().backward()
    total = sum(float((p * p.grad).abs().sum().detach()) for p in _weights(net) if p.grad is not None)
    return math.log(total) if total > 0 else float("-inf")


def naswot(model: nn.Module, x: Tensor, y: Tensor | None = None) -> float:
    """log |det K| of the ReLU-pattern agreement kernel over the clips of ``x`` (``y`` unused)."""
    net = copy.deepcopy(model).train()
    kernel = torch.zeros((x.shape[0], x.shape[0]), dtype=torch.float64, device=x.device)

    def accumulate(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        codes = (output.detach().flatten(1) > 0).double()  # ReLU output > 0 iff its input > 0 (in place or not)
        kernel.add_(codes @ codes.T).add_((1 - codes) @ (1 - codes).T)

    handles = [m.register_forward_hook(accumulate) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for handle in handles:
            handle.remove()
    return float(torch.linalg.slogdet(kernel).logabsdet)


def grad_norm(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Sum over weight tensors of the L2 norm of the cross-entropy gradient on ``(x, y)``."""
    net = copy.deepcopy(model).train()
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()
    return float(sum(p.grad.norm() for p in _weights(net) if p.grad is not None))


def temporal_sensitivity(model: nn.Module, x: Tensor, y: Tensor | None = None) -> float:
    """Share of the classifier-input feature variation that comes from frame order (``y`` unused)."""
    net = copy.deepcopy(model).train()
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError(f"temporal_sensitivity needs a final nn.Linear classifier; {type(model).__name__} has none")
    captured: list[Tensor] = []
    handle = linears[-1].register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].detach()))
    try:
        with torch.no_grad():
            net(torch.cat([x, x.flip(2)]))  # B clips, then the same B clips backwards (dim 2 = time)
    finally:
        handle.remove()
    features = captured[0].double()
    forward, backward = features[: len(x)], features[len(x) :]
    order = (forward - backward).pow(2).sum(1).mean()
    spread = torch.cdist(forward, forward).pow(2).mean()
    return float(order / spread) if spread > 0 else 0.0


Score = Callable[[nn.Module, Tensor, Tensor], float]

# name -> score; the benchmark and the search's pre-screening look scores up here.
ZERO_COST_SCORES: dict[str, Score] = {
    "synflow": synflow,
    "naswot": naswot,
    "grad_norm": grad_norm,
    "temporal_sensitivity": temporal_sensitivity,
}
