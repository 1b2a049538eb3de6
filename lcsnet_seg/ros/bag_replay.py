"""evaluate --node: publish a bag's frames into a segmentation_node at the bag's pace and record its outputs.

The node runs as its own process, as deployed. Frames are published at --rate x the bag's
timing; outputs that do not come back (dropped by the node or the transport) are counted and
make the result incomplete.
"""

from __future__ import annotations

import copy
import threading
import time

import numpy as np

WARM_UP_STAMP_NS = 1  # 0 s + 1 ns: no recorded camera frame carries it
OUTPUT_TOPICS = ("label_mask", "color_mask", "overlay")


def replay_through_node(frames, in_range: int, labels, writer, image_msgtype: str, *, model, backend: str,
                        image_topic: str, out_dir, samples: int, rate: float, output_prefix: str):
    """A bag_eval Replay: the frames through a segmentation_node started for the purpose.

    model/backend: the node's model_path and backend parameters; rate: playback speed (1.0 = the
    bag's timing); out_dir receives node.log. Returns (Scorer, meta) like every Replay.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image
    from tqdm import tqdm

    from lcsnet_seg.classes import load_class_set
    from lcsnet_seg.errors import LcsnetError
    from lcsnet_seg.eval import bag_io
    from lcsnet_seg.eval.scoring import Scorer, sample_positions
    from lcsnet_seg.model_info import read_onnx_model_info
    from lcsnet_seg.ros.node_process import ros_environment, start_node, stop_node

    ros_environment()
    compressed = image_msgtype == bag_io.COMPRESSED
    in_topic = "/lcsnet_eval/image" + ("/compressed" if compressed else "")
    log_path = out_dir / "node.log"
    process = start_node(log_path, {"model_path": model, "backend": backend,
                                    "input_transport": "compressed" if compressed else "raw"},
                         {"image": "/lcsnet_eval/image", "image/compressed": "/lcsnet_eval/image/compressed"})
    store = bag_io.typestore()
    rclpy.init()
    player = rclpy.create_node("lcsnet_eval_player")
    reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
    publisher = player.create_publisher(CompressedImage if compressed else Image, in_topic, reliable)
    received: dict[str, dict[int, tuple[float, bytes]]] = {t: {} for t in OUTPUT_TOPICS}
    cv = threading.Condition()

    def keep(topic):
        def callback(raw: bytes):
            msg = store.deserialize_cdr(raw, bag_io.IMAGE)
            with cv:
                received[topic][bag_io.stamp_ns(msg.header)] = (time.perf_counter(), raw)
                cv.notify_all()
        return callback

    for topic in OUTPUT_TOPICS:
        player.create_subscription(Image, f"/lcsnet_seg/{topic}", keep(topic), reliable, raw=True)
    executor = SingleThreadedExecutor()
    executor.add_node(player)
    threading.Thread(target=executor.spin, daemon=True).start()
    info = read_onnx_model_info(model) if str(model).endswith(".onnx") else None
    classes = info.classes if info else load_class_set()  # an engine or .pth: the configured class file
    scorer = Scorer(len(classes), sample_positions(in_range, samples))
    scorer.counts["frames_in_range"] = in_range
    output_fps = None
    try:
        frame_list = list(frames)
        good = [f for f in frame_list if f.error is None]
        for f in frame_list:
            if f.error:
                scorer.counts["frames_bad_image"] += 1
                scorer.warn(f"image at stamp {f.stamp}: {f.error}")
        if not good:
            raise bag_io.BagError(f"no readable images on {image_topic}")

        def message(frame, header=None):
            header = header or frame.header
            out = store.types[image_msgtype]
            if compressed:
                import cv2

                ok, data = cv2.imencode(".png", frame.image)
                msg = out(header=header, format="png", data=np.frombuffer(data.tobytes(), np.uint8))
            else:
                contiguous = np.ascontiguousarray(frame.image)
                msg = out(header=header, height=contiguous.shape[0], width=contiguous.shape[1],
                          encoding=frame.encoding, is_bigendian=0, step=contiguous.strides[0],
                          data=contiguous.reshape(-1))
            return bytes(store.serialize_cdr(msg, image_msgtype))  # rclpy publishes bytes, not memoryview

        # Warm-up: the node must be up and matched before the timed replay. The warm-up frame carries a stamp
        # of its own (WARM_UP_STAMP_NS, no bag frame's), so its late answers can never pass for a bag frame's.
        warm_header = copy.deepcopy(good[0].header)
        warm_header.stamp.sec, warm_header.stamp.nanosec = 0, WARM_UP_STAMP_NS
        warm, deadline = message(good[0], warm_header), time.monotonic() + 60
        while WARM_UP_STAMP_NS not in received["label_mask"]:
            if process.poll() is not None or time.monotonic() > deadline:
                raise LcsnetError(f"segmentation_node did not answer; see {log_path}")
            publisher.publish(warm)
            with cv:
                cv.wait_for(lambda: WARM_UP_STAMP_NS in received["label_mask"], timeout=0.5)
        with cv:
            for table in received.values():
                table.clear()
        sent: dict[int, float] = {}
        t0_bag, t0 = good[0].log_time, time.perf_counter()
        for frame in tqdm(good, desc="replaying into the node", unit="frame"):
            due = t0 + (frame.log_time - t0_bag) / 1e9 / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            raw = message(frame)
            sent[frame.stamp] = time.perf_counter()
            publisher.publish(raw)
        with cv:
            cv.wait_for(lambda: all(s in received["label_mask"] for s in sent), timeout=5.0)
        arrivals = sorted(t for t, _ in received["label_mask"].values())
        output_fps = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else None
        for index, frame in enumerate(good):
            outputs = {t: received[t].get(frame.stamp) for t in OUTPUT_TOPICS}
            if outputs["label_mask"] is None:
                scorer.counts["frames_without_output"] += 1
                continue
            scorer.counts["frames_segmented"] += 1
            scorer.latencies_ms.append((outputs["label_mask"][0] - sent[frame.stamp]) * 1e3)
            for topic, item in outputs.items():
                if item is not None:
                    writer.write_raw(f"{output_prefix.rstrip('/')}/{topic}", bag_io.IMAGE, frame.log_time, item[1])
            label_msg = store.deserialize_cdr(outputs["label_mask"][1], bag_io.IMAGE)
            prediction = label_msg.data.reshape(label_msg.height, label_msg.width)
            truth = labels.find(frame.stamp) if labels is not None else None
            if labels is not None:
                scorer.score(index, frame.stamp, prediction, truth)
            if outputs["overlay"] is not None:
                overlay_msg = store.deserialize_cdr(outputs["overlay"][1], bag_io.IMAGE)
                overlay = overlay_msg.data.reshape(overlay_msg.height, overlay_msg.width, 3)
                image = frame.image if frame.encoding in ("rgb8",) else None
                if image is not None:
                    scorer.keep_sample(index, image, overlay, truth)
        if scorer.counts["frames_without_output"]:
            scorer.warn(f"{scorer.counts['frames_without_output']} frames got no output from the node at rate "
                        f"{rate}: they are not scored")
    finally:
        executor.shutdown()
        player.destroy_node()
        rclpy.try_shutdown()
        code = stop_node(process)
    return scorer, {"backend": "segmentation_node", "device": f"node process (exit {code})",
                    "rate": rate, "fps": output_fps, "class_set": classes}
