"""Many bags: which bags to score, and the fleet's figures from the bags' own (exact sums, no averages of ratios).

The fleet confusion matrix is the sum of the bags' matrices and the fleet flicker is the summed
flicker counts divided, so a fleet of bags scores exactly as one long bag holding all their frames.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lcsnet_seg.errors import ConfigError
from lcsnet_seg.eval.metrics import Scores
from lcsnet_seg.eval.scoring import latency_summary
from lcsnet_seg.eval.temporal import flicker_summary

GLOB_CHARACTERS = set("*?[")
WORST_SHOWN = 5


@dataclass
class BagSelection:
    bags: list[Path]
    fleet: bool  # False: exactly one bag named directly (the single-bag layout)
    skipped: list[str] = field(default_factory=list)  # folders that hold no rosbag2 files


def is_bag_folder(path: Path) -> bool:
    """A folder that looks like a rosbag2 recording (complete or not): metadata.yaml, .db3 or .mcap files."""
    return path.is_dir() and ((path / "metadata.yaml").exists() or any(path.glob("*.db3")) or any(path.glob("*.mcap")))


def resolve_bags(specs: list[str]) -> BagSelection:
    """Bags from command-line arguments: bag folders, folders holding bag folders, or glob patterns.

    A folder holding no bag folder is taken as a bag itself (and fails, if it is not one, with
    its reason). A bag that cannot be read is still listed, so it is reported, never dropped.
    """
    bags: list[Path] = []
    skipped: list[str] = []
    fleet = len(specs) > 1
    for spec in specs:
        path = Path(spec)
        if not path.exists() and GLOB_CHARACTERS & set(spec):
            matches = sorted(Path(m) for m in glob.glob(spec) if Path(m).is_dir())
            if not matches:
                raise ConfigError(
                    f"no bag folder matches {spec}; check the pattern (quote it so the shell does not expand it)"
                )
            bags += matches
            fleet = True
        elif path.is_dir() and not is_bag_folder(path):
            children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
            inside = [p for p in children if is_bag_folder(p)]
            if inside:
                bags += inside
                skipped += [str(p) for p in children if p not in inside]
                fleet = True
            else:
                bags.append(path)
        else:
            bags.append(path)
    unique = list(dict.fromkeys(p.resolve() if p.exists() else p for p in bags))
    return BagSelection(unique, fleet, skipped)


def bag_names(bags: list[Path]) -> list[str]:
    """A short, unique, file-system-safe name per bag (its folder name; -2, -3 ... on repeats)."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for bag in bags:
        base = "".join(c if c.isalnum() or c in "-_." else "_" for c in (bag.name or "bag")) or "bag"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


@dataclass
class BagEntry:
    """One bag of a fleet run. status: "scored" or "failed"; doc: its metrics document when scored."""

    name: str
    bag: str
    status: str
    reason: str | None = None
    attempts: int = 1
    doc: dict | None = None
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float | None = None

    @property
    def scored_doc(self) -> dict:
        """The metrics document of a scored bag (every scored entry carries one)."""
        if self.doc is None:
            raise ValueError(f"bag {self.bag} ({self.status}) has no metrics document")
        return self.doc


def _number(value) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def fleet_document(entries: list[BagEntry], class_names: Sequence[str], extra: dict) -> dict:
    """The fleet metrics document: figures from summed counts, per-bag summaries, worst bags and classes."""
    scored = [e for e in entries if e.status == "scored"]
    n = len(class_names)
    matrix = np.zeros((n, n), np.int64)
    stable, flicker = np.zeros(n, np.int64), np.zeros(n, np.int64)
    pairs, invalid = 0, 0
    frames: dict[str, int] = {}
    latencies: list[float] = []
    for entry in scored:
        doc = entry.scored_doc
        if doc["classes"] != list(class_names):
            raise ConfigError(
                f"bag {entry.bag} was scored with classes {doc['classes']}, the fleet with "
                f"{list(class_names)}; evaluate bags of one model together"
            )
        matrix += np.asarray(doc["confusion_matrix"], np.int64)
        block = doc["temporal_consistency"]
        stable += np.asarray(block["stable_pixels"], np.int64)
        flicker += np.asarray(block["flicker_pixels"], np.int64)
        pairs += block["frame_pairs"]
        invalid += doc["invalid_label_pixels"]
        for key, value in doc["frames"].items():
            frames[key] = frames.get(key, 0) + value
        latencies += entry.latencies_ms
    scores = Scores.from_matrix(matrix)
    latency = latency_summary(latencies)
    temporal = flicker_summary(class_names, stable, flicker, pairs)
    per_class = {
        name: (float(v) if present else None)
        for name, v, present in zip(class_names, scores.per_class_iou, scores.present)
    }
    failed = [e for e in entries if e.status != "scored"]
    return {
        **extra,
        "mode": "fleet",
        "complete": not failed and all(e.scored_doc["complete"] for e in scored),
        "bags_total": len(entries),
        "bags_scored": len(scored),
        "bags_failed": len(failed),
        "classes": list(class_names),
        "miou": _number(scores.miou),
        "per_class_iou": per_class,
        "class_present_in_ground_truth": {name: bool(p) for name, p in zip(class_names, scores.present)},
        "pixel_accuracy": _number(scores.pixel_accuracy),
        "frequency_weighted_iou": _number(scores.frequency_weighted_iou),
        "confusion_matrix": matrix.tolist(),
        "invalid_label_pixels": invalid,
        "temporal_consistency": temporal,
        "latency_ms": latency,
        "fps": (1e3 / latency["mean"]) if latency["mean"] else None,  # per worker, segmenter time only
        "frames": frames,
        "worst_bags": worst_bags(scored),
        "worst_classes": worst_classes(matrix, class_names, per_class, temporal),
        "failed_bags": [{"name": e.name, "bag": e.bag, "reason": e.reason, "attempts": e.attempts} for e in failed],
        "bags": [bag_summary(e) for e in entries],
    }


def bag_summary(entry: BagEntry) -> dict:
    out = {
        "name": entry.name,
        "bag": entry.bag,
        "status": entry.status,
        "attempts": entry.attempts,
        "wall_s": entry.wall_s,
    }
    if entry.status != "scored":
        return {**out, "reason": entry.reason}
    doc = entry.scored_doc
    return {
        **out,
        "complete": doc["complete"],
        "miou": doc["miou"],
        "pixel_accuracy": doc["pixel_accuracy"],
        "flicker": doc["temporal_consistency"]["flicker"],
        "per_class_iou": doc["per_class_iou"],
        "frames_scored": doc["frames"]["frames_scored"],
        "frames_in_range": doc["frames"]["frames_in_range"],
        "results": f"bags/{entry.name}/",
    }


def worst_bags(scored: list[BagEntry], count: int = WORST_SHOWN) -> list[dict]:
    """Lowest mIoU first; each with its own worst class."""
    ranked = sorted((e for e in scored if e.scored_doc["miou"] is not None), key=lambda e: e.scored_doc["miou"])[:count]
    out = []
    for e in ranked:
        doc = e.scored_doc
        present = {k: v for k, v in doc["per_class_iou"].items() if v is not None}
        worst = min(present, key=present.__getitem__) if present else None
        out.append(
            {
                "name": e.name,
                "bag": e.bag,
                "miou": doc["miou"],
                "worst_class": worst,
                "worst_class_iou": present.get(worst),
                "flicker": doc["temporal_consistency"]["flicker"],
            }
        )
    return out


def worst_classes(
    matrix: np.ndarray, class_names, per_class: dict, temporal: dict, count: int = WORST_SHOWN
) -> list[dict]:
    """Lowest fleet IoU first; each with the class its pixels are most often mistaken for."""
    ranked = sorted((n for n in class_names if per_class[n] is not None), key=per_class.__getitem__)[:count]
    out = []
    for name in ranked:
        i = list(class_names).index(name)
        row = matrix[i].astype(np.float64)
        row[i] = -1
        j = int(np.argmax(row))
        total = matrix[i].sum()
        out.append(
            {
                "class": name,
                "iou": per_class[name],
                "flicker": temporal["per_class_flicker"][name],
                "mistaken_for": class_names[j] if row[j] > 0 else None,
                "mistaken_fraction": float(row[j] / total) if total and row[j] > 0 else 0.0,
            }
        )
    return out


def load_results(path) -> dict:
    """A metrics.json, or an evaluate --out-dir holding one."""
    path = Path(path)
    file = path / "metrics.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(
            f"--compare {path}: no metrics.json there; pass another evaluate run's --out-dir or its metrics.json"
        )
    try:
        return json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"--compare {file} is not a metrics.json ({exc}); pass another evaluate run's --out-dir"
        ) from None


def _bag_mious(doc: dict) -> dict[str, float | None]:
    if doc.get("mode") == "fleet":
        return {b["name"]: b.get("miou") for b in doc["bags"] if b["status"] == "scored"}
    return {Path(doc.get("bag") or "bag").name: doc.get("miou")}


def _delta(a, b):
    return None if a is None or b is None else a - b


def compare(doc: dict, other: dict, other_path: str) -> dict:
    """Per-class IoU, mIoU and flicker differences, this run minus ``other`` (bags matched by name)."""
    if doc["classes"] != other.get("classes"):
        raise ConfigError(
            f"--compare {other_path}: its classes {other.get('classes')} differ from this run's "
            f"{doc['classes']}; compare runs of models with the same classes"
        )
    mine, theirs = _bag_mious(doc), _bag_mious(other)
    flicker = (doc.get("temporal_consistency") or {}).get("flicker")
    other_flicker = (other.get("temporal_consistency") or {}).get("flicker")
    return {
        "other": other_path,
        "other_model": other.get("model"),
        "miou_delta": _delta(doc["miou"], other.get("miou")),
        "per_class_iou_delta": {
            n: _delta(doc["per_class_iou"][n], other["per_class_iou"].get(n)) for n in doc["classes"]
        },
        "other_per_class_iou": other["per_class_iou"],
        "flicker_delta": _delta(flicker, other_flicker),
        "per_bag_miou_delta": {name: _delta(mine[name], theirs[name]) for name in mine if name in theirs},
        "bags_only_here": sorted(set(mine) - set(theirs)),
        "bags_only_there": sorted(set(theirs) - set(mine)),
    }
