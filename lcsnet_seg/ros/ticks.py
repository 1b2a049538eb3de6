"""One tick of the node's frame worker: the newest frame of every camera that has one, segmented in one batch.

Each frame is decoded (a bad one is counted against its camera and left out): JPEG frames of every camera on the
GPU in one batched call where the Segmenter has a GPU decoder (straight into device memory, no host round trip;
a frame it refuses is decoded on the CPU instead, counted and said in one throttled line), the rest on the CPU.
Then all of them go to the Segmenter in one ``segment_batch`` call with the union of the outputs their cameras
want (one backend call, one CUDA graph per batch composition), in the cameras' configured order, and each camera
publishes its own outputs with its own input's header. A frame that spoils the batch call (a failure no decode
caught) costs the tick one retry per frame, one by one, so that only the guilty camera loses its frame. Nothing
here raises: a frame's failure is counted and logged.

A Segmenter that replays CUDA graphs (``fixed_compositions``) needs a graph per composition (which cameras, their
sizes), and capturing one stalls the worker (0.1-0.3 s with the uncompiled torch model on the H200 machine; every
camera's frames meanwhile dropped). So a live camera (one that sent within LastFrames.LIVE_S) without a new frame
in a tick is segmented again from its last frame, its outputs not published: the composition stays that of the
live cameras, one graph, however their frames interleave. A camera that stops drops out after LIVE_S: one new
composition, once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from lcsnet_seg.image_messages import message_to_array
from lcsnet_seg.outputs import OUTPUTS, OutputSpec
from lcsnet_seg.ros.diagnostics import NodeHealth


@dataclass
class _Frame:
    camera: Any  # ros.cameras.Camera
    message: Any
    received_at: float
    wanted: tuple[OutputSpec, ...]
    image: np.ndarray | Any  # host pixels, or a DecodedImage in device memory (gpu/decode.py)
    encoding: str
    decode_ms: float
    stale: bool = False  # a live camera's last frame, segmented again to keep the composition: not published


class LastFrames:
    """The newest decoded frame of each camera, and when it came (see the module docstring)."""

    LIVE_S = 1.0

    def __init__(self) -> None:
        self._frames: dict[int, tuple[_Frame, float]] = {}

    def fill(self, frames: list[_Frame], now: float) -> list[_Frame]:
        """``frames`` (this tick's) kept as their cameras' newest, and with them a stale copy of the last frame of
        every other live camera, in camera order."""
        for frame in frames:
            self._frames[frame.camera.index] = (frame, now)
        present = {frame.camera.index for frame in frames}
        for index, (frame, seen) in list(self._frames.items()):
            if now - seen > self.LIVE_S:
                del self._frames[index]
            elif index not in present and frame.camera.wanted:
                frames.append(
                    _Frame(
                        frame.camera,
                        frame.message,
                        frame.received_at,
                        frame.wanted,
                        frame.image,
                        frame.encoding,
                        0.0,
                        stale=True,
                    )
                )
        return sorted(frames, key=lambda frame: frame.camera.index)

    def clear(self) -> None:
        self._frames.clear()


def process_tick(segmenter, batch: list, health: NodeHealth, logger, last: LastFrames | None = None) -> None:
    """Segment ``batch`` (``[(camera, message, received_at), ...]``) with ``segmenter`` and publish. ``last``: the
    cameras' last frames, to keep a CUDA-graph Segmenter's composition (the module docstring)."""
    if segmenter is None:
        return
    started = time.perf_counter()
    try:
        _tick(segmenter, batch, health, logger, last if getattr(segmenter, "fixed_compositions", False) else None)
    finally:
        health.stats.add("tick", (time.perf_counter() - started) * 1e3)


def _tick(segmenter, batch: list, health: NodeHealth, logger, last: LastFrames | None) -> None:
    # decided before decoding: nobody wants the others' outputs. In the cameras' own order, whatever order their
    # frames came in: the batch's composition (and so its CUDA graph) depends only on which cameras are in it
    wanted = sorted((item for item in batch if item[0].wanted), key=lambda item: item[0].index)
    on_gpu = _gpu_decode(segmenter, wanted, health, logger)
    decoded = (on_gpu.get(i) or _decode(item, health, logger) for i, item in enumerate(wanted))
    frames = [frame for frame in decoded if frame is not None]
    if not frames:
        return
    if last is not None:
        frames = last.fill(frames, time.perf_counter())
    fields = {o.field for frame in frames for o in frame.wanted}
    outputs = tuple(o.field for o in OUTPUTS if o.field in fields)
    start = time.perf_counter()
    try:
        results: list = segmenter.segment_batch([(f.image, f.encoding) for f in frames], outputs)
    except Exception as exc:  # noqa: BLE001 - one frame must not cost the others theirs
        if len(frames) == 1:
            health.frame_lost_to(exc, frames[0].camera, logger)
            return
        results = [None if f.stale else _alone(segmenter, f, outputs, health, logger) for f in frames]
    segmented = time.perf_counter()
    for frame, result in zip(frames, results):
        if result is not None and not frame.stale:
            _publish(frame, result, segmented - start, len(frames), health, logger)


def _gpu_decode(segmenter, items: list, health: NodeHealth, logger) -> dict[int, _Frame]:
    """The JPEG frames among ``items`` decoded on the GPU in one call, by their index; those it refuses are left
    for the CPU decoder (counted as decode_fallbacks, said in one throttled line)."""
    if getattr(segmenter, "jpeg_decoder", None) is None:
        return {}
    from lcsnet_seg.gpu.decode import is_jpeg

    jpegs = [i for i, (_, message, _) in enumerate(items) if hasattr(message, "format") and is_jpeg(message.data)]
    if not jpegs:
        return {}
    t0 = time.perf_counter()
    try:
        decoded = segmenter.decode_jpegs([items[i][1].data for i in jpegs])
    except Exception as exc:  # noqa: BLE001 - the whole call failed: every frame goes to the CPU decoder
        decoded = [exc] * len(jpegs)
    decode_ms = (time.perf_counter() - t0) * 1e3
    frames = {}
    for i, image in zip(jpegs, decoded):
        camera, message, received_at = items[i]
        if isinstance(image, BaseException):
            fallbacks = health.count(camera, "decode_fallbacks")
            logger.warning(
                f"the GPU decoder refused a JPEG frame on {camera.topic} ({image}); decoded on the CPU instead "
                f"({fallbacks} so far)",
                throttle_duration_sec=5.0,
            )
            continue
        frames[i] = _Frame(camera, message, received_at, camera.wanted, image, image.encoding, decode_ms)
    return frames


def _decode(item, health: NodeHealth, logger) -> _Frame | None:
    camera, message, received_at = item
    wanted = camera.wanted
    t0 = time.perf_counter()
    try:
        image, encoding = message_to_array(message)
    except Exception as exc:  # noqa: BLE001 - a frame must never take the node down
        health.frame_lost_to(exc, camera, logger)
        return None
    return _Frame(camera, message, received_at, wanted, image, encoding, (time.perf_counter() - t0) * 1e3)


def _alone(segmenter, frame: _Frame, outputs: tuple[str, ...], health: NodeHealth, logger):
    try:
        return segmenter(frame.image, frame.encoding, outputs=outputs)
    except Exception as exc:  # noqa: BLE001 - a frame must never take the node down
        health.frame_lost_to(exc, frame.camera, logger)
        return None


def _publish(frame: _Frame, result, segment_s: float, batch: int, health: NodeHealth, logger) -> None:
    t0 = time.perf_counter()
    try:
        frame.camera.publish(frame.message.header, frame.wanted, result)
    except Exception as exc:  # noqa: BLE001 - a frame must never take the node down
        health.frame_lost_to(exc, frame.camera, logger)
        return
    t1 = time.perf_counter()
    timings = dict(result.timings_ms)
    timings.setdefault("total", segment_s * 1e3)
    latency_ms = (t1 - frame.received_at) * 1e3
    health.processed(frame.camera, frame.decode_ms, timings, (t1 - t0) * 1e3, latency_ms, batch)
