"""Security (issue 17): YAML is safe_load, checkpoints are weights-only, no pickle is read from a run directory,
and Ray's dashboard is off by default (on loopback when asked for).

The behavioural tests plant payloads that would create a marker file if they were ever executed; the
source-level tests fail when a new unsafe loader appears anywhere in the product's packages.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch

from nas.raylocal import DASHBOARD_ENV, ray_init_kwargs
from tests.nas.cli_helpers import REPO
from tests.nas.test_hostile_input import nas

PACKAGES = ("nas", "runners", "space", "reports")


def _payload_yaml(marker: Path) -> str:
    """A full-loader YAML payload: ``os.mkdir(marker)`` runs if this is loaded with yaml.load / unsafe_load."""
    return f"name: evil\nfamilies: !!python/object/apply:os.mkdir ['{marker}']\n"


def _one_error_line(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    return lines[0]


def test_a_python_object_payload_in_a_space_file_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    space = tmp_path / "evil.yaml"
    space.write_text(_payload_yaml(marker))
    code, _, err = nas("space", "show", str(space))
    assert "python/object" in _one_error_line(code, err)
    code, _, err = nas("search", "--space", str(space), "--runs-dir", str(tmp_path / "runs"))
    _one_error_line(code, err)
    assert not marker.exists() and not (tmp_path / "runs").exists()


def test_a_python_object_payload_in_a_spec_file_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    spec = tmp_path / "evil-spec.yaml"
    spec.write_text(f"family: resnet3d\ndepth: !!python/object/apply:os.mkdir ['{marker}']\n")
    for args in (("catalog", str(spec)), ("profile", str(spec), "--json", "--no-latency")):
        code, _, err = nas(*args)
        assert "python/object" in _one_error_line(code, err)
    assert not marker.exists()


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.mkdir, (self.marker,))


def test_a_checkpoint_holding_a_pickled_object_is_refused_by_retrain_init(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.ones(1)}, "x": _Payload(marker)}, evil)
    code, _, err = nas("retrain", "r3d-18", "--init", str(evil), "--num-clips", "8", "--out", str(tmp_path / "out"))
    assert "refused" in _one_error_line(code, err) and "weights_only" in err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_pickles_planted_in_a_run_directory_are_never_loaded(tmp_path):
    """Someone else's run directory: Ray-style pickles in it must not run when we read the run."""
    from tests.reports.fake_run import write_run

    run = tmp_path / "runs" / "shared"
    write_run(run)
    marker = tmp_path / "code-ran"
    blob = pickle.dumps(_Payload(marker))
    for name in ("ray/tuner.pkl", "ray/experiment_state.pkl", "ray/searcher-state.pkl", "trials.pkl", "study.pkl"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(blob)
    for args in (("runs", str(run.parent)), ("trials", str(run)), ("trials", str(run), "--json"),
                 ("catalog", f"{run}:0"), ("report", str(run), "--out", str(tmp_path / "report"))):
        code, _, err = nas(*args)
        assert code == 0, (args, err)
    assert not marker.exists()


def _source_lines():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                yield f"{path.relative_to(REPO)}:{number}", line.split("#", 1)[0]


UNSAFE = re.compile(
    r"pickle\.loads?\(|cloudpickle\.loads?\(|dill\.loads?\(|joblib\.load\(|read_pickle\(|allow_pickle\s*=\s*True"
    r"|yaml\.load\(|yaml\.unsafe_load|yaml\.full_load|Loader\s*=\s*yaml\.(Full|Unsafe)?Loader\b|Tuner\.restore\("
    r"|Trainer\.restore\(|marshal\.loads?\(|shelve\.open\("
)


def test_no_unsafe_deserialiser_anywhere_in_the_source():
    found = [f"{where}: {line.strip()}" for where, line in _source_lines() if UNSAFE.search(line)]
    assert not found, found


def test_every_torch_load_is_weights_only():
    loads = [(where, line) for where, line in _source_lines() if "torch.load(" in line]
    assert loads, "expected the checkpoint loader"
    assert all("weights_only=True" in line for _, line in loads), loads


def test_the_ray_adapters_checkpoints_are_json_and_cannot_be_restored(tmp_path):
    from nas.executors.raytune import LoopScheduler, LoopSearcher

    for adapter in (LoopScheduler(loop=None), LoopSearcher(loop=None)):
        adapter.save(str(tmp_path / "state"))
        assert (tmp_path / "state").read_text().startswith("{")  # JSON, not a pickle
        with pytest.raises(RuntimeError, match="--resume"):
            adapter.restore(str(tmp_path / "state"))


def test_ray_dashboard_is_off_by_default_and_on_loopback_when_asked():
    assert ray_init_kwargs(joining=False, environ={})["include_dashboard"] is False
    assert "dashboard_host" not in ray_init_kwargs(joining=False, environ={})
    asked = ray_init_kwargs(joining=False, environ={DASHBOARD_ENV: "1"})
    assert asked["include_dashboard"] is True and asked["dashboard_host"] == "127.0.0.1"
    joined = ray_init_kwargs(joining=True, environ={DASHBOARD_ENV: "1"})
    assert joined["include_dashboard"] is False and "dashboard_host" not in joined


def test_every_ray_init_in_the_source_turns_the_dashboard_off_or_uses_the_builder():
    text = {package: "\n".join(p.read_text() for p in (REPO / package).rglob("*.py")) for package in PACKAGES}
    calls = [m.group(0) for t in text.values() for m in re.finditer(r"ray\.init\((?:[^()]|\([^()]*\))*\)", t)]
    assert calls, "expected ray.init calls"
    for call in calls:
        assert "include_dashboard=False" in call or "ray_init_kwargs(" in call or "**kwargs" in call, call
