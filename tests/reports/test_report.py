"""reports.build_report over hand-built run directories: fronts, hypervolume, retrain commands, statuses, edge cases."""

from __future__ import annotations

import base64
import json
import re
import shlex
from html.parser import HTMLParser
from pathlib import Path

import moocore
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nas.cli import main
from reports.build import build_report
from reports.load import ReportInputError
from tests.reports.fake_run import BOUNDS, REFERENCE, FakeTrial, write_run

RETRAIN_FLAGS = {
    "--data", "--root", "--cache", "--epochs", "--batch-size", "--lr", "--weight-decay", "--frames", "--size",
    "--workers", "--gpus-per-worker", "--multigrid", "--amp", "--init", "--resume", "--out",
}  # fmt: skip
COLUMNS = {"accuracy": "accuracy", "gmacs": "gmacs", "latency": "latency_ms", "params": "params"}


class PageParser(HTMLParser):
    """Collects the figures' JSON, table rows (by table id) and the status-count cells of a report page."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, dict] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self.row_keys: dict[str, list[str]] = {}
        self._figure: str | None = None
        self._chunks: list[str] = []
        self._table: list[str] = []
        self._cell: list[str] | None = None
        self.scripts_with_src: list[str] = []
        self.external_links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            if attrs.get("src"):
                self.scripts_with_src.append(attrs["src"])
            if attrs.get("type") == "application/json" and "data-figure" in attrs:
                self._figure, self._chunks = attrs["data-figure"], []
        elif tag == "link" and attrs.get("href"):
            self.external_links.append(attrs["href"])
        elif tag == "table":
            self._table.append(attrs.get("id", ""))
            self.rows.setdefault(self._table[-1], [])
            self.row_keys.setdefault(self._table[-1], [])
        elif tag == "tr" and self._table:
            self.rows[self._table[-1]].append([])
            if "data-key" in attrs:
                self.row_keys[self._table[-1]].append(attrs["data-key"])
        elif tag == "td" and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "script" and self._figure is not None:
            self.figures[self._figure] = json.loads("".join(self._chunks))
            self._figure = None
        elif tag == "table" and self._table:
            self._table.pop()
        elif tag == "td" and self._cell is not None and self._table:
            self.rows[self._table[-1]][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._figure is not None:
            self._chunks.append(data)
        elif self._cell is not None:
            self._cell.append(data)


def parse(index: Path) -> PageParser:
    parser = PageParser()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser


def expected_front(table: pd.DataFrame, objectives: list[str]) -> set[int]:
    """Independently: non-dominated (moocore) searched COMPLETE feasible trials."""
    done = table[(table["status"] == "COMPLETE") & table["feasible"] & table["baseline"].isna()]
    values = done[[COLUMNS[o] for o in objectives]].to_numpy(float)
    mask = moocore.is_nondominated(values, maximise=[o == "accuracy" for o in objectives], keep_weakly=True)
    return set(done["trial_id"][mask].astype(int))


def decode(value):
    """Plotly >= 6 writes numpy arrays as typed arrays ({"dtype", "bdata"[, "shape"]}); lists stay lists."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if "shape" in value:
            array = array.reshape([int(n) for n in str(value["shape"]).split(",")])
        return array.tolist()
    return value


def traces(figure: dict, group: str) -> list[dict]:
    """The traces of one group, with typed arrays decoded into lists."""
    found = [t for t in figure["data"] if (t.get("meta") or {}).get("group") == group]
    return [{k: decode(v) for k, v in t.items()} for t in found]


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "mixed"
    table = write_run(run_dir, retrain={0: 0.70, 3: 0.66, 5: 0.50, 7: 0.61})
    index = build_report(run_dir)
    return run_dir, table, index, parse(index)


# ------------------------------------------------------------------------------------------------
# fronts and the Pareto table
# ------------------------------------------------------------------------------------------------


def test_every_front_trace_and_the_table_hold_exactly_the_front(mixed_run):
    _, table, _, page = mixed_run
    front = expected_front(table, ["accuracy", "gmacs", "latency"])
    assert len(front) >= 3
    pareto_ids = [k for k in page.figures if k.startswith("pareto-")]
    assert pareto_ids == ["pareto-gmacs", "pareto-latency", "pareto-3d"]
    for figure_id in pareto_ids:
        (trace,) = traces(page.figures[figure_id], "front")
        ids = [int(i) for i in trace["customdata"]]
        assert len(ids) == len(set(ids)) and set(ids) == front, figure_id
    final_stage = traces(page.figures["front-evolution"], "stage")[-1]
    assert sorted(int(i) for i in final_stage["customdata"]) == sorted(front)
    assert sorted(int(k) for k in page.row_keys["pareto-table"]) == sorted(front)


def test_groups_are_drawn_apart_and_never_include_copies(mixed_run):
    _, table, _, page = mixed_run
    figure = page.figures["pareto-gmacs"]
    by_status = lambda s: set(table.loc[table["status"] == s, "trial_id"].astype(int))  # noqa: E731
    drawn = {g: set(int(i) for t in traces(figure, g) for i in t["customdata"])
             for g in ("front", "dominated", "baseline", "pruned", "infeasible")}
    assert drawn["baseline"] == set(table.loc[table["baseline"].notna(), "trial_id"])
    assert drawn["pruned"] == by_status("PRUNED")
    assert drawn["infeasible"] == by_status("INFEASIBLE")
    assert drawn["front"] | drawn["dominated"] == by_status("COMPLETE") - drawn["baseline"]
    everything = set().union(*drawn.values())
    for status in ("DUPLICATE", "INVALID", "FAIL", "RUNNING"):
        assert not (everything & by_status(status)), status
    assert sum(len(v) for v in drawn.values()) == len(everything)  # one point per trial


# ------------------------------------------------------------------------------------------------
# hypervolume
# ------------------------------------------------------------------------------------------------


def test_hypervolume_history_never_decreases_and_matches_moocore(mixed_run):
    _, table, index, page = mixed_run
    (trace,) = traces(page.figures["hypervolume-trials"], "hypervolume")
    values = np.array(trace["y"], dtype=float)
    trained = table[table["status"].isin(["COMPLETE", "PRUNED", "FAIL"])].sort_values("finished_at")
    assert [int(i) for i in trace["customdata"]] == trained["trial_id"].tolist()
    assert (np.diff(values) >= 0).all()
    assert len(set(values)) > 3  # it actually grows
    for k in (5, 12, len(trained)):  # against moocore on the normalised prefix
        prefix = trained.iloc[:k]
        done = prefix[(prefix["status"] == "COMPLETE") & prefix["feasible"] & prefix["baseline"].isna()]
        natural = done[["accuracy", "gmacs", "latency_ms"]].to_numpy(float)
        low = np.array([BOUNDS[o][0] for o in ("accuracy", "gmacs", "latency")])
        high = np.array([BOUNDS[o][1] for o in ("accuracy", "gmacs", "latency")])
        normalised = (natural - low) / (high - low)
        normalised[:, 0] = 1 - normalised[:, 0]
        assert values[k - 1] == pytest.approx(moocore.hypervolume(normalised, ref=REFERENCE[:3]), rel=1e-9)
    page_text = index.read_text()
    assert "Reference point (normalised): accuracy = 1, gmacs = 1, latency = 1" in page_text
    (clock,) = traces(page.figures["hypervolume-clock"], "hypervolume")
    assert clock["y"] == trace["y"] and (np.diff(np.array(clock["x"], dtype=float)) >= 0).all()


# ------------------------------------------------------------------------------------------------
# retrain commands
# ------------------------------------------------------------------------------------------------


def _retrain_click_command():
    import typer

    command = typer.main.get_command(__import__("nas.cli", fromlist=["app"]).app)
    return command.commands.get("retrain") if hasattr(command, "commands") else None


def check_retrain_command(command: str, run_dir: Path, front: set[int]) -> int:
    argv = shlex.split(command)
    assert argv[:2] == ["nas", "retrain"]
    run, _, trial = argv[2].rpartition(":")
    assert Path(run) == run_dir.resolve() and int(trial) in front
    options = argv[3:]
    flags = options[0::2]
    assert set(flags) <= RETRAIN_FLAGS and "--data" in flags
    assert all(not value.startswith("--") for value in options[1::2])
    retrain = _retrain_click_command()
    if retrain is not None:  # `nas retrain` is registered: its own parser must accept the command
        context = retrain.make_context("retrain", argv[2:])
        assert context.params["arch"] == argv[2]
        assert context.params["data"] == options[options.index("--data") + 1]
    return int(trial)


def test_summary_holds_each_retrain_command_and_each_parses(mixed_run):
    run_dir, table, index, _ = mixed_run
    front = expected_front(table, ["accuracy", "gmacs", "latency"])
    summary = index.with_name("summary.md").read_text()
    commands = re.findall(r"```sh\n(.*?)\n```", summary)
    assert sorted(check_retrain_command(c, run_dir, front) for c in commands) == sorted(front)


def test_retrain_command_quotes_a_root_with_spaces(tmp_path):
    root = tmp_path / "my videos"
    root.mkdir()
    run_dir = tmp_path / "ucf run"
    table = write_run(run_dir, data="ucf101", root=str(root), with_study=False)
    index = build_report(run_dir)
    front = expected_front(table, ["accuracy", "gmacs", "latency"])
    commands = re.findall(r"```sh\n(.*?)\n```", index.with_name("summary.md").read_text())
    assert commands and all(shlex.split(c)[3:7] == ["--data", "ucf101", "--root", str(root)] for c in commands)
    assert sorted(check_retrain_command(c, run_dir, front) for c in commands) == sorted(front)
    page = parse(index)
    table_commands = [row[-1] for row in page.rows["pareto-table"] if row]
    assert sorted(table_commands) == sorted(commands)


# ------------------------------------------------------------------------------------------------
# status groups, failures
# ------------------------------------------------------------------------------------------------


def test_each_status_group_and_its_count_is_shown(mixed_run):
    _, table, index, page = mixed_run
    counts = {row[0]: int(row[1]) for row in page.rows["status-counts"] if row}
    expected = table["status"].value_counts().to_dict()
    assert {s: counts[s] for s in expected} == expected
    assert set(expected) == {"COMPLETE", "PRUNED", "FAIL", "INFEASIBLE", "DUPLICATE", "INVALID", "RUNNING"}
    assert "RuntimeError: NaN loss at epoch 2" in index.read_text()
    duplicates = {int(r[0]): int(r[2]) for r in page.rows["trials-duplicate"] if r}
    assert duplicates == dict(zip(table.loc[table["status"] == "DUPLICATE", "trial_id"],
                                  table.loc[table["status"] == "DUPLICATE", "duplicate_of"].astype(int)))
    summary = index.with_name("summary.md").read_text()
    for status, n in expected.items():
        assert re.search(rf"^\| {status} \| {n} \|", summary, re.M), status
    assert "(in progress)" in index.read_text()


def test_gate_open_rates_mark_single_frame_blocks(mixed_run):
    _, table, _, page = mixed_run
    (heatmap,) = traces(page.figures["gates"], "gates")
    with_gates = sorted(int(t) for t, g in zip(table["trial_id"], table["gate_open_rates"]) if json.loads(g))
    assert heatmap["meta"]["trial_ids"] == with_gates
    first = json.loads(table.loc[table["trial_id"] == with_gates[0], "gate_open_rates"].iloc[0])
    for block, text in zip(heatmap["x"], heatmap["text"][0]):
        assert text == ("T=1" if first[block] is None else f"{first[block]:.2f}")


def test_proxy_vs_full_correlations_match_scipy(mixed_run):
    _, table, index, _ = mixed_run
    retrained = {0: 0.70, 3: 0.66, 5: 0.50, 7: 0.61}
    proxy = [float(table.loc[table["trial_id"] == t, "accuracy"].iloc[0]) for t in retrained]
    tau = stats.kendalltau(proxy, list(retrained.values())).statistic
    rho = stats.spearmanr(proxy, list(retrained.values())).statistic
    text = index.read_text()
    assert f"Kendall tau: <strong id=kendall-tau>{tau:.3f}" in text
    assert f"Spearman rho: <strong id=spearman-rho>{rho:.3f}" in text


def test_a_short_retrain_is_labelled_and_left_out_of_the_correlations(tmp_path):
    """docs/retrain.md, "Full-scale or short": only a retrain at the full-scale settings is called full-scale."""
    run_dir = tmp_path / "run"
    table = write_run(run_dir, retrain={0: 0.70, 3: 0.66, 5: 0.50, 7: 0.61})
    short = {"full_scale": False, "epochs": 1, "train_clips": 8, "width_mult": 0.125}
    for trial_id, scale in ((7, short), (5, None)):  # 5: a result written before retrains recorded their scale
        path = run_dir / "retrain" / f"trial-{trial_id}" / "result.json"
        result = json.loads(path.read_text())
        result.pop("scale")
        path.write_text(json.dumps(result | ({"scale": scale} if scale else {})))
    index = build_report(run_dir)
    page = parse(index)
    labels = {int(row[0]): row[2] for row in page.rows["retrain-table"] if row}
    assert labels == {0: "full-scale", 3: "full-scale", 5: "settings not recorded",
                      7: "short: 1 epoch, 8 clips, width 0.125"}
    text = index.read_text()
    assert "<strong id=kendall-tau>n/a (needs 3 or more full-scale retrains)</strong>" in text  # 2 full-scale
    summary = (index.parent / "summary.md").read_text()
    assert "| 7 | trial-7 | short: 1 epoch, 8 clips, width 0.125 |" in summary and "n = 2 full-scale" in summary
    figure = page.figures["proxy-vs-full"]["data"][0]
    assert "#7 (short: 1 epoch, 8 clips, width 0.125)" in figure["text"] and "#0" in figure["text"]
    assert set(table["trial_id"]) >= set(labels)


def test_importance_per_objective_from_study_and_from_parquet(tmp_path, mixed_run):
    from reports.importance import parameter_importance
    from reports.load import load_run

    run_dir, *_ = mixed_run
    from_study = parameter_importance(load_run(run_dir))
    assert "study.db" in from_study.source
    bare = tmp_path / "no-study"
    write_run(bare, with_study=False)
    from_table = parameter_importance(load_run(bare))
    assert "params_json" in from_table.source
    for importance in (from_study, from_table):
        assert list(importance.per_objective) == ["accuracy", "gmacs", "latency"]
        for scores in importance.per_objective.values():
            assert scores and sum(scores.values()) == pytest.approx(1.0)
            assert set(scores) <= {"family", "conv", "depth", "placement", "reduction", "mtnet_depth", "ratio"}
        assert importance.n_trials == 18  # COMPLETE feasible searched trials only


# ------------------------------------------------------------------------------------------------
# page hygiene, edge cases, CLI
# ------------------------------------------------------------------------------------------------


def test_page_is_self_contained(mixed_run):
    _, _, index, page = mixed_run
    text = index.read_text()
    assert page.scripts_with_src == [] and page.external_links == []
    assert not re.search(r"<script[^>]+src=", text) and not re.search(r"<link[^>]+href=", text)
    assert text.count("plotly.js v") == 1  # the library is inlined once
    assert sorted(p.name for p in index.parent.glob("*.png")) == [
        "gates.png", "hypervolume.png", "importance.png", "pareto_gmacs.png", "pareto_latency_ms.png", "proxy_vs_full.png",
    ]  # fmt: skip


def test_zero_completed_trials_says_so(tmp_path):
    trials = [
        FakeTrial("FAIL", {"family": "mtnet", "mtnet_depth": 32, "ratio": 0.6}, error="out of memory", fidelity=0),
        FakeTrial("INFEASIBLE", {"family": "resnet3d", "conv": "r3d", "depth": 50, "placement": "none"}, accuracy=0.0,
                  error="gmacs > max_gmacs", fidelity=0),
        FakeTrial("RUNNING", {"family": "mtnet", "mtnet_depth": 48, "ratio": 0.7}),
    ]
    write_run(tmp_path / "early", trials)
    index = build_report(tmp_path / "early")
    page = parse(index)
    assert not [k for k in page.figures if k.startswith(("pareto", "hypervolume", "front"))]
    assert "No completed trials yet" in index.read_text()
    assert "**No completed trials yet**" in index.with_name("summary.md").read_text()
    counts = {row[0]: int(row[1]) for row in page.rows["status-counts"] if row}
    assert counts["FAIL"] == counts["INFEASIBLE"] == counts["RUNNING"] == 1 and counts["COMPLETE"] == 0


def test_run_without_trials_parquet_yet(tmp_path):
    run_dir = tmp_path / "just-started"
    write_run(run_dir, [], with_study=False)
    (run_dir / "trials.parquet").unlink()
    index = build_report(run_dir)
    assert "No completed trials yet" in index.read_text()


def test_missing_bounds_fall_back_to_observed_range_and_say_so(tmp_path):
    write_run(tmp_path / "nobounds", bounds=None, with_study=False)
    index = build_report(tmp_path / "nobounds")
    assert "search.yaml has no `bounds`" in index.read_text()


def test_two_objectives_draw_a_staircase_front(tmp_path):
    table = write_run(tmp_path / "two", objectives=["accuracy", "gmacs"], with_study=False)
    page = parse(build_report(tmp_path / "two"))
    assert "pareto-3d" not in page.figures
    (trace,) = traces(page.figures["pareto-gmacs"], "front")
    assert set(int(i) for i in trace["customdata"]) == expected_front(table, ["accuracy", "gmacs"])
    assert trace["mode"] == "lines+markers" and trace["line"]["shape"] == "hv"
    assert list(trace["x"]) == sorted(trace["x"])


def test_invalid_run_directories_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "not-a-run").mkdir()
    bad_yaml = tmp_path / "bad-yaml"
    bad_yaml.mkdir()
    (bad_yaml / "search.yaml").write_text("objectives: [accuracy, speed]\n")
    for target in (tmp_path / "missing", tmp_path / "not-a-run", bad_yaml):
        with pytest.raises(SystemExit) as exit_info:
            main(["report", str(target)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "speed" in err and "allowed" in err
    with pytest.raises(ReportInputError):
        build_report(tmp_path / "missing")


def test_cli_writes_the_report(mixed_run, capsys):
    run_dir, *_ = mixed_run
    main(["report", str(run_dir)])  # success returns normally (exit code 0)
    out = capsys.readouterr().out
    assert f"report: {run_dir / 'report' / 'index.html'}" in out


def test_gate_heatmap_keeps_the_front_when_there_are_many_trials():
    from reports.analysis import MAX_GATE_ROWS, gate_table

    rng = np.random.default_rng(0)
    n = MAX_GATE_ROWS + 25
    gates = [json.dumps({"layer1.0": float(rng.uniform()), "layer4.0": None}) for _ in range(n)]
    trials = pd.DataFrame({"trial_id": range(n), "gate_open_rates": gates, "accuracy": rng.uniform(0, 1, n)})
    front = {3, 50, n - 1}
    table = gate_table(trials, front)
    assert len(table.trial_ids) == MAX_GATE_ROWS and front <= set(table.trial_ids)
    assert table.trial_ids == sorted(table.trial_ids)
    rest = sorted(set(range(n)) - front, key=lambda t: -trials["accuracy"][t])[: MAX_GATE_ROWS - len(front)]
    assert set(table.trial_ids) == front | set(rest)  # then the most accurate
    assert table.n_trials == n and table.block_measured == [n, 0] and table.block_single == [0, n]
    assert table.block_mean[0] == pytest.approx(np.mean([json.loads(g)["layer1.0"] for g in gates]))


def test_four_objectives(tmp_path):
    objectives = ["accuracy", "gmacs", "latency", "params"]
    bounds = {**BOUNDS, "params": [0.0, 100e6]}
    table = write_run(tmp_path / "four", objectives=objectives, bounds=bounds, with_study=False)
    index = build_report(tmp_path / "four")
    page = parse(index)
    front = expected_front(table, objectives)
    assert [k for k in page.figures if k.startswith("pareto-")] == ["pareto-gmacs", "pareto-latency", "pareto-params", "pareto-3d"]
    for figure_id in ("pareto-gmacs", "pareto-params", "pareto-3d"):
        (trace,) = traces(page.figures[figure_id], "front")
        assert sorted(trace["customdata"]) == sorted(front)
    (history,) = traces(page.figures["hypervolume-trials"], "hypervolume")
    done = table[(table["status"] == "COMPLETE") & table["baseline"].isna()]
    natural = done[["accuracy", "gmacs", "latency_ms", "params"]].to_numpy(float)
    low = np.array([bounds[o][0] for o in objectives])
    high = np.array([bounds[o][1] for o in objectives])
    normalised = (natural - low) / (high - low)
    normalised[:, 0] = 1 - normalised[:, 0]
    assert history["y"][-1] == pytest.approx(moocore.hypervolume(normalised, ref=[1.0] * 4), rel=1e-9)
    assert (index.parent / "pareto_params.png").is_file()
