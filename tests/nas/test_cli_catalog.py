"""``nas catalog``, ``nas --version`` and the one-line error convention."""

import yaml

from nas import __version__
from space import catalog_spec, spec_from_dict
from tests.nas.cli_helpers import assert_one_line_error, run_nas


def test_version():
    result = run_nas("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_catalog_lists_every_family_and_placement():
    result = run_nas("catalog")
    assert result.returncode == 0
    for name in ("r3d-34", "srtg-r3d-34-final", "r2plus1d-50", "srtg-r2plus1d-101-final", "mtnet-64-g8"):
        assert name in result.stdout
    for placement in ("start", "top", "mid", "end", "res", "final"):
        assert f"srtg-r3d-50-{placement}" in result.stdout


def test_catalog_entry_prints_resolved_yaml_and_params():
    result = run_nas("catalog", "r3d-18")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["depth"] == 18
    assert spec_from_dict(yaml.safe_load(result.stdout)) == catalog_spec("r3d-18")
    assert "33,371,472" in result.stdout  # torchvision's r3d_18 at 400 classes


def test_catalog_accepts_a_spec_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("family: resnet3d\nconv: r2plus1d\ndepth: 18\nsrtg: {placement: res, recurrent: gru}\n")
    result = run_nas("catalog", str(path))
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["srtg"]["placement"] == "res"


def test_unknown_name_is_one_line_error():
    assert_one_line_error(run_nas("catalog", "r3d-35"), "unknown architecture", "r3d-34")


def test_invalid_spec_file_is_one_line_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("family: resnet3d\ndepth: 34\nsrtg: {placement: top}\n")
    assert_one_line_error(run_nas("catalog", str(path)), "srtg.placement='top'", "allowed")


def test_unknown_flag_is_one_line_error():
    assert_one_line_error(run_nas("catalog", "--bogus"), "--bogus")


def test_debug_shows_the_traceback():
    result = run_nas("--debug", "catalog", "r3d-35")
    assert result.returncode != 0 and "Traceback" in result.stderr
