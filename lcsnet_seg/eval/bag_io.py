"""rosbag2 recordings (sqlite3 or mcap) read and written with the `rosbags` library; no ROS install needed.

rosbags' CDR serialisation produces the same bytes as rclpy's, so messages read here can be
published by rclpy as they are, and rclpy's serialised messages can be written here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lcsnet_seg.errors import ConfigError, ImageError, LcsnetError
from lcsnet_seg.image_messages import compressed_to_array, decode_image, image_fields, image_to_array

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.typesys.stores.latest import std_msgs__msg__Header

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED)


class BagError(LcsnetError):
    """A bag is missing, unreadable, empty, or lacks the requested topic."""


def typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.LATEST)


def open_reader(path):
    from rosbags.rosbag2 import Reader, ReaderError

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} not found; pass a rosbag2 folder (metadata.yaml with .db3 or .mcap files)")
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, OSError, ValueError, KeyError) as exc:
        raise BagError(
            f"bag {path} could not be read ({type(exc).__name__}: {str(exc)[:200]}); "
            "is it a complete rosbag2 recording?"
        ) from None
    if reader.message_count == 0:
        reader.close()
        raise BagError(f"bag {path} contains no messages")
    return reader


def storage_of(reader) -> str:
    """'sqlite3' or 'mcap', as recorded in the bag's metadata.yaml."""
    import yaml

    doc = yaml.safe_load((Path(reader.path) / "metadata.yaml").read_text())
    return doc["rosbag2_bagfile_information"]["storage_identifier"]


def topic_types(reader) -> dict[str, str]:
    return {c.topic: c.msgtype for c in reader.connections}


def connection(reader, topic: str, allowed: tuple[str, ...], role: str):
    """The connection of ``topic``; a clear error listing the bag's topics when it is missing or mistyped."""
    types = topic_types(reader)
    if topic not in types:
        listing = ", ".join(f"{t} ({m})" for t, m in sorted(types.items()))
        raise BagError(f"{role} topic {topic} is not in bag {reader.path}; its topics are: {listing}")
    if types[topic] not in allowed:
        raise BagError(f"{role} topic {topic} carries {types[topic]}; expected {' or '.join(allowed)}")
    return next(c for c in reader.connections if c.topic == topic)


def stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def decode_frame(msg, msgtype: str) -> tuple[np.ndarray, str]:
    """A rosbags Image/CompressedImage -> (H x W x C uint8, encoding); ImageError when it cannot be used."""
    return compressed_to_array(msg) if msgtype == COMPRESSED else image_to_array(msg)


@dataclass
class Frame:
    log_time: int  # bag receive time, ns
    stamp: int  # header stamp, ns
    header: std_msgs__msg__Header | None  # the rosbags header (copied into outputs); None if not deserialised
    image: np.ndarray | None  # image and encoding: both set, or both None with ``error`` or with ``jpeg``
    encoding: str | None
    error: str | None = None
    jpeg: bytes | None = None  # a JPEG frame's data, left undecoded (read_frames(keep_jpeg=True)): decode_jpeg()

    def decode_jpeg(self) -> None:
        """Decode ``jpeg`` on the CPU (as read_frames does) into image and encoding; ImageError when it cannot."""
        if self.image is None and self.jpeg is not None:
            self.image, self.encoding = compressed_to_array(_Compressed("jpeg", self.jpeg))


@dataclass
class _Compressed:  # what compressed_to_array reads of a CompressedImage
    format: str
    data: bytes


def read_frames(
    reader, conn, start_ns: int | None = None, stop_ns: int | None = None, stride: int = 1, keep_jpeg: bool = False
) -> Iterator[Frame]:
    """Frames of an image topic in log-time order; an undecodable message yields a Frame with ``error``.
    keep_jpeg: JPEG frames of a CompressedImage topic come undecoded (``jpeg``; image and encoding None) for
    a decoder of the caller's (the GPU's), the other frames decoded as ever."""
    for _, frame in read_camera_frames(reader, [conn], start_ns, stop_ns, stride, keep_jpeg):
        yield frame


def read_camera_frames(
    reader, conns, start_ns: int | None = None, stop_ns: int | None = None, stride: int = 1, keep_jpeg: bool = False
) -> Iterator[tuple[int, Frame]]:
    """(position of its connection in ``conns``, Frame) for the frames of several image topics, in log-time
    order; ``stride`` counts each topic's own messages. See read_frames."""
    from lcsnet_seg.gpu.decode import is_jpeg

    store = typestore()
    position = {c.id: i for i, c in enumerate(conns)}
    seen = [0] * len(conns)
    for conn, log_time, raw in reader.messages(connections=list(conns), start=start_ns, stop=stop_ns):
        camera = position[conn.id]
        seen[camera] += 1
        if (seen[camera] - 1) % stride:
            continue
        try:
            msg = store.deserialize_cdr(raw, conn.msgtype)
        except Exception as exc:  # noqa: BLE001 - a corrupt record must not end the run
            error = f"message could not be deserialised ({type(exc).__name__})"
            yield camera, Frame(log_time, -1, None, None, None, error)
            continue
        if keep_jpeg and conn.msgtype == COMPRESSED and is_jpeg(msg.data):
            yield camera, Frame(log_time, stamp_ns(msg.header), msg.header, None, None, jpeg=bytes(msg.data))
            continue
        try:
            image, encoding = decode_frame(msg, conn.msgtype)
            yield camera, Frame(log_time, stamp_ns(msg.header), msg.header, image, encoding)
        except ImageError as exc:
            yield camera, Frame(log_time, stamp_ns(msg.header), msg.header, None, None, str(exc))


class LabelIndex:
    """Ground-truth label images of a topic, looked up by header stamp within a tolerance."""

    def __init__(self, reader, conn, tolerance_ns: int) -> None:
        self._reader, self._conn, self._tolerance = reader, conn, tolerance_ns
        self._store = typestore()
        stamps, times = [], []
        for _, log_time, raw in reader.messages(connections=[conn]):
            stamps.append(stamp_ns(self._store.deserialize_cdr(raw, conn.msgtype).header))
            times.append(log_time)
        order = np.argsort(stamps)
        self._stamps = np.asarray(stamps, np.int64)[order]
        self._times = np.asarray(times, np.int64)[order]

    def __len__(self) -> int:
        return len(self._stamps)

    def find(self, stamp: int) -> np.ndarray | None:
        """The H x W uint8 label image whose stamp is nearest to ``stamp`` within the tolerance, else None."""
        if not len(self._stamps):
            return None
        i = int(np.searchsorted(self._stamps, stamp))
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self._stamps)]
        j = min(candidates, key=lambda k: abs(int(self._stamps[k]) - stamp))
        if abs(int(self._stamps[j]) - stamp) > self._tolerance:
            return None
        target_time, target_stamp = int(self._times[j]), int(self._stamps[j])
        for _, _, raw in self._reader.messages(connections=[self._conn], start=target_time, stop=target_time + 1):
            msg = self._store.deserialize_cdr(raw, self._conn.msgtype)
            if stamp_ns(msg.header) != target_stamp:
                continue
            if msg.encoding not in ("mono8", "8UC1"):
                raise ImageError(f"label image encoding {msg.encoding!r}; ground truth must be mono8 class ids")
            return decode_image(msg, "mono8")
        return None


class BagWriter:
    """Writes Image messages to a new bag (same storage as the input)."""

    def __init__(self, path, storage: str, choose_another: str = "choose another --out-dir") -> None:
        """``choose_another``: how the caller's user names another place, for the error on an existing path."""
        from rosbags.rosbag2 import StoragePlugin, Writer

        path = Path(path)
        if path.exists():
            raise ConfigError(f"output bag {path} already exists; remove it or {choose_another}")
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(path, version=9, storage_plugin=plugin)
        self._writer.open()
        self._store = typestore()
        self._connections: dict[str, Connection] = {}

    def write_image(self, topic: str, log_time: int, header, array: np.ndarray, encoding: str) -> None:
        store = self._store
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, IMAGE, typestore=store)
        msg = store.types[IMAGE](header=header, **image_fields(array, encoding))
        self._writer.write(self._connections[topic], log_time, store.serialize_cdr(msg, IMAGE))

    def write_raw(self, topic: str, msgtype: str, log_time: int, raw: bytes) -> None:
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self._store)
        self._writer.write(self._connections[topic], log_time, raw)

    def close(self) -> None:
        self._writer.close()


def bag_image_batches(path, topic: str, info, limit: int):
    """Normalised 1 x 3 x H x W batches from an image topic of a bag (INT8 calibration)."""
    from lcsnet_seg.image_formats import pixel_format
    from lcsnet_seg.preprocess import preprocess

    reader = open_reader(path)
    try:
        conn = connection(reader, topic, IMAGE_TYPES, "calibration image")
        count = 0
        for frame in read_frames(reader, conn):
            if frame.image is None or frame.encoding is None:
                continue
            yield preprocess(frame.image, pixel_format(frame.encoding), info)
            count += 1
            if count >= limit:
                break
    finally:
        reader.close()
