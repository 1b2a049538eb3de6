"""GPU JPEG decoding (lcsnet_seg.gpu.decode) against OpenCV's, refusals and a fuzz. The GPU tests need a CUDA GPU,
cuda-python and nvImageCodec (scripts/gpu_wheels.sh, set extra); elsewhere they are skipped with the reason.
The fuzz runs alone with -k fuzz; its size follows LCSNET_TEST_SCALE (1,000 frames at 1.0)."""

import struct
import subprocess
import sys
from functools import lru_cache

import cv2
import numpy as np
import pytest
from conftest import REPO, scale

from lcsnet_seg.errors import BackendUnavailable
from lcsnet_seg.gpu.decode import DecodedImage, GpuJpegDecoder, is_jpeg, nvimgcodec_unavailable_reason

WHY = nvimgcodec_unavailable_reason()
gpu = pytest.mark.skipif(WHY is not None, reason=f"GPU JPEG decoding: {WHY}")
SIZES = [(480, 640), (1080, 1920)]


@lru_cache(maxsize=16)
def scene_rgb(seed: int, height: int, width: int) -> np.ndarray:
    from lcsnet_seg.model.scene import generate_scene

    return generate_scene(seed, height, width)[0]


def encode(rgb: np.ndarray, *params: int, ext: str = ".jpg") -> bytes:
    image = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    ok, data = cv2.imencode(ext, np.ascontiguousarray(image), list(params))
    assert ok
    return data.tobytes()


def jpeg_frame(seed: int, height: int, width: int) -> bytes:
    """An indoor frame at JPEG quality 90, as a camera's compressed stream carries it."""
    return encode(scene_rgb(seed, height, width), cv2.IMWRITE_JPEG_QUALITY, 90)


def opencv_rgb(data: bytes) -> np.ndarray:
    """What the CPU path decodes (image_messages.compressed_to_array: IMREAD_UNCHANGED), as RGB."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., ::-1]


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an APP1 Exif segment holding only an orientation tag (0x0112)."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def download(ctx, image: DecodedImage) -> np.ndarray:
    """The decoded pixels, read back with cuMemcpy2DAsync queued on the decoder's stream right after the decode
    (no synchronisation between: the read relies on the decode being stream-ordered), then synchronised."""
    from cuda.bindings import driver

    from lcsnet_seg.gpu.runtime import check_result

    row = image.width * image.channels
    host = np.empty((image.height, image.width, image.channels), np.uint8)
    copy = driver.CUDA_MEMCPY2D()
    copy.srcMemoryType = driver.CUmemorytype.CU_MEMORYTYPE_DEVICE
    copy.srcDevice = image.ptr
    copy.srcPitch = image.pitch
    copy.dstMemoryType = driver.CUmemorytype.CU_MEMORYTYPE_HOST
    copy.dstHost = host.ctypes.data
    copy.dstPitch = row
    copy.WidthInBytes = row
    copy.Height = image.height
    ctx.activate()
    check_result(driver.cuMemcpy2DAsync(copy, ctx.stream.handle), "cuMemcpy2DAsync")
    ctx.synchronize()
    return host


# nvJPEG's inverse DCT and chroma upsampling are not libjpeg-turbo's: the share of samples within one level of
# OpenCV's, and the most any sample may differ (docs/PERFORMANCE.md has what the H200 machine measured)
WITHIN_ONE = 0.995
MAX_LEVELS = 4


def compare(ctx, image, data: bytes, what: str) -> float:
    """Assert the decoded image is OpenCV's: WITHIN_ONE of its samples within one level, none beyond MAX_LEVELS;
    print and return the fraction that differs at all."""
    assert isinstance(image, DecodedImage), f"{what}: {image}"
    reference = opencv_rgb(data)
    assert (image.height, image.width, image.channels) == reference.shape, what
    assert image.encoding == "rgb8" and image.pitch >= image.width * 3 and image.ptr != 0, what
    diff = np.abs(download(ctx, image).astype(np.int16) - reference.astype(np.int16))
    differs = float(np.mean(diff > 0))
    print(
        f"{what}: max |GPU - OpenCV| = {diff.max()}, {differs:.4%} of samples differ "
        f"({float(np.mean(diff > 1)):.4%} by more than 1), pitch {image.pitch}"
    )
    within = float(np.mean(diff <= 1))
    assert within >= WITHIN_ONE and diff.max() <= MAX_LEVELS, f"{what}: max {diff.max()}, {within:.4%} within 1"
    return differs


@pytest.fixture(scope="module")
def ctx():
    from lcsnet_seg.gpu.runtime import GpuContext

    return GpuContext(0)


@pytest.fixture(scope="module")
def decoder(ctx):
    dec = GpuJpegDecoder(0, int(ctx.stream.handle))
    yield dec
    dec.close()


def test_is_jpeg_tells_jpeg_from_png_and_others():
    rgb = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    jpeg = encode(rgb, cv2.IMWRITE_JPEG_QUALITY, 90)
    for form in (jpeg, bytearray(jpeg), memoryview(jpeg), np.frombuffer(jpeg, np.uint8)):
        assert is_jpeg(form), type(form)
    assert not is_jpeg(encode(rgb, ext=".png"))
    for other in (b"", b"\xff\xd8", b"\x00\xff\xd8\xff", np.zeros(0, np.uint8), b"GIF89a", bytes(range(256))):
        assert not is_jpeg(other), other[:4]


def test_importing_the_decoder_needs_no_nvimgcodec():
    code = (
        "import sys, lcsnet_seg.gpu.decode\n"
        "assert not [m for m in sys.modules if m.startswith(('nvidia', 'cuda'))], sorted(sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.skipif(WHY is None, reason="nvImageCodec decodes on the GPU here")
def test_unavailable_decoder_raises_backend_unavailable_with_the_reason():
    assert "\n" not in WHY and WHY.strip()
    with pytest.raises(BackendUnavailable, match="GPU JPEG decoding unavailable") as info:
        GpuJpegDecoder(0, 0)
    assert WHY in str(info.value)
    print(f"reason: {WHY}")


@gpu
@pytest.mark.parametrize("height,width", SIZES)
def test_gpu_decode_matches_opencv(ctx, decoder, height, width):
    data = jpeg_frame(11, height, width)
    [image] = decoder.decode([data])
    compare(ctx, image, data, f"{width}x{height} q90")


@gpu
def test_gpu_decode_hardware_engine_matches_opencv(ctx):
    """The nvJPEG hardware engine where the GPU has one (A100, H100, H200); nvImageCodec falls back to the CUDA
    decoder where it has not, and this test then checks that again."""
    try:
        hardware = GpuJpegDecoder(0, int(ctx.stream.handle), hardware=True)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    try:
        datas = [jpeg_frame(21 + i, h, w) for i, (h, w) in enumerate(SIZES * 2)]
        for i, (image, data) in enumerate(zip(hardware.decode(datas), datas)):
            compare(ctx, image, data, f"hardware engine, batch item {i}")
    finally:
        hardware.close()


@gpu
def test_gpu_decode_ignores_exif_orientation_as_the_cpu_path_does(ctx, decoder):
    data = with_exif_orientation(jpeg_frame(12, 480, 640), 6)
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (640, 480, 3)  # tag is read
    [image] = decoder.decode([data])
    compare(ctx, image, data, "EXIF orientation 6")


@gpu
@pytest.mark.parametrize(
    "what,params",
    [
        ("progressive", (cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
        (
            "4:4:4",
            (cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444),
        ),
        (
            "4:2:2",
            (cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422),
        ),
        ("odd size", (cv2.IMWRITE_JPEG_QUALITY, 75)),
    ],
)
def test_gpu_decode_variants_match_opencv(ctx, decoder, what, params):
    rgb = scene_rgb(13, 333, 517) if what == "odd size" else scene_rgb(13, 480, 640)
    data = encode(rgb, *params)
    [image] = decoder.decode([data])
    compare(ctx, image, data, what)


@gpu
def test_gpu_decode_grayscale_jpeg_as_three_equal_channels(ctx, decoder):
    gray = cv2.cvtColor(scene_rgb(14, 480, 640), cv2.COLOR_RGB2GRAY)
    data = encode(gray, cv2.IMWRITE_JPEG_QUALITY, 90)
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).ndim == 2  # mono8 on the CPU path
    [image] = decoder.decode([data])
    compare(ctx, image, data, "grayscale")


@gpu
def test_gpu_decode_batch_of_four_1080p_frames_in_one_call(ctx, decoder):
    datas = [jpeg_frame(30 + i, 1080, 1920) for i in range(4)]
    images = decoder.decode(datas)
    assert len(images) == 4
    assert all(isinstance(image, DecodedImage) for image in images), images
    assert len({image.ptr for image in images}) == 4
    for i in (3, 0, 1, 2):  # the last first: read right after the call, behind the whole batch on the stream
        compare(ctx, images[i], datas[i], f"1080p batch item {i}")


@gpu
def test_gpu_decode_refuses_bad_frames_and_decodes_the_good_ones_of_the_batch(ctx, decoder):
    rng = np.random.default_rng(5)
    good = [jpeg_frame(40, 480, 640), jpeg_frame(41, 1080, 1920)]
    bad = {
        "png": encode(scene_rgb(40, 480, 640), ext=".png"),
        "truncated": good[1][: len(good[1]) * 3 // 5],
        "random bytes": rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes(),
        "empty": b"",
        "JPEG header then garbage": b"\xff\xd8\xff" + rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes(),
        "SOI, APP0 then garbage": good[0][:20] + rng.integers(0, 256, 5_000, dtype=np.uint8).tobytes(),
    }
    assert not is_jpeg(bad["png"]) and not is_jpeg(bad["empty"]) and not is_jpeg(bad["random bytes"])
    batch = [good[0], *bad.values(), good[1]]
    results = decoder.decode(batch)
    assert len(results) == len(batch)
    for (what, _), result in zip(bad.items(), results[1:-1]):
        assert isinstance(result, Exception), f"{what}: {result}"
        assert "\n" not in str(result)
        print(f"{what}: {result}")
    compare(ctx, results[0], good[0], "good item before the bad ones")
    compare(ctx, results[-1], good[1], "good item after the bad ones")


def fuzzed(rng: np.random.Generator, bases: list[bytes]) -> tuple[str, bytes]:
    """One fuzzed compressed frame: (kind, data)."""
    base = bytearray(bases[int(rng.integers(len(bases)))])
    kind = ("truncate", "bit flips", "random bytes", "header + random", "marker", "segment length", "size", "splice")[
        int(rng.integers(8))
    ]
    if kind == "truncate":
        return kind, bytes(base[: int(rng.integers(0, len(base)))])
    if kind == "bit flips":
        for pos in rng.integers(0, len(base), int(rng.integers(1, 65))):
            base[pos] ^= 1 << int(rng.integers(8))
        return kind, bytes(base)
    if kind == "random bytes":
        return kind, rng.integers(0, 256, int(rng.integers(0, 30_000)), dtype=np.uint8).tobytes()
    if kind == "header + random":
        return kind, b"\xff\xd8\xff" + rng.integers(0, 256, int(rng.integers(0, 30_000)), dtype=np.uint8).tobytes()
    data = np.frombuffer(bytes(base), np.uint8)
    markers = np.flatnonzero((data[:-1] == 0xFF) & (data[1:] != 0x00) & (data[1:] != 0xFF)) + 1
    if kind == "marker":  # a marker byte replaced, or a marker planted in the entropy-coded data
        for pos in rng.choice(markers, size=min(len(markers), int(rng.integers(1, 4))), replace=False):
            base[pos] = int(rng.integers(256))
        plant = int(rng.integers(2, len(base) - 1))
        base[plant : plant + 2] = bytes([0xFF, int(rng.choice([0xD8, 0xD9, 0xDA, 0xC0, 0xC4, 0xDB, 0xDD, 0xD0]))])
        return kind, bytes(base)
    if kind == "segment length":
        pos = int(rng.choice(markers[:8]))  # the header's segments
        base[pos + 1 : pos + 3] = struct.pack(">H", int(rng.integers(0, 65536)))
        return kind, bytes(base)
    if kind == "size":  # the frame header's height and width (SOF0/SOF2: FF C0/C2, length, precision, H, W)
        sof = [int(p) for p in markers if data[p] in (0xC0, 0xC2)]
        if sof:
            value = int(rng.choice([0, 1, 7, 65535, int(rng.integers(0, 65536))]))
            field = sof[0] + 4 + 2 * int(rng.integers(2))
            base[field : field + 2] = struct.pack(">H", value)
        return kind, bytes(base)
    start = int(rng.integers(0, len(base)))  # splice: a run of random bytes written over the frame
    run = rng.integers(0, 256, int(rng.integers(1, 400)), dtype=np.uint8).tobytes()
    base[start : start + int(rng.integers(1, 400))] = run
    return kind, bytes(base)


@gpu
def test_gpu_decode_fuzz_refuses_without_raising_and_leaves_the_context_healthy(ctx, decoder):
    rng = np.random.default_rng(20_251_201)
    bases = [
        jpeg_frame(50, 240, 320),
        encode(scene_rgb(51, 480, 640), cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        encode(cv2.cvtColor(scene_rgb(52, 240, 320), cv2.COLOR_RGB2GRAY), cv2.IMWRITE_JPEG_QUALITY, 80),
        encode(
            scene_rgb(53, 240, 320),
            cv2.IMWRITE_JPEG_QUALITY,
            95,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
        ),
    ]
    check = jpeg_frame(54, 96, 128)
    total, batch_size = scale(1000, minimum=100), 16
    counts: dict[str, list[int]] = {}  # kind -> [frames, refused]
    escaped: list[str] = []
    done = 0
    while done < total:
        items = [fuzzed(rng, bases) for _ in range(min(batch_size, total - done))]
        slot = int(rng.integers(len(items) + 1))
        datas = [data for _, data in items]
        datas.insert(slot, check)  # a good frame in every batch, anywhere in it
        try:
            results = decoder.decode(datas)
        except Exception as exc:  # noqa: BLE001 - counted: none may escape
            escaped.append(f"{type(exc).__name__}: {exc}")
            done += len(items)
            continue
        assert len(results) == len(datas)
        good = results.pop(slot)
        assert isinstance(good, DecodedImage), good
        for (kind, _), result in zip(items, results):
            tally = counts.setdefault(kind, [0, 0])
            tally[0] += 1
            if isinstance(result, Exception):
                tally[1] += 1
            else:
                assert isinstance(result, DecodedImage) and result.ptr and result.pitch >= result.width * 3
        if done % (batch_size * 16) == 0:
            compare(ctx, good, check, f"good frame in fuzz batch {done // batch_size}")
        done += len(items)
    refused = sum(r for _, r in counts.values())
    print(f"fuzz: {done} frames in batches of {batch_size}, {refused} refused, {done - refused} decoded")
    for kind, (n, r) in sorted(counts.items()):
        print(f"  {kind:>16}: {n:4d} frames, {r:4d} refused")
    assert not escaped, escaped[:5]

    [image] = decoder.decode([check])
    compare(ctx, image, check, "good frame after the fuzz")
    # the context still works: a synchronisation, a round trip through a new device buffer, and a kernel's work
    from cuda.bindings import driver

    from lcsnet_seg.gpu.runtime import check_result

    ctx.synchronize()
    check_result(driver.cuCtxSynchronize(), "cuCtxSynchronize")
    host, view = ctx.pinned_array((4096,), np.uint8)
    back_host, back = ctx.pinned_array((4096,), np.uint8)
    view[:] = np.arange(4096) % 251
    device = ctx.device_buffer(4096)
    ctx.copy_to_device(int(device.handle), int(host.handle), 4096)
    ctx.copy_to_host(int(back_host.handle), int(device.handle), 4096)
    ctx.synchronize()
    assert np.array_equal(back, view)
    [after] = decoder.decode([jpeg_frame(55, 480, 640)])
    compare(ctx, after, jpeg_frame(55, 480, 640), "640x480 after the fuzz")


@gpu
def test_gpu_decoder_close_is_idempotent_and_images_outlive_it(ctx):
    dec = GpuJpegDecoder(0, int(ctx.stream.handle))
    data = jpeg_frame(60, 480, 640)
    [image] = dec.decode([data])
    dec.close()
    dec.close()
    compare(ctx, image, data, "image read after close")
    with pytest.raises(RuntimeError, match="closed"):
        dec.decode([data])
    assert isinstance(dec.decode([b""])[0], Exception)  # nothing to decode: refused, the closed decoder not asked
