"""A fleet evaluation from start to end: bags onto Ray workers, per-bag results as they finish, the fleet report.

OUT/metrics.json and OUT/report.md hold the fleet; OUT/bags/NAME/ holds each scored bag's own
metrics.json, report and sample overlays (and segmentation_bag/ when output bags are written).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lcsnet_seg.errors import ConfigError
from lcsnet_seg.eval.bag_eval import BagOptions, bag_document, decoder_for, image_msgtypes
from lcsnet_seg.eval.bag_io import COMPRESSED
from lcsnet_seg.eval.fleet import BagEntry, bag_names, compare, fleet_document, load_results
from lcsnet_seg.eval.fleet_ray import BagWorker, Outcome, WorkerConfig, run_fleet, ship_model, start_ray

if TYPE_CHECKING:
    from lcsnet_seg.classes import ClassSet

GPU_BACKENDS = ("torch_cuda", "tensorrt")


def uses_gpu(backend: str, model: Path, cluster_gpus: float) -> bool:
    """Whether the workers run a GPU backend (then each one takes 1/workers_per_gpu of a GPU)."""
    if backend in GPU_BACKENDS or (backend == "auto" and model.suffix == ".engine"):
        return True
    return backend == "auto" and model.suffix == ".pth" and cluster_gpus > 0


def topic_types(bags: list[Path], topic: str) -> list[str | None]:
    """The message type of ``topic`` in the first bag that has it (a list of one), or [] where none does."""
    for bag in bags:
        found = image_msgtypes(bag, [topic])
        if found[0] is not None:
            return found
    return []


def default_workers(gpu: bool, resources: dict, workers_per_gpu: int = 1) -> int:
    """workers_per_gpu per GPU for a GPU backend (at most one per CPU: each worker takes one); else one
    per two CPUs (each CPU worker's ONNX Runtime spreads its inference over the cores it finds, so one
    per core oversubscribes them)."""
    cpus = int(resources.get("CPU", 1))
    if gpu:
        return max(1, min(int(resources.get("GPU", 0)) * workers_per_gpu, cpus))
    return max(1, cpus // 2)


def evaluate_fleet(
    bags: list[Path],
    out_dir: Path,
    *,
    model: Path,
    backend: str,
    options: BagOptions,
    decoder: str = "auto",
    workers: int | None = None,
    address: str | None = None,
    compare_with: str | None = None,
    bag_timeout_s: float | None = None,
    deadline_s: float | None = None,
    worker_class: type[BagWorker] = BagWorker,
    skipped: Sequence[str] = (),
    num_cpus: int | None = None,
    ship: bool | None = None,
    workers_per_gpu: int = 1,
) -> dict:
    """Score ``bags`` on Ray; write the fleet's and every bag's results under ``out_dir``; returns the fleet document.

    workers: actors (default: see default_workers). address: an existing Ray cluster (default: a
    local instance, started here and stopped at the end). compare_with: another run's out dir or
    metrics.json. ship: send this package's code and the model file to the workers through Ray
    (default: with an address, where workers may be other machines). A bag that cannot be scored is
    reported in the document, never raised. workers_per_gpu: with a GPU backend, how many workers share
    one GPU (each takes 1/workers_per_gpu of it): a worker spends most of a frame on the CPU (reading,
    decoding and scoring the bag), so one worker leaves its GPU mostly idle. decoder: evaluate --decoder, the
    workers' SegmenterConfig.decoder where the image topic carries CompressedImage (in the first bag that has
    it; else cpu).
    """
    if workers_per_gpu < 1:
        raise ConfigError(f"--workers-per-gpu must be >= 1, got {workers_per_gpu}")
    import ray
    from ray.experimental.tqdm_ray import tqdm

    from lcsnet_seg.backends.model_files import read_model_info

    other = load_results(compare_with) if compare_with else None  # refuse a bad --compare before any work
    out_dir.mkdir(parents=True, exist_ok=True)
    names = bag_names(bags)
    jobs = [
        (str(bag), str(out_dir / "bags" / name) if options.write_output_bag else None) for bag, name in zip(bags, names)
    ]
    t0 = time.perf_counter()
    ship = address is not None if ship is None else ship
    started_here = start_ray(address, num_cpus, ship_code=ship)
    try:
        resources = ray.cluster_resources()
        gpu = uses_gpu(backend, model, resources.get("GPU", 0))
        if gpu and resources.get("GPU", 0) < 1:
            raise ConfigError(
                f"backend {backend} needs GPUs for its workers but the Ray cluster has none; "
                "use --backend onnxruntime with an .onnx model, or --address a cluster with GPUs"
            )
        gpu_share = 1.0 / workers_per_gpu if gpu else 0.0
        workers = workers or default_workers(gpu, resources, workers_per_gpu)
        if gpu and not address and workers * gpu_share > resources.get("GPU", 0) + 1e-9:
            raise ConfigError(
                f"{workers} workers of backend {backend} at {workers_per_gpu} per GPU need "
                f"{workers * gpu_share:g} GPUs; this machine has {resources.get('GPU', 0):g}: "
                "lower --workers or raise --workers-per-gpu"
            )
        cpus = resources.get("CPU", 1)
        if not address and min(workers, len(jobs)) > cpus:  # each worker takes a CPU: the rest would never start
            raise ConfigError(
                f"{workers} workers take a CPU each; the local Ray instance has {cpus:g}: lower --workers"
            )
        image_types = topic_types(bags, options.image_topic)
        config = WorkerConfig(
            str(model),
            backend,
            options,
            model_files=ship_model(model) if ship else None,
            decoder=decoder_for(image_types, decoder),
        )
        entries: dict[str, BagEntry] = {}
        classes_seen: list[ClassSet] = []
        bar = tqdm(total=len(jobs), desc="bags", unit="bag")

        def done(outcome: Outcome, attempts: int) -> None:
            index = [job[0] for job in jobs].index(outcome.bag)
            entry = BagEntry(names[index], outcome.bag, outcome.status, outcome.reason, attempts, wall_s=outcome.wall_s)
            if outcome.status == "scored":
                from lcsnet_seg.eval.report import write_report

                score = outcome.score
                assert score is not None, "a scored outcome carries its score"
                doc, classes = bag_document(score, Path(outcome.bag), options, model, "segmenter")
                doc.update(fleet_worker=outcome.worker, attempts=attempts)
                write_report(out_dir / "bags" / entry.name, doc, score.scorer, classes.palette_rgb())
                entry.doc, entry.latencies_ms = doc, list(score.scorer.latencies_ms)
                classes_seen.append(classes)
            else:
                print(f"evaluate: bag {outcome.bag} not scored: {outcome.reason}", flush=True)
            entries[outcome.bag] = entry
            bar.update(1)

        t_ready = time.perf_counter()
        _, descriptions = run_fleet(jobs, config, workers, gpu_share, done, worker_class, bag_timeout_s, deadline_s)
        bar.close()
    finally:
        if started_here:
            ray.shutdown()
    wall_s = time.perf_counter() - t0
    classes = classes_seen[0] if classes_seen else read_model_info(model).classes  # no bag scored: the model's own
    ordered = [entries[job[0]] for job in jobs]
    worker = descriptions[0] if descriptions else {}
    doc = fleet_document(
        ordered,
        classes.names,
        {
            "image_topic": options.image_topic,
            "label_topic": options.label_topic,
            "model": str(model),
            "backend": worker.get("backend"),
            "device": worker.get("device"),
            "backend_reason": worker.get("backend_reason"),
            **(
                {
                    "decoder": worker.get("decoder"),
                    "decode_fallbacks": sum((e.doc or {}).get("decode_fallbacks", 0) for e in ordered),
                }
                if COMPRESSED in image_types
                else {}
            ),
            "skipped_folders": list(skipped),
            "run": {
                "workers": workers,
                "gpu_share_per_worker": gpu_share,
                "ray_address": address or "local",
                "shipped": ship,
                "worker_model": worker.get("model"),
                "worker_package": worker.get("package"),
                "wall_s": wall_s,
                "ray_start_s": t_ready - t0,
                "bags_per_minute": 60 * sum(e.status == "scored" for e in ordered) / wall_s,
            },
        },
    )
    if other is not None:
        doc["compare"] = compare(doc, other, str(compare_with))
    from lcsnet_seg.eval.fleet_report import write_fleet_report

    write_fleet_report(out_dir, doc, classes.palette_rgb())
    return doc
