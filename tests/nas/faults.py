"""Faults injected into real search trials, from the tests only: a wrapper of the trial body
(:func:`nas.executors.trialrun.train_trial`).

``run_search(config, trial=faulty_trial({spec_key: mode}))`` runs every trial through the real trial function,
with one fault for the architectures named:

* ``raise``: a ``RuntimeError`` at the first forward pass of training (the model and the data are built);
* ``nan``: a learning rate of 1e30, a real divergence, caught by the proxy loop before any update;
* ``oom`` / ``host-oom``: ``torch.OutOfMemoryError`` / ``MemoryError`` on the 200th module call, about the
  third training step of a depth-18 proxy, where a real CUDA or host allocation failure would come.

Each fires inside ``train_trial``'s own error handling, so the trial reports it as it would a real one. The
wrapper runs in a Ray worker, which may not be able to import ``tests``: this module is pickled by value.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable

import torch
from ray import cloudpickle

from nas.executors.trialrun import train_trial

MODES = ("raise", "nan", "oom", "host-oom")


class InjectedFault:
    """A global forward pre-hook that raises on the ``at``-th module call, while entered."""

    def __init__(self, mode: str) -> None:
        self.mode, self.at, self.calls, self._handle = mode, (1 if mode == "raise" else 200), 0, None

    def __call__(self, module: torch.nn.Module, inputs: Any) -> None:
        self.calls += 1
        if self.calls != self.at:
            return
        if self.mode == "raise":
            raise RuntimeError("injected fault (testing aid): this trial raises at its first forward pass")
        if self.mode == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected fault, testing aid)")
        raise MemoryError("cannot allocate 2.00 GiB of host memory (injected fault, testing aid)")

    def __enter__(self) -> "InjectedFault":
        self._handle = torch.nn.modules.module.register_module_forward_pre_hook(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


def faulty_trial(faults: dict[str, str]) -> Callable[..., Any]:
    """``train_trial`` with ``faults`` (spec key -> one of :data:`MODES`) injected; other trials run unchanged."""
    unknown = sorted(set(faults.values()) - set(MODES))
    if unknown:
        raise ValueError(f"unknown fault mode(s) {unknown}; allowed: {', '.join(MODES)}")
    faults = dict(faults)

    def train_trial_with_faults(request: Any, data: Any, settings: Any, **channels: Any) -> Any:
        mode = faults.get(request.spec.key())
        if mode == "nan":
            settings = dataclasses.replace(settings, proxy=dataclasses.replace(settings.proxy, lr=1e30))
        if mode in ("raise", "oom", "host-oom"):
            with InjectedFault(mode):
                return train_trial(request, data, settings, **channels)
        return train_trial(request, data, settings, **channels)

    return train_trial_with_faults


cloudpickle.register_pickle_by_value(sys.modules[__name__])
