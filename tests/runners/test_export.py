"""Exports for deployment (runners/export.py): ONNX Runtime agrees with eager PyTorch, failures write nothing.

The ONNX exports run the real dynamo exporter and ONNX Runtime on small proxies (width 1/4, 8 x 32 x 32
clips): every catalog family keeps its topology at that width (SRTG gates and recurrent cells, MTNet's
two streams, SoftPool and GRU cells), and the export takes seconds instead of minutes.
"""

from __future__ import annotations

import collections
import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from runners.export import (
    EXPORT_BATCH,
    FORMATS,
    ONNX_OPSET,
    TOLERANCE,
    ExportError,
    OnnxRunner,
    compare_outputs,
    export_model,
    random_clips,
)
from space import build_model
from space.spec import MTNetSpec, ResNet3DSpec, SRTGSpec
from space.errors import UserInputError
from space.srtg import reset_gate_counters, srtg_modules

SHAPE = (8, 32, 32)  # T x H x W: T = 8, 4, 2, 1 over an r3d-18's four stages
CLASSES = 5


def small(spec, seed=0):
    torch.manual_seed(seed)
    return build_model(spec, num_classes=CLASSES, width_mult=0.25).eval()


def onnx_ops(path) -> collections.Counter:
    return collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def assert_ort_matches_eager(model, path, clips):
    runner = OnnxRunner(path)
    with torch.no_grad():
        eager = model(clips).numpy()
    exported = runner(clips)
    assert exported.shape == eager.shape
    assert np.abs(exported - eager).max() <= TOLERANCE.bound(float(np.abs(eager).max()))
    return eager


# --------------------------------------------------------------------------------------------
# SRTG: the cyclic gate decides per sample inside the exported graph
# --------------------------------------------------------------------------------------------


def static_clip(seed=1):
    """Every frame the same image."""
    frame = torch.randn(1, 3, 1, *SHAPE[1:], generator=torch.Generator().manual_seed(seed))
    return frame.expand(1, 3, *SHAPE).contiguous()


def make_time_local(model: nn.Module) -> nn.Module:
    """Zero every conv's off-centre temporal taps: each output frame then sees only its own input frame.

    A static clip then stays exactly static (no border frames from temporal padding) up to every gate, so
    its squeezed sequence has tied frames and the gate stays closed; a moving clip has distinct frames.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv3d) and module.kernel_size[0] == 3:
                module.weight[:, :, 0].zero_()
                module.weight[:, :, 2].zero_()
    return model


def gate_decisions(model, clip) -> dict[str, bool]:
    """Block -> did its gate open for this one clip (eager, read from the gate counters)."""
    reset_gate_counters(model)
    with torch.no_grad():
        model(clip)
    return {name: bool(module.gate_opened.item()) for name, module in srtg_modules(model).items()}


@pytest.mark.slow
@pytest.mark.parametrize("recurrent", ["lstm", "gru"])
def test_srtg_onnx_gate_opens_for_some_samples_and_not_others(recurrent, tmp_path):
    # tolerance = T: a frame may match any frame, so the gate opens unless the clip has tied frames.
    spec = ResNet3DSpec(
        conv="r3d", depth=18, srtg=SRTGSpec(placement="final", recurrent=recurrent, gate="cyclic", tolerance=8, stages=(1, 2))
    )
    model = make_time_local(small(spec))
    report = export_model(model, fmt="onnx", out_dir=tmp_path / "out", shape=SHAPE)
    assert report.opset == ONNX_OPSET and report.check_batches != (EXPORT_BATCH,)
    assert onnx_ops(report.path)[recurrent.upper()] == 2 * len(srtg_modules(model))  # 2 layers per block

    moving, static = random_clips(1, SHAPE, seed=5), static_clip()
    open_moving, open_static = gate_decisions(model, moving), gate_decisions(model, static)
    assert all(open_moving.values()) and not any(open_static.values()), (open_moving, open_static)

    mixed = torch.cat([moving, static, random_clips(1, SHAPE, seed=6)])  # batch 3, exported at batch 2
    eager = assert_ort_matches_eager(model, report.path, mixed)

    # The gate matters: with every gate forced to fuse, the static sample's logits move far beyond the
    # tolerance, so a graph that dropped the gate (or decided once per batch) would fail the check above.
    for module in srtg_modules(model).values():
        module.gate_active = False
    with torch.no_grad():
        always_fused = model(mixed).numpy()
    assert np.abs(always_fused[1] - eager[1]).max() > 100 * TOLERANCE.bound(float(np.abs(eager).max()))


# --------------------------------------------------------------------------------------------
# MTNet and r(2+1)d
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_mtnet_two_streams_softpool_and_gru_cells_export(tmp_path):
    model = small(MTNetSpec(depth=32, ratio=0.75, substreams=1, recurrent="gru"))
    assert model.stem.long_pool is not None  # two streams, the long one SoftPooled
    report = export_model(model, fmt="onnx", out_dir=tmp_path / "out", shape=SHAPE)
    ops = onnx_ops(report.path)
    # the SR cells, and SoftPool's exp-weighted windows (avgpool(e * a) / avgpool(e) on tiled windows), are in the graph
    assert ops["GRU"] > 0 and ops["Exp"] > 0 and ops["AveragePool"] > 0
    for batch in (4, 1):
        assert_ort_matches_eager(model, report.path, random_clips(batch, SHAPE, seed=10 + batch))


@pytest.mark.slow
def test_r2plus1d_exports_with_a_dynamic_batch(tmp_path):
    model = small(ResNet3DSpec(conv="r2plus1d", depth=18))
    report = export_model(model, fmt="onnx", out_dir=tmp_path / "out", shape=SHAPE)
    graph_input = onnx.load(report.path).graph.input[0].type.tensor_type.shape.dim
    assert graph_input[0].dim_param and [d.dim_value for d in graph_input[1:]] == [3, *SHAPE]
    for batch in (5, 1):
        assert_ort_matches_eager(model, report.path, random_clips(batch, SHAPE, seed=batch))
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["export.json", "model.onnx"]
    record = json.loads((tmp_path / "out" / "export.json").read_text())
    assert record["export"]["size_bytes"] == (tmp_path / "out" / "model.onnx").stat().st_size


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "exported-program"])
def test_other_formats_load_back_and_match(fmt, tmp_path):
    model = small(ResNet3DSpec(conv="r3d", depth=18, srtg=SRTGSpec(placement="final", recurrent="gru", stages=(1,))))
    report = export_model(model, fmt=fmt, out_dir=tmp_path / "out", shape=SHAPE)
    assert report.path.endswith(FORMATS[fmt]) and report.opset is None
    loaded = torch.jit.load(report.path) if fmt == "torchscript" else torch.export.load(report.path).module()
    clips = random_clips(3, SHAPE, seed=3)
    with torch.no_grad():
        assert torch.allclose(loaded(clips), model(clips), rtol=0, atol=TOLERANCE.bound(1.0))


# --------------------------------------------------------------------------------------------
# Failures: one error naming the op or the difference, nothing written
# --------------------------------------------------------------------------------------------


class Eigen(nn.Module):
    """Uses an operator ONNX has no function for."""

    def forward(self, x):
        return torch.linalg.eigvals(x.mean(dim=(1, 2))[..., :4, :4]).real


class BatchBranch(nn.Module):
    """A Python branch on the batch size: tracing at batch 2 freezes one side of it."""

    def forward(self, x):
        return x.mean(dim=(2, 3, 4)) * (2.0 if x.shape[0] == EXPORT_BATCH else -1.0)


def test_unsupported_op_names_the_op_and_writes_nothing(tmp_path):
    with pytest.raises(ExportError, match=r"onnx export failed at op aten\.linalg_eig"):
        export_model(Eigen(), fmt="onnx", out_dir=tmp_path / "out", shape=(2, 8, 8))
    assert not (tmp_path / "out").exists()


def test_outputs_that_differ_name_the_largest_difference_and_write_nothing(tmp_path):
    with pytest.raises(ExportError, match=r"differs from eager PyTorch: largest difference [0-9.e+-]+ at batch"):
        export_model(BatchBranch(), fmt="torchscript", out_dir=tmp_path / "out", shape=(2, 8, 8))
    assert not (tmp_path / "out").exists()


def test_compare_outputs_reports_the_worst_batch():
    model = BatchBranch()
    result = compare_outputs(model, lambda clips: model(clips).numpy() + clips.shape[0], [random_clips(b, (2, 4, 4), 0) for b in (1, 3)])
    assert result.worst_batch == 3 and result.max_abs_diff == pytest.approx(3.0)
    assert not result.within(TOLERANCE)


def test_a_non_empty_output_folder_is_refused_before_any_work(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match="not empty"):
        export_model(Eigen(), fmt="onnx", out_dir=tmp_path / "out", shape=(2, 8, 8))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
