"""Hostile input (issue 17): property-based tests that drive the real ``nas`` entry point in this process.

Every generated input must either work (exit 0) or give exactly one ``error: ...`` line on stderr with exit 2:
never a traceback, never our "internal error" line (exit 1), never a hang (pytest-timeout), and never a run
directory left behind. The commands are ones that fail fast, before any training: ``nas catalog``,
``nas profile --no-latency``, ``nas space show``, ``nas search`` and ``nas retrain`` with a *fence* argument
that is always rejected after the argument under test has been validated (``--baselines`` of an unknown
architecture for ``nas search``: checked after the config and the space, before the run directory; a missing
``--cache`` for ``nas retrain``: checked after the architecture and the training config, before any data).

Examples are derandomized so CI sees the same inputs on every run; ``EXAMPLES`` counts each one tried.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.nas.cli_helpers import nas

pytestmark = pytest.mark.timeout(240)

HOSTILE = settings(
    derandomize=True,  # the same examples on every run: CI is reproducible
    deadline=None,  # the first example pays for imports; hangs are caught by the pytest timeout
    max_examples=50,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
EXAMPLES: dict[str, int] = {}  # test -> examples tried (printed by the session summary below)

FENCE_ARCH = "no-such-arch-for-the-fence"



def assert_works_or_one_line_error(name: str, code: int, out: str, err: str) -> None:
    EXAMPLES[name] = EXAMPLES.get(name, 0) + 1
    assert "Traceback" not in out + err, err
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "internal error" not in lines[0], lines[0]


def assert_one_line_error(name: str, code: int, out: str, err: str) -> None:
    assert_works_or_one_line_error(name, code, out, err)
    assert code == 2, (code, out, err)


# ---- building blocks ------------------------------------------------------------------------------

WEIRD_FLOATS = st.sampled_from(["nan", "-nan", "inf", "-inf", "+inf", "Infinity", "1e309", "-1e309", "0", "-0",
                                "-1", "1e-320", "1e300", "9" * 400, "0x10", "1_000", "", " ", "1,5", "١"])
NUMBERS = st.one_of(
    WEIRD_FLOATS,
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)
NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
YAML_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
)
YAML_VALUES = st.recursive(
    YAML_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)


def _yaml_text(value: object) -> str:
    import yaml

    return yaml.safe_dump(value, allow_unicode=True)


SPACE_KEYS = ("name", "description", "families", "resnet3d", "mtnet", "depth", "conv", "srtg", "placement",
              "reduction", "ratio", "substreams", "expansion", "recurrent", "warmup", "width")


def _space_like(draw_values: st.SearchStrategy) -> st.SearchStrategy:
    """Mappings that look like search-space or spec files, with hostile values in the right places."""
    key = st.sampled_from(SPACE_KEYS)
    leaf = st.dictionaries(key, draw_values, max_size=5)
    return st.dictionaries(key, st.one_of(draw_values, leaf, st.dictionaries(key, leaf, max_size=3)), max_size=5)


FILE_CONTENTS = st.one_of(
    st.binary(max_size=200).map(lambda b: ("bytes", b)),
    st.just(("bytes", b"")),
    st.just(("bytes", b"\xff\xfe\x00\x00garbage")),
    st.sampled_from(["families: [", ": :", "{a: 1", "- - -\n\t- x", "name: &a [*a]", "a: !!binary 'zz'",
                     "a: !!python/object/apply:os.system ['true']", "%YAML 9.9\n---\na: 1"]).map(lambda t: ("text", t)),
    YAML_VALUES.map(lambda v: ("text", _yaml_text(v))),
    _space_like(YAML_VALUES).map(lambda v: ("text", _yaml_text(v))),
    st.just(("dir", b"")),
)


def write_hostile(path: Path, content: tuple[str, object]) -> Path:
    kind, data = content
    if kind == "dir":
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "bytes":
        path.write_bytes(data)  # type: ignore[arg-type]
    else:
        path.write_text(data, encoding="utf-8")  # type: ignore[arg-type]
    return path


def fresh(tmp_path: Path, counter: list[int]) -> Path:
    """A new empty folder per example (hypothesis reuses the test's tmp_path)."""
    counter[0] += 1
    folder = tmp_path / f"ex{counter[0]}"
    folder.mkdir()
    return folder


# ---- files --------------------------------------------------------------------------------------


@HOSTILE
@given(content=FILE_CONTENTS, filename=st.sampled_from(["space.yaml", "my space ü.yaml", "spec.yml", "ℌ.json", "x"]))
@pytest.mark.slow
def test_space_show_takes_any_file(tmp_path, content, filename):
    path = write_hostile(fresh(tmp_path, _count) / filename, content)
    code, out, err = nas("space", "show", str(path), "--sample", "2")
    assert_works_or_one_line_error("space show FILE", code, out, err)


@HOSTILE
@given(content=FILE_CONTENTS, filename=st.sampled_from(["spec.yaml", "a spec ü.yaml", "s.json", "x.yml"]))
def test_catalog_and_profile_take_any_spec_file(tmp_path, content, filename):
    path = write_hostile(fresh(tmp_path, _count) / filename, content)
    assert_works_or_one_line_error("catalog SPEC", *nas("catalog", str(path)))
    assert_works_or_one_line_error(
        "profile SPEC", *nas("profile", str(path), "--json", "--no-latency", "--shape", "4x32x32")
    )


@HOSTILE
@given(content=FILE_CONTENTS)
def test_search_rejects_a_bad_space_file_before_any_run_directory(tmp_path, content):
    folder = fresh(tmp_path, _count)
    path = write_hostile(folder / "hostile space.yaml", content)
    runs = folder / "runs"
    result = nas("search", "--space", str(path), "--runs-dir", str(runs), "--name", "r", "--baselines", FENCE_ARCH)
    assert_one_line_error("search --space FILE", *result)
    assert not runs.exists()


# ---- --shape and RUN:ID -------------------------------------------------------------------------

SHAPES = st.one_of(
    st.tuples(*[st.one_of(st.integers(min_value=-3, max_value=40), st.integers(min_value=-3, max_value=10**12))] * 3)
    .map(lambda t: "x".join(map(str, t))),
    st.lists(st.sampled_from(["0", "1", "8", "x", "X", " ", "-", "nan", "1e3", "٣", "16", "*", ""]), max_size=7).map("".join),
    NAMES,
)


@HOSTILE
@given(shape=SHAPES)
def test_profile_shape(shape):
    assert_works_or_one_line_error("profile --shape", *nas("profile", "r3d-18", "--json", "--no-latency", "--shape", shape))


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    from tests.reports.fake_run import write_run

    run = tmp_path_factory.mktemp("hostile") / "a run ü"
    write_run(run)
    return run


RUN_IDS = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.sampled_from(["", "-", "--1", "1.0", "0x1", " 1", "1 ", "٣", "²", "nan", "inf", "+1", "00", "-0"]),
    NAMES,
)


@HOSTILE
@given(trial=RUN_IDS, prefix=st.sampled_from(["run", "missing", "file", "empty", "colon"]))
def test_run_colon_id(fake_run, tmp_path, trial, prefix):
    folder = fresh(tmp_path, _count)
    run = {
        "run": fake_run,
        "missing": folder / "no such run",
        "file": write_hostile(folder / "plain", ("text", "not a run")),
        "empty": write_hostile(folder / "empty run", ("dir", b"")),
        "colon": fake_run.parent / "a:b",
    }[prefix]
    assert_works_or_one_line_error("catalog RUN:ID", *nas("catalog", f"{run}:{trial}"))


# ---- numbers ------------------------------------------------------------------------------------

SEARCH_NUMBER_FLAGS = ("--trials", "--time-budget", "--num-clips", "--proxy-epochs", "--proxy-width", "--proxy-frames",
                       "--proxy-size", "--proxy-batch-size", "--proxy-lr", "--max-gmacs", "--max-params",
                       "--max-latency-ms", "--grace-period", "--reduction-factor", "--cpus-per-trial",
                       "--gpus-per-trial", "--max-concurrent", "--seed", "--retries")


@HOSTILE
@given(flag=st.sampled_from(SEARCH_NUMBER_FLAGS), value=NUMBERS, name=NAMES)
def test_search_numbers_and_names_are_checked_before_any_run_directory(tmp_path, flag, value, name):
    runs = fresh(tmp_path, _count) / "runs"
    args = ["search", "--space", "demo", "--runs-dir", str(runs), "--baselines", FENCE_ARCH, flag, value]
    if name:
        args += ["--name", name]
    assert_one_line_error("search NUMBER", *nas(*args))
    assert not runs.exists()


RETRAIN_NUMBER_FLAGS = ("--epochs", "--batch-size", "--lr", "--weight-decay", "--warmup-epochs", "--grad-clip",
                        "--frames", "--size", "--workers", "--cpus-per-worker", "--gpus-per-worker", "--seed",
                        "--width-mult", "--num-clips", "--num-test-clips", "--num-classes", "--test-clips",
                        "--test-crops", "--split")


@HOSTILE
@given(flag=st.sampled_from(RETRAIN_NUMBER_FLAGS), value=NUMBERS)
def test_retrain_numbers_are_checked_before_anything_is_written(tmp_path, flag, value):
    folder = fresh(tmp_path, _count)
    out = folder / "out"
    args = ["retrain", "r3d-18", "--out", str(out), "--cache", str(folder / "missing cache"), flag, value]
    assert_one_line_error("retrain NUMBER", *nas(*args))
    assert not out.exists()


_count = [0]


@pytest.fixture(scope="module", autouse=True)
def _report_examples():
    """After the file: the number of hostile inputs tried, for the closing note (``-s`` shows it)."""
    yield
    total = sum(EXAMPLES.values())
    print(f"\nhostile inputs tried: {total} ({', '.join(f'{k}: {v}' for k, v in sorted(EXAMPLES.items()))})")


def test_non_finite_check_rejects_every_spelling():
    """The float guard of every command: the spellings python's float() accepts for nan and inf."""
    for text in ("nan", "NaN", "-nan", "inf", "-Infinity", "1e309"):
        assert not math.isfinite(float(text))
        code, _, err = nas("space", "show", "demo", "--proxy-width", text)
        assert code == 2 and "finite" in err, err


def test_the_fences_are_reached_by_valid_arguments(tmp_path):
    """The fences above stop valid input after it was validated: an accepted number reaches them."""
    runs = tmp_path / "runs"
    code, _, err = nas("search", "--space", "demo", "--runs-dir", str(runs), "--baselines", FENCE_ARCH, "--trials", "3")
    assert code == 2 and FENCE_ARCH in err and not runs.exists(), err
    code, _, err = nas("retrain", "r3d-18", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "missing cache"),
                       "--epochs", "3")
    assert code == 2 and "missing cache" in err and "does not exist" in err and not (tmp_path / "out").exists(), err
