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
import re
import time
import uuid
from pathlib import Path

import numpy as np

from lcsnet_seg.eval.replay import RECORDED, FrameOutput, replay_cameras, ticks
from lcsnet_seg.image_messages import decode_image
from lcsnet_seg.ros.names import NODE_NAME

WARM_UP_STAMP_NS = 1  # 0 s + 1 ns: no recorded camera frame carries it


def eval_names() -> tuple[str, str, str]:
    """Node name, input topic and player node name for one evaluation, its own (random: processes in separate
    containers share pids), so that a segmentation_node already running in the ROS domain (the robot's), or
    another evaluation on the machine (fleet workers), can neither answer for its node nor feed it frames."""
    token = uuid.uuid4().hex[:8]
    return f"{NODE_NAME}_eval_{token}", f"/lcsnet_eval_{token}/image", f"lcsnet_eval_player_{token}"


_CONFIGURED_DECODER = re.compile(r"configured in .*; decoder (gpu|cpu) \(([^)]*)\)(?:; (.*))?$", re.MULTILINE)


def node_decoder(log: str) -> tuple[str, str] | None:
    """The decoder a segmentation_node ran with (``gpu`` or ``cpu``) and its note (why the CPU, where the GPU was
    not available), from the last configure line in its log; None where no configure line names one."""
    found = _CONFIGURED_DECODER.findall(log)
    if not found:
        return None
    name, _library, note = found[-1]
    return name, note.strip()


TIMED_BY = "label_mask"  # latency and output rate are measured on this output's arrivals
LOCKSTEP_WAIT_S = 30.0  # --rate 0: how long one try waits for the node's answer (a loaded machine is slow)


def replay_through_node(
    streams,
    *,
    model: Path,
    backend: str,
    out_dir: Path,
    samples: int,
    rate: float,
    decoder: str = "auto",
):
    """A bag_eval Replay: the frames (bag_eval.BagStreams) through a segmentation_node started for the purpose.

    model/backend/decoder: the node's model_path, backend and decoder parameters; rate: playback speed (1.0 =
    the bag's timing; 0: lockstep, see the module); out_dir receives node.log. Several cameras: the node's
    ``cameras`` parameter takes their names, each camera's frames go to its own input, the frames of a tick
    (replay.ticks) are published together (lockstep: the next tick once the node answered every frame of this
    one). The node's inputs take one message type: CompressedImage where every camera's topic carries it, else
    Image (a compressed camera's frames decoded here). Returns (Replayed, meta) like every Replay.
    """
    from lcsnet_seg.backends.model_files import read_model_info
    from lcsnet_seg.eval import bag_io
    from lcsnet_seg.ros.node_harness import NodeHarness

    cameras = streams.cameras
    several = len(cameras) > 1
    names = [c.name for c in cameras] if several else [""]
    compressed = all(t == bag_io.COMPRESSED for t in streams.msgtypes)
    msgtype = bag_io.COMPRESSED if compressed else bag_io.IMAGE
    store = bag_io.typestore()
    classes = read_model_info(model).classes  # what the node will use: the model's own (ONNX, sidecar, checkpoint)
    node_name, image_topic, player_name = eval_names()
    base = image_topic.rsplit("/", 1)[0]  # /lcsnet_eval_<token>
    parameters: dict[str, object] = {
        "model_path": model,
        "backend": backend,
        "input_transport": "compressed" if compressed else "raw",
        "decoder": decoder if compressed else "cpu",
    }
    if several:
        parameters["cameras"] = names
        remappings = {}
        for name in names:
            remappings[f"{name}/image"] = f"{base}/{name}/image"
            remappings[f"{name}/image/compressed"] = f"{base}/{name}/image/compressed"
        input_topic = f"{base}/{{camera}}/image" + ("/compressed" if compressed else "")
    else:
        remappings = {"image": image_topic, "image/compressed": f"{image_topic}/compressed"}
        input_topic = image_topic + ("/compressed" if compressed else "")
    harness = NodeHarness(
        out_dir / "node.log",
        parameters,
        remappings,
        input_topic=input_topic,
        outputs=tuple(o.topic for o in RECORDED),
        compressed=compressed,
        player_name=player_name,
        node_name=node_name,
        cameras=tuple(names) if several else (),
    )
    timed = [harness.key(TIMED_BY, name) for name in names]
    fps: list[float | None] = [None] * len(names)

    def message(frame, header=None) -> bytes:
        header = header or frame.header
        out = store.types[msgtype]
        if compressed:
            if frame.jpeg is not None and frame.image is None:  # the bag's own JPEG, for the node's decoder
                data, fmt = np.frombuffer(frame.jpeg, np.uint8), "jpeg"
            else:
                import cv2

                _ok, encoded = cv2.imencode(".png", frame.image)
                data, fmt = np.frombuffer(encoded.tobytes(), np.uint8), "png"
            msg = out(header=header, format=fmt, data=data)
        else:
            frame.decode_jpeg()
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
        return bytes(store.serialize_cdr(msg, msgtype))  # rclpy publishes bytes, not memoryview

    def lockstep(tick) -> dict[tuple[int, int], float]:
        """Publish a tick's frames (each to its camera) until the node answered all of them, at most 3 times;
        when each answered frame's publish went out."""
        raws = [(camera, frame, message(frame)) for camera, _, frame, _ in tick]
        for _ in range(3):
            harness._check_alive(f"the outputs of the frames stamped {[f.stamp for _, f, _ in raws]} ns")
            sent = time.perf_counter()
            for camera, _, raw in raws:
                harness.publish(raw, names[camera])
            with harness.arrived:
                if harness.arrived.wait_for(
                    lambda: all(harness.has(f.stamp, topics_of(c)) for c, f, _ in raws), timeout=LOCKSTEP_WAIT_S
                ):
                    break
        return {(c, f.stamp): sent for c, f, _ in raws if harness.has(f.stamp, topics_of(c))}

    def topics_of(camera: int) -> tuple[str, ...]:
        return tuple(harness.key(o.topic, names[camera]) for o in RECORDED)

    def segment(items):
        """Publish every frame at the bag's pace (not waiting for answers: the node may drop frames, as
        deployed), then yield each frame's outputs, or None for a frame the node did not answer."""
        good = list(ticks(items, streams.sync_ns))
        if not good:
            raise bag_io.BagError(f"no readable images on {', '.join(c.name or 'the image topic' for c in cameras)}")
        first = good[0][0][2]
        assert first.header is not None  # a readable frame was deserialised
        # Warm-up: the node must be up and matched before the timed replay. The warm-up frame carries a stamp
        # of its own (WARM_UP_STAMP_NS, no bag frame's), so its late answers can never pass for a bag frame's.
        warm_header = copy.deepcopy(first.header)
        warm_header.stamp.sec, warm_header.stamp.nanosec = 0, WARM_UP_STAMP_NS
        harness.warm_up(message(first, warm_header), WARM_UP_STAMP_NS, timeout=60.0, topics=tuple(timed))
        sent: dict[tuple[int, int], float] = {}
        t0_bag, t0 = first.log_time, time.perf_counter()
        for tick in good:
            if rate == 0:  # lockstep: the next tick only once this one is answered (or has failed 3 times)
                if several:
                    sent.update(lockstep(tick))
                    continue
                _, _, frame, _ = tick[0]
                latency = harness.round_trip(message(frame), frame.stamp, tries=3, wait_s=LOCKSTEP_WAIT_S)
                if latency is not None:
                    sent[(0, frame.stamp)] = time.perf_counter() - latency / 1e3  # when the answered publish went out
                continue
            due = t0 + (tick[0][2].log_time - t0_bag) / 1e9 / rate
            raws = [(camera, frame, message(frame)) for camera, _, frame, _ in tick]
            time.sleep(max(0.0, due - time.perf_counter()))
            for camera, frame, raw in raws:
                sent[(camera, frame.stamp)] = time.perf_counter()
                harness.publish(raw, names[camera])
        for camera, key in enumerate(timed):  # what has not come by then counts as without output
            harness.wait_for([s for c, s in sent if c == camera], key, timeout=5.0)
            arrivals = sorted(t for t, _raw, _msg in harness.received[key].values())
            fps[camera] = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else None
        for number, tick in enumerate(good):
            for camera, index, frame, _wanted in tick:
                name = names[camera]
                outputs = {o.topic: harness.output(harness.key(o.topic, name), frame.stamp) for o in RECORDED}
                answer = outputs[TIMED_BY]
                if answer is None or (camera, frame.stamp) not in sent:
                    yield camera, index, frame, None
                    continue
                arrays, order = {}, "rgb"
                for spec in RECORDED:
                    item = outputs[spec.topic]
                    if item is not None:
                        msg = item[2]
                        arrays[spec.field] = decode_image(msg)  # the one codec: padded rows, any output encoding
                        if spec.topic == "overlay":
                            order = msg.encoding[:3]
                messages = {topic: item[1] for topic, item in outputs.items() if item is not None}
                latency = (answer[0] - sent[(camera, frame.stamp)]) * 1e3
                yield camera, index, frame, FrameOutput(arrays, order, latency, messages, tick=number)

    with harness:
        replayed = replay_cameras(
            streams.frames,
            cameras,
            streams.writer,
            segment,
            num_classes=len(classes),
            samples=samples,
            desc="replaying into the node",
        )
        for scorer in replayed.scorers:
            if scorer.counts["frames_without_output"]:
                scorer.warn(
                    f"{scorer.counts['frames_without_output']} frames got no output from the node at rate "
                    f"{rate}: they are not scored"
                )
    meta: dict = {
        "backend": "segmentation_node",
        "device": f"node process (exit {harness.exit_code})",
        "rate": rate,
        "fps": fps[0],
        "class_set": classes,
    }
    if compressed:  # where the node really decoded (its configure line), not what was asked of it
        said = node_decoder((out_dir / "node.log").read_text(errors="replace"))
        if said is None:
            meta["decoder"], meta["decoder_note"] = decoder, "requested: the node's log does not say what ran"
        else:
            meta["decoder"] = said[0]
            if said[1]:
                meta["decoder_note"] = said[1]
    if several:
        meta["cameras"] = {name: {"fps": f} for name, f in zip(names, fps)}
    return replayed, meta
