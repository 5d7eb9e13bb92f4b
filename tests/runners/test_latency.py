"""Latency protocol, profiles and the disk cache (SPEC 3)."""

from __future__ import annotations

import dataclasses
import statistics
import time

import pytest
import torch
from torch import nn

from runners.latency import (
    PROFILES,
    LatencyCache,
    LatencyProfile,
    get_profile,
    hardware_fingerprint,
    measure_latency,
    steadiest,
    time_model,
    time_step,
    timing_stats,
)
from space import CATALOG
from space.errors import UserInputError

TINY = dataclasses.replace(get_profile("cpu-quick"), name="test-tiny", shape=(2, 16, 16), warmup_s=0.05)


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm3d(4)
        self.fc = nn.Linear(4, 3)
        self.train_calls = 0

    def forward(self, x):
        if self.training:
            self.train_calls += 1
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3, 4)))


def test_named_profiles_follow_the_protocol():
    cpu, quick = get_profile("cpu"), get_profile("cpu-quick")
    assert (cpu.batch, cpu.shape, cpu.dtype, cpu.train) == (1, (16, 112, 112), "float32", True)
    assert cpu.warmup_s >= 1 and cpu.runs >= 10 and cpu.threads >= 1
    assert (quick.shape, quick.train) == ((8, 112, 112), False) and 10 <= quick.runs < cpu.runs
    assert {p.dtype for p in PROFILES.values() if p.device == "cuda"} == {"float32", "float16", "bfloat16"}
    with pytest.raises(UserInputError, match="unknown latency profile"):
        get_profile("fastest")
    with pytest.raises(UserInputError, match=">= 10"):
        LatencyProfile(name="bad", runs=3)
    with pytest.raises(UserInputError, match="thread"):
        LatencyProfile(name="bad", threads=None)


def test_timing_stats():
    stats = timing_stats([float(v) for v in range(1, 12)])  # 1 .. 11
    assert stats.median_ms == 6
    assert stats.p90_ms == pytest.approx(10.0)
    assert stats.cv == pytest.approx(statistics.stdev(range(1, 12)) / 6)


def test_warmup_is_by_time_then_exactly_runs_timed_calls():
    calls: list[float] = []
    begin = time.perf_counter()
    stats = time_step(lambda: calls.append(time.perf_counter()), device="cpu", warmup_s=0.2, runs=12)
    assert len(stats.samples_ms) == 12
    warmup_calls = len(calls) - 12
    assert warmup_calls >= 1
    assert calls[warmup_calls] - begin >= 0.2  # the first timed call comes after the warm-up time


def test_time_model_measures_eval_forward_and_train_forward_backward():
    model = Toy()
    threads_before = torch.get_num_threads()
    profile = dataclasses.replace(TINY, train=True, runs=10, threads=1)
    forward, train = time_model(model, profile)
    assert len(forward.samples_ms) == 10 and len(train.samples_ms) == 10
    assert model.train_calls >= 11  # warm-up + 10 timed train steps ran in train mode
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert torch.get_num_threads() == threads_before
    forward_only, none = time_model(Toy(), dataclasses.replace(TINY, train=False))
    assert none is None and forward_only.median_ms > 0


@pytest.mark.slow
def test_cache_hit_and_fingerprint_miss(tmp_path):
    spec = CATALOG["r3d-18"]
    first = measure_latency(spec, TINY, cache=tmp_path)
    assert not first.cached
    second = measure_latency(spec, TINY, cache=tmp_path)
    assert second.cached and second == first  # identical timings: read back, not re-measured
    assert len(list(tmp_path.glob("*.json"))) == 1

    other_machine = dataclasses.replace(hardware_fingerprint(TINY), device_name="Some Other CPU")
    third = measure_latency(spec, TINY, cache=tmp_path, fingerprint=other_machine)
    assert not third.cached and third.forward.samples_ms != first.forward.samples_ms
    other_torch = dataclasses.replace(hardware_fingerprint(TINY), torch_version="0.0.0")
    assert not measure_latency(spec, TINY, cache=tmp_path, fingerprint=other_torch).cached
    more_threads = dataclasses.replace(TINY, threads=2)  # thread count is part of profile and fingerprint
    assert not measure_latency(spec, more_threads, cache=tmp_path).cached
    assert len(list(tmp_path.glob("*.json"))) == 4
    assert measure_latency(spec, TINY, cache=LatencyCache(tmp_path)).cached


def test_fingerprint_names_cpu_threads_and_torch():
    fp = hardware_fingerprint(get_profile("cpu"))
    assert fp.kind == "cpu" and fp.device_name and fp.threads == get_profile("cpu").threads
    assert fp.torch_version == torch.__version__


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_profile_without_gpu_is_a_user_error():
    with pytest.raises(UserInputError, match="CUDA"):
        hardware_fingerprint(get_profile("cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda-fp16", "cuda-bf16"])
def test_cuda_profiles_time_with_events(name):
    profile = dataclasses.replace(get_profile(name), shape=(2, 16, 16), warmup_s=0.1)
    forward, train = time_model(Toy(), profile)
    assert len(forward.samples_ms) == profile.runs and train is not None


@pytest.mark.parametrize("cvs, kept, taken", [
    ([0.05], 0, 1),  # steady at once: one reading
    ([0.40, 0.30, 0.05], 2, 3),  # noisy twice, then steady: the steady one
    ([0.40, 0.50, 0.45], 0, 3),  # noisy every time: the steadiest of three, its CV over the threshold travels with it
    ([0.40, 0.10, 0.02], 1, 2),  # steady on the second reading: no third
])
def test_a_noisy_latency_is_measured_again_and_the_steadiest_reading_kept(cvs, kept, taken, tmp_path):
    base = measure_latency(CATALOG["r3d-18"], TINY, cache=tmp_path)
    readings = [dataclasses.replace(base, forward=dataclasses.replace(base.forward, cv=cv)) for cv in cvs]
    asked: list[bool] = []

    def measure(refresh: bool):
        asked.append(refresh)
        return readings[len(asked) - 1]

    result, count = steadiest(measure, noisy_cv=0.15, remeasures=2)
    assert (result.cv, count) == (cvs[kept], taken)
    assert asked == [False] + [True] * (taken - 1)  # the first may come from the cache; the others are fresh
