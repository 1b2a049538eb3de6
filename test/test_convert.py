"""The convert command on the CPU: .pth -> ONNX -> simplified ONNX, parity, metadata, refusals."""

import sys
import textwrap

import numpy as np
import pytest
from conftest import DEMO_PTH

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from lcsnet_seg.tools.convert import EXIT_ERROR, EXIT_NO_TENSORRT, EXIT_OK, EXIT_PARITY, main  # noqa: E402


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    out = tmp_path_factory.mktemp("chain")
    code = main(
        [str(DEMO_PTH), "--out-dir", str(out), "--name", "demo", "--parity-images", "3", "--model-version", "t-1"]
    )
    return code, out


def test_full_chain_without_tensorrt(chain):
    if not _no_tensorrt():
        pytest.skip("TensorRT is installed: the engine stage runs (test_tensorrt_static covers that build)")
    code, out = chain
    assert (out / "demo.onnx").is_file() and (out / "demo.sim.onnx").is_file()
    assert (out / "demo.fp16.onnx").is_file()  # the default precision, the engine's source
    assert not (out / "demo.engine").exists() and not list(out.glob("*.partial"))
    # every other stage done: the default chain builds an engine only where TensorRT is, so this is success
    assert code == EXIT_OK


def _no_tensorrt():
    try:
        import tensorrt  # noqa: F401

        return False
    except ImportError:
        return True


def test_simplified_graph_is_not_larger_and_agrees(chain):
    import onnxruntime as ort

    _, out = chain
    raw, sim = onnx.load(str(out / "demo.onnx")), onnx.load(str(out / "demo.sim.onnx"))
    assert len(sim.graph.node) <= len(raw.graph.node)
    x = np.random.default_rng(0).normal(size=(1, 3, 384, 512)).astype(np.float32)
    a = ort.InferenceSession(str(out / "demo.onnx"), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    b = ort.InferenceSession(str(out / "demo.sim.onnx"), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    assert np.abs(a - b).max() < 1e-4


def test_metadata_round_trip(chain):
    from lcsnet_seg.classes import load_class_set
    from lcsnet_seg.model_info import read_onnx_model_info

    _, out = chain
    for name in ("demo.onnx", "demo.sim.onnx"):
        info = read_onnx_model_info(out / name)
        assert info.classes == load_class_set()
        assert info.model_version == "t-1" and info.model_name == "demo"
        assert info.input_size == (384, 512)


def test_parity_lines_are_printed(tmp_path, capsys):
    code, text = run([DEMO_PTH, "--out-dir", tmp_path, "--stages", "onnx", "--parity-images", "2"], capsys)
    assert code == EXIT_OK
    assert "pytorch vs onnx" in text and "argmax agreement 100.0000 %" in text


def test_dynamic_shape_export_runs_at_two_sizes(tmp_path, capsys):
    import onnxruntime as ort

    code, text = run(
        [DEMO_PTH, "--out-dir", tmp_path, "--stages", "onnx,simplify", "--dynamic-hw", "--parity-images", "1"], capsys
    )
    assert code == EXIT_OK
    for stage in ("pytorch vs onnx", "pytorch vs simplified onnx"):  # parity checked at two sizes
        assert f"{stage} at 384x512" in text and f"{stage} at 288x384" in text
    session = ort.InferenceSession(str(tmp_path / "lcsnet_demo.sim.onnx"), providers=["CPUExecutionProvider"])
    for h, w in ((256, 320), (480, 640)):
        assert session.run(None, {"image": np.zeros((1, 3, h, w), np.float32)})[0].shape == (1, 8, h, w)


def test_pickle_payload_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": Payload()}, evil)
    code, text = run([evil, "--out-dir", tmp_path / "o"], capsys)
    assert code == EXIT_ERROR
    assert "refused" in text and str(evil) in text
    assert not marker.exists()


def test_other_architecture_reports_mismatched_keys(tmp_path, capsys):
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 1))
    path = tmp_path / "other.pth"
    torch.save(other.state_dict(), path)
    code, text = run([path, "--out-dir", tmp_path / "o"], capsys)
    assert code == EXIT_ERROR
    assert "does not fit architecture 'lcsnet'" in text
    assert "unexpected keys: 0.bias, 0.weight" in text and "missing keys:" in text
    assert "Traceback" not in text


def test_wrong_class_count_reports_shape_mismatch(tmp_path, capsys):
    state = torch.load(DEMO_PTH, weights_only=True)["state_dict"]
    path = tmp_path / "demo.pth"
    torch.save(state, path)
    code, text = run(
        [path, "--out-dir", tmp_path / "o", "--num-classes", "5", "--classes", _classes(tmp_path, 5)], capsys
    )
    assert code == EXIT_ERROR and "classifier.weight (8, 64, 1, 1) vs (5, 64, 1, 1)" in text


def _classes(tmp_path, n):
    path = tmp_path / f"classes{n}.yaml"
    path.write_text("classes:\n" + "".join(f" - {{id: {i}, name: c{i}, color: [{i}, 0, 0]}}\n" for i in range(n)))
    return path


def test_user_factory_and_parity_failure_exit_code(tmp_path, capsys, monkeypatch):
    """A model whose exported graph differs from eager (random noise dominates) fails parity with exit 3."""
    module = tmp_path / "noisy_arch.py"
    module.write_text(
        textwrap.dedent("""
        import torch
        class Noisy(torch.nn.Module):
            def __init__(self, num_classes):
                super().__init__()
                self.head = torch.nn.Conv2d(3, num_classes, 1)
            def forward(self, x):
                y = self.head(x)
                return y + 100 * torch.rand_like(y)
        def build(num_classes):
            return Noisy(num_classes)
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("noisy_arch", None)
    import importlib

    arch = importlib.import_module("noisy_arch")
    path = tmp_path / "noisy.pth"
    torch.save(arch.build(8).state_dict(), path)
    (tmp_path / "o").mkdir()
    for older in ("noisy.onnx", "noisy.sim.onnx"):  # from an earlier run that passed: must not survive this one
        (tmp_path / "o" / older).write_bytes(b"older")
    code, text = run([path, "--out-dir", tmp_path / "o", "--arch", "noisy_arch:build", "--parity-images", "2"], capsys)
    assert code == EXIT_PARITY
    assert "BELOW 99.90 %" in text and "conversion failed" in text
    # nothing that looks like a model is left behind: no noisy.onnx, no partial file, no later stage
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == []


def test_min_agreement_is_a_percentage(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(DEMO_PTH), "--out-dir", str(tmp_path), "--min-agreement", "0.999"])
    assert exit_info.value.code == 2
    assert "0.999 is not a percentage in (1, 100]; did you mean 99.9?" in capsys.readouterr().err


def test_onnx_input_runs_single_stages(chain, tmp_path, capsys):
    _, out = chain
    code, text = run([out / "demo.onnx", "--out-dir", tmp_path, "--stages", "simplify", "--parity-images", "1"], capsys)
    assert code == EXIT_OK and (tmp_path / "demo.sim.onnx").is_file()
    assert "onnx vs simplified onnx" in text
    code, text = run(
        [out / "demo.sim.onnx", "--out-dir", tmp_path, "--stages", "engine", "--parity-images", "0"], capsys
    )
    if _no_tensorrt():
        assert code == EXIT_NO_TENSORRT
        assert "TensorRT not found: engine not built; the ONNX model runs with backend onnxruntime" in text


def test_onnx_input_keeps_the_onnx_beside_it(chain, tmp_path, capsys):
    import shutil

    _, out = chain
    for name in ("demo.onnx", "demo.sim.onnx"):
        shutil.copy(out / name, tmp_path / name)
    code, _ = run(
        [
            tmp_path / "demo.sim.onnx",
            "--out-dir",
            tmp_path,
            "--stages",
            "onnx,simplify,quantize",
            "--parity-images",
            "1",
        ],
        capsys,
    )
    assert code == EXIT_OK
    assert {p.name for p in tmp_path.iterdir()} == {"demo.onnx", "demo.sim.onnx", "demo.fp16.onnx"}


def test_bad_arguments(tmp_path, capsys):
    code, text = run([DEMO_PTH, "--out-dir", tmp_path, "--stages", "onnx,bake"], capsys)
    assert code == 2 and "choose from onnx,simplify,quantize,engine" in text
    code, text = run([tmp_path / "missing.pth", "--out-dir", tmp_path], capsys)
    assert code == EXIT_ERROR and "not found" in text
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    code, text = run([junk, "--out-dir", tmp_path], capsys)
    assert code == EXIT_ERROR and "not a readable PyTorch checkpoint" in text


def test_color_order_option_and_its_former_spelling():
    from lcsnet_seg.tools.convert import parser

    assert parser().parse_args(["m.pth", "--out-dir", "out"]).color_order is None  # the checkpoint's, else rgb
    assert parser().parse_args(["m.pth", "--out-dir", "out", "--color-order", "bgr"]).color_order == "bgr"
    assert (
        parser().parse_args(["m.pth", "--out-dir", "out", "--colour-order", "bgr"]).color_order == "bgr"
    )  # the old spelling


def test_compile_stage_needs_lcsnet_weights_and_a_gpu(tmp_path, capsys):
    """--stages compile prepares torch_cuda's compiled model; where no GPU is, it says so (exit 4)."""
    from lcsnet_seg.model import DEMO_ONNX

    assert main([str(DEMO_ONNX), "--out-dir", str(tmp_path), "--stages", "compile"]) == 2
    assert "--stages compile prepares LCSNet weights (.pth)" in capsys.readouterr().err
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the compile stage itself is tested in test_torch_compile.py")
    code = main([str(DEMO_PTH), "--out-dir", str(tmp_path), "--stages", "compile"])
    assert code == EXIT_NO_TENSORRT
    assert "needs PyTorch with CUDA and a GPU" in capsys.readouterr().err
    assert not list(tmp_path.rglob("lcsnet_compile.json"))
