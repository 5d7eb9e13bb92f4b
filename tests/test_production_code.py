"""Production code holds no test scaffolding, sets environment variables in one place, and uses public APIs only.

* Faults are injected by the tests (``tests/nas/faults.py`` wraps the trial function, ``run_search(trial=...)``;
  ``tests/runners/retrain_faults.py`` is a retraining ``after_step`` hook), never by a switch in the library.
* The library sets environment variables in one documented place, the Ray start (:mod:`nas.raylocal`).
* The CLI reaches typer through its public API (typer >= 0.20 vendors click as the private ``typer._click``).
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARY = ("nas", "runners", "space", "reports")

ENVIRONMENT_PLACE = "nas/raylocal.py"
# Modules that still set environment variables themselves: to be cleaned by the executor refactor.
ENVIRONMENT_ALLOWANCE = {"nas/sim/record.py"}


def _modules() -> list[Path]:
    return sorted(p for package in LIBRARY for p in (REPO / package).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _sets_environment(tree: ast.AST) -> list[int]:
    """Lines that write ``os.environ`` (item assignment, setdefault / pop / update / clear) or call ``os.putenv``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            if any(isinstance(t, ast.Subscript) and ast.unparse(t.value).endswith("environ") for t in targets):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner, name = ast.unparse(node.func.value), node.func.attr
            if (owner.endswith("environ") and name in ("setdefault", "pop", "update", "clear", "popitem")) \
                    or (owner == "os" and name in ("putenv", "unsetenv")):
                lines.append(node.lineno)
    return lines


def test_environment_variables_are_set_in_one_documented_place():
    offenders = {}
    for path in _modules():
        lines = _sets_environment(ast.parse(path.read_text()))
        if lines and _rel(path) not in ENVIRONMENT_ALLOWANCE | {ENVIRONMENT_PLACE}:
            offenders[_rel(path)] = lines
    assert offenders == {}, f"set environment variables in {ENVIRONMENT_PLACE} (set_ray_environment), not here"
    assert _sets_environment(ast.parse((REPO / ENVIRONMENT_PLACE).read_text()))


def test_the_ray_start_sets_what_tune_reads(monkeypatch):
    from nas.raylocal import TUNE_ENVIRONMENT, set_ray_environment

    for name in TUNE_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")  # a user's own choice wins
    set_ray_environment()
    import os

    assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1" and os.environ["RAY_AIR_NEW_OUTPUT"] == "1"


def test_no_module_imports_typers_private_api():
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{_rel(path)}:{node.lineno} {n}" for n in names if n.startswith("typer._")]
    assert offenders == []


def test_no_library_module_carries_fault_injection():
    """Search trials and retraining workers: the tests wrap the trial function or pass an ``after_step`` hook."""
    from nas.executors.trialrun import TrialSettings

    assert "faults" not in {f.name for f in dataclasses.fields(TrialSettings)}
    assert "1e30" not in (REPO / "nas" / "executors" / "trialrun.py").read_text()
    for path in _modules():
        text = path.read_text().lower()
        for needle in ("testing aid", "inject_fault", "injected fault", "faults="):
            assert needle not in text, f"{_rel(path)}: {needle}"


@pytest.mark.parametrize("args, kind", [(["search", "--bogus"], "usage"), (["data"], "help")])
def test_click_errors_are_recognised_without_importing_click(args, kind):
    from nas.cli import cli_command, click_error_kind

    with pytest.raises(Exception) as caught:
        cli_command().main(args=args, prog_name="nas", standalone_mode=False)
    assert click_error_kind(caught.value) == kind
    assert click_error_kind(ValueError("not click's")) is None
