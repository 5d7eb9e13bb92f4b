"""``nas export``: the real command in a subprocess (bad input, a retrained folder, the printed report)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch

from runners.checkpoint import save_checkpoint
from space import build_model
from space.catalog import CATALOG
from tests.nas.cli_helpers import assert_one_line_error, run_nas

SMALL = ["--shape", "4x32x32", "--num-classes", "5"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["r3d-18", "--format", "tflite"], "--format 'tflite' is not allowed"),
        (["r3d-18", "--format", "onnx", "--shape", "4x32"], "shape '4x32' is not allowed"),
        (["r3d-81", "--format", "onnx"], "unknown architecture 'r3d-81'"),
        (["r3d-18", "--format", "onnx", "--num-classes", "0"], "--num-classes 0"),
    ],
)
@pytest.mark.slow
def test_bad_input_is_one_line_and_writes_nothing(args, needle, tmp_path):
    result = run_nas("export", *args, "--out", str(tmp_path / "out"))
    assert_one_line_error(result, needle)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_folder_that_is_not_a_retraining_run_is_refused(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "spec.yaml").write_text(CATALOG["r3d-18"].to_yaml())
    assert_one_line_error(run_nas("export", str(tmp_path / "half"), "--format", "onnx", "--out", str(tmp_path / "o")),
                          "not a finished retraining folder")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_non_empty_out_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    assert_one_line_error(run_nas("export", "r3d-18", "--format", "onnx", "--out", str(tmp_path / "out")), "not empty")


def fake_retrain_folder(folder, spec, width_mult=0.25, classes=3):
    """What ``nas retrain`` leaves behind (spec.yaml + model.pt), with weights unlike a fresh build's."""
    torch.manual_seed(123)
    model = build_model(spec, num_classes=classes, width_mult=width_mult)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    folder.mkdir()
    (folder / "spec.yaml").write_text(spec.to_yaml())
    save_checkpoint(folder / "model.pt", {"model": model.state_dict(), "num_classes": classes,
                                          "width_mult": width_mult, "spec": spec.to_dict(), "epochs": 2})
    return model.eval()


@pytest.mark.slow
def test_a_retrained_folder_exports_its_own_weights(tmp_path):
    trained = fake_retrain_folder(tmp_path / "retrain", CATALOG["srtg-r3d-18-final"])
    result = run_nas("export", str(tmp_path / "retrain"), "--format", "torchscript", "--shape", "4x32x32",
                     "--out", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    loaded = torch.jit.load(report["path"])
    clips = torch.randn(3, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(clips), trained(clips), atol=1e-6)  # the folder's weights, 3 classes
    record = json.loads((tmp_path / "out" / "export.json").read_text())
    assert record["source"]["weights"] == "trained"


@pytest.mark.slow
def test_onnx_export_reports_size_opset_and_input_shape(tmp_path):
    result = run_nas("export", "r3d-18", "--format", "onnx", *SMALL, "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    path = tmp_path / "out" / "model.onnx"
    size_mib = f"{path.stat().st_size / 2**20:.1f} MiB"
    assert f"wrote {path} ({size_mib}, opset 20)" in result.stdout
    assert "input: N x 3 x 4 x 32 x 32 float32" in result.stdout
    assert "checked at batch 1, 3: max |exported - eager|" in result.stdout
    assert "exporting to onnx ..." in result.stderr  # progress lines on stderr when piped
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"clip": np.zeros((6, 3, 4, 32, 32), np.float32)})[0]
    assert logits.shape == (6, 5)


@pytest.mark.slow
def test_a_full_disk_writes_no_partial_model_and_keeps_the_earlier_export(tmp_path):
    """docs/export.md: a failed export writes nothing. A real small tmpfs (tests/space/tmpfs.py) has room for one
    ~2 MB model: the second export fails as one line, leaves no model.onnx, and the first is byte-identical."""
    from tests.space.tmpfs import listing, tmpfs

    fake_retrain_folder(tmp_path / "retrain", CATALOG["r3d-18"], width_mult=0.125)
    with tmpfs(tmp_path / "disk", "3m") as disk:
        first = run_nas("export", str(tmp_path / "retrain"), "--format", "torchscript", "--shape", "4x32x32",
                        "--out", str(disk / "first"))
        assert first.returncode == 0, first.stderr
        earlier = listing(disk)
        result = run_nas("export", str(tmp_path / "retrain"), "--format", "onnx", "--shape", "4x32x32",
                         "--out", str(disk / "second"))
        assert result.returncode == 2, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
        assert errors == [f"error: {disk / 'second' / 'model.onnx'}: No space left on device"], result.stderr
        assert "Traceback" not in result.stderr
        assert listing(disk) == earlier  # no second/, no model.onnx, no hidden sibling
