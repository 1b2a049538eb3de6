"""LCSNet, the committed demo checkpoint and the committed demo ONNX model."""

import numpy as np
import pytest
from conftest import DEMO_ONNX, DEMO_PTH

torch = pytest.importorskip("torch")


def test_lcsnet_output_is_logits_at_input_resolution_for_any_size():
    from lcsnet_seg.model.lcsnet import LCSNet

    model = LCSNet(num_classes=5).eval()
    with torch.no_grad():
        for h, w in ((64, 96), (77, 101)):
            assert model(torch.zeros(2, 3, h, w)).shape == (2, 5, h, w)


def test_demo_checkpoint_is_small_safe_and_complete():
    assert DEMO_PTH.stat().st_size <= 8 * 1024 * 1024
    checkpoint = torch.load(DEMO_PTH, map_location="cpu", weights_only=True)
    assert checkpoint["arch"] == "lcsnet" and checkpoint["num_classes"] == 8
    assert {"steps", "held_out_miou"} <= checkpoint["train"].keys()  # the training record travels with it
    # the mIoU itself is measured, not read from this record: test_demo_model_reaches_the_miou_target_...


def test_onnx_matches_pytorch_on_the_demo_weights(demo_torch_model, ort_backend):
    from lcsnet_seg.convert.parity import compare, scene_batches

    batches = list(scene_batches(4, *ort_backend.info.input_size, ort_backend.info))

    def reference(batch):
        with torch.no_grad():
            return demo_torch_model(torch.from_numpy(batch)).numpy()

    parity = compare("pytorch vs committed onnx", reference, ort_backend.infer, batches)
    assert parity.max_abs_logit_diff < 1e-3
    assert parity.argmax_agreement >= 0.999


def test_committed_onnx_describes_itself():
    from lcsnet_seg.classes import load_class_set
    from lcsnet_seg.model_info import read_onnx_model_info

    info = read_onnx_model_info(DEMO_ONNX)
    assert info.classes == load_class_set()
    assert info.input_size == (384, 512) and info.color_order == "rgb"


def test_model_info_writes_color_order_and_still_reads_the_old_colour_order_key(tmp_path):
    """Exports before the rename wrote ``colour_order`` into the ONNX metadata (and engine sidecars)."""
    import json

    onnx = pytest.importorskip("onnx")
    from lcsnet_seg.model_info import METADATA_KEY, ModelInfo, read_onnx_model_info

    doc = json.loads(read_onnx_model_info(DEMO_ONNX).to_json())
    assert doc["color_order"] == "rgb" and "colour_order" not in doc
    doc["colour_order"] = "bgr"
    del doc["color_order"]
    assert ModelInfo.from_json(json.dumps(doc)).color_order == "bgr"

    old = onnx.load(str(DEMO_ONNX))  # an ONNX file as the exporter wrote it before the rename
    for prop in old.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = json.dumps(doc, sort_keys=True)
    onnx.save(old, str(tmp_path / "old.onnx"))
    assert read_onnx_model_info(tmp_path / "old.onnx").color_order == "bgr"


def test_demo_model_reaches_the_miou_target_on_fresh_held_out_scenes(segmenter):
    """Scenes from seeds no training run used, at a camera resolution unlike the training one."""
    from lcsnet_seg.eval.metrics import ConfusionMatrix
    from lcsnet_seg.model.scene import generate_scene

    cm = ConfusionMatrix(8)
    for i in range(24):
        image, truth = generate_scene(4_000_000_000 + 7919 * i, 480, 640)
        cm.update(truth, segmenter(image, "rgb8").labels)
    scores = cm.scores()
    assert scores.miou >= 0.80, f"mIoU {scores.miou:.3f}, per class {np.round(scores.per_class_iou, 3)}"


def test_complexity_figures_quoted_in_docs():
    from lcsnet_seg.model.complexity import count_gmacs, count_parameters
    from lcsnet_seg.model.lcsnet import LCSNet

    model = LCSNet(8)
    assert count_parameters(model) == 541_128
    assert count_gmacs(model, 512, 512) == pytest.approx(0.8413, abs=1e-3)


def test_training_script_runs_a_few_steps(tmp_path):
    from lcsnet_seg.tools.train import main

    out = tmp_path / "tiny.pth"
    assert (
        main(
            [
                "--out",
                str(out),
                "--max-steps",
                "2",
                "--height",
                "64",
                "--width",
                "96",
                "--batch",
                "2",
                "--workers",
                "0",
                "--eval-scenes",
                "2",
            ]
        )
        == 0
    )
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["train"]["steps"] == 2 and "stem.0.weight" in checkpoint["state_dict"]
