"""The model as the torch_cuda backend runs it: batch norm folded, fp16, channels_last, and, where
a prepared cache exists, compiled by torch.compile (inductor, default mode).

Compiling costs about 25 s with a cold cache, so it is done ahead: ``prepare_compiled_model``
compiles once, which leaves inductor's on-disk cache (generated kernels, FX graphs) in
``cache_dir``, and writes a marker (``MARKER``) naming what the cache was built for: the weights
file's SHA-256, the GPU, the torch version, the input shape, dtype and memory format, and the batch sizes
compiled (``batches``: a compiled model runs only at those; a batch of 3 runs at the next prepared size). A backend
told about ``cache_dir`` compiles only when the marker matches, so the compile reads the warm
cache (seconds); otherwise it runs the uncompiled model and says why in one line.

Inductor's cache directory is process-wide (``TORCHINDUCTOR_CACHE_DIR``): using a cache dir sets
it for the whole process.
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import torch
from torch import nn

from lcsnet_seg.backends.base import sha256_file

MARKER = "lcsnet_compile.json"
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}


class ChannelsLastInput(nn.Module):
    """Hands the model its NCHW input in channels_last memory order (the fp16 convolutions' layout)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last))


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval) with every Conv2d directly followed by a BatchNorm2d in an
    nn.Sequential folded into one convolution: half the kernels for eager and graph alike."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
    return model


def prepare_module(model: nn.Module, device, precision: str = "fp16", channels_last: bool = True) -> nn.Module:
    """The module the GPU runs: folded batch norms, on ``device`` in ``precision``, channels_last."""
    module = fold_batch_norms(model).to(device=device, dtype=PRECISIONS[precision])
    if channels_last:
        # torch's stubs leave memory_format out of Module.to's overloads; Module.to accepts it
        module = ChannelsLastInput(module.to(memory_format=torch.channels_last))  # type: ignore[call-overload]
    return module.eval()


def warm_up(forward, input_shape: tuple[int, ...], device, dtype, runs: int = 2) -> None:
    """Run ``forward`` on a synthetic input as the backend will call it (inference mode, NCHW
    contiguous input): the first call compiles, the same way every time, so the cache is hit."""
    x = torch.randn(input_shape, device=device).to(dtype)
    with torch.inference_mode():
        for _ in range(runs):
            forward(x)
    torch.cuda.synchronize(device)


def compile_facts(weights_path, device, input_shape, precision: str, channels_last: bool) -> dict:
    """What a compile cache is valid for; the marker must equal these to be used."""
    return {
        "weights_sha256": sha256_file(weights_path),
        "gpu": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "input_shape": [int(n) for n in input_shape],
        "dtype": precision,
        "channels_last": bool(channels_last),
        "inductor_mode": "default",
    }


def use_cache_dir(cache_dir) -> Path:
    """Point inductor's on-disk caches (FX graphs, generated kernels, Triton binaries) at cache_dir/inductor."""
    import torch._inductor.config as inductor_config

    path = Path(cache_dir).resolve() / "inductor"
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    inductor_config.fx_graph_cache = True
    return path


def compile_module(module: nn.Module, cache_dir):
    use_cache_dir(cache_dir)
    return torch.compile(module, fullgraph=True, dynamic=False)  # inductor, default mode


def marker_mismatch(cache_dir, facts: dict) -> str | None:
    """None when cache_dir holds a marker matching ``facts``, else why not (a few words)."""
    marker = Path(cache_dir) / MARKER
    if not marker.is_file():
        return f"no {MARKER} there (prepare it with prepare_compiled_model / convert)"
    try:
        found = json.loads(marker.read_text())
    except (OSError, ValueError) as exc:
        return f"{MARKER} is unreadable ({type(exc).__name__})"
    wrong = [key for key, value in facts.items() if found.get(key) != value]
    if wrong:
        return "it was prepared for another " + ", ".join(f"{k} ({found.get(k)!r})" for k in wrong)
    return None


def load_compiled(module: nn.Module, weights_path, cache_dir, device, input_shape, precision: str, channels_last: bool):
    """(forward, status line, batch sizes): the compiled module and the batches it was prepared for where cache_dir
    has a matching marker, else the module itself (any batch: None). The caller warms it up at each batch (which is
    when compiling happens)."""
    if weights_path is None:
        return module, f"uncompiled model: compile dir {cache_dir} given but no weights file to check it against", None
    why = marker_mismatch(cache_dir, compile_facts(weights_path, device, input_shape, precision, channels_last))
    if why:
        return module, f"uncompiled model: compile dir {cache_dir} not used, {why}", None
    batches = prepared_batches(cache_dir)
    sizes = ", ".join(map(str, batches))
    return (
        compile_module(module, cache_dir),
        f"compiled model (torch.compile at batch {sizes}, inductor cache {cache_dir})",
        batches,
    )


def prepared_batches(cache_dir) -> tuple[int, ...]:
    """The batch sizes a (matching) marker says were compiled; (1,) for a marker written before batches existed."""
    found = json.loads((Path(cache_dir) / MARKER).read_text()).get("batches") or [1]
    return tuple(sorted({int(b) for b in found if int(b) >= 1})) or (1,)


def batch_buckets(max_batch: int) -> tuple[int, ...]:
    """The batch sizes to compile for up to ``max_batch`` images: powers of two, and max_batch itself."""
    sizes, size = [], 1
    while size < max_batch:
        sizes.append(size)
        size *= 2
    return (*sizes, int(max_batch))


def prepare_compiled_model(
    weights_path,
    cache_dir,
    device: int | str = 0,
    precision: str = "fp16",
    channels_last: bool = True,
    input_size: tuple[int, int] | None = None,
    max_batch: int = 1,
    batches: tuple[int, ...] | None = None,
) -> dict:
    """Compile the LCSNet weights for this GPU once and leave inductor's cache and the marker in
    ``cache_dir`` (created if missing). ``input_size`` (h, w) defaults to the checkpoint's; ``max_batch``: compile
    for batches up to it too (batch_buckets: 1, 2, 4, ..., max_batch; each size is one compile), or exactly for
    ``batches``.
    Returns the marker written (its facts plus ``compile_seconds``). Takes ~25 s on a cold cache."""
    from lcsnet_seg.errors import BackendUnavailable
    from lcsnet_seg.model.checkpoint import checkpoint_model_info, load_model

    if not torch.cuda.is_available():
        raise BackendUnavailable("preparing a compiled model needs PyTorch with CUDA and a GPU")
    torch_device = torch.device(f"cuda:{device}" if isinstance(device, int) else device)
    model, meta, num_classes = load_model(weights_path)
    h, w = input_size or checkpoint_model_info(meta, num_classes, weights_path).input_size
    shape = (1, 3, int(h), int(w))
    module = prepare_module(model, torch_device, precision, channels_last)
    start = time.perf_counter()
    compiled = compile_module(module, cache_dir)
    batches = tuple(sorted(set(batches))) if batches else batch_buckets(int(max_batch))
    for batch in batches:
        warm_up(compiled, (batch, *shape[1:]), torch_device, PRECISIONS[precision])
    marker = {
        **compile_facts(weights_path, torch_device, shape, precision, channels_last),
        "batches": list(batches),
        "compile_seconds": round(time.perf_counter() - start, 1),
    }
    (Path(cache_dir) / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return marker
