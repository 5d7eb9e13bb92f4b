"""ResNet3D family: every valid combination builds and trains; depth 18 matches torchvision."""

import itertools

import pytest
import torch

from space import ResNet3DSpec, SpecError, SRTGSpec, build_model
from space.spec import SIMPLE_BLOCK_PLACEMENTS, SRTG_PLACEMENTS


def _valid_combinations():
    for conv, depth in itertools.product(("r3d", "r2plus1d"), (18, 34, 50, 101, 152)):
        placements = SIMPLE_BLOCK_PLACEMENTS if depth in (18, 34) else SRTG_PLACEMENTS
        for placement in placements:
            for recurrent in ("lstm", "gru") if placement != "none" else ("lstm",):
                yield conv, depth, placement, recurrent


VALID = list(_valid_combinations())


@pytest.mark.parametrize("conv, depth, placement, recurrent", VALID, ids=["-".join(map(str, c)) for c in VALID])
@pytest.mark.slow
def test_every_valid_combination_trains(conv, depth, placement, recurrent):
    torch.manual_seed(0)
    expansion = 4 if depth in (18, 34) else 1  # expansion 4 is covered by the catalog tests below
    spec = ResNet3DSpec(
        conv=conv,
        depth=depth,
        bottleneck_expansion=expansion,
        srtg=SRTGSpec(placement=placement, recurrent=recurrent, gate="inactive"),
    )
    model = build_model(spec, num_classes=5, width_mult=0.25)
    out = model(torch.randn(2, 3, 16, 32, 32))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.square().sum().backward()
    rnn_grads = [p.grad for n, p in model.named_parameters() if ".rnn." in n]
    if placement == "none":
        assert rnn_grads == []
        return
    assert rnn_grads, "an SRTG model must carry RNN weights"
    for grad in rnn_grads:
        assert grad is not None and torch.isfinite(grad).all()
    assert all(g.abs().sum() > 0 for g in rnn_grads)


@pytest.mark.parametrize("depth", [50, 101])
def test_expansion_four_bottlenecks_build(depth):
    spec = ResNet3DSpec(depth=depth, bottleneck_expansion=4, srtg=SRTGSpec(placement="end", gate="inactive"))
    with torch.device("meta"):
        model = build_model(spec, num_classes=400)
    assert model.fc.in_features == 2048
    assert model.layer4[0].srtg.rnn.input_size == 2048  # "end" sees the expanded channels


def test_srtg_is_sized_for_the_channels_it_sees():
    spec = ResNet3DSpec(depth=34, srtg=SRTGSpec(placement="start"))
    with torch.device("meta"):
        model = build_model(spec, num_classes=10)
    assert model.layer2[0].srtg.rnn.input_size == 64  # transition block: the input still has 64 channels
    assert model.layer2[1].srtg.rnn.input_size == 128
    assert model.layer2[1].srtg.rnn.num_layers == 2 and model.layer2[1].srtg.rnn.hidden_size == 128


def test_stages_choose_where_srtg_sits():
    spec = ResNet3DSpec(depth=18, srtg=SRTGSpec(placement="final", stages=(2, 4)))
    model = build_model(spec, num_classes=10, width_mult=0.25)
    carriers = sorted({n.split(".")[0] for n, m in model.named_modules() if n.endswith("srtg") and m is not None})
    assert carriers == ["layer2", "layer4"]


def test_reduction_shrinks_the_rnn_and_adds_a_linear_map():
    spec = ResNet3DSpec(depth=18, srtg=SRTGSpec(placement="mid", reduction=4, gate="inactive"))
    model = build_model(spec, num_classes=10)
    block = model.layer3[0].srtg
    assert block.rnn.hidden_size == 64 and block.expand.out_features == 256
    out = block(torch.randn(1, 256, 4, 3, 3))
    assert out.shape == (1, 256, 4, 3, 3)


def test_reduction_not_dividing_c_is_a_spec_error():
    spec = ResNet3DSpec(depth=18, srtg=SRTGSpec(placement="mid", reduction=16))
    with pytest.raises(SpecError, match=r"srtg.reduction=16 does not divide C=8 .*allowed"):
        build_model(spec, num_classes=10, width_mult=0.125)


def test_bad_width_and_classes_are_spec_errors():
    with pytest.raises(SpecError, match="width_mult"):
        build_model(ResNet3DSpec(), num_classes=10, width_mult=0)
    with pytest.raises(SpecError, match="num_classes"):
        build_model(ResNet3DSpec(), num_classes=0)


# --- torchvision compatibility ------------------------------------------------------------
# Expectations written from torchvision's models/video/resnet.py (VideoResNet, BasicBlock, BasicStem,
# R2Plus1dStem, Conv3DSimple, Conv2Plus1D) and its published parameter counts; torchvision itself does
# not install beside the CPU torch here.

TORCHVISION_PARAMS = {"r3d": 33_371_472, "r2plus1d": 31_505_325}


def _bn(prefix, c):
    return [(f"{prefix}.weight", (c,)), (f"{prefix}.bias", (c,)), (f"{prefix}.running_mean", (c,)),
            (f"{prefix}.running_var", (c,)), (f"{prefix}.num_batches_tracked", ())]


def _torchvision_state_dict_layout(conv):
    keys = []
    if conv == "r3d":
        keys += [("stem.0.weight", (64, 3, 3, 7, 7))] + _bn("stem.1", 64)
    else:
        keys += [("stem.0.weight", (45, 3, 1, 7, 7))] + _bn("stem.1", 45)
        keys += [("stem.3.weight", (64, 45, 3, 1, 1))] + _bn("stem.4", 64)
    inplanes = 64
    for layer, planes in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"layer{layer}.{block}"
            mid = (inplanes * planes * 27) // (inplanes * 9 + 3 * planes)
            for conv_index, cin in ((1, inplanes), (2, planes)):
                q = f"{p}.conv{conv_index}"
                if conv == "r3d":
                    keys += [(f"{q}.0.weight", (planes, cin, 3, 3, 3))]
                else:
                    keys += [(f"{q}.0.0.weight", (mid, cin, 1, 3, 3))] + _bn(f"{q}.0.1", mid)
                    keys += [(f"{q}.0.3.weight", (planes, mid, 3, 1, 1))]
                keys += _bn(f"{q}.1", planes)
            if block == 0 and layer > 1:
                keys += [(f"{p}.downsample.0.weight", (planes, inplanes, 1, 1, 1))] + _bn(f"{p}.downsample.1", planes)
            inplanes = planes
    keys += [("fc.weight", (400, 512)), ("fc.bias", (400,))]
    return keys


@pytest.mark.parametrize("conv", ["r3d", "r2plus1d"])
def test_depth_18_matches_torchvision_state_dict(conv):
    model = build_model(ResNet3DSpec(conv=conv, depth=18), num_classes=400)
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == _torchvision_state_dict_layout(conv)
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[conv]


def test_depth_18_loads_a_torchvision_layout_state_dict():
    donor = build_model(ResNet3DSpec(conv="r2plus1d", depth=18), num_classes=400).state_dict()
    receiver = build_model(ResNet3DSpec(conv="r2plus1d", depth=18), num_classes=400)
    receiver.load_state_dict(donor, strict=True)
