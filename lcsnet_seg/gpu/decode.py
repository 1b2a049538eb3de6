"""JPEG decoding on the GPU with nvImageCodec: compressed camera frames -> device memory, on our stream.

``GpuJpegDecoder(device_id, stream_handle).decode([jpeg, ...])`` decodes a batch in one nvImageCodec call and
returns, per frame, a ``DecodedImage`` (a device pointer to H x W x 3 interleaved uint8 RGB, its row pitch and
what owns the memory) or an ``ImageError`` object (not raised) for a frame nvImageCodec refuses, so that the
caller decodes that frame on the CPU (``image_messages.compressed_to_array``) instead. Anything that is not a
JPEG (PNG, empty data), and a header claiming more than ``max_pixels``, is refused without reaching nvImageCodec.
When every frame of a batch of several fails (nvImageCodec reports a failure of the whole call as None for all),
each is decoded once more on its own.

Pixels are those of ``cv2.imdecode(data, cv2.IMREAD_UNCHANGED)`` (the CPU path), in RGB order instead of BGR:
- EXIF orientation is not applied (``DecodeParams(apply_exif_orientation=False)``): OpenCV applies it for
  IMREAD_COLOR but not for IMREAD_UNCHANGED, which the CPU path uses (checked with OpenCV 5.0.0 here).
- chroma is upsampled by interpolation as libjpeg does (decoder option ``:fancy_upsampling=1``; the library's
  own default is not the same in every release).
- a grayscale JPEG comes out as rgb8 with three equal channels, where OpenCV gives mono8: the same image to the
  preprocess.
- only nvImageCodec's GPU decoders are allowed (backend kinds GPU_ONLY and HYBRID_CPU_GPU, the latter being
  the kind under which the nvJPEG CUDA decoder registers; HW_GPU_ONLY, the nvJPEG hardware engine, only when
  asked for): its CPU decoders would copy through a stream of their own, and the CPU path already decodes
  what the GPU refuses.

Stream order: ``decode`` returns once the work is queued; the pixels are ready in stream order on
``stream_handle`` (nvImageCodec makes its internal streams wait on ours before decoding and ours wait on them
afterwards), so work queued later on that stream may read them without a host synchronisation.

Lifetime: the memory belongs to ``DecodedImage.keep`` (the nvImageCodec Image). nvImageCodec allocates it with
cudaMallocAsync on our stream and frees it with cudaFreeAsync on the same stream when the Image is released
(cudaMalloc/cudaFree where stream-ordered allocation is not supported), so releasing it after the last read
has been queued on ``stream_handle`` is safe; a read on any other stream needs ``keep`` until that read has
completed. The pointer differs from frame to frame.

Library logging: ``PYNVIMGCODEC_VERBOSITY`` is set to 0 before the first import, unless already set, so that
a corrupt frame does not print a library warning per frame (the refusal comes back as the frame's error).
Importing nvImageCodec still prints one line for each optional library it lacks (nvJPEG2000, nvTIFF).

What was confirmed about nvImageCodec 0.9.0.20 (nvidia-nvimgcodec-cu13) by importing it on a machine without
a GPU, and what only from its 0.8 sources and docs:
- confirmed by introspection: ``Decoder(device_id=-1, max_num_cpu_threads=0, backends=None, options='')``;
  ``Decoder.decode(list[CodeStream], *, images=None, params=None, cuda_stream=0) -> list`` whose docstring
  says "There is None in returned list on positions which could not be decoded"; ``Backend(BackendKind)``
  with kinds CPU_ONLY, GPU_ONLY, HYBRID_CPU_GPU, HW_GPU_ONLY; ``DecodeParams(apply_exif_orientation=True,
  color_spec=SRGB, allow_any_depth=False, sample_format=I_AUTO_COMPONENTS)``, where I_AUTO_COMPONENTS with
  SRGB gives I_RGB; ``CodeStream(bytes)`` and ``CodeStream(uint8 array)`` (a read-only array is accepted)
  parse the header at once and raise RuntimeError ("Failed to get image info") for data that is not an
  image, else report codec_name ("jpeg"), width, height; ``Image`` has ``__cuda_array_interface__``,
  ``shape`` (H, W, C), ``strides``, ``sample_format``, ``buffer_kind``, ``dtype``; decoding into a
  caller's buffer is not offered: ``images=`` reuses only Images whose buffer nvImageCodec allocated.
  Decoding with the CPU backend here: the interface is version 3, shape (H, W, 3), strides None for
  unpadded rows, I_RGB, pixels equal to OpenCV's; EXIF orientation 6 turns the image with
  apply_exif_orientation=True and not with False; a truncated frame in a batch is None, the others decode.
  Creating a GPU decoder without a GPU raises RuntimeError ("Could not create decoder").
- from the 0.8 sources (python/decoder.cpp, python/image.cpp, src/image_generic_codec.h,
  src/imgproc/device_buffer.cpp) and docs, not run on a GPU here: the decode call waits on the host for the
  decode's host stages, not for the GPU; the output buffer is allocated and freed stream-ordered on the
  ``cuda_stream`` given, and that stream is synchronised with nvImageCodec's own streams by events; the
  interface's ``strides`` are None when rows are unpadded, else (pitch, C, 1), and it has ``stream``;
  the nvJPEG CUDA decoder's kind is HYBRID_CPU_GPU.
- run on an NVIDIA H200 (2026-12-01, test/test_gpu_decode.py, docs/PERFORMANCE.md): decoding into device memory
  on our stream, read back by a copy queued on that stream with no host synchronisation in between; pixels
  within one level of OpenCV's for 99.7 % of samples and at most 3 levels off (nvImageCodec's default options and
  ``:fancy_upsampling=1`` gave the same pixels; ``:fancy_upsampling=0`` was up to 34 off); a frame cut at 3/5 of
  its bytes decodes without an error (as OpenCV's does), hence the end-of-image check below; 1,000 fuzzed frames
  in batches of 16: 710 refused, none raised, good frames right afterwards.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from lcsnet_seg.errors import BackendUnavailable, ImageError
from lcsnet_seg.image_messages import jpeg_truncated

JPEG_MAGIC = b"\xff\xd8\xff"
INSTALL = (
    "pip install nvidia-nvimgcodec-cu13 nvidia-nvjpeg (CUDA 12: nvidia-nvimgcodec-cu12 nvidia-nvjpeg-cu12; "
    "Jetson: nvidia-nvimgcodec-tegra-cu12 or nvidia-nvimgcodec-tegra-cu13)"
)
# nvImageCodec's decoder options (LCSNET_NVIMGCODEC_OPTIONS replaces them, to try another setting without a code
# change): chroma upsampled by interpolation, as libjpeg does (0.9.0's default too, said here for other releases)
DECODER_OPTIONS = os.environ.get("LCSNET_NVIMGCODEC_OPTIONS", ":fancy_upsampling=1")
GPU_BACKEND_KINDS = ("GPU_ONLY", "HYBRID_CPU_GPU")
HARDWARE_BACKEND_KIND = "HW_GPU_ONLY"
MAX_PIXELS = 1 << 26  # 64 megapixels (192 MB decoded): a larger header is refused before any allocation
ENCODINGS = {"I_RGB": ("rgb8", 3), "I_BGR": ("bgr8", 3), "I_Y": ("mono8", 1)}


def _nvimgcodec():
    os.environ.setdefault("PYNVIMGCODEC_VERBOSITY", "0")
    from nvidia import nvimgcodec

    return nvimgcodec


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@lru_cache(maxsize=8)
def nvimgcodec_unavailable_reason(device_id: int = 0) -> str | None:
    """None when nvImageCodec (nvidia-nvimgcodec-cu12/-cu13, or -tegra-cu12/-cu13 on Jetson, with nvidia-nvjpeg)
    is importable and can decode on the GPU; else one line naming what to install.

    "Can decode" is tried, once per process and device: a 16 x 16 JPEG decoded on the device on the default
    stream and read back."""
    try:
        nvimgcodec = _nvimgcodec()
    except ImportError as exc:
        return f"nvImageCodec is not installed ({_first_line(exc)}): {INSTALL}"
    except OSError as exc:  # a library of the wheel that does not load
        return f"nvImageCodec does not load ({_first_line(exc)}): {INSTALL}"
    from lcsnet_seg.gpu import unavailable_reason

    why = unavailable_reason()
    if why:
        return why
    try:
        import cv2

        ok, encoded = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
        decoder = nvimgcodec.Decoder(
            device_id=int(device_id), backends=_backends(nvimgcodec, False), options=DECODER_OPTIONS
        )
        image = decoder.decode(nvimgcodec.CodeStream(encoded.reshape(-1)), params=_params(nvimgcodec))
        if image is None or image.buffer_kind != nvimgcodec.ImageBufferKind.STRIDED_DEVICE:
            return f"nvImageCodec has no GPU JPEG decoder on device {device_id} (is nvJPEG there?): {INSTALL}"
        pixels = np.asarray(image.cpu())
        if pixels.shape != (16, 16, 3) or int(np.abs(pixels.astype(np.int16) - 128).max()) > 2:
            return f"nvImageCodec decoded a test JPEG wrongly on device {device_id} ({pixels.shape})"
    except Exception as exc:  # noqa: BLE001 - any failure here is the reason, in one line
        return f"nvImageCodec cannot decode on GPU {device_id} ({_first_line(exc)}): {INSTALL}"
    return None


def _backends(nvimgcodec, hardware: bool) -> list:
    kinds = GPU_BACKEND_KINDS + ((HARDWARE_BACKEND_KIND,) if hardware else ())
    return [nvimgcodec.Backend(getattr(nvimgcodec.BackendKind, kind)) for kind in kinds]


def _params(nvimgcodec):
    return nvimgcodec.DecodeParams(
        apply_exif_orientation=False, color_spec=nvimgcodec.ColorSpec.SRGB, allow_any_depth=False
    )


def as_bytes(data) -> np.ndarray:
    """bytes, bytearray, memoryview, array('B'), a list of ints or a numpy array -> 1-D uint8 array (no copy
    where the data already is contiguous bytes)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, np.uint8)
    except (TypeError, ValueError, BufferError):
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def is_jpeg(data) -> bool:
    """Whether ``data`` starts as a JPEG does (FF D8 FF): PNG and anything else go to the CPU decoder."""
    try:
        head = as_bytes(data)[:3]
    except (TypeError, ValueError, OverflowError):
        return False
    return head.tobytes() == JPEG_MAGIC


@dataclass
class DecodedImage:
    """One image decoded into device memory: H x W x channels uint8, interleaved, rows ``pitch`` bytes apart.

    ``keep`` owns the memory (the nvImageCodec Image): hold it until the last read of ``ptr`` has been queued
    on the decoder's stream (or, on another stream, has completed)."""

    ptr: int
    height: int
    width: int
    channels: int
    pitch: int
    encoding: str
    keep: object


class GpuJpegDecoder:
    """nvImageCodec's GPU JPEG decoders bound to one device and one CUDA stream (see the module docstring).

    ``hardware``: allow the nvJPEG hardware engine (A100, H100, H200, Jetson Orin) too; it decodes in batches
    and spares the CPU, but its pixels are not checked against OpenCV's here. ``cpu_threads``: nvImageCodec's
    host threads (0: one per core). ``max_pixels``: larger frames are refused (the CPU decoder takes them).
    Calls may come from any thread, one at a time (a lock).
    """

    def __init__(
        self,
        device_id: int,
        stream_handle: int,
        *,
        hardware: bool = False,
        cpu_threads: int = 0,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        why = nvimgcodec_unavailable_reason(int(device_id))
        if why:
            raise BackendUnavailable(f"GPU JPEG decoding unavailable: {why}")
        nvimgcodec = _nvimgcodec()
        self._nv = nvimgcodec
        self.device_id = int(device_id)
        self.stream_handle = int(stream_handle)
        self.max_pixels = int(max_pixels)
        self._lock = threading.Lock()
        self._params = _params(nvimgcodec)
        self._device_kind = nvimgcodec.ImageBufferKind.STRIDED_DEVICE
        self._formats = {getattr(nvimgcodec.SampleFormat, name): value for name, value in ENCODINGS.items()}
        self._decoder: Any = None
        try:
            self._decoder = nvimgcodec.Decoder(
                device_id=self.device_id,
                max_num_cpu_threads=int(cpu_threads),
                backends=_backends(nvimgcodec, hardware),
                options=DECODER_OPTIONS,
            )
        except Exception as exc:  # noqa: BLE001 - one line naming the device
            raise BackendUnavailable(f"nvImageCodec decoder for GPU {device_id}: {_first_line(exc)}") from exc

    def decode(self, datas: Sequence) -> list[DecodedImage | Exception]:
        """Decode a batch of JPEG byte strings in one nvImageCodec call on ``stream_handle`` (stream-ordered).

        Per item: a DecodedImage, or an ImageError object (not raised) for a frame that is not a JPEG or that
        nvImageCodec refuses (corrupt, truncated, unsupported, too large): decode that one on the CPU. Raises
        only for a closed decoder or a CUDA error on the stream afterwards (the context is then unusable)."""
        results: list[DecodedImage | Exception | None] = [None] * len(datas)
        pending: list[tuple[int, int, object]] = []  # (index, size, CodeStream)
        for index, data in enumerate(datas):
            try:
                raw = as_bytes(data)
            except (TypeError, ValueError, OverflowError) as exc:
                results[index] = ImageError(f"compressed frame {index} is not bytes ({type(data).__name__}): {exc}")
                continue
            refusal, stream = self._code_stream(index, raw)
            if refusal is not None:
                results[index] = refusal
            else:
                pending.append((index, raw.size, stream))
        if pending:
            with self._lock:
                if self._decoder is None:
                    raise RuntimeError("GpuJpegDecoder is closed")
                images = self._decode_batch([stream for _, _, stream in pending])
            for (index, size, stream), image in zip(pending, images):
                results[index] = self._decoded(index, size, stream, image)
            self._check_stream()
        return [r if r is not None else ImageError("internal: frame left undecoded") for r in results]

    def _code_stream(self, index: int, raw: np.ndarray) -> tuple[ImageError | None, object]:
        what = f"compressed frame {index} ({raw.size} bytes)"
        if raw.size == 0:
            return ImageError(f"{what} has no data"), None
        if raw[:3].tobytes() != JPEG_MAGIC:
            return ImageError(f"{what} is not a JPEG (starts {raw[:4].tobytes().hex()}); decode it on the CPU"), None
        if jpeg_truncated(raw):  # decoders fill the missing rows with grey: the same refusal as the CPU path's
            return ImageError(f"{what} is a truncated JPEG (no end-of-image marker)"), None
        try:
            stream = self._nv.CodeStream(raw)
            codec, width, height = stream.codec_name, int(stream.width), int(stream.height)
        except Exception as exc:  # noqa: BLE001 - the parser's refusal, as this frame's error
            return ImageError(f"{what}: nvImageCodec cannot parse it ({_first_line(exc)})"), None
        if codec != "jpeg":
            return ImageError(f"{what}: nvImageCodec reads it as {codec!r}, not JPEG"), None
        if width <= 0 or height <= 0 or width * height > self.max_pixels:
            return ImageError(f"{what}: {width} x {height} is outside 1 .. {self.max_pixels} pixels"), None
        return None, stream

    def _decode_batch(self, streams: list) -> list:
        """One batched call; where every frame of a batch of several failed (nvImageCodec turns a failure of the
        whole call into None everywhere), each is tried once more on its own, so one bad frame costs no good one."""
        images = self._decode_call(streams)
        if len(streams) > 1 and all(image is None or isinstance(image, BaseException) for image in images):
            images = [self._decode_call([stream])[0] for stream in streams]
        return images

    def _decode_call(self, streams: list) -> list:
        from cuda.bindings import driver

        context = driver.cuCtxGetCurrent()
        try:
            images = list(self._decoder.decode(streams, params=self._params, cuda_stream=self.stream_handle))
        except Exception as exc:  # noqa: BLE001 - a refused call: its frames go to the CPU
            images = [exc] * len(streams)
        finally:
            if int(context[0]) == 0:  # restore the calling thread's context, whatever the library set
                driver.cuCtxSetCurrent(context[1])
        if len(images) != len(streams):
            images = [RuntimeError(f"nvImageCodec returned {len(images)} images for {len(streams)} frames")] * len(
                streams
            )
        return images

    def _decoded(self, index: int, size: int, stream, image) -> DecodedImage | ImageError:
        what = f"JPEG frame {index} ({size} bytes, {stream.width} x {stream.height})"
        if image is None:
            return ImageError(f"{what}: the GPU decoder refused it (corrupt, truncated or unsupported)")
        if isinstance(image, BaseException):
            return ImageError(f"{what}: the GPU decoder failed ({_first_line(image)})")
        try:
            encoding, channels = self._formats.get(image.sample_format, (None, 0))
            shape = tuple(int(s) for s in image.shape)
            if encoding is None or image.buffer_kind != self._device_kind or np.dtype(image.dtype) != np.uint8:
                return ImageError(
                    f"{what}: decoded as {image.sample_format} {image.dtype} in {image.buffer_kind}, not uint8 "
                    "RGB in device memory"
                )
            if len(shape) != 3 or shape[2] != channels:
                return ImageError(f"{what}: decoded shape {shape} does not fit {encoding}")
            iface = image.__cuda_array_interface__
            strides = iface.get("strides")
            pitch = int(strides[0]) if strides else shape[1] * channels
            if strides and (int(strides[1]) != channels or int(strides[2]) != 1):
                return ImageError(f"{what}: decoded with strides {strides}, not interleaved rows")
            return DecodedImage(
                ptr=int(iface["data"][0]),
                height=shape[0],
                width=shape[1],
                channels=channels,
                pitch=pitch,
                encoding=encoding,
                keep=image,
            )
        except Exception as exc:  # noqa: BLE001 - an Image we cannot read is this frame's error
            return ImageError(f"{what}: the decoded image cannot be read ({_first_line(exc)})")

    def _check_stream(self) -> None:
        """A CUDA error on the stream (sticky: the context is lost) is raised, not hidden in a frame's result."""
        from cuda.bindings import driver

        (err,) = driver.cuStreamQuery(self.stream_handle)
        if err not in (driver.CUresult.CUDA_SUCCESS, driver.CUresult.CUDA_ERROR_NOT_READY):
            raise RuntimeError(f"CUDA error on the stream after GPU JPEG decoding: {err}")

    def close(self) -> None:
        """Release the decoder (idempotent); DecodedImages already returned keep their own memory."""
        with self._lock:
            decoder, self._decoder = self._decoder, None
            if decoder is None:
                return
            from cuda.bindings import driver

            driver.cuStreamSynchronize(self.stream_handle)  # its staging buffers may be in use by queued work
            decoder.__exit__(None, None, None)
