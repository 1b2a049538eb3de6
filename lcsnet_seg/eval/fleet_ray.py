"""Scoring many bags on Ray: long-lived actors load the model once, then score bag after bag.

A local Ray instance by default (address None), or an existing cluster (address "host:port" or
"ray://host:port"). A GPU backend's actor takes ``gpu_share`` of a GPU (1: a whole one; 0.5: two
actors share one; Ray sets CUDA_VISIBLE_DEVICES, so each actor uses its device 0), else one CPU. A
bag that fails inside a worker (corrupt, empty, topic missing) comes back as a failed outcome with
its one-line reason; a bag whose worker dies (killed, crashed, out of memory) is given once more to
a fresh actor, then reported.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lcsnet_seg.errors import ConfigError, LcsnetError
from lcsnet_seg.eval.bag_eval import BagOptions, BagScore, build_segmenter, score_bag, segmenter_replay

if TYPE_CHECKING:
    from ray import ObjectRef

ATTEMPTS = 2  # a bag whose worker dies is tried once more


@dataclass(frozen=True)
class WorkerConfig:
    """What every actor needs: plain values, shipped to it when it starts."""

    model: str
    backend: str
    options: BagOptions
    device_id: int = 0
    model_files: ObjectRef[dict[str, bytes]] | None = None  # {file name: bytes} in Ray when the model is shipped


def ship_model(model: Path) -> ObjectRef[dict[str, bytes]]:
    """The model file (and a TensorRT engine's JSON sidecar) into Ray's object store, for workers on
    machines that do not have the file."""
    import ray

    files = {model.name: model.read_bytes()}
    sidecar = model.with_name(model.name + ".json")
    if sidecar.is_file():
        files[sidecar.name] = sidecar.read_bytes()
    return ray.put(files)


def local_model(config: WorkerConfig) -> Path:
    """Where this worker reads the model: the given path, or a private copy of the shipped files."""
    if config.model_files is None:
        return Path(config.model)
    import tempfile

    import ray

    folder = Path(tempfile.mkdtemp(prefix="lcsnet_model_"))
    for name, data in ray.get(config.model_files).items():
        (folder / name).write_bytes(data)
    return folder / Path(config.model).name


@dataclass
class Outcome:
    """A bag's result as a worker returns it. status: "scored" or "failed" (then ``reason``)."""

    bag: str
    status: str
    score: BagScore | None = None
    reason: str | None = None
    wall_s: float | None = None
    worker: str | None = None


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class BagWorker:
    """Lives in a Ray actor: builds the segmenter once, then scores bags one by one."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.model = local_model(config)
        self.segmenter, self.why = build_segmenter(self.model, config.backend, config.device_id)

    def describe(self) -> dict:
        import ray

        import lcsnet_seg

        backend = self.segmenter.backend
        return {
            "pid": os.getpid(),
            "backend": backend.name,
            "device": backend.device,
            "backend_reason": self.why,
            "model": str(self.model),
            "package": str(Path(lcsnet_seg.__file__).parent),
            "ray_gpu_ids": [str(gpu) for gpu in ray.get_gpu_ids()],
        }

    def score(self, bag: str, out_dir: str | None) -> Outcome:
        from ray.experimental.tqdm_ray import tqdm

        started = time.perf_counter()
        worker = f"pid {os.getpid()}"
        options = self.config.options
        try:
            replay = segmenter_replay(
                self.segmenter, options, self.why, progress=lambda it, **kw: tqdm(it, **{**kw, "desc": Path(bag).name})
            )
            score = score_bag(Path(bag), options, Path(out_dir) if out_dir else None, replay)
        except LcsnetError as exc:  # the bag's own problem, reported in one line
            return Outcome(bag, "failed", reason=one_line(exc), wall_s=time.perf_counter() - started, worker=worker)
        except Exception as exc:  # noqa: BLE001 - one bag must never end the fleet
            return Outcome(
                bag,
                "failed",
                reason=f"{type(exc).__name__}: {one_line(exc)}",
                wall_s=time.perf_counter() - started,
                worker=worker,
            )
        return Outcome(bag, "scored", score=score, wall_s=time.perf_counter() - started, worker=worker)


def start_ray(
    address: str | None, num_cpus: int | None = None, ship_code: bool = False, num_gpus: int | None = None
) -> bool:
    """Connect to ``address`` or start a local instance (no dashboard, nothing reachable from outside).
    Returns True when this call started it (the caller then shuts it down). An existing connection is reused.
    num_cpus, num_gpus: what a local instance offers its workers (default: what Ray finds on this machine).
    ship_code: this lcsnet_seg package travels to the workers (Ray runtime_env py_modules), so every
    worker runs the driver's exact code; its dependencies must be installed on the workers."""
    try:
        import ray
    except ImportError:
        raise ConfigError("evaluating several bags needs Ray: pip install 'ray==2.60.0'") from None
    if ray.is_initialized():
        return False
    import lcsnet_seg

    runtime_env = {"py_modules": [str(Path(lcsnet_seg.__file__).parent)]} if ship_code else None
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=True, runtime_env=runtime_env)
        else:
            ray.init(
                address="local",
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                include_dashboard=False,
                log_to_driver=True,
                runtime_env=runtime_env,
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"Ray could not start or connect{f' to --address {address}' if address else ''}: {one_line(exc)}"
        ) from None
    return True


def run_fleet(
    jobs: list[tuple[str, str | None]],
    config: WorkerConfig,
    workers: int,
    gpu_share: float,
    on_done: Callable[[Outcome, int], None] | None = None,
    worker_class: type[BagWorker] = BagWorker,
    bag_timeout_s: float | None = None,
    deadline_s: float | None = None,
) -> tuple[list[tuple[Outcome, int]], list[dict]]:
    """Score ``jobs`` (bag path, its output folder or None) on ``workers`` actors of ``worker_class``.

    ``gpu_share``: the fraction of a GPU each actor takes (0 for a CPU backend; 1/k puts k actors on a GPU).
    Returns ([(Outcome, attempts)] in job order, the actors' descriptions). ``on_done`` is called
    as each bag finishes. ``bag_timeout_s``: a bag not finished in that time has its actor killed
    and counts as a dead worker (retried once). ``deadline_s``: after that many seconds the run
    stops waiting; bags not finished are reported as failed. Raises ConfigError when no actor can
    start (bad model, backend unavailable, no GPU for a GPU backend).
    """
    import ray
    from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

    remote = ray.remote(worker_class).options(num_cpus=1, num_gpus=gpu_share, max_restarts=0, max_task_retries=0)
    workers = max(1, min(workers, len(jobs)))
    # Any: ray types an actor as ActorHandle[T] | type[T] (its ActorProxy), whose methods have no .remote
    # for mypy unless they are declared with @ray.method (this module imports ray only when it runs)
    actors: list[Any] = [remote.remote(config) for _ in range(workers)]
    descriptions = start_actors(ray, actors, gpu_share, deadline_s)
    results: list[tuple[Outcome, int] | None] = [None] * len(jobs)
    attempts = [0] * len(jobs)
    queue = deque(range(len(jobs)))
    idle = list(range(workers))
    running: dict = {}  # ObjectRef -> (actor slot, job index, start time)
    run_start = time.monotonic()

    finished: list[int] = []  # reported to on_done after the idle workers have their next bag

    def finish(index: int, outcome: Outcome) -> None:
        results[index] = (outcome, attempts[index])
        finished.append(index)

    def report_finished() -> None:
        while finished:
            index = finished.pop(0)
            result = results[index]
            assert result is not None  # finish() set it
            if on_done:
                on_done(*result)

    starting: dict = {}  # ObjectRef of a replacement actor's describe() -> its slot
    broken: list[str] = []  # why replacement actors could not start

    def worker_lost(slot: int, index: int, why: str) -> None:
        # A fresh actor in the dead one's place; it takes bags once it has loaded the model, so
        # its start-up is not counted against the next bag's --bag-timeout.
        actors[slot] = remote.remote(config)
        starting[actors[slot].describe.remote()] = slot
        if attempts[index] < ATTEMPTS:
            queue.appendleft(index)
        else:
            finish(index, Outcome(jobs[index][0], "failed", reason=f"{why}, on each of {ATTEMPTS} attempts"))

    while queue or running:
        while queue and idle:
            slot, index = idle.pop(), queue.popleft()
            attempts[index] += 1
            ref = actors[slot].score.remote(*jobs[index])
            running[ref] = (slot, index, time.monotonic())
        report_finished()
        now = time.monotonic()
        if deadline_s is not None and now - run_start > deadline_s:
            for slot, index, _ in running.values():
                ray.kill(actors[slot])
                finish(
                    index,
                    Outcome(
                        jobs[index][0], "failed", reason=f"not finished within the run's deadline of {deadline_s:.0f} s"
                    ),
                )
            for index in queue:
                finish(index, Outcome(jobs[index][0], "failed", reason="not started before the run's deadline"))
            break
        if queue and not (idle or running or starting):
            for index in queue:
                finish(
                    index,
                    Outcome(
                        jobs[index][0],
                        "failed",
                        reason="no worker left to score it: replacement "
                        f"workers could not start ({broken[-1] if broken else 'unknown'})",
                    ),
                )
            queue.clear()
            break
        done, _ = ray.wait(list(running) + list(starting), num_returns=1, timeout=1.0)
        for ref in done:
            if ref in starting:
                slot = starting.pop(ref)
                try:
                    ray.get(ref)
                    idle.append(slot)
                except (RayActorError, RayTaskError, WorkerCrashedError) as exc:
                    broken.append(one_line(getattr(exc, "cause", None) or exc))
                continue
            slot, index, _ = running.pop(ref)
            try:
                outcome = ray.get(ref)
            except (RayActorError, WorkerCrashedError) as exc:
                worker_lost(slot, index, f"the worker scoring it died ({type(exc).__name__})")
                continue
            except RayTaskError as exc:  # raised past score()'s own handling, e.g. its result would not pickle
                outcome = Outcome(jobs[index][0], "failed", reason=one_line(getattr(exc, "cause", None) or exc))
            idle.append(slot)
            finish(index, outcome)
        if bag_timeout_s is not None:
            for ref, (slot, index, started) in list(running.items()):
                if time.monotonic() - started > bag_timeout_s:
                    running.pop(ref)
                    ray.kill(actors[slot])
                    worker_lost(slot, index, f"not finished within --bag-timeout {bag_timeout_s:g} s")
    report_finished()
    for actor in actors:
        ray.kill(actor)
    return [r for r in results if r is not None], descriptions


def start_actors(ray, actors, gpu_share: float, deadline_s: float | None) -> list[dict]:
    """Wait until every actor has loaded the model; one clear line when they cannot."""
    from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

    wait = 600 if deadline_s is None else deadline_s
    try:
        return ray.get([a.describe.remote() for a in actors], timeout=wait)
    except (RayActorError, RayTaskError) as exc:
        cause = getattr(exc, "cause", None) or exc
        for actor in actors:
            ray.kill(actor)
        raise ConfigError(f"the evaluation workers could not load the model: {one_line(cause)}") from None
    except GetTimeoutError:
        for actor in actors:
            ray.kill(actor)
        need = f"{gpu_share:g} GPU and one CPU each" if gpu_share else "one CPU each"
        raise ConfigError(
            f"the evaluation workers did not start within {wait:.0f} s; they need {need}: "
            "check the cluster's free resources (ray status) or lower --workers"
        ) from None
