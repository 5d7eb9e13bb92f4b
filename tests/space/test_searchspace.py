"""Search-space files: parsing, line-numbered errors, size, sampling (fake closure and real Optuna), valid share."""

from __future__ import annotations

import itertools
import random
import warnings

import optuna
import pytest

from space import CATALOG, MTNetSpec, ResNet3DSpec, SRTGSpec
from space.searchspace import SearchSpace, SpaceError, load_space, parse_space, preset_names, structure_of


def _recording_suggest(rng: random.Random | None = None):
    """A SuggestFn that picks (randomly, or the first choice) and records what it was asked."""
    asked: dict[str, list] = {}

    def suggest(name, choices):
        asked[name] = list(choices)
        return rng.choice(choices) if rng else choices[0]

    return suggest, asked


# ---- presets and sizes --------------------------------------------------------------------------


def test_presets_ship_and_sizes_match_hand_counts():
    assert preset_names() == ["bench", "demo", "joint", "mtnet", "srtg"]
    sizes = {name: load_space(name).size() for name in preset_names()}
    # bench: per conv, 2 Simple depths x (none + 4 placements x 2 recurrent x 2 gates) + depth 50 x (none + 6 x 4),
    # plus MTNet 3 depths x 4 ratios x 3 sub-streams x 2 recurrent (docs/bench/bench-table.md)
    assert sizes["bench"] == 2 * (2 * (1 + 4 * 4) + (1 + 6 * 4)) + 3 * 4 * 3 * 2 == 190
    # demo: 2 convs x (none + 4 placements x 2 recurrent x 2 fusion x 2 gates) + MTNet 3 ratios x 2 substreams
    assert sizes["demo"] == 2 * (1 + 4 * 2 * 2 * 2) + 3 * 2 == 72
    # mtnet: 4 depths x 5 ratios x 4 substreams x 3 recurrent
    assert sizes["mtnet"] == 4 * 5 * 4 * 3 == 240
    # srtg: per conv, 2 Simple depths x (none + 4 placements x R) + depth 50 x 2 expansions x (none + 6 x R),
    # R = recurrent 2 x reduction 3 x fusion 2 x gate 3 x align_loss 2 x stages 2 = 144
    r = 2 * 3 * 2 * 3 * 2 * 2
    assert sizes["srtg"] == 2 * (2 * (1 + 4 * r) + 2 * (1 + 6 * r)) == 5768
    # joint: the same without stages and with expansion fixed (R = 72), plus MTNet 4 x 5 x 3 x 3
    r = 2 * 3 * 2 * 3 * 2
    assert sizes["joint"] == 2 * (2 * (1 + 4 * r) + (1 + 6 * r)) + 4 * 5 * 3 * 3 == 2202


def test_enumerate_yields_distinct_keys_and_covers_every_sample():
    space = load_space("demo")
    keys = [spec.key() for spec in space.enumerate()]
    assert len(keys) == len(set(keys)) == space.size()
    rng = random.Random(0)
    for _ in range(200):
        suggest, _ = _recording_suggest(rng)
        assert space.sample(suggest).key() in set(keys)


def test_size_counts_canonical_specs_not_suggestion_paths():
    # bottleneck_expansion is sampled only at depth >= 50: two suggestion paths at 18, three specs in all
    space = parse_space("families:\n  resnet3d:\n    depth: [18, 50]\n    bottleneck_expansion: [1, 4]\n")
    assert space.size() == 3
    # ratio 1 and 1.0 are one value
    with pytest.raises(SpaceError, match=r"<string>:3: families.mtnet.ratio.*duplicate choice 1.0"):
        parse_space("families:\n  mtnet:\n    ratio: [1, 1.0]\n")


# ---- conditional sampling --------------------------------------------------------------------------


def test_sampling_asks_only_parameters_that_change_the_model():
    space = load_space("demo")
    suggest, asked = _recording_suggest()  # first choice everywhere: resnet3d, r3d, placement none
    spec = space.sample(suggest)
    assert spec == ResNet3DSpec(conv="r3d", depth=18)
    assert list(asked) == ["family", "resnet3d.conv", "resnet3d.srtg.placement"]  # no srtg options without SRTG

    answers = {"family": "resnet3d", "resnet3d.srtg.placement": "mid", "resnet3d.srtg.gate": "warmup"}
    asked = {}
    spec = space.sample(lambda name, choices: asked.setdefault(name, answers.get(name, choices[-1])))
    assert spec.srtg == SRTGSpec(placement="mid", recurrent="gru", reduction=4, fusion="residual", gate="warmup",
                                 warmup=0.5)
    assert "resnet3d.srtg.warmup" not in asked  # fixed in the file: applied, never asked
    assert set(asked) == {"family", "resnet3d.conv", "resnet3d.srtg.placement", "resnet3d.srtg.recurrent",
                          "resnet3d.srtg.fusion", "resnet3d.srtg.gate"}


def test_placement_is_split_by_block_kind_when_the_depths_mix():
    space = load_space("srtg")
    names = {d.name: d.choices for d in space.parameters()}
    assert names["resnet3d.srtg.placement.simple"] == ("none", "start", "mid", "res", "final")
    assert names["resnet3d.srtg.placement.bottleneck"] == ("none", "start", "top", "mid", "end", "res", "final")
    assert "resnet3d.srtg.placement" not in names
    asked: dict[str, list] = {}
    spec = space.sample(lambda n, c: asked.setdefault(n, {"resnet3d.depth": 34}.get(n, c[-1])))
    assert spec.depth == 34 and spec.srtg.placement == "final"
    assert "resnet3d.srtg.placement.simple" in asked and "resnet3d.srtg.placement.bottleneck" not in asked
    assert "resnet3d.bottleneck_expansion" not in asked
    # one depth kind only: a single parameter
    single = parse_space("families:\n  resnet3d:\n    depth: [50, 101]\n    srtg: {placement: [none, top, end]}\n")
    assert [d.name for d in single.parameters()] == ["resnet3d.depth", "resnet3d.srtg.placement"]


def test_stages_choices_are_lists_encoded_for_the_sampler():
    space = parse_space("families:\n  resnet3d:\n    srtg:\n      placement: final\n      stages: [[4, 3], [1, 2, 3, 4]]\n")
    (dim,) = space.parameters()
    assert dim.name == "resnet3d.srtg.stages" and dim.encoded_choices() == ["3,4", "1,2,3,4"]
    assert space.sample(lambda n, c: "3,4").srtg.stages == (3, 4)
    with pytest.raises(SpaceError, match="sampler returned"):
        space.sample(lambda n, c: "2,4")


def test_params_for_round_trips_every_spec_and_rejects_outsiders():
    space = load_space("demo")
    for spec in space.enumerate():
        params = space.params_for(spec)
        assert space.sample(lambda name, choices: params[name]) == spec
    assert space.params_for(CATALOG["r3d-34"]) is None  # depth 34 is not in the demo space
    assert space.params_for(MTNetSpec(depth=32, ratio=0.875, substreams=4)) == {
        "family": "mtnet", "mtnet.ratio": 0.875, "mtnet.substreams": 4}


def test_flat_sampling_asks_every_parameter_and_builds_what_its_active_answers_make():
    """A genetic sampler's genome: every parameter asked every time; the spec is the one its active genes make."""
    space = load_space("joint")
    every = [d.name for d in space.parameters()]
    families = set()
    for seed in range(30):
        rng, answers = random.Random(seed), {}
        spec = space.sample_flat(lambda name, choices: answers.setdefault(name, rng.choice(choices)))
        assert list(answers) == every
        active = space.params_for(spec)  # the parameters conditional sampling asks for this spec
        assert active is not None and set(active) < set(every)
        assert {name: answers[name] for name in active} == active
        families.add(spec.family)
    assert families == {"resnet3d", "mtnet"}


def test_a_known_spec_asked_flat_carries_every_gene_and_still_makes_itself():
    """A warm start's spec entering a flat-sampled study: every gene present, its own genes kept, same spec back."""
    space = load_space("joint")
    every = [d.name for d in space.parameters()]
    for spec in itertools.islice(space.enumerate(), 0, None, 97):
        active = space.params_for(spec)
        genome = space.flat_params(active)
        assert sorted(genome) == sorted(every) and {name: genome[name] for name in active} == active
        assert space.sample_flat(lambda name, choices: genome[name]).key() == spec.key()


def test_real_optuna_tpe_samples_the_conditional_space(tmp_path):
    """Multivariate grouped TPE on SQLite storage: one name always keeps one set of choices (Optuna checks it)."""
    space = load_space("srtg")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    with warnings.catch_warnings():  # group=True is flagged experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(multivariate=True, group=True, seed=0, n_startup_trials=5)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, sampler=sampler, directions=["maximize", "minimize"])
    valid_names = {d.name for d in space.parameters()}
    kinds = set()
    for _ in range(25):
        trial = study.ask()
        spec = space.sample(lambda name, choices: trial.suggest_categorical(name, choices))
        assert set(trial.params) <= valid_names
        assert space.params_for(spec) == trial.params
        kinds |= {name for name in trial.params if name.startswith("resnet3d.srtg.placement.")}
        assert not {"resnet3d.srtg.placement.simple", "resnet3d.srtg.placement.bottleneck"} <= set(trial.params)
        study.tell(trial, [float(spec.depth), float(spec.srtg.reduction)])
    assert kinds == {"resnet3d.srtg.placement.simple", "resnet3d.srtg.placement.bottleneck"}
    assert len(study.trials) == 25


# ---- line-numbered errors -------------------------------------------------------------------------

BAD_FILES = [
    ("families:\n  resnet3d:\n    depth: [18, 19]\n", r"bad.yaml:3: families.resnet3d.depth: 19 is not allowed; allowed"),
    ("families:\n  resnet3d:\n    depth: 18\n    colour: red\n", r"bad.yaml:4: .*unknown key 'colour'; allowed: conv, depth"),
    ("families:\n  resnet3d:\n    srtg:\n      placement:\n        - none\n        - middle\n",
     r"bad.yaml:6: families.resnet3d.srtg.placement: 'middle' is not allowed"),
    ("families:\n  resnet3d:\n    depth: 18\n    srtg: {placement: [none, top]}\n",
     r"bad.yaml:4: .*'top' is not allowed at depth 18"),
    ("families:\n  resnet3d:\n    srtg:\n      placement: final\n      gate: [cyclic, warmup]\n",
     r"bad.yaml:5: .*gate 'warmup' needs srtg.warmup"),
    ("families:\n  resnet3d:\n    srtg:\n      placement: final\n      warmup: 0.5\n",
     r"bad.yaml:5: .*only used with gate 'warmup'"),
    ("families:\n  vit: {}\n", r"bad.yaml:2: families.vit: unknown key 'vit'; allowed: resnet3d, mtnet"),
    ("families:\n  mtnet:\n    ratio: []\n", r"bad.yaml:3: families.mtnet.ratio: has no choices"),
    ("families:\n  mtnet:\n    ratio: 0.5\n    ratio: 0.75\n", r"bad.yaml:4: .*duplicate key 'ratio'"),
    ("families:\n  mtnet:\n    substreams: [1, 3]\n", r"bad.yaml:3: families.mtnet.substreams: 3 is not allowed"),
    ("families:\n  mtnet: [32]\n", r"bad.yaml:2: families.mtnet: family 'mtnet' must be a mapping"),
    ("name: x\nfamilies:\n  mtnet:\n    depth: [32\n", r"bad.yaml:\d+: not valid YAML"),
    ("nme: x\nfamilies: {mtnet: {}}\n", r"bad.yaml:1: nme: unknown key 'nme'; allowed: name, description, families"),
    ("name: x\n", r"bad.yaml:1: missing key 'families'"),
    ("families:\n  resnet3d:\n    depth: [18, 34]\n    bottleneck_expansion: 1\n",
     r"bad.yaml:4: .*bottleneck_expansion: has no effect: no depth >= 50"),
]


@pytest.mark.parametrize("text, message", BAD_FILES)
def test_bad_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=message):
        load_space(path)


def test_unknown_space_name_lists_the_presets():
    with pytest.raises(SpaceError, match="unknown search space 'jiont'; give a preset \\(bench, demo, joint, mtnet, srtg\\)"):
        load_space("jiont")


# ---- valid share ---------------------------------------------------------------------------------

TWO_FAILURES = """
families:
  resnet3d:
    depth: 18
    srtg:
      placement: [none, start]
      reduction: [1, 16]   # 16 does not divide the 8 channels of stage 1 at width 0.125
  mtnet:
    depth: 32
    ratio: 0.875
    substreams: [1, 16]    # g = 16 at r = 0.875 leaves a full-width 4-channel layer short of its 14 + 2 groups
"""


def test_valid_share_matches_hand_count():
    space = parse_space(TWO_FAILURES)
    specs = list(space.enumerate())
    assert len(specs) == 5  # none, start/1, start/16, mtnet g1, mtnet g16
    assert space.valid_share(1.0) == pytest.approx(4 / 5)  # only MTNet g16 fails at full width
    assert space.valid_share(0.125) == pytest.approx(3 / 5)  # ... and start/16 fails at the proxy width
    bad = [s for s in specs if not space.is_buildable(s, 0.125)]
    assert {getattr(s, "substreams", None) for s in bad} == {16, None}
    assert "does not divide" in space.build_error(ResNet3DSpec(srtg=SRTGSpec(placement="start", reduction=16)), 0.125)


def test_valid_share_of_demo_and_cache_by_structure():
    space = load_space("demo")
    assert space.valid_share(1.0) == 1.0
    assert space.valid_share(0.125) == 1.0
    structures = {structure_of(s).key() for s in space.enumerate()}
    # 2 convs x (none + 4 placements x 2 recurrent) + 6 MTNets: gate and fusion do not change the layers
    assert len(structures) == 2 * (1 + 4 * 2) + 6
    assert len(space._build_errors) == 2 * len(structures)  # one build per structure and width


def test_valid_share_estimate_is_seeded():
    space = parse_space(TWO_FAILURES)
    first = space.valid_share(0.125, sample=3, seed=1)
    assert first == space.valid_share(0.125, sample=3, seed=1)
    assert first in (0.0, 1 / 3, 2 / 3, 1.0)
    seen = []
    space.valid_share(1.0, sample=2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]


def load_text(preset: str) -> str:
    from importlib import resources

    return (resources.files("space") / "presets" / f"{preset}.yaml").read_text()


def test_space_is_a_value_with_a_tree():
    space = load_space("joint")
    assert isinstance(space, SearchSpace) and space.name == "joint"
    assert space.families == ("resnet3d", "mtnet")
    assert set(space.dimensions) == {"family", "resnet3d", "mtnet"}
    assert space.dimensions["resnet3d"]["srtg"]["warmup"].when == "gate = warmup"
    placement_line = 1 + next(i for i, line in enumerate(load_text("joint").splitlines()) if "placement:" in line)
    assert space.dimensions["resnet3d"]["srtg"]["placement"]["simple"].line == placement_line
