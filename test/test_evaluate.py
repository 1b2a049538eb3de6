"""evaluate and make_demo_bag on bags written here, in both storages."""

import json

import numpy as np
import pytest

from lcsnet_seg.eval import bag_io
from lcsnet_seg.tools import evaluate, make_demo_bag

FRAMES = 4


@pytest.fixture(scope="module", params=["sqlite3", "mcap"])
def demo_bag(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / "bag"
    assert (
        make_demo_bag.main(
            [
                str(path),
                "--frames",
                str(FRAMES),
                "--storage",
                request.param,
                "--compressed",
                "--height",
                "240",
                "--width",
                "320",
            ]
        )
        == 0
    )
    return path


def ground_truth(bag):
    reader = bag_io.open_reader(bag)
    conn = bag_io.connection(reader, "/camera/labels", (bag_io.IMAGE,), "label")
    truth = {f.stamp: f.image[..., 0].copy() for f in bag_io.read_frames(reader, conn)}
    reader.close()
    return truth


class ScriptedSegmenter:
    """Returns ground truth passed through ``perturb``: an oracle whose mistakes are known exactly."""

    def __init__(self, real, truth_by_image, perturb=lambda labels: labels):
        self.real, self.truth_by_image, self.perturb = real, truth_by_image, perturb
        self.backend, self.info = real.backend, real.info

    def __call__(self, image, encoding, outputs=None):
        result = self.real(image, encoding)
        result.labels = self.perturb(self.truth_by_image[image.tobytes()].copy())
        return result


def images_to_truth(bag, topic="/camera/image_raw"):
    truth = ground_truth(bag)
    reader = bag_io.open_reader(bag)
    conn = bag_io.connection(reader, topic, bag_io.IMAGE_TYPES, "image")
    mapping = {f.image.tobytes(): truth[f.stamp] for f in bag_io.read_frames(reader, conn)}
    reader.close()
    return mapping, truth


def run(bag, out, segmenter=None, extra=()):
    args = evaluate.parser().parse_args(
        [
            str(bag),
            "--image-topic",
            "/camera/image_raw",
            "--label-topic",
            "/camera/labels",
            "--out-dir",
            str(out),
            *extra,
        ]
    )
    code = evaluate.run(args, segmenter)
    return code, json.loads((out / "metrics.json").read_text())


def test_oracle_scores_one(demo_bag, tmp_path, segmenter):
    mapping, _ = images_to_truth(demo_bag)
    code, metrics = run(demo_bag, tmp_path / "out", ScriptedSegmenter(segmenter, mapping))
    assert code == 0 and metrics["complete"]
    assert metrics["miou"] == 1.0 and metrics["pixel_accuracy"] == 1.0
    assert metrics["frames"]["frames_scored"] == FRAMES


def test_known_perturbation_gives_hand_computed_ious(demo_bag, tmp_path, segmenter):
    mapping, truth = images_to_truth(demo_bag)

    def floor_as_wall(labels):
        labels[labels == 1] = 0
        return labels

    _, metrics = run(demo_bag, tmp_path / "out", ScriptedSegmenter(segmenter, mapping, floor_as_wall))
    all_truth = np.concatenate([t.ravel() for t in truth.values()])
    walls, floors = np.count_nonzero(all_truth == 0), np.count_nonzero(all_truth == 1)
    assert floors > 0 and walls > 0
    iou = metrics["per_class_iou"]
    assert iou["floor"] == 0.0
    assert iou["wall"] == pytest.approx(walls / (walls + floors))
    present = [n for n, p in metrics["class_present_in_ground_truth"].items() if p]
    for name in present:
        if name not in ("wall", "floor"):
            assert iou[name] == 1.0
    assert metrics["miou"] == pytest.approx((walls / (walls + floors) + (len(present) - 2)) / len(present))
    assert metrics["pixel_accuracy"] == pytest.approx(1 - floors / all_truth.size)


def test_real_model_output_bag_and_report(demo_bag, tmp_path):
    out = tmp_path / "out"
    code, metrics = run(demo_bag, out)
    assert code == 0 and metrics["complete"] and metrics["miou"] > 0.6
    for key in ("miou", "per_class_iou", "pixel_accuracy", "frequency_weighted_iou", "fps", "latency_ms"):
        assert metrics[key] is not None, key
    assert set(metrics["latency_ms"]) == {"mean", "p50", "p95", "p99"}
    for name in ("report.md", "confusion_matrix.png", "per_class_iou.png", "sample_00.png"):
        assert (out / name).is_file(), name
    reader = bag_io.open_reader(out / "segmentation_bag")
    assert bag_io.storage_of(reader) == bag_io.storage_of(bag_io.open_reader(demo_bag))
    stamps = {}
    for topic in ("/lcsnet_seg/label_mask", "/lcsnet_seg/color_mask", "/lcsnet_seg/overlay"):
        conn = bag_io.connection(reader, topic, (bag_io.IMAGE,), "output")
        stamps[topic] = [f.stamp for f in bag_io.read_frames(reader, conn)]
    assert all(s == sorted(ground_truth(demo_bag)) for s in stamps.values())
    reader.close()


def test_compressed_input(demo_bag, tmp_path):
    args = evaluate.parser().parse_args(
        [
            str(demo_bag),
            "--image-topic",
            "/camera/image_raw/compressed",
            "--label-topic",
            "/camera/labels",
            "--out-dir",
            str(tmp_path),
        ]
    )
    assert evaluate.run(args) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["frames"]["frames_scored"] == FRAMES and metrics["miou"] > 0.6


def test_absent_class_is_reported_absent_not_zero(tmp_path):
    from lcsnet_seg.model.scene import generate_scene

    frames = []
    for seed in (1, 2):
        image, labels = generate_scene(seed, 120, 160)
        labels[labels == 2] = 0  # no whiteboard in the ground truth at all
        frames.append((image, labels))
    write_bag(tmp_path / "bag", frames)
    _, metrics = run(tmp_path / "bag", tmp_path / "out")
    assert metrics["class_present_in_ground_truth"]["whiteboard"] is False
    assert metrics["per_class_iou"]["whiteboard"] is None
    present = [v for n, v in metrics["per_class_iou"].items() if metrics["class_present_in_ground_truth"][n]]
    assert metrics["miou"] == pytest.approx(sum(present) / len(present))
    assert "absent from ground truth" in (tmp_path / "out" / "report.md").read_text()


def test_missing_topic_lists_the_topics(demo_bag, tmp_path, capsys):
    code = evaluate.main([str(demo_bag), "--image-topic", "/camera/rgb", "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == evaluate.EXIT_ERROR
    assert "/camera/rgb is not in bag" in err and "/camera/image_raw (sensor_msgs/msg/Image)" in err
    assert "/camera/labels" in err


def test_wrong_message_type(demo_bag, tmp_path, capsys):
    code = evaluate.main(
        [
            str(demo_bag),
            "--image-topic",
            "/camera/image_raw",
            "--label-topic",
            "/camera/image_raw/compressed",
            "--out-dir",
            str(tmp_path),
        ]
    )
    assert code == evaluate.EXIT_ERROR
    assert "carries sensor_msgs/msg/CompressedImage; expected sensor_msgs/msg/Image" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["missing", "empty_dir", "garbage_db"])
def test_corrupt_or_missing_bag(tmp_path, capsys, damage):
    bag = tmp_path / "bag"
    if damage == "empty_dir":
        bag.mkdir()
    elif damage == "garbage_db":
        bag.mkdir()
        (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9}\n")
        (bag / "bag_0.db3").write_bytes(b"not sqlite" * 100)
    code = evaluate.main([str(bag), "--image-topic", "/camera/image_raw", "--out-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == evaluate.EXIT_ERROR and str(bag) in err and "Traceback" not in err


def write_bag(path, frames, storage="sqlite3", label_offset_ns=0):
    """Frame i stamped 100 + i s; its labels (when not None) stamped ``label_offset_ns`` later."""
    writer = bag_io.BagWriter(path, storage)
    store = bag_io.typestore()
    Header, Time = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    for i, (image, labels) in enumerate(frames):
        header = Header(stamp=Time(sec=100 + i, nanosec=0), frame_id="cam")
        writer.write_image("/camera/image_raw", (100 + i) * 10**9, header, image, "rgb8")
        if labels is not None:
            label_header = Header(stamp=Time(sec=100 + i, nanosec=label_offset_ns), frame_id="cam")
            writer.write_image("/camera/labels", (100 + i) * 10**9 + label_offset_ns, label_header, labels, "mono8")
    writer.close()


def test_bad_labels_are_counted_not_hidden(tmp_path):
    from lcsnet_seg.model.scene import generate_scene

    image, labels = generate_scene(1, 120, 160)
    wrong_ids = labels.copy()
    wrong_ids[:10, :10] = 42
    write_bag(tmp_path / "bag", [(image, labels[:60, :80].copy()), (image, wrong_ids), (image, None)])
    code, metrics = run(tmp_path / "bag", tmp_path / "out")
    frames = metrics["frames"]
    assert frames["labels_wrong_size"] == 1 and frames["frames_without_label"] == 1
    assert frames["frames_scored"] == 1 and metrics["invalid_label_pixels"] == 100
    assert any("is 80x60 but the image is 160x120" in w for w in metrics["warnings"])
    assert any("outside 0..7" in w for w in metrics["warnings"])


def test_stride_scores_every_nth_frame(demo_bag, tmp_path):
    code, metrics = run(demo_bag, tmp_path / "out", extra=("--stride", "2"))
    assert metrics["frames"]["frames_in_range"] == FRAMES // 2 and metrics["frames"]["frames_scored"] == FRAMES // 2


@pytest.mark.parametrize("offset_ms, tolerance_ms, matched", [(0.4, 1.0, True), (3.0, 1.0, False), (3.0, 5.0, True)])
def test_labels_match_images_within_the_stamp_tolerance(tmp_path, offset_ms, tolerance_ms, matched):
    from lcsnet_seg.model.scene import generate_scene

    frames = [generate_scene(seed, 120, 160) for seed in (1, 2)]
    write_bag(tmp_path / "bag", frames, label_offset_ns=int(offset_ms * 1e6))
    code, metrics = run(tmp_path / "bag", tmp_path / "out", extra=("--stamp-tolerance-ms", str(tolerance_ms)))
    counts = metrics["frames"]
    assert counts["frames_scored"] == (2 if matched else 0)
    assert counts["frames_without_label"] == (0 if matched else 2)


@pytest.mark.ros_process
def test_node_mode_evaluates_the_node_as_deployed(tmp_path):
    pytest.importorskip("rclpy")
    bag = tmp_path / "bag"
    # 2 frames a second, played in real time: a node slower than that (a CPU backend on a loaded machine) drops
    # frames, as it would on the robot. At any load it answers the first frame (its worker is idle then) and the
    # last (nothing newer replaces it), and every frame is accounted for.
    assert make_demo_bag.main([str(bag), "--frames", "4", "--height", "240", "--width", "320", "--rate", "2"]) == 0
    code, metrics = run(bag, tmp_path / "out", extra=("--node", "--rate", "1.0"))
    assert metrics["mode"] == "node"
    assert metrics["frames"]["frames_segmented"] + metrics["frames"]["frames_without_output"] == 4
    assert code == (0 if metrics["complete"] else evaluate.EXIT_INCOMPLETE)
    assert metrics["frames"]["frames_segmented"] >= 2 and metrics["miou"] > 0.6
    reader = bag_io.open_reader(tmp_path / "out" / "segmentation_bag")
    assert "/lcsnet_seg/label_mask" in bag_io.topic_types(reader)
    reader.close()


@pytest.mark.ros_process
def test_node_mode_lockstep_answers_every_frame_and_real_time_stays_honest(tmp_path):
    """--rate 0 (make demo's): each frame waits for the answer to the one before, so a 30 Hz bag into a slow CPU
    node on a loaded machine is complete; the same bag at 50x real time cannot be, and says so (exit 3)."""
    pytest.importorskip("rclpy")
    bag = tmp_path / "bag"
    assert make_demo_bag.main([str(bag), "--frames", "8", "--height", "240", "--width", "320", "--rate", "30"]) == 0
    code, metrics = run(bag, tmp_path / "lockstep", extra=("--node", "--rate", "0"))
    assert code == 0 and metrics["complete"], metrics["warnings"]
    assert metrics["frames"]["frames_segmented"] == 8 and metrics["frames"]["frames_without_output"] == 0
    code, metrics = run(bag, tmp_path / "fast", extra=("--node", "--rate", "50"))
    assert code == evaluate.EXIT_INCOMPLETE and not metrics["complete"]
    assert metrics["frames"]["frames_without_output"] >= 1
    assert any("got no output from the node" in w for w in metrics["warnings"])


def test_int8_calibration_images_come_from_a_bag_topic(demo_bag, ort_backend):
    """convert --calib-bag reads these batches (the TensorRT calibrator itself needs TensorRT)."""
    from lcsnet_seg.eval.bag_io import bag_image_batches

    batches = list(bag_image_batches(demo_bag, "/camera/image_raw/compressed", ort_backend.info, limit=3))
    assert len(batches) == 3
    assert all(b.shape == (1, 3, 384, 512) and b.dtype == np.float32 and np.isfinite(b).all() for b in batches)
    with pytest.raises(bag_io.BagError, match="calibration image topic /nope is not in bag"):
        list(bag_image_batches(demo_bag, "/nope", ort_backend.info, limit=3))


def test_flicker_counter_by_hand():
    from lcsnet_seg.eval.temporal import FlickerCounter

    counter = FlickerCounter(3)
    truth_a = np.array([[0, 0, 1, 255]], np.uint8)
    truth_b = np.array([[0, 1, 1, 255]], np.uint8)  # pixel 1 changes class: not stable
    counter.update(0, np.array([[0, 0, 1, 2]]), truth_a)
    counter.update(1, np.array([[2, 1, 1, 0]]), truth_b)  # pixel 0 flickers (wall), pixel 2 stays (floor)
    assert counter.stable_pixels.tolist() == [1, 1, 0] and counter.flicker_pixels.tolist() == [1, 0, 0]
    counter.update(3, np.array([[1, 1, 1, 1]]), truth_b)  # frame 2 missing: no pair across the gap
    assert counter.frame_pairs == 1 and counter.stable_pixels.sum() == 2


class ReusedBuffer:
    """Returns its labels in one array that every call overwrites, as a GPU Segmenter's pinned buffers."""

    def __init__(self, inner):
        self.inner, self.backend, self.info, self.buffer = inner, inner.backend, inner.info, None

    def __call__(self, image, encoding, outputs=("labels", "color_mask", "overlay")):
        result = self.inner(image, encoding)
        if self.buffer is None:
            self.buffer = np.empty_like(result.labels)
        self.buffer[...] = result.labels
        result.labels = self.buffer
        return result


def test_flicker_of_a_prediction_that_alternates(demo_bag, tmp_path, segmenter):
    """Floor predicted as wall on every other frame: every stable floor pixel flickers, nothing else does,
    also when the segmenter's results live in a reused buffer."""
    mapping, truth = images_to_truth(demo_bag)
    calls = iter(range(10**6))

    def floor_as_wall_on_odd_frames(labels):
        if next(calls) % 2:
            labels[labels == 1] = 0
        return labels

    scripted = ScriptedSegmenter(segmenter, mapping, floor_as_wall_on_odd_frames)
    _, metrics = run(demo_bag, tmp_path / "out", ReusedBuffer(scripted), extra=("--no-output-bag",))
    frames = [truth[s] for s in sorted(truth)]
    stable = np.zeros(8, np.int64)
    for a, b in zip(frames, frames[1:]):
        same = a == b
        stable += np.bincount(b[same], minlength=8)
    block = metrics["temporal_consistency"]
    assert block["frame_pairs"] == FRAMES - 1 and block["stable_pixels"] == stable.tolist()
    assert stable[1] > 0 and block["flicker_pixels"][1] == stable[1]
    assert sum(block["flicker_pixels"]) == stable[1]
    assert block["per_class_flicker"]["floor"] == 1.0 and block["per_class_flicker"]["wall"] == 0.0
    assert block["flicker"] == pytest.approx(stable[1] / stable.sum())
    assert not (tmp_path / "out" / "segmentation_bag").exists()
    assert "## Temporal consistency" in (tmp_path / "out" / "report.md").read_text()


def test_compare_shows_per_class_differences(demo_bag, tmp_path, segmenter, capsys):
    mapping, _ = images_to_truth(demo_bag)
    run(demo_bag, tmp_path / "oracle", ScriptedSegmenter(segmenter, mapping))

    def floor_as_wall(labels):
        labels[labels == 1] = 0
        return labels

    _, metrics = run(
        demo_bag,
        tmp_path / "worse",
        ScriptedSegmenter(segmenter, mapping, floor_as_wall),
        extra=("--compare", str(tmp_path / "oracle")),
    )
    delta = metrics["compare"]["per_class_iou_delta"]
    assert delta["floor"] == -1.0 and delta["wall"] == pytest.approx(metrics["per_class_iou"]["wall"] - 1.0)
    assert metrics["compare"]["miou_delta"] == pytest.approx(metrics["miou"] - 1.0)
    assert "| floor | -1.0000 |" in (tmp_path / "worse" / "report.md").read_text()
    assert (tmp_path / "worse" / "compare_iou.png").is_file()
    code = evaluate.main(
        [
            str(demo_bag),
            "--image-topic",
            "/camera/image_raw",
            "--out-dir",
            str(tmp_path / "x"),
            "--compare",
            str(tmp_path / "nothing_here"),
        ]
    )
    assert code == evaluate.EXIT_ERROR and "--compare" in capsys.readouterr().err


def test_segmenter_is_built_by_the_node_factory(demo_bag, tmp_path, monkeypatch):
    import lcsnet_seg.segmenter as segmenter_package

    built = []
    real = segmenter_package.build_segmenter
    monkeypatch.setattr(
        segmenter_package, "build_segmenter", lambda model, config: built.append(config) or real(model, config)
    )
    code, _ = run(demo_bag, tmp_path / "out", extra=("--backend", "onnxruntime", "--device", "0", "--no-output-bag"))
    assert code == 0 and [(c.backend, c.device) for c in built] == [("onnxruntime", 0)]


def test_make_demo_bag_on_an_existing_path_names_its_own_argument(tmp_path, capsys):
    (tmp_path / "bag").mkdir()
    assert make_demo_bag.main([str(tmp_path / "bag"), "--frames", "1"]) == 1
    err = capsys.readouterr().err
    assert "already exists; remove it or give another OUT path" in err and "--out-dir" not in err
