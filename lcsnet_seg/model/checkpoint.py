"""Load PyTorch weights safely and fit them to an architecture, reporting mismatches by name."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from pathlib import Path

from lcsnet_seg.errors import ConfigError, ModelFileError
from lcsnet_seg.model_info import COLOR_ORDER_KEY, DEFAULT_INPUT_SIZE, IMAGENET_MEAN, IMAGENET_STD, ModelInfo

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")
# What a checkpoint may carry beside its weights (docs/MODELS.md, "What a checkpoint may carry"). Each is optional;
# what is absent comes from config/classes.yaml (classes) or the defaults in model_info.py.
INFO_KEY = "lcsnet_seg"  # the whole ModelInfo, as the JSON object convert writes into the ONNX metadata
CHECKPOINT_FACTS = ("classes", "palette", "input_size", "mean", "std", "color_order", "model_name", "model_version")


def load_checkpoint(path) -> tuple[dict, dict]:
    """Read a .pth with ``torch.load(weights_only=True)``; never unpickles arbitrary objects.

    Accepts a bare state_dict or a checkpoint dict holding one under a usual key. Returns
    (state_dict, the checkpoint's other entries). A leading "module." (DataParallel) is removed.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"weights file {path} not found; pass an existing .pth file")
    if path.stat().st_size == 0:
        raise ModelFileError(f"weights file {path} is empty")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = str(exc).strip().splitlines()
        if not any("Unsupported global" in line for line in detail):  # else corrupt, not hostile
            raise ModelFileError(
                f"weights file {path} is not a readable PyTorch checkpoint (not a torch.save file, or truncated)"
            ) from None
        why = next((line.strip() for line in detail if "Unsupported global" in line or "GLOBAL" in line), "")
        raise ModelFileError(
            f"weights file {path} was refused: it holds objects other than tensors and plain "
            f"containers, which are only loaded from trusted code ({why or 'unsafe pickle'}); "
            "save a plain state_dict with torch.save(model.state_dict(), path)"
        ) from None
    except Exception as exc:  # RuntimeError (not a zip/pickle), EOFError (truncated), ...
        raise ModelFileError(
            f"weights file {path} is not a readable PyTorch checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"
        ) from None
    if not isinstance(obj, dict):
        raise ModelFileError(f"weights file {path} holds a {type(obj).__name__}, not a state_dict")
    extra: dict = {}
    for key in STATE_DICT_KEYS:
        if isinstance(obj.get(key), dict):
            extra = {k: v for k, v in obj.items() if k != key}
            obj = obj[key]
            break
    if not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelFileError(
            f"weights file {path} has no state_dict of tensors (looked at the top level and under "
            f"{', '.join(STATE_DICT_KEYS)})"
        )
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in obj.items()}
    return state, extra


def build_architecture(arch: str, num_classes: int):
    """A model from the built-in registry (``lcsnet``) or a user factory ``package.module:function``.

    The factory is called as ``function(num_classes=num_classes)`` and must return a torch.nn.Module.
    The module is looked up in the current directory first (``--arch models:build`` finds
    ./models.py), then on sys.path. Every failure is one ModelFileError line.
    """
    import torch

    from lcsnet_seg.model.lcsnet import ARCHITECTURES

    if arch in ARCHITECTURES:
        return ARCHITECTURES[arch](num_classes=num_classes)
    if ":" not in arch:
        raise ModelFileError(
            f"architecture {arch!r} is unknown; use one of {sorted(ARCHITECTURES)} "
            "or a factory as package.module:function"
        )
    module_name, func_name = arch.split(":", 1)
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        factory = _import_factory(arch, module_name, func_name, cwd)
        _check_takes_num_classes(arch, factory)
        try:
            model = factory(num_classes=num_classes)
        except Exception as exc:  # the user's code: any failure becomes one line
            raise ModelFileError(
                f"architecture factory {arch!r} failed when called with num_classes={num_classes} ({_first_line(exc)})"
            ) from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    if not isinstance(model, torch.nn.Module):
        raise ModelFileError(
            f"architecture factory {arch!r} returned a {type(model).__name__}, not a "
            "torch.nn.Module; make it return the model"
        )
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def _import_factory(arch: str, module_name: str, func_name: str, cwd: str):
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ModelFileError(
                f"architecture factory {arch!r}: module {module_name!r} not found in the current "
                f"directory ({cwd}) or on the Python path"
            ) from None
        raise ModelFileError(
            f"architecture factory {arch!r}: importing {module_name!r} failed ({_first_line(exc)})"
        ) from None
    except Exception as exc:  # the user's module raised while being imported
        raise ModelFileError(
            f"architecture factory {arch!r}: importing {module_name!r} failed ({_first_line(exc)})"
        ) from None
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise ModelFileError(f"architecture factory {arch!r}: module {module_name!r} has no function {func_name!r}")
    return factory


def _check_takes_num_classes(arch: str, factory) -> None:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return
    if not any(p.name == "num_classes" or p.kind is p.VAR_KEYWORD for p in params):
        raise ModelFileError(
            f"architecture factory {arch!r} takes no num_classes argument; convert calls it as "
            f"{arch.split(':', 1)[1]}(num_classes=N): add that parameter"
        )


def _names(keys, limit: int = 6) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def fit_weights(model, state: dict, source: str, arch: str) -> None:
    """Load ``state`` into ``model`` strictly; raise one line naming missing/unexpected/mismatched keys."""
    own = model.state_dict()
    missing = own.keys() - state.keys()
    unexpected = state.keys() - own.keys()
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own.keys() & state.keys()
        if state[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches (file vs model): {_names(mismatched, 4)}")
    if problems:
        raise ModelFileError(
            f"weights file {source} does not fit architecture {arch!r}: "
            + "; ".join(problems)
            + "; check --arch and --num-classes"
        )
    model.load_state_dict(state, strict=True)


def load_model(path, arch: str | None = None, num_classes: int | None = None, classes_file=None):
    """Load a .pth safely and fit it to its architecture: (model in eval mode, checkpoint entries, class count).

    The architecture and class count default to the checkpoint's own; a checkpoint without a class
    count takes the count of ``classes_file`` (config/classes.yaml when None).
    """
    state, meta = load_checkpoint(path)
    arch = arch or str(meta.get("arch", "lcsnet"))
    if not num_classes:
        num_classes = checkpoint_class_count(meta) or 0
    if not num_classes:
        from lcsnet_seg.classes import load_class_set

        num_classes = len(load_class_set(classes_file))
    model = build_architecture(arch, num_classes)
    fit_weights(model, state, str(path), arch)
    return model.eval(), meta, num_classes


def checkpoint_model_info(meta: dict, num_classes: int, source) -> ModelInfo:
    """The ModelInfo a checkpoint's own entries give (``meta``: load_checkpoint's second value). A checkpoint may
    carry ``lcsnet_seg`` (the whole ModelInfo as JSON, as in the ONNX metadata) or any of: ``classes`` (records
    ``[{id, name, color}]`` as in classes.yaml, or a list of names with ``palette`` ``[[R, G, B], ...]``),
    ``input_size`` ``[height, width]``, ``mean`` and ``std`` (per channel, of pixel/255, in the colour order),
    ``color_order`` (rgb, bgr), ``model_name``, ``model_version``. What it does not say is filled: classes from
    config/classes.yaml (when the count fits), input size 384x512, ImageNet mean/std, rgb. One-line errors name
    the entry."""
    import json

    from lcsnet_seg.classes import ClassSet, load_class_set

    where = f"weights file {source}"
    if INFO_KEY in meta:
        doc = meta[INFO_KEY]
        info = ModelInfo.from_json(
            doc if isinstance(doc, str) else json.dumps(doc), source=f"{where}, entry {INFO_KEY}"
        )
        if info.num_classes != num_classes:
            raise ModelFileError(
                f"{where}: entry {INFO_KEY} lists {info.num_classes} classes, the weights {num_classes}"
            )
        return info
    try:
        classes = meta.get("classes")
        if classes is None:
            class_set = load_class_set(expected_count=num_classes)
        elif classes and all(isinstance(c, str) for c in classes):
            palette = meta.get("palette")
            if palette is None:
                raise ConfigError("entry 'classes' lists names only: add 'palette' ([[R, G, B], ...], one per class)")
            if len(palette) != len(classes):
                raise ConfigError(f"entry 'palette' has {len(palette)} colours for {len(classes)} classes")
            class_set = ClassSet.from_records(
                [{"id": i, "name": n, "color": c} for i, (n, c) in enumerate(zip(classes, palette))],
                source=f"{where}, entries classes/palette",
                expected_count=num_classes,
            )
        else:
            class_set = ClassSet.from_records(classes, source=f"{where}, entry classes", expected_count=num_classes)
        size = meta.get("input_size", DEFAULT_INPUT_SIZE)
        mean = tuple(float(v) for v in meta.get("mean", IMAGENET_MEAN))
        std = tuple(float(v) for v in meta.get("std", IMAGENET_STD))
        if any(abs(v) > 1.5 for v in mean + std):
            raise ConfigError(
                f"mean {list(mean)} / std {list(std)} look like 0-255 pixel units; lcsnet_seg applies them to "
                "pixel/255: save them divided by 255"
            )
        return ModelInfo(
            classes=class_set,
            input_size=(int(size[0]), int(size[1])),
            mean=mean,  # type: ignore[arg-type]  # three values: ModelInfo checks
            std=std,  # type: ignore[arg-type]
            color_order=str(meta.get(COLOR_ORDER_KEY, meta.get("colour_order", "rgb"))),
            model_name=str(meta.get("model_name", meta.get("arch", "lcsnet"))),
            model_version=str(meta.get("model_version", meta.get("version", "unversioned"))),
        )
    except ConfigError as exc:
        raise ModelFileError(f"{where}: {exc}") from None
    except (TypeError, ValueError, IndexError) as exc:
        raise ModelFileError(
            f"{where}: its model entries ({', '.join(k for k in CHECKPOINT_FACTS if k in meta)}) are malformed "
            f"({type(exc).__name__}: {exc}); see docs/MODELS.md, 'What a checkpoint may carry'"
        ) from None


def checkpoint_class_count(meta: dict, state: dict | None = None) -> int | None:
    """How many classes a checkpoint says it predicts (num_classes, or its class list), None where it does not.
    An entry of the wrong kind is a ModelFileError naming it."""
    import json

    from lcsnet_seg.errors import ModelFileError

    try:
        if meta.get("num_classes"):
            return int(meta["num_classes"])
        if INFO_KEY in meta:
            doc = meta[INFO_KEY]
            doc = json.loads(doc) if isinstance(doc, str) else doc
            return len(doc.get("classes", [])) or None
    except (TypeError, ValueError, AttributeError) as exc:
        entry = "num_classes" if meta.get("num_classes") else INFO_KEY
        raise ModelFileError(
            f"checkpoint entry {entry!r} is malformed ({type(exc).__name__}: {exc}); re-save the checkpoint with "
            "an integer num_classes or a JSON object of model facts"
        ) from None
    classes = meta.get("classes")
    return len(classes) if isinstance(classes, (list, tuple)) and classes else None


def read_checkpoint_info(path) -> ModelInfo:
    """The ModelInfo of a .pth (read safely, weights_only) without building its network."""
    from lcsnet_seg.classes import load_class_set

    state, meta = load_checkpoint(path)
    count = checkpoint_class_count(meta) or len(load_class_set())
    return checkpoint_model_info(meta, count, path)
