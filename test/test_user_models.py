"""A user's own model on the CPU path: logits at 1/1, 1/4 and 1/8 of the input, one set of model facts for the
.pth and its ONNX (the checkpoint's own mean/std, input size, classes and palette), the same labels from both
through the Segmenter and through evaluate, and an ONNX from elsewhere without metadata."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import user_models  # noqa: E402

from lcsnet_seg.backends import create_backend, read_model_info  # noqa: E402
from lcsnet_seg.errors import ModelFileError  # noqa: E402
from lcsnet_seg.model.scene import generate_scene  # noqa: E402
from lcsnet_seg.model_info import IMAGENET_MEAN, ModelOverrides  # noqa: E402
from lcsnet_seg.segmenter import SegmenterConfig, build_segmenter  # noqa: E402
from lcsnet_seg.segmenter.cpu import Segmenter  # noqa: E402
from lcsnet_seg.tools import convert, evaluate, make_demo_bag  # noqa: E402

STRIDES = (1, 4, 8)


@pytest.fixture(scope="module", params=STRIDES, ids=[f"logits_1_{s}" for s in STRIDES])
def user_model(request, tmp_path_factory):
    """(stride, .pth with its own facts, the ONNX convert made of it)."""
    out = tmp_path_factory.mktemp(f"user_{request.param}")
    pth = user_models.save_checkpoint(out / "user.pth", request.param)
    code = convert.main([str(pth), "--out-dir", str(out), "--stages", "onnx", "--parity-images", "2"])
    assert code == convert.EXIT_OK
    return request.param, pth, out / "user.onnx"


def test_the_pth_and_its_onnx_have_one_set_of_facts_the_checkpoints(user_model):
    _, pth, onnx_path = user_model
    from_pth, from_onnx = read_model_info(pth), read_model_info(onnx_path)
    assert from_pth == from_onnx  # classes and palette, input size, mean/std, colour order, name
    assert from_pth.mean == tuple(user_models.MEAN) and from_pth.std == tuple(user_models.STD)
    assert from_pth.mean != IMAGENET_MEAN and from_pth.input_size == tuple(user_models.INPUT_SIZE)
    assert [list(c) for c in from_pth.classes.colors] == [r["color"] for r in user_models.CLASS_RECORDS]
    assert from_pth.model_version == "user-1"


@pytest.mark.parametrize("backend_name", ["torch_cpu", "onnxruntime"])
def test_output_spec_is_what_the_backend_returns_at_the_models_logit_size(user_model, backend_name):
    stride, pth, onnx_path = user_model
    backend, _ = create_backend(backend_name, pth if backend_name == "torch_cpu" else onnx_path)
    h, w = backend.info.input_size
    assert backend.output_spec.shape == (1, 8, h // stride, w // stride)
    logits = backend.infer(np.zeros((1, 3, h, w), np.float32))
    assert logits.shape == backend.output_spec.shape and logits.dtype == backend.output_spec.dtype
    backend.close()


def labels_of(model_path, images, backend="auto"):
    segmenter, _ = build_segmenter(model_path, SegmenterConfig(backend=backend))
    try:
        return [np.array(segmenter(image, "rgb8", ("labels",)).labels) for image in images]
    finally:
        segmenter.close()


def test_the_pth_and_its_onnx_give_the_same_labels_at_the_image_size(user_model):
    _, pth, onnx_path = user_model
    images = [generate_scene(40 + k, 240, 320)[0] for k in range(3)]
    from_pth, from_onnx = labels_of(pth, images), labels_of(onnx_path, images)
    for a, b in zip(from_pth, from_onnx):
        assert a.shape == b.shape == (240, 320)
    agreement = np.mean(np.concatenate(from_pth) == np.concatenate(from_onnx))
    print(f"AGREEMENT user model .pth (torch_cpu) vs its ONNX (onnxruntime), logits 1/{user_model[0]}: {agreement:.5f}")
    assert agreement >= 0.995


def test_a_checkpoints_own_mean_and_std_reach_inference(tmp_path):
    """Before, a .pth ran with ImageNet mean/std whatever its checkpoint said: the labels of the same weights then
    differ from those of the facts it carries."""
    with_facts = user_models.save_checkpoint(tmp_path / "with.pth", 4)
    without = user_models.save_checkpoint(tmp_path / "without.pth", 4, with_facts=False)
    images = [generate_scene(7, 96, 128)[0]]
    overrides = ModelOverrides(
        input_size=tuple(user_models.INPUT_SIZE), mean=tuple(user_models.MEAN), std=tuple(user_models.STD)
    )
    told, _ = create_backend("torch_cpu", without, overrides)
    assert told.info.mean == tuple(user_models.MEAN)
    own = labels_of(with_facts, images)[0]
    np.testing.assert_array_equal(own, Segmenter(told)(images[0], "rgb8").labels)
    # what the same weights give where nothing says otherwise (ImageNet's mean/std, 384x512): other labels
    assert np.mean(own == labels_of(without, images)[0]) < 0.9


def test_an_onnx_from_elsewhere_without_metadata_runs_when_the_parameters_describe_it(tmp_path):
    model = user_models.strided_4(8).eval()
    path = tmp_path / "theirs.onnx"
    torch.onnx.export(model, torch.zeros(1, 3, 96, 128), str(path), input_names=["x"], output_names=["y"], dynamo=False)
    with pytest.raises(ModelFileError, match="no 'lcsnet_seg' metadata.*give mean and std"):
        create_backend("onnxruntime", path)
    overrides = ModelOverrides(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    segmenter, _ = build_segmenter(path, SegmenterConfig(backend="onnxruntime", overrides=overrides))
    assert segmenter.info.input_size == (96, 128)  # from the graph
    assert segmenter.backend.output_spec.shape == (1, 8, 24, 32)
    result = segmenter(generate_scene(3, 120, 160)[0], "rgb8", ("labels", "overlay"))
    assert result.labels.shape == (120, 160) and result.overlay.shape == (120, 160, 3)
    segmenter.close()


def test_a_dynamic_size_onnx_reports_the_logit_size_it_really_returns(tmp_path):
    pth = user_models.save_checkpoint(tmp_path / "dyn.pth", 4)
    code = convert.main(
        [str(pth), "--out-dir", str(tmp_path), "--stages", "onnx", "--dynamic-hw", "--parity-images", "1"]
    )
    assert code == convert.EXIT_OK
    for size in ((96, 128), (64, 96)):
        backend, _ = create_backend("onnxruntime", tmp_path / "dyn.onnx", ModelOverrides(input_size=size))
        assert backend.output_spec.shape == (1, 8, size[0] // 4, size[1] // 4)
        assert backend.infer(np.zeros((1, 3, *size), np.float32)).shape == backend.output_spec.shape
        backend.close()


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bag") / "bag"
    assert make_demo_bag.main([str(path), "--frames", "4", "--height", "120", "--width", "160"]) == 0
    return path


def output_labels(out_dir):
    from lcsnet_seg.eval import bag_io
    from lcsnet_seg.image_messages import decode_image

    reader = bag_io.open_reader(out_dir / "segmentation_bag")
    try:
        topic = next(t for t in bag_io.topic_types(reader) if t.endswith("/label_mask"))
        conn = bag_io.connection(reader, topic, (bag_io.IMAGE,), "labels")
        store = bag_io.typestore()
        return [
            decode_image(store.deserialize_cdr(raw, bag_io.IMAGE)).copy()
            for _, _, raw in reader.messages(connections=[conn])
        ]
    finally:
        reader.close()


def test_evaluate_gives_the_same_labels_from_the_pth_and_from_its_onnx(user_model, bag, tmp_path):
    import json

    stride, pth, onnx_path = user_model
    for name, model in (("pth", pth), ("onnx", onnx_path)):
        args = [str(bag), "--image-topic", "/camera/image_raw", "--label-topic", "/camera/labels"]
        assert evaluate.main([*args, "--model", str(model), "--out-dir", str(tmp_path / name)]) == 0
    metrics = {n: json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("pth", "onnx")}
    assert metrics["pth"]["backend"] == "torch_cpu" and metrics["onnx"]["backend"] == "onnxruntime"
    assert metrics["pth"]["per_class_iou"].keys() == metrics["onnx"]["per_class_iou"].keys()
    a, b = np.concatenate(output_labels(tmp_path / "pth")), np.concatenate(output_labels(tmp_path / "onnx"))
    print(f"AGREEMENT evaluate .pth vs ONNX, logits 1/{stride}: {np.mean(a == b):.5f}")
    assert a.shape == (4 * 120, 160) and np.mean(a == b) >= 0.995


def test_the_demo_checkpoint_still_describes_the_demo_model():
    from lcsnet_seg.model import DEMO_ONNX, DEMO_PTH

    assert read_model_info(DEMO_PTH).classes == read_model_info(DEMO_ONNX).classes
    assert read_model_info(DEMO_PTH).input_size == read_model_info(DEMO_ONNX).input_size
