"""evaluate with several cameras of one bag (several --image-topic) and --decoder, on bags written here: a raw rgb8
camera and a JPEG CompressedImage camera of another size, each with its ground truth."""

import json

import cv2
import numpy as np
import pytest

from lcsnet_seg.eval import bag_io
from lcsnet_seg.eval.bag_eval import camera_names
from lcsnet_seg.tools import evaluate

FRAMES = 3
FRONT = ("/front/image_raw", "/front/labels", (240, 320))
REAR = ("/rear/image/compressed", "/rear/labels", (120, 160))
REAR_OFFSET_NS = 3_000_000  # the rear camera fires 3 ms after the front one: the same tick


def write_two_camera_bag(path, storage="sqlite3"):
    """FRAMES frames 0.1 s apart on each camera, from the scene generator, labels stamped as their images."""
    from lcsnet_seg.model.scene import generate_scene

    writer = bag_io.BagWriter(path, storage)
    store = bag_io.typestore()
    Header, Time = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    Compressed = store.types[bag_io.COMPRESSED]
    for i in range(FRAMES):
        for k, (image_topic, label_topic, (h, w)) in enumerate((FRONT, REAR)):
            t_ns = (100 + i) * 10**9 + i * 10**8 + k * REAR_OFFSET_NS
            header = Header(stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id=f"cam{k}")
            image, labels = generate_scene(3_600_000_000 + 10 * i + k, h, w)
            if image_topic.endswith("/compressed"):
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
                msg = Compressed(header=header, format="jpeg", data=np.frombuffer(jpeg.tobytes(), np.uint8))
                writer.write_raw(image_topic, bag_io.COMPRESSED, t_ns, store.serialize_cdr(msg, bag_io.COMPRESSED))
            else:
                writer.write_image(image_topic, t_ns, header, image, "rgb8")
            writer.write_image(label_topic, t_ns, header, labels, "mono8")
    writer.close()


@pytest.fixture(scope="module")
def two_camera_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("cameras") / "bag"
    write_two_camera_bag(path)
    return path


class CountingSegmenter:
    """The CPU Segmenter, counting its segment_batch calls and the images of each."""

    def __init__(self, inner):
        self.inner, self.backend, self.info, self.batches = inner, inner.backend, inner.info, []
        self.jpeg_decoder = None

    def __call__(self, image, encoding, outputs=("labels",)):
        self.batches.append(1)
        return self.inner(image, encoding, outputs)

    def segment_batch(self, frames, outputs=("labels",)):
        self.batches.append(len(frames))
        return self.inner.segment_batch(frames, outputs)


def both_cameras(bag, out, extra=()):
    return [
        str(bag),
        "--image-topic",
        FRONT[0],
        "--image-topic",
        REAR[0],
        "--label-topic",
        FRONT[1],
        "--label-topic",
        REAR[1],
        "--out-dir",
        str(out),
        *extra,
    ]


def one_camera(bag, out, camera, extra=()):
    return [str(bag), "--image-topic", camera[0], "--label-topic", camera[1], "--out-dir", str(out), *extra]


def run(argv, segmenter=None):
    code = evaluate.run(evaluate.parser().parse_args(argv), segmenter)
    return code, json.loads((evaluate.parser().parse_args(argv).out_dir / "metrics.json").read_text())


def output_stamps(bag, topics):
    reader = bag_io.open_reader(bag)
    try:
        return {
            t: [f.stamp for f in bag_io.read_frames(reader, bag_io.connection(reader, t, (bag_io.IMAGE,), "output"))]
            for t in topics
        }
    finally:
        reader.close()


def input_stamps(bag, topic):
    reader = bag_io.open_reader(bag)
    try:
        conn = bag_io.connection(reader, topic, bag_io.IMAGE_TYPES, "image")
        return [f.stamp for f in bag_io.read_frames(reader, conn)]
    finally:
        reader.close()


def test_camera_names_follow_the_topics():
    assert camera_names(["/front/image_raw", "/rear/image/compressed"]) == ["front", "rear"]
    assert camera_names(["/cam/image_raw", "/cam/image_raw/compressed"]) == [
        "cam_image_raw",
        "cam_image_raw_compressed",
    ]
    assert camera_names(["/3d/image", "/a-b/image", "image"]) == ["cam_3d", "a_b", "image"]
    assert camera_names(["/x/y", "/x_y", "/x/y"]) == ["x_y", "x_y_2", "x_y_3"]


def test_each_camera_scores_as_alone_and_all_together_sum_in_one_batch_per_tick(two_camera_bag, tmp_path, segmenter):
    counting = CountingSegmenter(segmenter)
    out = tmp_path / "both"
    code, doc = run(both_cameras(two_camera_bag, out), counting)
    assert code == 0 and doc["complete"]
    assert counting.batches == [2] * FRAMES and doc["ticks"] == FRAMES  # one segment_batch call per tick
    assert list(doc["cameras"]) == ["front", "rear"]
    matrices = []
    for name, camera in zip(("front", "rear"), (FRONT, REAR)):
        _, alone = run(one_camera(two_camera_bag, tmp_path / name, camera, ("--no-output-bag",)), segmenter)
        mine = doc["cameras"][name]
        assert mine["image_topic"] == camera[0] and mine["label_topic"] == camera[1]
        assert mine["confusion_matrix"] == alone["confusion_matrix"] and mine["miou"] == alone["miou"]
        assert mine["per_class_iou"] == alone["per_class_iou"]
        assert mine["temporal_consistency"] == alone["temporal_consistency"]
        assert mine["frames"] == alone["frames"] and mine["frames"]["frames_scored"] == FRAMES
        assert mine["latency_ms"]["mean"] is not None
        matrices.append(np.asarray(mine["confusion_matrix"]))
    assert doc["confusion_matrix"] == (matrices[0] + matrices[1]).tolist()
    assert doc["frames"]["frames_scored"] == 2 * FRAMES and doc["frames"]["frames_in_range"] == 2 * FRAMES
    assert doc["image_topics"] == [FRONT[0], REAR[0]] and doc["label_topics"] == [FRONT[1], REAR[1]]
    assert doc["decoder"] == "cpu" and doc["decode_fallbacks"] == 0  # a compressed camera: its decoder is said
    assert doc["cameras"]["rear"]["decode_fallbacks"] == 0 and "decoder" not in doc["cameras"]["front"]
    # the output bag: every camera's outputs under the prefix and its name, with its input stamps
    recorded = [f"/lcsnet_seg/{c}/{t}" for c in ("front", "rear") for t in ("label_mask", "color_mask", "overlay")]
    stamps = output_stamps(out / "segmentation_bag", recorded)
    for topic, got in stamps.items():
        source = FRONT[0] if "/front/" in topic else REAR[0]
        assert got == input_stamps(two_camera_bag, source), topic
    report = (out / "report.md").read_text()
    for heading in ("## All cameras", "## Camera front", "## Camera rear"):
        assert heading in report
    for name in (
        "all_confusion_matrix.png",
        "front_per_class_iou.png",
        "rear_confusion_matrix.png",
        "front_sample_00.png",
    ):
        assert (out / name).is_file(), name


def test_a_camera_absent_from_a_tick_is_absent_and_sync_ms_sets_the_window(two_camera_bag, tmp_path, segmenter):
    """The rear camera fires 3 ms after the front one: a 1 ms window puts every frame in a tick of its own."""
    counting = CountingSegmenter(segmenter)
    code, doc = run(both_cameras(two_camera_bag, tmp_path / "o", ("--sync-ms", "1", "--no-output-bag")), counting)
    assert code == 0 and doc["ticks"] == 2 * FRAMES and counting.batches == [1] * (2 * FRAMES)
    assert doc["sync_ms"] == 1.0


def test_label_topics_must_match_the_image_topics(two_camera_bag, tmp_path, capsys):
    argv = [str(two_camera_bag), "--image-topic", FRONT[0], "--image-topic", REAR[0], "--label-topic", FRONT[1]]
    assert evaluate.main([*argv, "--out-dir", str(tmp_path)]) == evaluate.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2 --image-topic but 1 --label-topic" in err


def test_decoder_gpu_where_it_cannot_run_is_one_configuration_line(two_camera_bag, tmp_path, capsys):
    code = evaluate.main([*one_camera(two_camera_bag, tmp_path, REAR), "--decoder", "gpu", "--backend", "onnxruntime"])
    err = capsys.readouterr().err.strip()
    assert code == evaluate.EXIT_ERROR and len(err.splitlines()) == 1, err
    assert err.startswith("evaluate: decoder gpu") and "Traceback" not in err


def test_decoder_goes_to_the_factory_only_for_compressed_topics(two_camera_bag, tmp_path, monkeypatch):
    import lcsnet_seg.segmenter as segmenter_package

    built = []
    real = segmenter_package.build_segmenter
    monkeypatch.setattr(
        segmenter_package, "build_segmenter", lambda model, config: built.append(config) or real(model, config)
    )
    for k, camera in enumerate((FRONT, REAR)):
        assert evaluate.main([*one_camera(two_camera_bag, tmp_path / str(k), camera), "--no-output-bag"]) == 0
    assert [c.decoder for c in built] == ["cpu", "auto"]


class Decoded:
    """Stands in for a DecodedImage: the pixels, and their encoding."""

    def __init__(self, array, encoding):
        self.array, self.encoding = array, encoding


class RefusingGpuDecoder(CountingSegmenter):
    """The CPU Segmenter with a stand-in JPEG decoder that refuses every other frame it is given, as the GPU
    Segmenter's does for frames nvImageCodec cannot take: those are the CPU decoder's."""

    def __init__(self, inner):
        super().__init__(inner)
        self.jpeg_decoder, self.decode_calls, self.offered = object(), [], 0

    def decode_jpegs(self, datas):
        from lcsnet_seg.errors import ImageError
        from lcsnet_seg.image_messages import compressed_to_array

        self.decode_calls.append(len(datas))
        out = []
        for data in datas:
            self.offered += 1
            if self.offered % 2 == 0:
                out.append(ImageError("refused"))
                continue
            bgr, _ = compressed_to_array(type("Msg", (), {"format": "jpeg", "data": data})())
            out.append(Decoded(bgr[..., ::-1].copy(), "rgb8"))
        return out

    def segment_batch(self, frames, outputs=("labels",)):
        frames = [(f.array, f.encoding) if isinstance(f, Decoded) else (f, e) for f, e in frames]
        return super().segment_batch(frames, outputs)


def test_jpeg_frames_go_to_the_segmenters_decoder_a_tick_at_a_time_and_refusals_count(
    two_camera_bag, tmp_path, segmenter
):
    decoding = RefusingGpuDecoder(segmenter)
    code, doc = run(both_cameras(two_camera_bag, tmp_path / "gpu", ("--no-output-bag",)), decoding)
    assert code == 0 and doc["complete"]
    assert decoding.decode_calls == [1] * FRAMES and decoding.batches == [2] * FRAMES
    assert doc["decoder"] == "gpu" and doc["decode_fallbacks"] == FRAMES // 2
    assert doc["cameras"]["rear"]["decode_fallbacks"] == FRAMES // 2
    _, cpu = run(both_cameras(two_camera_bag, tmp_path / "cpu", ("--no-output-bag",)), CountingSegmenter(segmenter))
    assert doc["cameras"]["front"]["confusion_matrix"] == cpu["cameras"]["front"]["confusion_matrix"]
    rear, rear_cpu = np.asarray(doc["cameras"]["rear"]["confusion_matrix"]), cpu["cameras"]["rear"]["confusion_matrix"]
    assert rear.sum() == np.sum(rear_cpu) and np.trace(rear) == np.trace(rear_cpu)  # RGB of the same pixels
    report = (tmp_path / "gpu" / "report.md").read_text()
    assert "JPEG frames decoded on the GPU (nvImageCodec), 1 decoded on the CPU instead" in report


def test_one_camera_bag_keeps_its_layout(two_camera_bag, tmp_path, segmenter):
    out = tmp_path / "one"
    code, doc = run(one_camera(two_camera_bag, out, FRONT), segmenter)
    assert code == 0 and "cameras" not in doc and doc["image_topic"] == FRONT[0]
    assert "decoder" not in doc  # raw images: nothing decoded
    reader = bag_io.open_reader(out / "segmentation_bag")
    assert sorted(bag_io.topic_types(reader)) == [
        "/lcsnet_seg/color_mask",
        "/lcsnet_seg/label_mask",
        "/lcsnet_seg/overlay",
    ]
    reader.close()
    assert "## Camera" not in (out / "report.md").read_text()


@pytest.mark.ros_process
def test_node_mode_with_two_cameras_gives_the_in_process_labels(two_camera_bag, tmp_path, segmenter):
    """--node --rate 0: one node with cameras [front, rear], every frame answered; its labels per camera are the
    in-process run's (the same model on ONNX Runtime; the JPEG camera decoded here by OpenCV as in process)."""
    pytest.importorskip("rclpy")
    out = tmp_path / "node"
    code, node = run(both_cameras(two_camera_bag, out, ("--node", "--rate", "0")))
    assert node["mode"] == "node"
    assert code == 0 and node["complete"], node["warnings"]
    _, local = run(both_cameras(two_camera_bag, tmp_path / "local", ("--no-output-bag",)), segmenter)
    for name in ("front", "rear"):
        assert node["cameras"][name]["frames"]["frames_scored"] == FRAMES
        assert node["cameras"][name]["confusion_matrix"] == local["cameras"][name]["confusion_matrix"], name
    stamps = output_stamps(out / "segmentation_bag", ["/lcsnet_seg/front/label_mask", "/lcsnet_seg/rear/label_mask"])
    assert stamps["/lcsnet_seg/rear/label_mask"] == input_stamps(two_camera_bag, REAR[0])
    assert stamps["/lcsnet_seg/front/label_mask"] == input_stamps(two_camera_bag, FRONT[0])


@pytest.mark.ros_process
def test_node_mode_says_the_decoder_the_node_ran_not_the_one_asked_for(two_camera_bag, tmp_path):
    """--node on a compressed camera with --decoder auto: the node, on ONNX Runtime, decodes on the CPU, and
    metrics.json and the report say so (from the node's configure line), not 'auto'."""
    pytest.importorskip("rclpy")
    out = tmp_path / "node"
    code, doc = run(one_camera(two_camera_bag, out, REAR, ("--node", "--rate", "0", "--decoder", "auto")))
    assert code == 0 and doc["complete"], doc["warnings"]
    assert doc["decoder"] == "cpu" and "decoder_note" not in doc, doc
    line = next(x for x in (out / "report.md").read_text().splitlines() if "JPEG frames" in x)
    assert "decoded on the CPU (OpenCV)" in line and "decode_fallbacks" not in line  # the node counts those


def test_the_decoder_is_read_from_the_nodes_last_configure_line():
    from lcsnet_seg.ros.bag_replay import node_decoder

    head = "[INFO] [1796133181.46] [lcsnet_seg_eval_1a2b]: configured in 0.2 s: backend x on cpu (auto); model m; "
    gpu = head + "input 512x384, 8 classes; decoder gpu (nvImageCodec; PNG and refused frames on the CPU)"
    cpu = head + "input 512x384, 8 classes; decoder cpu (OpenCV); nvImageCodec is not installed"
    assert node_decoder(f"{cpu}\nactive\n{gpu}\n") == ("gpu", "")  # configured again: the last one counts
    assert node_decoder(cpu) == ("cpu", "nvImageCodec is not installed")
    assert node_decoder(head + "decoder none (raw images)") is None and node_decoder("") is None


def gpu_decoding_unavailable() -> str | None:
    from lcsnet_seg.gpu.decode import nvimgcodec_unavailable_reason

    why = nvimgcodec_unavailable_reason()
    if why:
        return why
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    return None if torch.cuda.is_available() else "no CUDA GPU for torch_cuda"


@pytest.mark.skipif(gpu_decoding_unavailable() is not None, reason=f"GPU JPEG decoding: {gpu_decoding_unavailable()}")
def test_decoder_gpu_on_torch_cuda_labels_as_the_cpu_decoder(two_camera_bag, tmp_path):
    from conftest import DEMO_PTH

    labels = {}
    for decoder in ("gpu", "cpu"):
        out = tmp_path / decoder
        argv = [*one_camera(two_camera_bag, out, REAR), "--model", str(DEMO_PTH), "--backend", "torch_cuda"]
        code, doc = run([*argv, "--decoder", decoder])
        assert code == 0 and doc["decoder"] == decoder and doc["decode_fallbacks"] == 0
        reader = bag_io.open_reader(out / "segmentation_bag")
        conn = bag_io.connection(reader, "/lcsnet_seg/label_mask", (bag_io.IMAGE,), "output")
        labels[decoder] = np.stack([f.image for f in bag_io.read_frames(reader, conn)])
        reader.close()
    assert np.mean(labels["gpu"] == labels["cpu"]) >= 0.995
