"""One frame geometry of the GPU Segmenter, and the device and page-locked host memory that serves it.

A geometry (``FrameGeometry``) is everything a frame's GPU work depends on: each image's size, row
step, channels and encoding, where it comes from (host memory, or device memory: a JPEG the GPU decoded),
its output size, and the outputs asked for. It is the one key of the eager buffers and of the graph cache.
``FrameBuffers`` holds, for one geometry:

- the staging area: the raw host images back to back as they lie in the callers' arrays (row padding
  included, each 256-byte aligned), then the float32 overlay alpha; one host-to-device copy moves
  them all, so a captured CUDA graph reads the alpha of the frame at hand; the images already on the
  device follow in device memory only, each copied there on the stream before the frame runs (the
  decoder's buffer is another one every frame; the copy is a few microseconds even at 1080p);
- the output arena: every requested output of every image back to back (each 256-byte aligned) in
  device memory with a pinned twin, so one device-to-host copy returns them all;
- the kernels' argument packs (kernel_args.py), filled and copied to the device once, and the
  launch configurations: a frame launches each kernel with one prepared pointer.
"""

from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lcsnet_seg.gpu.kernel_args import POSTPROCESS_ARGS, PREPROCESS_ARGS
from lcsnet_seg.image_formats import pixel_format
from lcsnet_seg.outputs import OUTPUTS as OUTPUT_TABLE

OUTPUT_PLANES = {o.field: (o.channels, o.dtype) for o in OUTPUT_TABLE}  # the one output table's
ALIGN = 256


def _align(n: int, to: int = ALIGN) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class ImageGeometry:
    """One image of a frame: height x width x channels uint8 with rows ``step`` bytes apart, in ``encoding``,
    and the out_h x out_w size of its outputs."""

    height: int
    width: int
    channels: int
    step: int
    encoding: str
    out_h: int
    out_w: int
    on_device: bool = False

    @classmethod
    def of(cls, image, encoding: str, out_hw: tuple[int, int]) -> ImageGeometry:
        """``image``: H x W x C (checked by segmentation.check_request), or a DeviceImage."""
        if is_device_image(image):
            out_h, out_w = int(out_hw[0]), int(out_hw[1])
            return cls(image.height, image.width, image.channels, image.pitch, encoding, out_h, out_w, True)
        h, w, c = image.shape
        return cls(h, w, c, image.strides[0], encoding, int(out_hw[0]), int(out_hw[1]))

    @property
    def nbytes(self) -> int:
        """The bytes the image spans in memory: every row's step but the last one's, then its pixels."""
        return self.step * (self.height - 1) + self.width * self.channels


class DeviceImage(Protocol):
    """An image already in device memory (gpu/decode.py's DecodedImage): H x W x channels uint8 at ``ptr``, rows
    ``pitch`` bytes apart, in ``encoding``."""

    ptr: int
    height: int
    width: int
    channels: int
    pitch: int
    encoding: str


def is_device_image(image) -> bool:
    return not isinstance(image, np.ndarray) and all(
        hasattr(image, name) for name in ("ptr", "height", "width", "channels", "pitch", "encoding")
    )


@dataclass(frozen=True)
class FrameGeometry:
    """The images of one Segmenter call (a batch of one or more) and the outputs asked for (labels first)."""

    images: tuple[ImageGeometry, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class NetworkLayout:
    """What the model's buffers look like: input 3 x in_h x in_w of in_dtype per image, logits
    classes x logit_h x logit_w of logits_dtype per image (the backend's real output size)."""

    in_h: int
    in_w: int
    in_dtype: np.dtype
    classes: int
    logit_h: int
    logit_w: int
    logits_dtype: np.dtype

    @property
    def input_bytes(self) -> int:
        return 3 * self.in_h * self.in_w * self.in_dtype.itemsize

    @property
    def logits_bytes(self) -> int:
        return self.classes * self.logit_h * self.logit_w * self.logits_dtype.itemsize


class FrameBuffers:
    """Buffers, argument packs and launch configurations for one FrameGeometry (see the module).

    ``input_ptr`` / ``logits_ptr``: the model's buffers (one per image, back to back), owned by the caller;
    ``palette_ptr``: the 256 x 3 palette on the device; ``pre`` / ``post``: the kernels (GpuPreprocess,
    GpuPostprocess); ``channel_maps``, ``scale``, ``offset``: the normalisation (preprocess.py)."""

    def __init__(
        self,
        ctx,
        geometry: FrameGeometry,
        network: NetworkLayout,
        *,
        input_ptr: int,
        logits_ptr: int,
        palette_ptr: int,
        pre,
        post,
        channel_maps: list,
        scale,
        offset,
    ) -> None:
        self.geometry = geometry
        self._ctx = ctx
        images = geometry.images
        # staging: host images back to back, then the alpha; device images after them, on the device only
        self.image_offsets, end = [0] * len(images), 0
        for i, image in enumerate(images):
            if not image.on_device:
                self.image_offsets[i] = end
                end = _align(end + image.nbytes)
        self.alpha_offset = end
        self.staged_bytes = end + 16
        end = _align(self.staged_bytes)
        for i, image in enumerate(images):
            if image.on_device:
                self.image_offsets[i] = end
                end = _align(end + image.nbytes)
        self.staging, staging_view = ctx.pinned_array((self.staged_bytes,), np.uint8)
        self.staging_ptr = int(self.staging.handle)
        self.alpha_host = staging_view[self.alpha_offset : self.alpha_offset + 4].view(np.float32)
        self.image_dev = ctx.device_buffer(end)
        self.image_ptr = int(self.image_dev.handle)
        # outputs: image by image, output by output
        layout, end = [], 0
        for image in images:
            planes_of = {}
            for name in geometry.outputs:
                planes, dtype = OUTPUT_PLANES[name]
                shape = (image.out_h, image.out_w, planes) if planes > 1 else (image.out_h, image.out_w)
                nbytes = image.out_h * image.out_w * planes * np.dtype(dtype).itemsize
                planes_of[name] = (end, nbytes, shape, dtype)
                self.outputs_bytes = end + nbytes  # the span one copy moves
                end = _align(end + nbytes)
            layout.append(planes_of)
        self.out_dev = ctx.device_buffer(end)
        self._out_host, arena = ctx.pinned_array((max(end, 1),), np.uint8)
        base = int(self.out_dev.handle)
        self.arena_host_ptr, self.arena_dev_ptr = int(self._out_host.handle), base
        self.host = [
            {name: arena[o : o + n].view(dt).reshape(shape) for name, (o, n, shape, dt) in planes.items()}
            for planes in layout
        ]
        dev = [{name: base + o for name, (o, _, _, _) in planes.items()} for planes in layout]
        # the argument packs: preprocess records, then postprocess records, in one device buffer
        pre_args, post_args = PREPROCESS_ARGS.records(len(images)), POSTPROCESS_ARGS.records(len(images))
        for i, image in enumerate(images):
            src = self.image_ptr + self.image_offsets[i]
            pre.fill(
                pre_args[i],
                src=src,
                src_w=image.width,
                src_h=image.height,
                src_step=image.step,
                channels=image.channels,
                channel_map=channel_maps[i],
                dst=input_ptr + i * network.input_bytes,
                dst_w=network.in_w,
                dst_h=network.in_h,
                scale=scale,
                offset=offset,
            )
            post.fill(
                post_args[i],
                logits=logits_ptr + i * network.logits_bytes,
                net_w=network.logit_w,
                net_h=network.logit_h,
                img=src,
                img_w=image.width,
                img_h=image.height,
                img_step=image.step,
                channels=image.channels,
                out_w=image.out_w,
                out_h=image.out_h,
                palette=palette_ptr,
                alpha=self.image_ptr + self.alpha_offset,
                overlay_bgr=pixel_format(image.encoding).output_order == "bgr",
                outputs=dev[i],
            )
        post_offset = _align(pre_args.nbytes, 16)
        args_bytes = post_offset + post_args.nbytes
        self._args_host, args_view = ctx.pinned_array((args_bytes,), np.uint8)
        args_view[: pre_args.nbytes] = pre_args.view(np.uint8)
        args_view[post_offset:] = post_args.view(np.uint8)
        self.args_dev = ctx.device_buffer(args_bytes)
        ctx.copy_to_device(int(self.args_dev.handle), int(self._args_host.handle), args_bytes)
        ctx.synchronize()  # the packs are on the device before any frame (and any capture) reads them
        self.pre_args = np.uint64(int(self.args_dev.handle))
        self.post_args = np.uint64(int(self.args_dev.handle) + post_offset)
        self.pre_config = pre.launch_config(network.in_w, network.in_h, len(images))
        self.post_config = post.launch_config(max(i.out_w for i in images), max(i.out_h for i in images), len(images))

    def stage(self, copier, images: list, alpha: float) -> None:
        """Copy the callers' host images (as they lie in memory, row padding included) and the alpha into staging,
        and queue the copies of the device images on the stream (ahead of the frame's work)."""
        for offset, geometry, image in zip(self.image_offsets, self.geometry.images, images):
            if geometry.on_device:
                self._ctx.copy_on_device(self.image_ptr + offset, int(image.ptr), geometry.nbytes)
            else:
                copier(self.staging_ptr + offset, image.__array_interface__["data"][0], geometry.nbytes)
        self.alpha_host[0] = alpha

    def close(self) -> None:
        """Free the device memory now (after the stream has finished with it). The pinned memory
        goes when the last result array viewing it does."""
        if self.image_dev is not None:
            self._ctx.activate()
            for buffer in (self.image_dev, self.out_dev, self.args_dev):
                buffer.close()
            self.image_dev = self.out_dev = self.args_dev = None


class HostCopier:
    """Copies a raw frame into pinned staging. One thread copies about 11 GB/s (measured on the H200
    machine), so a 1920x1080 rgb8 frame alone took 0.55 ms: copies of ``parallel_bytes`` or more
    are split over ``threads`` threads (the caller's included; memmove releases the GIL)."""

    def __init__(self, threads: int = 4, parallel_bytes: int = 2 << 20) -> None:
        self.threads = max(1, int(threads))
        self.parallel_bytes = int(parallel_bytes)
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, dst: int, src: int, nbytes: int) -> None:
        if nbytes < self.parallel_bytes or self.threads == 1:
            ctypes.memmove(dst, src, nbytes)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="lcsnet_staging")
        share = _align(-(-nbytes // self.threads), 4096)
        futures = [
            self._pool.submit(ctypes.memmove, dst + offset, src + offset, min(share, nbytes - offset))
            for offset in range(share, nbytes, share)
        ]
        ctypes.memmove(dst, src, min(share, nbytes))
        for future in futures:
            future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
