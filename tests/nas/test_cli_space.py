"""``nas space show|list``: the tree, the size, the valid shares, and one-line errors."""

from __future__ import annotations

import pytest

from nas.cli import main
from nas.cli.space import share_interval
from space.searchspace import load_space
from space.spec import SpecError
from tests.nas.cli_helpers import assert_one_line_error, run_nas

TWO_FAILURES = """\
name: two-failures
families:
  resnet3d:
    depth: 18
    srtg:
      placement: [none, start]
      reduction: [1, 16]
  mtnet:
    depth: 32
    ratio: 0.875
    substreams: [1, 16]
"""


def run_in_process(capsys, monkeypatch, *args: str) -> str:
    """The real entry point in this process (the subprocess tests below cover the exit-code convention)."""
    monkeypatch.setenv("COLUMNS", "200")
    main(list(args))
    return capsys.readouterr().out


@pytest.mark.slow
def test_show_demo_prints_tree_size_and_valid_shares(capsys, monkeypatch):
    out = run_in_process(capsys, monkeypatch, "space", "show", "demo", "--proxy-width", "0.125")
    for text in ("resnet3d.srtg.placement", "none | start | mid | res | final", "mtnet.ratio", "warmup: 0.5  (fixed)"):
        assert text in out, text
    assert "size: 72 architectures" in out
    assert "valid at full width (1.0): 100.0%  (every spec built" in out
    assert "valid at full and proxy width (0.125): 100.0%" in out


def test_show_file_reports_invalid_shares_and_sampling(tmp_path, capsys, monkeypatch):
    path = tmp_path / "two.yaml"
    path.write_text(TWO_FAILURES)
    out = run_in_process(capsys, monkeypatch, "space", "show", str(path), "--proxy-width", "0.125")
    assert "size: 5 architectures" in out
    assert "valid at full width (1.0): 80.0%" in out  # MTNet g = 16 fails at full width
    assert "valid at full and proxy width (0.125): 60.0%" in out  # and reduction 16 at C = 8
    out = run_in_process(capsys, monkeypatch, "space", "show", str(path), "--sample", "2")
    assert "estimated from 2 random specs of 5, 95% interval" in out


@pytest.mark.slow
def test_the_exact_share_is_a_brute_force_count_of_real_builds(tmp_path, capsys, monkeypatch):
    """The figure comes from meta-device builds that skip weight initialisation; building every spec for real
    (CPU, initialised) and counting gives the same shares."""
    from space.build import build_model

    path = tmp_path / "two.yaml"
    path.write_text(TWO_FAILURES)

    def builds(spec, width: float) -> bool:
        try:
            build_model(spec, num_classes=2, width_mult=width)
            return True
        except SpecError:
            return False

    specs = list(load_space(path).enumerate())
    full = sum(builds(s, 1.0) for s in specs) / len(specs)
    proxy = sum(builds(s, 1.0) and builds(s, 0.125) for s in specs) / len(specs)
    out = run_in_process(capsys, monkeypatch, "space", "show", str(path), "--proxy-width", "0.125")
    assert f"valid at full width (1.0): {full:.1%}  (every spec built, meta device)" in out
    assert f"valid at full and proxy width (0.125): {proxy:.1%}  (every spec built, meta device)" in out


def test_share_interval_is_the_wilson_score_interval():
    assert share_interval(50, 50) == pytest.approx((0.9287, 1.0), abs=1e-4)
    assert share_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert share_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)


def test_bad_flags_are_user_errors(capsys, monkeypatch):
    for args, needle in ((("--proxy-width", "2"), "--proxy-width"), (("--sample", "-1"), "--sample")):
        with pytest.raises(SystemExit) as exit_info:
            run_in_process(capsys, monkeypatch, "space", "show", "demo", *args)
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.startswith(f"error: {needle}")


@pytest.mark.slow
def test_show_errors_are_one_line_with_the_file_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(TWO_FAILURES.replace("substreams: [1, 16]", "substreams: [1, 3]"))
    assert_one_line_error(run_nas("space", "show", str(path)), "bad.yaml:11:", "3 is not allowed")
    assert_one_line_error(run_nas("space", "show", "nope"), "unknown search space 'nope'")


def test_list_presets(capsys, monkeypatch):
    out = run_in_process(capsys, monkeypatch, "space", "list")
    for name, size in (("demo", 72), ("joint", 2202), ("mtnet", 240), ("srtg", 5768)):
        assert f"{name:8s} {size:>6d} architectures" in out
