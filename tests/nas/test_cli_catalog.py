"""``nas catalog``, ``nas --version`` and the one-line error convention."""

import pytest
import yaml

from nas import __version__
from space import catalog_spec, spec_from_dict
from tests.nas.cli_helpers import assert_one_line_error, run_nas


@pytest.mark.slow
def test_version():
    result = run_nas("--version")
    assert result.returncode == 0 and __version__ in result.stdout


@pytest.mark.slow
def test_catalog_lists_every_family_and_placement():
    result = run_nas("catalog")
    assert result.returncode == 0
    for name in ("r3d-34", "srtg-r3d-34-final", "r2plus1d-50", "srtg-r2plus1d-101-final", "mtnet-64-g8"):
        assert name in result.stdout
    for placement in ("start", "top", "mid", "end", "res", "final"):
        assert f"srtg-r3d-50-{placement}" in result.stdout


@pytest.mark.slow
def test_catalog_entry_prints_resolved_yaml_and_params():
    result = run_nas("catalog", "r3d-18")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["depth"] == 18
    assert spec_from_dict(yaml.safe_load(result.stdout)) == catalog_spec("r3d-18")
    assert "33,371,472" in result.stdout  # torchvision's r3d_18 at 400 classes


@pytest.mark.slow
def test_catalog_accepts_a_spec_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("family: resnet3d\nconv: r2plus1d\ndepth: 18\nsrtg: {placement: res, recurrent: gru}\n")
    result = run_nas("catalog", str(path))
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["srtg"]["placement"] == "res"


@pytest.mark.slow
def test_unknown_name_is_one_line_error():
    assert_one_line_error(run_nas("catalog", "r3d-35"), "unknown architecture", "r3d-34")


@pytest.mark.slow
def test_invalid_spec_file_is_one_line_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("family: resnet3d\ndepth: 34\nsrtg: {placement: top}\n")
    assert_one_line_error(run_nas("catalog", str(path)), "srtg.placement='top'", "allowed")


@pytest.mark.slow
def test_unknown_flag_is_one_line_error():
    assert_one_line_error(run_nas("catalog", "--bogus"), "--bogus")


@pytest.mark.slow
def test_debug_shows_the_traceback():
    result = run_nas("--debug", "catalog", "r3d-35")
    assert result.returncode != 0 and "Traceback" in result.stderr


def _table_rows(text: str) -> list[list[str]]:
    """The cells of a rich table's body lines (box-drawing characters as separators)."""
    return [[cell.strip() for cell in line.strip("│ \n").split("│")] for line in text.splitlines() if line.startswith("│")]


@pytest.mark.slow
def test_piped_catalog_keeps_every_column_and_every_name_whole():
    from nas.cli.catalog import COLUMNS
    from space import CATALOG

    result = run_nas("catalog")  # stdout is a pipe here, as in `nas catalog | less` or `> file`
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("┃"))
    assert [h.strip() for h in header.strip("┃ ").split("┃")] == list(COLUMNS)
    assert "…" not in result.stdout
    rows = {row[0]: dict(zip(COLUMNS, row)) for row in _table_rows(result.stdout)}
    assert set(rows) == set(CATALOG)  # one line per entry: nothing wrapped onto a second line
    for name, spec in CATALOG.items():
        row = rows[name]
        if spec.family == "mtnet":  # mtnet-64-r0.5 ... r1.0 differ in their ratio, -g8 in substreams
            assert (row["ratio"], row["substreams"], row["expansion"]) == (str(spec.ratio), str(spec.substreams), "-")
        else:
            assert row["ratio"] == row["substreams"] == "-"
            assert row["expansion"] == ("-" if spec.depth in (18, 34) else str(spec.bottleneck_expansion))
    assert rows["mtnet-64-r0.5"]["ratio"] == "0.5" and rows["mtnet-64-g8"]["substreams"] == "8"


@pytest.mark.slow
def test_a_depth_without_bottlenecks_shows_no_bottleneck_expansion():
    result = run_nas("catalog", "srtg-r3d-34-final")
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert "bottleneck_expansion" not in shown
    assert spec_from_dict(shown) == catalog_spec("srtg-r3d-34-final")
    assert "not used (depth 34 has Simple blocks" in result.stdout
    assert yaml.safe_load(run_nas("catalog", "r3d-50").stdout)["bottleneck_expansion"] == catalog_spec("r3d-50").bottleneck_expansion
