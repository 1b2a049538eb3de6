"""convert --max-batch: a dynamic batch dimension through every ONNX stage, parity on batches, the recorded max batch,
the engine's optimisation profile (computed here; no TensorRT builder exists on this project's machines), and
models whose images are not independent in a batch refused by parity."""

import json

import numpy as np
import pytest
from conftest import DEMO_ONNX, DEMO_PTH

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import user_models  # noqa: E402

from lcsnet_seg.tools.convert import EXIT_ERROR, EXIT_OK, EXIT_PARITY, EXIT_USAGE, main  # noqa: E402

FILES = ("demo.onnx", "demo.sim.onnx", "demo.fp16.onnx")


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(scope="module")
def batched(tmp_path_factory):
    """The demo weights converted with --max-batch 4 through export, simplify and fp16 (3 parity images: the
    batch check needs 4 different ones, so 4 are compared)."""
    out = tmp_path_factory.mktemp("batched")
    argv = [DEMO_PTH, "--out-dir", out, "--name", "demo", "--stages", "onnx,simplify,quantize"]
    argv += ["--max-batch", "4", "--parity-images", "3"]
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
        code = main([str(a) for a in argv])
    return code, out, text.getvalue()


def batch_dims(path):
    model = onnx.load(str(path))
    return [
        [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in (model.graph.input[0], model.graph.output[0])
    ]


def test_every_stage_keeps_a_symbolic_batch_and_records_max_batch(batched):
    from lcsnet_seg.backends import read_model_info

    code, out, _ = batched
    assert code == EXIT_OK
    for name in FILES:
        assert batch_dims(out / name) == [["batch", 3, 384, 512], ["batch", 8, 384, 512]], name
        assert read_model_info(out / name).max_batch == 4


def test_each_file_runs_batch_1_and_4_with_the_same_result_per_image(batched):
    from lcsnet_seg.convert.parity import scene_batches
    from lcsnet_seg.model_info import read_onnx_model_info

    _, out, _ = batched
    images = np.concatenate(list(scene_batches(4, 384, 512, read_onnx_model_info(out / "demo.onnx"), 77)))
    for name in FILES:
        session = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        together = session.run(None, {"image": images})[0]
        alone = np.concatenate([session.run(None, {"image": images[i : i + 1]})[0] for i in range(4)])
        assert together.shape == (4, 8, 384, 512)
        assert np.abs(together - alone).max() < 1e-4, name
        assert (together.argmax(1) == alone.argmax(1)).all(), name


def test_parity_lines_name_the_batch(batched):
    _, _, text = batched
    for stage in ("pytorch vs onnx", "pytorch vs simplified onnx", "fp32 vs fp16 onnx"):
        line = next(ln for ln in text.splitlines() if f"{stage}, parity at batch 4:" in ln)
        assert "images 4" in line and "each image as alone" in line and "FAILED" not in line
    assert "batch 1..4" in text  # the export line


@pytest.mark.parametrize(
    "kind, words",
    [
        ("mixing", "at batch 2: an image's labels depend on the other images of its batch"),
        ("baked", "does not run on one image"),  # the reshape fixed the traced batch of 2: batch 1 fails
    ],
)
def test_a_model_whose_images_are_not_independent_fails_parity(tmp_path, capsys, kind, words):
    pth = user_models.save_batch_dependent(tmp_path / f"{kind}.pth", kind)
    out = tmp_path / "o"
    code, text = run(
        [pth, "--out-dir", out, "--stages", "onnx,simplify", "--max-batch", "2", "--parity-images", "2"], capsys
    )
    assert code == EXIT_PARITY
    failed = [line for line in text.splitlines() if "conversion failed" in line]
    assert len(failed) == 1 and words in failed[0] and "--max-batch 1" in failed[0], text
    assert "Traceback" not in text
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []  # nothing that looks like a model


def test_the_mixing_model_passes_one_image_at_a_time(tmp_path, capsys):
    """The same model at --max-batch 1 (the default): its ONNX is right for one image, so it converts."""
    pth = user_models.save_batch_dependent(tmp_path / "mixing.pth", "mixing")
    code, text = run([pth, "--out-dir", tmp_path / "o", "--stages", "onnx", "--parity-images", "2"], capsys)
    assert code == EXIT_OK and "parity at batch" not in text
    assert batch_dims(tmp_path / "o" / "mixing.onnx")[0][0] == 1


def test_dynamic_batch_alone_still_means_a_dynamic_batch(tmp_path, capsys):
    from lcsnet_seg.model_info import read_onnx_model_info
    from lcsnet_seg.tools.convert import DYNAMIC_BATCH_DEFAULT

    pth = user_models.save_checkpoint(tmp_path / "user.pth", 4)
    code, text = run(
        [pth, "--out-dir", tmp_path, "--stages", "onnx", "--dynamic-batch", "--parity-images", "1"], capsys
    )
    assert code == EXIT_OK and f"parity at batch {DYNAMIC_BATCH_DEFAULT}:" in text
    assert batch_dims(tmp_path / "user.onnx")[0][0] == "batch"
    assert read_onnx_model_info(tmp_path / "user.onnx").max_batch == DYNAMIC_BATCH_DEFAULT
    code, text = run([pth, "--out-dir", tmp_path, "--dynamic-batch", "--max-batch", "1"], capsys)
    assert code == EXIT_USAGE and "give one" in text


def test_max_batch_must_be_a_positive_whole_number(tmp_path, capsys):
    for bad in ("0", "two", "2.5"):
        with pytest.raises(SystemExit) as exit_info:
            main([str(DEMO_PTH), "--out-dir", str(tmp_path), "--max-batch", bad])
        assert exit_info.value.code == EXIT_USAGE
    assert "--max-batch" in capsys.readouterr().err


def test_an_onnx_with_a_fixed_batch_cannot_take_batches(tmp_path, capsys):
    """A user's ONNX with batch 1 (the demo's until it was re-exported) is refused --max-batch 4, in one line."""
    fixed = tmp_path / "fixed.onnx"
    model = onnx.load(str(DEMO_ONNX))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(fixed))
    code, text = run([fixed, "--out-dir", tmp_path / "o", "--stages", "simplify", "--max-batch", "4"], capsys)
    assert code == EXIT_ERROR
    assert "fixed.onnx has a fixed batch of 1, so it cannot take batches of 4" in text and "Traceback" not in text


def test_an_onnx_input_given_another_max_batch_records_it(batched, tmp_path, capsys):
    from lcsnet_seg.model_info import read_onnx_model_info

    _, out, _ = batched
    code, text = run(
        [
            out / "demo.sim.onnx",
            "--out-dir",
            tmp_path,
            "--stages",
            "simplify",
            "--max-batch",
            "2",
            "--parity-images",
            "1",
        ],
        capsys,
    )
    assert code == EXIT_OK and "onnx vs simplified onnx, parity at batch 2:" in text
    assert read_onnx_model_info(tmp_path / "demo.sim.onnx").max_batch == 2
    assert read_onnx_model_info(out / "demo.sim.onnx").max_batch == 4  # the input is never modified


def test_the_committed_demo_onnx_takes_batches_of_8():
    from lcsnet_seg.model_info import read_onnx_model_info

    assert batch_dims(DEMO_ONNX) == [["batch", 3, 384, 512], ["batch", 8, 384, 512]]
    assert read_onnx_model_info(DEMO_ONNX).max_batch == 8


def test_model_info_max_batch_round_trip_and_old_metadata():
    from lcsnet_seg.classes import load_class_set
    from lcsnet_seg.errors import ConfigError
    from lcsnet_seg.model_info import ModelInfo

    info = ModelInfo(classes=load_class_set(), max_batch=6)
    assert ModelInfo.from_json(info.to_json()).max_batch == 6
    doc = json.loads(info.to_json())
    del doc["max_batch"]  # metadata written before batches existed
    assert ModelInfo.from_json(json.dumps(doc)).max_batch == 1
    with pytest.raises(ConfigError, match="max batch 0"):
        ModelInfo(classes=load_class_set(), max_batch=0)


# --- the engine's optimisation profile (the pure function build_engine uses; no TensorRT here) ---


def options(**fields):
    from lcsnet_seg.convert.build_engine import EngineOptions

    return EngineOptions(**fields)


def test_profile_covers_batch_1_to_max_batch():
    from lcsnet_seg.convert.build_engine import profile_doc, profile_shapes

    shapes = profile_shapes((-1, 3, 384, 512), options(max_batch=4))
    assert shapes == ((1, 3, 384, 512), (4, 3, 384, 512), (4, 3, 384, 512))
    doc = profile_doc("image", shapes)
    assert doc["min_batch"] == 1 and doc["max_batch"] == 4 and doc["opt"] == [4, 3, 384, 512]


def test_profile_combines_the_batch_with_dynamic_height_and_width():
    from lcsnet_seg.convert.build_engine import profile_shapes
    from lcsnet_seg.errors import ConfigError

    hw = {"min_hw": (256, 320), "opt_hw": (384, 512), "max_hw": (480, 640)}
    assert profile_shapes((-1, 3, -1, -1), options(max_batch=8, **hw)) == (
        (1, 3, 256, 320),
        (8, 3, 384, 512),
        (8, 3, 480, 640),
    )
    assert profile_shapes((1, 3, -1, -1), options(**hw)) == ((1, 3, 256, 320), (1, 3, 384, 512), (1, 3, 480, 640))
    with pytest.raises(ConfigError, match="give --min-shape, --opt-shape and --max-shape"):
        profile_shapes((-1, 3, -1, -1), options(max_batch=2))


def test_profile_of_static_and_fixed_batch_models():
    from lcsnet_seg.convert.build_engine import profile_shapes
    from lcsnet_seg.errors import ConfigError

    assert profile_shapes((1, 3, 384, 512), options()) is None  # static: no profile, as before
    assert profile_shapes((-1, 3, 384, 512), options()) == ((1, 3, 384, 512),) * 3  # --dynamic-batch of old
    with pytest.raises(ConfigError, match="fixed batch of 1 but max batch 4"):
        profile_shapes((1, 3, 384, 512), options(max_batch=4))


def test_the_sidecar_tells_the_runtime_its_batch_range():
    from lcsnet_seg.backends.tensorrt_sidecar import profile_batch_range
    from lcsnet_seg.convert.build_engine import profile_doc, profile_shapes

    doc = {"profile": profile_doc("image", profile_shapes((-1, 3, 384, 512), options(max_batch=4)))}
    assert profile_batch_range(doc) == (1, 4)
    assert profile_batch_range({"profile": None}) == (1, 1)  # a static engine
    older = {"profile": {"input": "image", "min": [1, 3, 256, 320], "opt": [1, 3, 384, 512], "max": [1, 3, 480, 640]}}
    assert profile_batch_range(older) == (1, 1)
