"""The host side of the GPU path that needs no GPU: copying a raw frame into staging memory."""

import numpy as np
import pytest


@pytest.mark.parametrize("threads", [1, 3, 4])
@pytest.mark.parametrize("nbytes", [1000, 2 << 20, 1920 * 1080 * 3 + 77])
def test_host_copier_copies_every_byte_once(threads, nbytes):
    from lcsnet_seg.gpu.frames import HostCopier

    src = np.random.default_rng(nbytes).integers(0, 256, nbytes + 64, dtype=np.uint8)
    dst = np.zeros(nbytes + 64, np.uint8)
    copier = HostCopier(threads=threads)
    copier(dst.ctypes.data + 8, src.ctypes.data + 8, nbytes)
    copier.close()
    np.testing.assert_array_equal(dst[8 : 8 + nbytes], src[8 : 8 + nbytes])
    assert not dst[:8].any() and not dst[8 + nbytes :].any()  # nothing written outside the span
