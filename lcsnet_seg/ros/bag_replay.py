"""evaluate --node: publish a bag's frames into a segmentation_node at the bag's pace and record its outputs.

The node runs as its own process, as deployed (ros/node_harness.py). Frames are published at
--rate x the bag's timing; outputs that do not come back (dropped by the node or the transport)
are counted and make the result incomplete. --rate 0 is lockstep: each frame is published once the
node has answered the previous one (re-sent if a best-effort link lost it), so a slow or busy
machine costs time, never frames. Scoring, samples and the output bag are the one
replay loop's (eval/replay.py), as in the in-process mode.
"""

from __future__ import annotations

import copy
import time
import uuid
from pathlib import Path

import numpy as np

from lcsnet_seg.eval.replay import RECORDED, FrameOutput, replay_frames
from lcsnet_seg.image_messages import decode_image
from lcsnet_seg.ros.names import NODE_NAME

WARM_UP_STAMP_NS = 1  # 0 s + 1 ns: no recorded camera frame carries it


def eval_names() -> tuple[str, str, str]:
    """Node name, input topic and player node name for one evaluation, its own (random: processes in separate
    containers share pids), so that a segmentation_node already running in the ROS domain (the robot's), or
    another evaluation on the machine (fleet workers), can neither answer for its node nor feed it frames."""
    token = uuid.uuid4().hex[:8]
    return f"{NODE_NAME}_eval_{token}", f"/lcsnet_eval_{token}/image", f"lcsnet_eval_player_{token}"


TIMED_BY = "label_mask"  # latency and output rate are measured on this output's arrivals
LOCKSTEP_WAIT_S = 30.0  # --rate 0: how long one try waits for the node's answer (a loaded machine is slow)


def replay_through_node(
    frames,
    in_range: int,
    labels,
    writer,
    image_msgtype: str,
    *,
    model: Path,
    backend: str,
    image_topic: str,
    out_dir: Path,
    samples: int,
    rate: float,
    output_prefix: str,
):
    """A bag_eval Replay: the frames through a segmentation_node started for the purpose.

    model/backend: the node's model_path and backend parameters; rate: playback speed (1.0 = the
    bag's timing; 0: lockstep, see the module); out_dir receives node.log. Returns (Scorer, meta)
    like every Replay.
    """
    from lcsnet_seg.backends.model_files import read_model_info
    from lcsnet_seg.eval import bag_io
    from lcsnet_seg.ros.node_harness import NodeHarness

    compressed = image_msgtype == bag_io.COMPRESSED
    store = bag_io.typestore()
    classes = read_model_info(model).classes  # what the node will use: the model's own (ONNX, sidecar, checkpoint)
    node_name, image_topic, player_name = eval_names()
    harness = NodeHarness(
        out_dir / "node.log",
        {"model_path": model, "backend": backend, "input_transport": "compressed" if compressed else "raw"},
        {"image": image_topic, "image/compressed": f"{image_topic}/compressed"},
        input_topic=image_topic + ("/compressed" if compressed else ""),
        outputs=tuple(o.topic for o in RECORDED),
        compressed=compressed,
        player_name=player_name,
        node_name=node_name,
    )
    fps: list[float | None] = [None]

    def message(frame, header=None) -> bytes:
        header = header or frame.header
        out = store.types[image_msgtype]
        if compressed:
            import cv2

            _ok, data = cv2.imencode(".png", frame.image)
            msg = out(header=header, format="png", data=np.frombuffer(data.tobytes(), np.uint8))
        else:
            contiguous = np.ascontiguousarray(frame.image)
            msg = out(
                header=header,
                height=contiguous.shape[0],
                width=contiguous.shape[1],
                encoding=frame.encoding,
                is_bigendian=0,
                step=contiguous.strides[0],
                data=contiguous.reshape(-1),
            )
        return bytes(store.serialize_cdr(msg, image_msgtype))  # rclpy publishes bytes, not memoryview

    def segment(items):
        """Publish every frame at the bag's pace (not waiting for answers: the node may drop frames, as
        deployed), then yield each frame's outputs, or None for a frame the node did not answer."""
        good = list(items)
        if not good:
            raise bag_io.BagError(f"no readable images on {image_topic}")
        first = good[0][1]
        # Warm-up: the node must be up and matched before the timed replay. The warm-up frame carries a stamp
        # of its own (WARM_UP_STAMP_NS, no bag frame's), so its late answers can never pass for a bag frame's.
        warm_header = copy.deepcopy(first.header)
        warm_header.stamp.sec, warm_header.stamp.nanosec = 0, WARM_UP_STAMP_NS
        harness.warm_up(message(first, warm_header), WARM_UP_STAMP_NS, timeout=60.0, topics=(TIMED_BY,))
        sent: dict[int, float] = {}
        t0_bag, t0 = first.log_time, time.perf_counter()
        for _index, frame, _wanted in good:
            raw = message(frame)
            if rate == 0:  # lockstep: the next frame only once this one is answered (or has failed 3 times)
                latency = harness.round_trip(raw, frame.stamp, tries=3, wait_s=LOCKSTEP_WAIT_S)  # every output
                if latency is not None:
                    sent[frame.stamp] = time.perf_counter() - latency / 1e3  # when the answered publish went out
                continue
            due = t0 + (frame.log_time - t0_bag) / 1e9 / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            sent[frame.stamp] = time.perf_counter()
            harness.publish(raw)
        harness.wait_for(sent, TIMED_BY, timeout=5.0)  # what has not come by then counts as without output
        arrivals = sorted(t for t, _raw, _msg in harness.received[TIMED_BY].values())
        fps[0] = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else None
        for index, frame, _wanted in good:
            outputs = {o.topic: harness.output(o.topic, frame.stamp) for o in RECORDED}
            timed = outputs[TIMED_BY]
            if timed is None or frame.stamp not in sent:
                yield index, frame, None
                continue
            arrays, order = {}, "rgb"
            for spec in RECORDED:
                item = outputs[spec.topic]
                if item is not None:
                    msg = item[2]
                    arrays[spec.field] = decode_image(msg)  # the one codec: padded rows, any output encoding
                    if spec.topic == "overlay":
                        order = msg.encoding[:3]
            raws = {topic: item[1] for topic, item in outputs.items() if item is not None}
            yield index, frame, FrameOutput(arrays, order, (timed[0] - sent[frame.stamp]) * 1e3, raws)

    with harness:
        scorer = replay_frames(
            frames,
            in_range,
            labels,
            writer,
            segment,
            num_classes=len(classes),
            samples=samples,
            output_prefix=output_prefix,
            desc="replaying into the node",
        )
        if scorer.counts["frames_without_output"]:
            scorer.warn(
                f"{scorer.counts['frames_without_output']} frames got no output from the node at rate "
                f"{rate}: they are not scored"
            )
    return scorer, {
        "backend": "segmentation_node",
        "device": f"node process (exit {harness.exit_code})",
        "rate": rate,
        "fps": fps[0],
        "class_set": classes,
    }
