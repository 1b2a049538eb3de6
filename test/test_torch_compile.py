"""The compiled-model helpers that need no GPU: batch-norm folding and the cache marker check."""

import json

import numpy as np
import pytest


def test_folding_batch_norms_keeps_the_outputs(demo_torch_model):
    torch = pytest.importorskip("torch")
    from lcsnet_seg.backends.torch_compile import fold_batch_norms

    folded = fold_batch_norms(demo_torch_model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in demo_torch_model.modules())  # the original is untouched
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want, got = demo_torch_model(x).numpy(), folded(x).numpy()
    assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max()


def test_the_marker_must_match_every_fact(tmp_path):
    pytest.importorskip("torch")
    from lcsnet_seg.backends.torch_compile import MARKER, marker_mismatch

    facts = {
        "weights_sha256": "ab",
        "gpu": "NVIDIA H200",
        "torch": "2.11.0",
        "input_shape": [1, 3, 384, 512],
        "dtype": "fp16",
        "channels_last": True,
        "inductor_mode": "default",
    }
    assert MARKER in marker_mismatch(tmp_path, facts)
    (tmp_path / MARKER).write_text("{not json")
    assert "unreadable" in marker_mismatch(tmp_path, facts)
    (tmp_path / MARKER).write_text(json.dumps({**facts, "compile_seconds": 25.0}))
    assert marker_mismatch(tmp_path, facts) is None
    (tmp_path / MARKER).write_text(json.dumps({**facts, "gpu": "NVIDIA H100 80GB HBM3"}))
    assert "gpu ('NVIDIA H100 80GB HBM3')" in marker_mismatch(tmp_path, facts)
