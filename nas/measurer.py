"""The latency measurer: one serialised measurer per search that owns its own cores (``docs/costs.md``).

Trials never time themselves on a shared device: each asks the measurer and waits. The measurer answers one
request at a time, so measurements never race each other, and on a CPU machine it pins itself to its own
cores (:func:`nas.affinity.measurer_cores`), which trials keep off. Results are cached on disk by (spec key,
profile, hardware fingerprint) in the run's ``costs/`` folder, so a resumed search or a duplicate re-uses them.
The Ray executor runs a :class:`Measurer` as a Ray actor, the local executor in a process of its own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from nas.affinity import measurer_cores, pin_process
from space import spec_from_dict


def measurer_resources(profile_name: str) -> dict[str, float]:
    """What the measurer leases: a GPU for the ``cuda`` profile, else CPU cores equal to the profile's threads."""
    from runners.latency import get_profile

    profile = get_profile(profile_name)
    if profile.device.startswith("cuda"):
        return {"num_cpus": 1, "num_gpus": 1}
    return {"num_cpus": float(profile.threads)}


class Measurer:
    """Measures one architecture at a time on one latency profile, pinned, cached, logged."""

    def __init__(self, profile_name: str, cache_dir: str) -> None:
        from runners.latency import LatencyCache, get_profile

        self.profile = get_profile(profile_name)
        self.cache = LatencyCache(cache_dir)
        if not self.profile.device.startswith("cuda"):
            pin_process(measurer_cores(int(self.profile.threads or 1)))
        self.log_path = Path(cache_dir) / "measurer-log.jsonl"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)

    def measure(self, spec_dict: dict) -> float:
        """Median forward latency (ms): :meth:`reading` without its CV."""
        return self.reading(spec_dict)[0]

    def reading(self, spec_dict: dict) -> tuple[float, float]:
        """(median forward latency in ms, its CV) of the real model of ``spec_dict`` on this measurer's profile.

        A reading whose CV is over ``runners.latency.NOISY_CV`` is measured again, up to twice, and the steadiest
        kept. Each call is logged (start, end, spec key, value, CV, readings taken) to ``costs/measurer-log.jsonl``
        so that ``nas bench overhead`` can tell measuring time from harness time.
        """
        from runners.latency import measure_steady_latency

        started = time.time()
        spec = spec_from_dict(spec_dict)
        result, taken = measure_steady_latency(spec, self.profile, cache=self.cache)  # a noisy reading is repeated
        entry = {"start": started, "end": time.time(), "spec_key": spec.key(), "fwd_ms_median": result.fwd_ms_median,
                 "profile": self.profile.name, "cv": result.cv, "readings": taken}
        with open(self.log_path, "a") as log:
            log.write(json.dumps(entry) + "\n")
        return float(result.fwd_ms_median), float(result.cv)
