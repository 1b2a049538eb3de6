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
from lcsnet_seg.eval.bag_eval import BagOptions, BagScore, decodes_jpegs, score_bag, segmenter_replay
from lcsnet_seg.segmenter import SegmenterConfig, build_segmenter

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
    decoder: str = "cpu"  # SegmenterConfig.decoder (evaluate --decoder where the bags' topic is compressed)


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
        self.segmenter, self.why = build_segmenter(
            self.model, SegmenterConfig(backend=config.backend, device=config.device_id, decoder=config.decoder)
        )

    def describe(self) -> dict:
        import ray

        import lcsnet_seg

        backend = self.segmenter.backend
        return {
            "pid": os.getpid(),
            "backend": backend.name,
            "device": backend.device,
            "backend_reason": self.why,
            "decoder": "gpu" if decodes_jpegs(self.segmenter) else "cpu",
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
            out = Path(out_dir) if out_dir else None
            score = score_bag(Path(bag), options, out, replay, keep_jpeg=decodes_jpegs(self.segmenter))
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

    remote = ray.remote(worker_class).options(num_cpus=1, num_gpus=gpu_share, max_restarts=0, max_task_retries=0)
    # Any: ray types an actor as ActorHandle[T] | type[T] (its ActorProxy), whose methods have no .remote
    # for mypy unless they are declared with @ray.method (this module imports ray only when it runs)
    actors: list[Any] = [remote.remote(config) for _ in range(max(1, min(workers, len(jobs))))]
    descriptions = start_actors(ray, actors, gpu_share, deadline_s)
    schedule = _Schedule(ray, jobs, actors, lambda: remote.remote(config), on_done)
    try:
        while schedule.queue or schedule.running:
            schedule.dispatch()
            if schedule.past_deadline(deadline_s) or schedule.stranded():
                break
            schedule.collect()
            schedule.time_out(bag_timeout_s)
        schedule.report()
    finally:
        for actor in actors:
            ray.kill(actor)
    return [r for r in schedule.results if r is not None], descriptions


class _Schedule:
    """The bags of one fleet run and the actors scoring them: which bag waits, runs where, or has finished."""

    def __init__(self, ray, jobs, actors: list, new_actor: Callable[[], Any], on_done) -> None:
        self.ray, self.jobs, self.actors, self.new_actor, self.on_done = ray, jobs, actors, new_actor, on_done
        self.results: list[tuple[Outcome, int] | None] = [None] * len(jobs)
        self.attempts = [0] * len(jobs)
        self.queue = deque(range(len(jobs)))
        self.idle = list(range(len(actors)))
        self.running: dict = {}  # ObjectRef -> (actor slot, job index, start time)
        self.starting: dict = {}  # ObjectRef of a replacement actor's describe() -> its slot
        self.broken: list[str] = []  # why replacement actors could not start
        self.finished: list[int] = []  # reported to on_done after the idle workers have their next bag
        self.started = time.monotonic()

    def fail(self, index: int, reason: str) -> None:
        self.finish(index, Outcome(self.jobs[index][0], "failed", reason=reason))

    def finish(self, index: int, outcome: Outcome) -> None:
        self.results[index] = (outcome, self.attempts[index])
        self.finished.append(index)

    def report(self) -> None:
        while self.finished:
            result = self.results[self.finished.pop(0)]
            assert result is not None  # finish() set it
            if self.on_done:
                self.on_done(*result)

    def dispatch(self) -> None:
        """Hand the waiting bags to the idle actors, then report what finished meanwhile."""
        while self.queue and self.idle:
            slot, index = self.idle.pop(), self.queue.popleft()
            self.attempts[index] += 1
            self.running[self.actors[slot].score.remote(*self.jobs[index])] = (slot, index, time.monotonic())
        self.report()

    def past_deadline(self, deadline_s: float | None) -> bool:
        if deadline_s is None or time.monotonic() - self.started <= deadline_s:
            return False
        for slot, index, _ in self.running.values():
            self.ray.kill(self.actors[slot])
            self.fail(index, f"not finished within the run's deadline of {deadline_s:.0f} s")
        for index in self.queue:
            self.fail(index, "not started before the run's deadline")
        return True

    def stranded(self) -> bool:
        """Bags wait but no actor runs, waits or starts: they fail, naming why the replacements could not start."""
        if not self.queue or self.idle or self.running or self.starting:
            return False
        why = self.broken[-1] if self.broken else "unknown"
        for index in self.queue:
            self.fail(index, f"no worker left to score it: replacement workers could not start ({why})")
        self.queue.clear()
        return True

    def collect(self) -> None:
        """Wait (up to 1 s) for a finished bag or a replacement actor that has loaded the model."""
        from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

        done, _ = self.ray.wait(list(self.running) + list(self.starting), num_returns=1, timeout=1.0)
        for ref in done:
            if ref in self.starting:
                slot = self.starting.pop(ref)
                try:
                    self.ray.get(ref)
                    self.idle.append(slot)
                except (RayActorError, RayTaskError, WorkerCrashedError) as exc:
                    self.broken.append(one_line(getattr(exc, "cause", None) or exc))
                continue
            slot, index, _ = self.running.pop(ref)
            try:
                outcome = self.ray.get(ref)
            except (RayActorError, WorkerCrashedError) as exc:
                self.worker_lost(slot, index, f"the worker scoring it died ({type(exc).__name__})")
                continue
            except RayTaskError as exc:  # raised past score()'s own handling, e.g. its result would not pickle
                outcome = Outcome(self.jobs[index][0], "failed", reason=one_line(getattr(exc, "cause", None) or exc))
            self.idle.append(slot)
            self.finish(index, outcome)

    def time_out(self, bag_timeout_s: float | None) -> None:
        if bag_timeout_s is None:
            return
        for ref, (slot, index, started) in list(self.running.items()):
            if time.monotonic() - started > bag_timeout_s:
                self.running.pop(ref)
                self.ray.kill(self.actors[slot])
                self.worker_lost(slot, index, f"not finished within --bag-timeout {bag_timeout_s:g} s")

    def worker_lost(self, slot: int, index: int, why: str) -> None:
        """A fresh actor in the dead one's place; it takes bags once it has loaded the model, so its start-up
        is not counted against the next bag's --bag-timeout. The bag is tried again, or fails after ATTEMPTS."""
        self.actors[slot] = self.new_actor()
        self.starting[self.actors[slot].describe.remote()] = slot
        if self.attempts[index] < ATTEMPTS:
            self.queue.appendleft(index)
        else:
            self.fail(index, f"{why}, on each of {ATTEMPTS} attempts")


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
