"""The class set: ids, names and palette colours, loaded from YAML and validated."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from lcsnet_seg.errors import ConfigError
from lcsnet_seg.resources import share_file

IGNORE_LABEL = 255
"""Ground-truth value meaning "not scored"."""


DEFAULT_CLASSES_FILE = share_file("config/classes.yaml")


@dataclass(frozen=True)
class ClassSet:
    """Names and RGB colours of classes 0..N-1 (index = class id)."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise ConfigError(
                f"class set has {len(self.names)} names but {len(self.colors)} colours; give one colour per class"
            )
        if not 1 <= len(self.names) <= 255:
            raise ConfigError(f"class set has {len(self.names)} classes; between 1 and 255 are supported")
        if len(set(self.names)) != len(self.names):
            raise ConfigError(f"class set has duplicate names {sorted(_duplicates(self.names))}; make each name unique")
        for name, color in zip(self.names, self.colors):
            if len(color) != 3 or any((not isinstance(c, (int, np.integer))) or not 0 <= c <= 255 for c in color):
                raise ConfigError(f"class {name!r} has colour {list(color)}; give three integers 0-255 (R, G, B)")

    def __len__(self) -> int:
        return len(self.names)

    def palette_rgb(self) -> np.ndarray:
        """Palette as a (256, 3) uint8 lookup table in RGB order; ids past N map to black."""
        lut = np.zeros((256, 3), np.uint8)
        lut[: len(self.colors)] = np.asarray(self.colors, np.uint8)
        return lut

    def to_records(self) -> list[dict]:
        return [{"id": i, "name": n, "color": list(c)} for i, (n, c) in enumerate(zip(self.names, self.colors))]

    @classmethod
    def from_records(
        cls, records: Sequence[dict], source: str = "class list", expected_count: int | None = None
    ) -> ClassSet:
        """Build from ``[{id, name, color}, ...]``; ids must be exactly 0..N-1 in any order."""
        if not isinstance(records, (list, tuple)) or not records:
            raise ConfigError(f"{source}: expected a non-empty list of classes with id, name, color")
        by_id: dict[int, dict] = {}
        for rec in records:
            if not isinstance(rec, dict) or not {"id", "name", "color"} <= rec.keys():
                raise ConfigError(f"{source}: entry {rec!r} needs the keys id, name, color")
            cid = rec["id"]
            if not isinstance(cid, int) or isinstance(cid, bool):
                raise ConfigError(f"{source}: class id {cid!r} is not an integer")
            if cid in by_id:
                raise ConfigError(f"{source}: class id {cid} appears twice; give each class its own id")
            color = rec["color"]
            if not isinstance(color, (list, tuple)):
                raise ConfigError(f"{source}: class {rec['name']!r} has colour {color!r}; give [R, G, B] with 0-255")
            by_id[cid] = rec
        ids = sorted(by_id)
        if ids != list(range(len(ids))):
            raise ConfigError(f"{source}: class ids {ids} must be 0..{len(ids) - 1} without gaps")
        if expected_count is not None and len(ids) != expected_count:
            raise ConfigError(
                f"{source}: {len(ids)} classes given but the model predicts {expected_count}; "
                "use a class file that matches the model"
            )
        try:
            # not yet checked (a colour may have 2 values, or 1.5): __post_init__ rejects what is not R, G, B 0-255
            colors = cast(
                tuple[tuple[int, int, int], ...],
                tuple(tuple(int(c) if float(c).is_integer() else c for c in by_id[i]["color"]) for i in ids),
            )
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: colours must be three integers 0-255 (R, G, B)") from None
        try:
            return cls(names=tuple(str(by_id[i]["name"]) for i in ids), colors=colors)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None


def load_class_set(path: str | Path | None = None, expected_count: int | None = None) -> ClassSet:
    """Load and validate a classes YAML file (``classes: [{id, name, color}, ...]``)."""
    import yaml

    path = Path(path) if path is not None else DEFAULT_CLASSES_FILE
    if not path.is_file():
        raise ConfigError(f"classes file {path} not found; pass an existing YAML file")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"classes file {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or "classes" not in doc:
        raise ConfigError(f"classes file {path} needs a top-level 'classes:' list")
    return ClassSet.from_records(doc["classes"], source=f"classes file {path}", expected_count=expected_count)


def _duplicates(items: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    dup: set[str] = set()
    for item in items:
        (dup if item in seen else seen).add(item)
    return dup
