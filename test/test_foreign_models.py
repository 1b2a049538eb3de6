"""Models from elsewhere, as a new user brings them: a SegFormer from transformers, a torchvision-style dict model,
an ONNX exported by someone else, and factories that go wrong. Random weights; nothing is downloaded."""

import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from lcsnet_seg.tools.convert import EXIT_ERROR, EXIT_OK, main  # noqa: E402

MODELS_PY = textwrap.dedent("""
    import torch


    def segformer(num_classes):
        from transformers import SegformerConfig, SegformerForSemanticSegmentation

        torch.manual_seed(0)
        config = SegformerConfig(num_labels=num_classes, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
                                 hidden_sizes=[16, 32], num_attention_heads=[1, 2], patch_sizes=[7, 3],
                                 strides=[4, 2], mlp_ratios=[2, 2], decoder_hidden_size=32)
        return SegformerForSemanticSegmentation(config)


    class TorchvisionStyle(torch.nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU())
            self.classifier = torch.nn.Conv2d(16, num_classes, 1)
            self.aux_classifier = torch.nn.Conv2d(16, num_classes, 1)

        def forward(self, x):
            f = self.backbone(x)
            return {"aux": self.aux_classifier(f), "out": self.classifier(f)}


    def dict_model(num_classes):
        torch.manual_seed(0)
        return TorchvisionStyle(num_classes)


    def tuple_model(num_classes):
        class Two(TorchvisionStyle):
            def forward(self, x):
                out = super().forward(x)
                return out["out"], out["aux"]
        torch.manual_seed(0)
        return Two(num_classes)


    def no_classes():
        return TorchvisionStyle(8)


    def not_a_module(num_classes):
        return {"num_classes": num_classes}
""")


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A user's folder holding models.py, as the current directory (not on sys.path)."""
    (tmp_path / "models.py").write_text(MODELS_PY)
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("models", None)
    yield tmp_path
    sys.modules.pop("models", None)


def save_weights(user_dir, factory, name):
    sys.path.insert(0, str(user_dir))
    try:
        import models

        path = user_dir / f"{name}.pth"
        torch.save(getattr(models, factory)(8).state_dict(), path)
    finally:
        sys.path.remove(str(user_dir))
        sys.modules.pop("models", None)
    return path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def segment(path, image_hw=(120, 200)):
    from lcsnet_seg.backends import create_backend
    from lcsnet_seg.model.scene import generate_scene
    from lcsnet_seg.segmenter.cpu import Segmenter

    backend, _ = create_backend("auto", path)
    labels = Segmenter(backend)(generate_scene(3, *image_hw)[0], "rgb8").labels
    backend.close()
    return labels


def test_segformer_through_every_cpu_stage_and_the_segmenter(user_dir, capsys):
    pytest.importorskip("transformers")
    weights = save_weights(user_dir, "segformer", "segformer")
    code, text = run(
        [weights, "--arch", "models:segformer", "--out-dir", "out", "--input-size", "64x96", "--parity-images", "2"],
        capsys,
    )
    assert code == EXIT_OK, text  # every CPU stage done; the default chain skips the engine where TensorRT is not
    assert "engine stage skipped" in text
    assert "pytorch vs onnx" in text and "fp32 vs fp16 onnx" in text and "Traceback" not in text
    out = user_dir / "out"
    logits_shape = [
        d.dim_value for d in onnx.load(str(out / "segformer.sim.onnx")).graph.output[0].type.tensor_type.shape.dim
    ]
    assert logits_shape == [1, 8, 16, 24]  # SegFormer's logits are at 1/4 of the input
    for name in ("segformer.onnx", "segformer.sim.onnx", "segformer.fp16.onnx"):
        labels = segment(out / name)
        assert labels.shape == (120, 200) and labels.max() < 8  # labels come back at the image's size


def test_dict_model_through_every_cpu_stage_including_int8(user_dir, capsys):
    import cv2

    from lcsnet_seg.model.scene import generate_scene

    weights = save_weights(user_dir, "dict_model", "tv")
    calib = user_dir / "calib"
    calib.mkdir()
    for i in range(2):
        cv2.imwrite(str(calib / f"{i}.png"), generate_scene(1_900_000_100 + i, 64, 64)[0])
    code, text = run(
        [
            weights,
            "--arch",
            "models:dict_model",
            "--out-dir",
            "out",
            "--input-size",
            "64x64",
            "--parity-images",
            "2",
            "--precision",
            "int8",
            "--calib-folder",
            calib,
            "--stages",
            "onnx,simplify,quantize",
        ],
        capsys,
    )
    assert code == EXIT_OK, text
    assert "fp32 vs int8 onnx" in text
    for name in ("tv.onnx", "tv.sim.onnx", "tv.int8.onnx"):
        assert segment(user_dir / "out" / name).shape == (120, 200)
    # 'out' was taken, not 'aux': the exported logits are those of the classifier
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    sys.path.insert(0, str(user_dir))
    try:
        import models

        model = models.dict_model(8)
        model.load_state_dict(torch.load(weights, weights_only=True))
        expected = model(torch.from_numpy(x))["out"].detach().numpy()
    finally:
        sys.path.remove(str(user_dir))
    import onnxruntime as ort

    got = ort.InferenceSession(str(user_dir / "out" / "tv.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"image": x}
    )[0]
    assert np.abs(got - expected).max() < 1e-4


def test_tuple_output_needs_a_choice_then_takes_it(user_dir, capsys):
    weights = save_weights(user_dir, "tuple_model", "pair")
    argv = [
        weights,
        "--arch",
        "models:tuple_model",
        "--out-dir",
        "out",
        "--input-size",
        "32x32",
        "--stages",
        "onnx",
        "--parity-images",
        "1",
    ]
    code, text = run(argv, capsys)
    assert code == EXIT_ERROR
    assert "the model returns a tuple of 2 items; choose the logits with --output-key INDEX" in text
    code, text = run(argv + ["--output-key", "0"], capsys)
    assert code == EXIT_OK and "argmax agreement 100.0000 %" in text


@pytest.mark.parametrize(
    "arch, message",
    [
        ("models:no_classes", "architecture factory 'models:no_classes' takes no num_classes argument"),
        ("models:not_a_module", "architecture factory 'models:not_a_module' returned a dict, not a torch.nn.Module"),
        ("models:missing", "architecture factory 'models:missing': module 'models' has no function 'missing'"),
        ("nomodule:build", "module 'nomodule' not found in the current directory"),
        ("broken:build", "architecture factory 'broken:build': importing 'broken' failed (ZeroDivisionError:"),
    ],
)
def test_factory_problems_are_one_line(user_dir, capsys, arch, message):
    (user_dir / "broken.py").write_text("x = 1 / 0\n")
    sys.modules.pop("broken", None)
    weights = save_weights(user_dir, "dict_model", "tv")
    code, text = run([weights, "--arch", arch, "--out-dir", "out", "--input-size", "32x32"], capsys)
    assert code == EXIT_ERROR
    assert message in text and "Traceback" not in text and len(text.strip().splitlines()) == 1, text


def foreign_onnx(path):
    """An ONNX as another tool writes it: other tensor names, no lcsnet_seg metadata."""
    import warnings

    model = torch.nn.Conv2d(3, 8, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as convert uses it
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 32, 48),),
            str(path),
            input_names=["pixel_values"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
        )
    return path


def test_foreign_onnx_needs_a_description_then_gets_metadata(tmp_path, capsys):
    from lcsnet_seg.model_info import read_onnx_model_info

    src = foreign_onnx(tmp_path / "theirs.onnx")
    code, text = run([src, "--out-dir", tmp_path / "out", "--stages", "simplify"], capsys)
    assert code == EXIT_ERROR
    assert (
        "has no 'lcsnet_seg' metadata; to convert an ONNX exported elsewhere describe it with --classes, "
        "--input-size, --mean and --std (missing: --classes, --input-size, --mean, --std)"
    ) in text
    classes = tmp_path / "classes.yaml"
    classes.write_text("classes:\n" + "".join(f" - {{id: {i}, name: c{i}, color: [{i}, 0, 0]}}\n" for i in range(8)))
    code, text = run(
        [
            src,
            "--out-dir",
            tmp_path / "out",
            "--stages",
            "simplify",
            "--classes",
            classes,
            "--input-size",
            "32x48",
            "--mean",
            "0.5",
            "0.5",
            "0.5",
            "--std",
            "0.25",
            "0.25",
            "0.25",
            "--parity-images",
            "1",
        ],
        capsys,
    )
    assert code == EXIT_OK, text
    info = read_onnx_model_info(tmp_path / "out" / "theirs.sim.onnx")
    assert info.input_size == (32, 48) and info.mean == (0.5, 0.5, 0.5) and info.num_classes == 8
    assert not any(p.key == "lcsnet_seg" for p in onnx.load(str(src)).metadata_props)  # the input is untouched
    assert segment(tmp_path / "out" / "theirs.sim.onnx").shape == (120, 200)


def test_foreign_onnx_that_does_not_fit_the_classes_is_refused(tmp_path, capsys):
    src = foreign_onnx(tmp_path / "theirs.onnx")
    classes = tmp_path / "classes.yaml"
    classes.write_text("classes:\n" + "".join(f" - {{id: {i}, name: c{i}, color: [{i}, 0, 0]}}\n" for i in range(5)))
    code, text = run(
        [
            src,
            "--out-dir",
            tmp_path / "out",
            "--stages",
            "simplify",
            "--classes",
            classes,
            "--input-size",
            "32x48",
            "--mean",
            "0.5",
            "0.5",
            "0.5",
            "--std",
            "0.25",
            "0.25",
            "0.25",
        ],
        capsys,
    )
    assert code == EXIT_ERROR
    assert f"model file {src}: output 'logits' has 8 classes but the metadata lists 5" in text
    assert not (tmp_path / "out" / "theirs.onnx").exists()


def test_foreign_onnx_with_two_outputs_keeps_the_chosen_one(tmp_path, capsys):
    import warnings

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head, self.aux = torch.nn.Conv2d(3, 8, 1), torch.nn.Conv2d(3, 8, 1)

        def forward(self, x):
            return self.head(x), self.aux(x)

    src = tmp_path / "two.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            Two(),
            (torch.zeros(1, 3, 32, 48),),
            str(src),
            input_names=["x"],
            output_names=["seg", "aux"],
            opset_version=17,
            dynamo=False,
        )
    argv = [
        src,
        "--out-dir",
        tmp_path / "out",
        "--stages",
        "simplify",
        "--input-size",
        "32x48",
        "--parity-images",
        "1",
        "--mean",
        "0.5",
        "0.5",
        "0.5",
        "--std",
        "0.25",
        "0.25",
        "0.25",
        "--classes",
        tmp_path / "c.yaml",
    ]
    (tmp_path / "c.yaml").write_text(
        "classes:\n" + "".join(f" - {{id: {i}, name: c{i}, color: [{i}, 0, 0]}}\n" for i in range(8))
    )
    code, text = run(argv, capsys)
    assert code == EXIT_ERROR and "has outputs seg, aux; choose the logits with --output-key NAME" in text
    code, text = run(argv + ["--output-key", "seg"], capsys)
    assert code == EXIT_OK, text
    sim = onnx.load(str(tmp_path / "out" / "two.sim.onnx"))
    assert [o.name for o in sim.graph.output] == ["seg"] and len(sim.graph.node) == 1
