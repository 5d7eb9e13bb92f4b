"""ArchSpec: validation, serialisation and the stable key."""

import json

import pytest
import yaml

from space import CATALOG, MTNetSpec, ResNet3DSpec, SpecError, SRTGSpec, catalog_spec, load_spec_file, spec_from_dict

# Pinned: a change here changes every cache, run name and de-duplication decision. Change on purpose only.
GOLDEN_KEYS = {
    "r3d-18": "7f33c94176b005bf",
    "r2plus1d-50": "51ef9804ee65e469",
    "srtg-r3d-34-final": "1875378efa1fb7e9",
    "srtg-r2plus1d-101-final": "ab93ac2c48ea1684",
    "mtnet-64-g8": "af155ff754cd0f3d",
}


@pytest.mark.parametrize("name", sorted(GOLDEN_KEYS))
def test_golden_keys(name):
    assert catalog_spec(name).key() == GOLDEN_KEYS[name]


def test_key_is_at_least_64_bits_of_hex():
    assert len(catalog_spec("r3d-18").key()) >= 16
    int(catalog_spec("r3d-18").key(), 16)


def test_no_two_catalog_entries_share_a_key():
    keys = [spec.key() for spec in CATALOG.values()]
    assert len(set(keys)) == len(keys)


def test_explicit_default_and_implicit_give_the_same_key():
    implicit = spec_from_dict({"family": "resnet3d", "depth": 34, "srtg": {"placement": "final"}})
    explicit = spec_from_dict(
        {
            "family": "resnet3d",
            "conv": "r3d",
            "depth": 34,
            "bottleneck_expansion": 4,
            "srtg": {
                "placement": "final",
                "recurrent": "lstm",
                "reduction": 1,
                "fusion": "mul",
                "gate": "cyclic",
                "gate_norm": "std",
                "tau": 0.05,
                "tolerance": 0,
                "quorum": 0.5,
                "warmup": None,
                "align_loss": 1.0,
                "stages": [4, 3, 2, 1],
            },
        }
    )
    assert implicit == explicit
    assert implicit.key() == explicit.key()


def test_floats_are_canonicalised():
    a = MTNetSpec(depth=64, ratio=0.875)
    b = MTNetSpec(depth=64, ratio=0.8750000000001)
    assert a.key() == b.key()
    assert MTNetSpec(depth=64, ratio=1).key() == MTNetSpec(depth=64, ratio=1.0).key()


def test_fields_that_cannot_change_the_model_do_not_change_the_key():
    plain = ResNet3DSpec(depth=34)
    assert ResNet3DSpec(depth=34, srtg=SRTGSpec(recurrent="gru")).key() == plain.key()
    assert ResNet3DSpec(depth=34, bottleneck_expansion=1).key() == plain.key()
    assert ResNet3DSpec(depth=50, bottleneck_expansion=1).key() != ResNet3DSpec(depth=50).key()


def test_different_specs_have_different_keys():
    a = ResNet3DSpec(depth=34, srtg=SRTGSpec(placement="final"))
    b = ResNet3DSpec(depth=34, srtg=SRTGSpec(placement="final", tau=0.1))
    assert a.key() != b.key()


@pytest.mark.parametrize("name", ["srtg-r3d-34-final", "mtnet-64-g8", "srtg-r2plus1d-50-top"])
def test_json_and_yaml_round_trip(name, tmp_path):
    spec = catalog_spec(name)
    assert spec_from_dict(json.loads(spec.to_json())) == spec
    assert spec_from_dict(yaml.safe_load(spec.to_yaml())) == spec
    path = tmp_path / "spec.yaml"
    path.write_text(spec.to_yaml())
    assert load_spec_file(path) == spec


def test_warmup_as_fraction_and_as_epochs():
    frac = SRTGSpec(placement="final", gate="warmup", warmup=0.4)
    count = SRTGSpec(placement="final", gate="warmup", warmup=3.0)
    assert frac.warmup_epochs(10) == 4 and frac.warmup_epochs(100) == 40
    assert count.warmup == 3 and isinstance(count.warmup, int) and count.warmup_epochs(100) == 3


@pytest.mark.parametrize(
    "data, field, allowed",
    [
        ({"family": "resnet3d", "depth": 34, "srtg": {"placement": "top"}}, "srtg.placement", "'mid'"),
        ({"family": "resnet3d", "depth": 18, "srtg": {"placement": "end"}}, "srtg.placement", "'final'"),
        ({"family": "resnet3d", "depth": 42}, "depth", "18, 34, 50, 101, 152"),
        ({"family": "resnet3d", "conv": "c3d"}, "conv", "'r2plus1d'"),
        ({"family": "resnet3d", "srtg": {"placement": "mid", "fusion": "add"}}, "srtg.fusion", "'residual'"),
        ({"family": "resnet3d", "srtg": {"placement": "mid", "reduction": 3}}, "srtg.reduction", "16"),
        ({"family": "resnet3d", "srtg": {"placement": "mid", "gate": "open"}}, "srtg.gate", "'warmup'"),
        ({"family": "resnet3d", "srtg": {"placement": "mid", "gate_norm": "z"}}, "srtg.gate_norm", "'l2'"),
        ({"family": "resnet3d", "srtg": {"placement": "mid", "tau": 0}}, "srtg.tau", "> 0"),
        ({"family": "resnet3d", "srtg": {"placement": "mid", "gate": "warmup", "warmup": 1.5}}, "srtg.warmup", "0 < w < 1"),
        ({"family": "resnet3d", "srtg": {"placement": "mid", "stages": [5]}}, "srtg.stages", "[1, 2, 3, 4]"),
        ({"family": "resnet3d", "bottleneck_expansion": 2}, "bottleneck_expansion", "1, 4"),
        ({"family": "resnet3d", "widht": 2}, "widht", "depth"),
        ({"family": "mtnet", "ratio": 0.3}, "ratio", "[0.5, 1.0]"),
        ({"family": "mtnet", "substreams": 3}, "substreams", "16"),
        ({"family": "mtnet", "recurrent": "rnn"}, "recurrent", "'gru'"),
        ({"family": "vit"}, "family", "'mtnet'"),
    ],
)
def test_invalid_specs_name_field_and_allowed_values(data, field, allowed):
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    message = str(info.value)
    assert field in message and allowed in message


def test_bad_spec_file_is_a_spec_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("family: resnet3d\ndepth: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec_file(bad)
    with pytest.raises(SpecError, match="does not exist|cannot read"):
        load_spec_file(tmp_path / "missing.yaml")


def test_unknown_catalog_name_suggests_close_ones():
    with pytest.raises(SpecError, match="r3d-34"):
        catalog_spec("r3d-35")
