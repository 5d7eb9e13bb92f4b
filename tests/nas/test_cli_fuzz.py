"""The command-line fuzzer: every input class at the real ``nas`` entry point, before and around side effects.

Each case must end in exit 0 with a correct result, or exit 2 with exactly one ``error:`` line (never
"internal error", never a traceback), and must leave every file that existed before byte-identical and no run
directory behind (README, "A tour of the CLI"; docs/reliability.md). The cases are a fixed table, derandomised
by construction, in four groups:

* **values**: every numeric flag of ``nas search`` with a value of each class (negative, zero, huge,
  non-finite, wrong type, empty), behind a *fence* (``--baselines`` of an unknown architecture, refused after
  the flags and the space, before anything is created) so no case starts a search;
* **combinations and conditions** found from the flags alone: the ones a user met as errors deep inside a run
  (a seed out of range, ``--runs-dir`` naming a file, a grace period longer than the proxy, a batch BatchNorm
  cannot train on, constraints no architecture of the space meets, objectives without accuracy, database URLs
  and Ray addresses malformed, of an unknown kind or unreachable, ``$RAY_ADDRESS``, ``--mlflow`` tracking URIs
  empty, of an unknown scheme or unreachable, a spec with a key twice);
* **files**: every file argument as binary, empty, a folder, a dangling link, a truncated copy of a valid one;
* **a damaged run**: each file a real run directory holds (search.yaml, state.yaml, trials.parquet, study.db)
  truncated or replaced by bytes, read back by ``nas trials``, ``nas runs``, ``nas report`` and a resume.

The full-filesystem and read-only cases of ``nas report`` and ``nas export`` are in tests/reports and
tests/nas/test_cli_export.py (a real tmpfs).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nas.search import run_search
from tests.nas.search_helpers import tiny_config, write_tiny_space
from tests.space.tmpfs import listing, remount_read_only, tmpfs
from tests.nas.cli_helpers import nas

pytestmark = pytest.mark.timeout(600)

FENCE = ("--baselines", "no-such-arch-for-the-fence")


def assert_one_error_line(code: int, out: str, err: str, *needles: str) -> str:
    assert "Traceback" not in out + err, err
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "internal error" not in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@dataclass(frozen=True)
class Case:
    """``nas ARGV`` must fail with one error line containing ``needle``; ``{x}`` in ARGV names a prepared path."""

    name: str
    argv: tuple[str, ...]
    needle: str
    env: dict[str, str] = field(default_factory=dict)


def _search(*flags: str) -> tuple[str, ...]:
    return ("search", "--runs-dir", "{runs}", "--space", "{space}", "--trials", "1", "--quiet", "--no-report", *flags)


# --- values: every numeric flag of `nas search`, each class of value, behind the fence ----------------------

INT_FLAGS = ("--trials", "--num-clips", "--proxy-epochs", "--proxy-frames", "--proxy-size", "--proxy-batch-size",
             "--grace-period", "--reduction-factor", "--max-concurrent", "--heartbeat-interval", "--seed", "--retries")
FLOAT_FLAGS = ("--time-budget", "--proxy-width", "--proxy-lr", "--max-gmacs", "--max-params", "--max-latency-ms",
               "--cpus-per-trial", "--gpus-per-trial")
VALUE_CLASSES = {"negative": "-1", "zero": "0", "one": "1", "huge": "1e300", "non-finite": "nan", "infinite": "-inf",
                 "wrong type": "abc", "empty": "", "hex": "0x10"}


@pytest.mark.parametrize("flag", INT_FLAGS + FLOAT_FLAGS)
def test_every_numeric_flag_with_every_class_of_value_is_one_error_line(flag, tmp_path):
    paths = _paths(tmp_path)
    for value_class, value in VALUE_CLASSES.items():
        argv = _fill(_search(flag, value, *FENCE), paths)
        code, out, err = nas(*argv)
        assert_one_error_line(code, out, err)
        assert not (paths["runs"] / "tiny").exists(), (flag, value)


# --- combinations and conditions the flags alone decide, each once met deep inside a run --------------------

CONDITIONS = [
    Case("seed below zero", _search("--seed", "-1"), "--seed -1"),
    Case("seed above 32 bits", _search("--seed", str(2**32)), "--seed 4294967296"),
    Case("runs-dir is a file", _search("--runs-dir", "{file}"), "is a file"),
    Case("runs-dir under a file", _search("--runs-dir", "{file}/runs"), "is a file"),
    Case("grace period beyond the proxy", _search("--grace-period", "5", "--proxy-epochs", "2"), "--grace-period 5"),
    Case("one frame per clip", _search("--proxy-frames", "1"), "--proxy-frames 1"),
    Case("batch of one clip", _search("--proxy-batch-size", "1"), "--proxy-batch-size 1"),
    Case("no training clip left", _search("--num-clips", "5"), "--num-clips 5"),
    Case("gmacs no architecture meets", _search("--max-gmacs", "0.001"), "--max-gmacs 0.001"),
    Case("params no architecture meets", _search("--max-params", "0.0001"), "--max-params 0.0001"),
    Case("objectives without accuracy", _search("--objectives", "gmacs,latency"), "accuracy"),
    Case("storage of an unknown kind", _search("--storage", "foo://bar/x"), "unknown database kind"),
    Case("storage malformed", _search("--storage", "::::"), "not a database URL"),
    Case("storage unreachable", _search("--storage", "postgresql://u:secret@127.0.0.1:1/db"), "cannot connect"),
    Case("storage password hidden", _search("--storage", "postgresql://u:secret@127.0.0.1:1/db"), "***"),
    Case("storage in a missing folder", _search("--storage", "sqlite:////no/such/folder/x.db"), "does not exist"),
    Case("address malformed", _search("--address", "not an address"), "--address"),
    Case("address of an unknown scheme", _search("--address", "http://127.0.0.1:1"), "unknown scheme"),
    Case("address unreachable", _search("--address", "127.0.0.1:1"), "no Ray head node answers"),
    Case("RAY_ADDRESS unreachable", _search(), "no Ray head node answers", env={"RAY_ADDRESS": "127.0.0.1:1"}),
    Case("mlflow empty", _search("--mlflow", ""), "--mlflow '': empty"),
    Case("warm start empty", _search("--warm-start", ""), "--warm-start '' is not allowed"),
    Case("warm start from a file", _search("--warm-start", "{file}"), "--warm-start"),
    Case("mlflow of an unknown scheme", _search("--mlflow", "foo://x"), "unknown scheme 'foo://'"),
    Case("mlflow server unreachable", _search("--mlflow", "http://127.0.0.1:1"), "no MLflow tracking server answers"),
    Case("spec file with a key twice", ("profile", "{duplicate_key_spec}", "--no-latency"), "duplicate key"),
    Case("space file is binary", _search("--space", "{binary}"), "error"),
    Case("report out is a file", ("report", "{run}", "--out", "{file}"), "plain.txt"),
]


@pytest.mark.parametrize("case", CONDITIONS, ids=lambda case: case.name)
def test_conditions_found_from_the_flags_are_one_error_line_before_anything_exists(case, tmp_path, tiny_run):
    paths = {**_paths(tmp_path), "run": tiny_run}
    before = listing(tmp_path)
    run_before = listing(tiny_run)
    code, out, err = nas(*_fill(case.argv, paths), env=case.env)
    assert_one_error_line(code, out, err, case.needle)
    assert listing(tmp_path) == before, "a refused command wrote or removed a file"
    assert listing(tiny_run) == run_before


def test_ray_address_in_the_environment_is_not_for_the_local_executor(tmp_path):
    """``$RAY_ADDRESS`` is Ray's: ``--executor local`` does not try to join it (the fence stops the search)."""
    paths = _paths(tmp_path)
    code, out, err = nas(*_fill(_search("--executor", "local", *FENCE), paths), env={"RAY_ADDRESS": "127.0.0.1:1"})
    assert_one_error_line(code, out, err, FENCE[1])


def test_a_readonly_runs_folder_is_one_error_line(tmp_path):
    paths = _paths(tmp_path)
    with tmpfs(tmp_path / "ro", "64k") as folder:
        remount_read_only(folder)
        code, out, err = nas(*_fill(_search("--runs-dir", str(folder / "runs")), paths))
    assert_one_error_line(code, out, err, "cannot write")


def test_a_full_disk_while_a_search_starts_is_one_error_line_and_leaves_no_run(tmp_path):
    """48 KiB: too small for the run's SQLite study; the search refuses with one line and keeps nothing."""
    paths = _paths(tmp_path)
    with tmpfs(tmp_path / "full", "48k") as folder:
        code, out, err = nas(*_fill(_search("--runs-dir", str(folder / "runs"), "--executor", "local"), paths))
        left = listing(folder)
    assert_one_error_line(code, out, err, "disk is full")
    assert not [name for name in left if name.startswith("runs/tiny")], left


# --- file arguments: each class of bad file ------------------------------------------------------------------

FILE_CLASSES = ("binary", "empty", "folder", "dangling", "truncated")
FILE_COMMANDS = {
    "search --space": lambda path: _search("--space", path),
    "profile SPEC": lambda path: ("profile", path, "--no-latency"),
    "search --cache": lambda path: _search("--cache", path),
    "trials RUN": lambda path: ("trials", path),
    "retrain RUN:ID": lambda path: ("retrain", f"{path}:0", "--epochs", "1", "--cache", "/no/such/cache"),
}


@pytest.mark.parametrize("command", sorted(FILE_COMMANDS))
def test_every_file_argument_of_each_bad_kind_is_one_error_line(command, tmp_path):
    paths = _paths(tmp_path)
    for file_class in FILE_CLASSES:
        before = listing(tmp_path)
        code, out, err = nas(*_fill(FILE_COMMANDS[command](str(paths[file_class])), paths))
        assert_one_error_line(code, out, err)
        assert listing(tmp_path) == before, (command, file_class)


# --- a real run with each of its files damaged -----------------------------------------------------------------

RUN_FILES = ("search.yaml", "state.yaml", "trials.parquet", "study.db")
DAMAGE = {"truncated": lambda data: data[: len(data) // 3], "binary": lambda data: bytes(range(256)) * 4,
          "empty": lambda data: b""}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished two-trial search of the tiny space on the Ray-free executor (seconds)."""
    root = tmp_path_factory.mktemp("fuzz-run")
    outcome = run_search(tiny_config(root, trials=2, executor="local"), show_progress=False)
    return outcome.run_dir


@pytest.mark.slow
@pytest.mark.parametrize("run_file", RUN_FILES)
def test_a_damaged_run_file_is_one_error_line_or_a_correct_answer_and_is_left_as_it_was(run_file, tiny_run,
                                                                                       tmp_path):
    for damage, how in DAMAGE.items():
        run = tmp_path / damage / "tiny"
        shutil.copytree(tiny_run, run)
        target = run / run_file
        target.write_bytes(how(target.read_bytes()))
        before = listing(run.parent)
        for argv in (("trials", str(run)), ("runs", str(run.parent)), ("report", str(run), "--out", str(tmp_path / "r")),
                     ("search", "--resume", str(run), "--trials", "1", "--quiet", "--no-report")):
            code, out, err = nas(*argv)
            assert "Traceback" not in out + err and "internal error" not in err, (argv, err)
            assert code in (0, 2), (argv, code, err)
            if code == 2:
                assert_one_error_line(code, out, err)
            assert listing(run.parent) == before, (run_file, damage, argv[0])
            shutil.rmtree(tmp_path / "r", ignore_errors=True)


@pytest.mark.slow
def test_a_resume_cannot_lower_the_target_below_what_the_run_trained(tiny_run, tmp_path):
    run = tmp_path / "tiny"
    shutil.copytree(tiny_run, run)
    before = listing(run)
    code, out, err = nas("search", "--resume", str(run), "--trials", "1", "--quiet", "--no-report")
    assert_one_error_line(code, out, err, "--trials 1", "already trained 2")
    assert listing(run) == before


# --- helpers ------------------------------------------------------------------------------------------------------


def _paths(tmp_path: Path) -> dict[str, Path]:
    """The prepared paths cases name: a runs folder, a plain file, files of each bad kind, a spec with a key twice."""
    files = tmp_path / "files"
    files.mkdir(exist_ok=True)
    paths = {"runs": tmp_path / "runs", "space": write_tiny_space(files), "file": files / "plain.txt"}
    paths["file"].write_text("not a folder\n")
    paths["binary"] = files / "binary.yaml"
    paths["binary"].write_bytes(bytes(range(256)))
    paths["empty"] = files / "empty.yaml"
    paths["empty"].write_bytes(b"")
    paths["folder"] = files / "a-folder"
    paths["folder"].mkdir(exist_ok=True)
    paths["dangling"] = files / "dangling.yaml"
    if not paths["dangling"].is_symlink():
        paths["dangling"].symlink_to(files / "no-such-target")
    paths["truncated"] = files / "truncated.yaml"
    paths["truncated"].write_text(paths["space"].read_text()[:57])
    paths["duplicate_key_spec"] = files / "duplicate.yaml"
    paths["duplicate_key_spec"].write_text("family: resnet3d\nconv: r3d\ndepth: 18\ndepth: 34\n")
    return paths


def _fill(argv: tuple[str, ...], paths: dict[str, Path]) -> list[str]:
    return [arg.format(**{k: str(v) for k, v in paths.items()}) if "{" in arg else arg for arg in argv]

