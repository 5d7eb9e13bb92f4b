"""ONNX Runtime latency profiles (ort-cpu, ort-cpu-quick, ort-cuda): the eager protocol, its own cache keys."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from runners.latency import (
    PROFILES,
    LatencyCache,
    LatencyProfile,
    get_profile,
    hardware_fingerprint,
    measure_latency,
)
from space import CATALOG
from space.errors import UserInputError

# ort-cpu-quick on a clip small enough that one export and ten runs take seconds.
TINY_ORT = dataclasses.replace(get_profile("ort-cpu-quick"), name="test-tiny-ort", shape=(2, 16, 16), warmup_s=0.05)


def _has_ort_cuda() -> bool:
    import onnxruntime

    return torch.cuda.is_available() and "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def test_ort_profiles_follow_the_eager_protocol():
    cpu, ort_cpu = get_profile("cpu"), get_profile("ort-cpu")
    quick, ort_quick = get_profile("cpu-quick"), get_profile("ort-cpu-quick")
    for eager, ort in ((cpu, ort_cpu), (quick, ort_quick)):
        assert ort.runtime == "onnxruntime" and not ort.train
        same = ("device", "batch", "shape", "dtype", "threads", "warmup_s", "runs")
        assert {f: getattr(ort, f) for f in same} == {f: getattr(eager, f) for f in same}
    assert get_profile("ort-cuda").device == "cuda"
    assert {p.runtime for p in PROFILES.values()} == {"torch", "onnxruntime"}
    with pytest.raises(UserInputError, match="forward-only float32"):
        LatencyProfile(name="bad", runtime="onnxruntime", train=True)
    with pytest.raises(UserInputError, match="runtime"):
        LatencyProfile(name="bad", runtime="tensorrt", train=False)


def test_eager_cache_keys_do_not_change():
    """Adding runtimes must not invalidate caches measured before them: eager keys carry no runtime fields."""
    fp = hardware_fingerprint(get_profile("cpu"))
    key = LatencyCache.cache_key("k", 400, get_profile("cpu"), fp)
    assert "runtime" not in key["profile"] and "onnxruntime_version" not in key["fingerprint"]
    ort_key = LatencyCache.cache_key("k", 400, get_profile("ort-cpu"), hardware_fingerprint(get_profile("ort-cpu")))
    assert ort_key["profile"]["runtime"] == "onnxruntime" and ort_key["fingerprint"]["onnxruntime_version"]


@pytest.mark.slow
def test_ort_cpu_profile_caches_and_misses_like_the_others(tmp_path):
    spec = CATALOG["r3d-18"]
    first = measure_latency(spec, TINY_ORT, cache=tmp_path)
    assert not first.cached and first.train is None and first.fingerprint.onnxruntime_version
    assert len(first.forward.samples_ms) == TINY_ORT.runs and first.fwd_ms_p90 >= first.fwd_ms_median > 0
    second = measure_latency(spec, TINY_ORT, cache=tmp_path)
    assert second.cached and second == first  # read back, not re-measured

    fp = hardware_fingerprint(TINY_ORT)
    other_ort = dataclasses.replace(fp, onnxruntime_version="0.0.0")
    third = measure_latency(spec, TINY_ORT, cache=tmp_path, fingerprint=other_ort)
    assert not third.cached and third.forward.samples_ms != first.forward.samples_ms
    other_machine = dataclasses.replace(fp, device_name="Some Other CPU")
    assert not measure_latency(spec, TINY_ORT, cache=tmp_path, fingerprint=other_machine).cached
    eager_twin = dataclasses.replace(TINY_ORT, runtime="torch")  # same protocol, eager PyTorch: another entry
    assert not measure_latency(spec, eager_twin, cache=tmp_path).cached
    assert len(list(tmp_path.glob("*.json"))) == 4
    assert measure_latency(spec, TINY_ORT, cache=LatencyCache(tmp_path)).cached


@pytest.mark.skipif(_has_ort_cuda(), reason="checks the no-CUDA-provider error")
def test_ort_cuda_without_its_provider_is_a_user_error():
    with pytest.raises(UserInputError, match="CUDA"):
        hardware_fingerprint(get_profile("ort-cuda"))


@pytest.mark.skipif(not _has_ort_cuda(), reason="needs a CUDA GPU and onnxruntime-gpu")
def test_ort_cuda_profile_times_on_the_gpu(tmp_path):
    profile = dataclasses.replace(get_profile("ort-cuda"), shape=(2, 16, 16), warmup_s=0.1)
    result = measure_latency(CATALOG["r2plus1d-18"], profile, cache=tmp_path)
    assert len(result.forward.samples_ms) == profile.runs and result.fingerprint.kind == "cuda"
    assert measure_latency(CATALOG["r2plus1d-18"], profile, cache=tmp_path).cached
