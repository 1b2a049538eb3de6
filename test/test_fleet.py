"""Fleet evaluation: many bags on Ray, exact aggregation, failed bags reported, dead workers retried once."""

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from lcsnet_seg.eval import bag_io
from lcsnet_seg.eval.fleet import bag_names, compare, resolve_bags
from lcsnet_seg.eval.metrics import Scores
from lcsnet_seg.tools import evaluate, make_demo_bag

ray = pytest.importorskip("ray")
GOOD = ("kitchen", "lab", "office")
TOPICS = ["--image-topic", "/camera/image_raw", "--label-topic", "/camera/labels"]


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One small local Ray instance for the module (starting one costs seconds on a 2-core machine),
    started as `evaluate --ship` starts one: this package's code travels to the workers through Ray.
    It offers one GPU (Ray schedules GPUs as a resource; no test here runs a GPU backend's kernels)."""
    from lcsnet_seg.eval.fleet_ray import start_ray

    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("driver"))  # workers put the driver's folder first on their path
    try:
        assert start_ray(None, num_cpus=2, ship_code=True, num_gpus=1)
    finally:
        os.chdir(here)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory):
    """Three good bags (sqlite3 and mcap), one corrupt, one empty, one without the image topic, and a stray folder."""
    root = tmp_path_factory.mktemp("fleet")
    for k, name in enumerate(GOOD):
        assert (
            make_demo_bag.main(
                [
                    str(root / name),
                    "--frames",
                    "3",
                    "--height",
                    "120",
                    "--width",
                    "160",
                    "--seed",
                    str(3_600_000_000 + 10 * k),
                    "--storage",
                    "mcap" if k == 1 else "sqlite3",
                ]
            )
            == 0
        )
    corrupt = root / "corrupt"
    corrupt.mkdir()
    (corrupt / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9}\n")
    (corrupt / "corrupt_0.db3").write_bytes(b"not sqlite" * 100)
    bag_io.BagWriter(root / "empty", "sqlite3").close()
    writer = bag_io.BagWriter(root / "no_images", "sqlite3")
    store = bag_io.typestore()
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="cam"
    )
    writer.write_image("/camera/labels", 10**9, header, np.zeros((8, 8), np.uint8), "mono8")
    writer.close()
    (root / "notes").mkdir()
    return root


def test_fleet_matrix_is_the_sum_of_single_bag_runs_and_bad_bags_are_reported(local_ray, fleet_dir, tmp_path):
    out = tmp_path / "fleet"
    code = evaluate.main([str(fleet_dir), *TOPICS, "--out-dir", str(out), "--workers", "2"])
    assert code == evaluate.EXIT_BAGS_FAILED
    fleet = json.loads((out / "metrics.json").read_text())
    assert fleet["mode"] == "fleet" and fleet["bags_total"] == 6 and fleet["bags_scored"] == 3
    assert not fleet["complete"] and fleet["skipped_folders"] == [str(fleet_dir / "notes")]
    reasons = {b["name"]: b["reason"] for b in fleet["failed_bags"]}
    assert set(reasons) == {"corrupt", "empty", "no_images"}
    assert "could not be read" in reasons["corrupt"] and "contains no messages" in reasons["empty"]
    assert "image topic /camera/image_raw is not in bag" in reasons["no_images"]
    assert all(str(fleet_dir / name) in reason and "\n" not in reason for name, reason in reasons.items())
    report = (out / "report.md").read_text()
    assert all(f"`{fleet_dir / name}`" in report for name in reasons)
    for name in ("confusion_matrix.png", "per_class_iou.png", "per_class_flicker.png", "per_bag_miou.png"):
        assert (out / name).is_file(), name

    singles = []
    for name in GOOD:
        assert evaluate.main([str(fleet_dir / name), *TOPICS, "--out-dir", str(tmp_path / name)]) == 0
        singles.append(json.loads((tmp_path / name / "metrics.json").read_text()))
        per_bag = json.loads((out / "bags" / name / "metrics.json").read_text())
        assert per_bag["confusion_matrix"] == singles[-1]["confusion_matrix"]
        assert (out / "bags" / name / "report.md").is_file()
    matrix = sum(np.asarray(s["confusion_matrix"], np.int64) for s in singles)
    assert matrix.sum() > 0 and fleet["confusion_matrix"] == matrix.tolist()
    assert fleet["miou"] == Scores.from_matrix(matrix).miou
    for key in ("stable_pixels", "flicker_pixels", "frame_pairs"):
        total = sum(np.asarray(s["temporal_consistency"][key]) for s in singles)
        assert np.array_equal(fleet["temporal_consistency"][key], total), key
    stable = np.asarray(fleet["temporal_consistency"]["stable_pixels"])
    flicker = np.asarray(fleet["temporal_consistency"]["flicker_pixels"])
    assert fleet["temporal_consistency"]["flicker"] == flicker.sum() / stable.sum()
    assert fleet["frames"]["frames_scored"] == 9
    assert [b["name"] for b in fleet["worst_bags"]] == [
        s for _, s in sorted((d["miou"], n) for d, n in zip(singles, GOOD))
    ]

    # --compare against another run with known differences: an older run 0.1 lower, one class 0.25 higher there,
    # one bag it did not score, and one it scored that this run did not
    import copy

    other = copy.deepcopy(fleet)
    other["miou"] = fleet["miou"] - 0.1
    wall = other["classes"][0]
    other["per_class_iou"][wall] = fleet["per_class_iou"][wall] + 0.25
    other["bags"] = [b for b in other["bags"] if b["name"] != GOOD[0]] + [
        {"name": "old_only", "status": "scored", "miou": 0.5}
    ]
    diff = compare(fleet, other, "older")
    assert diff["miou_delta"] == pytest.approx(0.1) and diff["per_class_iou_delta"][wall] == pytest.approx(-0.25)
    assert all(v in (0.0, None) for k, v in diff["per_class_iou_delta"].items() if k != wall)
    assert set(diff["per_bag_miou_delta"]) == set(GOOD[1:]) and diff["bags_only_here"] == [GOOD[0]]
    assert diff["bags_only_there"] == ["old_only"]


class DyingWorker:
    """Stands in for BagWorker's score: the worker process dies on bags marked in their name."""

    @staticmethod
    def wrap(base):
        class Dying(base):
            def score(self, bag, out_dir):
                marker = os.path.join(bag, "died_once")
                if "dies_always" in bag:
                    os._exit(1)
                if "dies_once" in bag and not os.path.exists(marker):
                    open(marker, "w").close()
                    os._exit(1)
                return super().score(bag, out_dir)

        return Dying


def test_dead_worker_is_retried_once_then_reported(local_ray, fleet_dir, tmp_path):
    import ray.cloudpickle

    from lcsnet_seg.eval.bag_eval import BagOptions
    from lcsnet_seg.eval.fleet_ray import BagWorker
    from lcsnet_seg.eval.fleet_run import evaluate_fleet
    from lcsnet_seg.model import DEMO_ONNX

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the test module
    bags = [fleet_dir / "kitchen"]
    for name in ("dies_once", "dies_always"):
        shutil.copytree(fleet_dir / "lab", tmp_path / name)
        bags.append(tmp_path / name)
    # A deadline, not a timing: if it ends the run, the statuses below say which bag was cut short.
    doc = evaluate_fleet(
        bags,
        tmp_path / "out",
        model=DEMO_ONNX,
        backend="onnxruntime",
        options=BagOptions("/camera/image_raw", "/camera/labels", write_output_bag=False),
        workers=1,
        worker_class=DyingWorker.wrap(BagWorker),
        deadline_s=600,
        ship=True,
    )
    by_name = {b["name"]: b for b in doc["bags"]}
    assert by_name["kitchen"]["status"] == "scored" and by_name["kitchen"]["attempts"] == 1
    assert by_name["dies_once"]["status"] == "scored" and by_name["dies_once"]["attempts"] == 2
    assert by_name["dies_always"]["status"] == "failed" and by_name["dies_always"]["attempts"] == 2
    assert "worker scoring it died" in by_name["dies_always"]["reason"]
    assert doc["bags_scored"] == 2 and not doc["complete"]
    # shipped as to a cluster's workers: the model through the object store, the code as a Ray py_module
    assert doc["run"]["shipped"] and "lcsnet_model_" in doc["run"]["worker_model"]
    assert "runtime_resources" in doc["run"]["worker_package"], doc["run"]["worker_package"]


def test_bag_selection(fleet_dir, tmp_path):
    one = resolve_bags([str(fleet_dir / "lab")])
    assert one.bags == [(fleet_dir / "lab").resolve()] and not one.fleet
    folder = resolve_bags([str(fleet_dir)])
    assert folder.fleet and [b.name for b in folder.bags] == [
        "corrupt",
        "empty",
        "kitchen",
        "lab",
        "no_images",
        "office",
    ]
    assert folder.skipped == [str(fleet_dir / "notes")]
    pattern = resolve_bags([str(fleet_dir / "[kl]*")])
    assert pattern.fleet and [b.name for b in pattern.bags] == ["kitchen", "lab"]
    twice = resolve_bags([str(fleet_dir / "lab"), str(fleet_dir / "lab")])
    assert twice.fleet and len(twice.bags) == 1
    assert not resolve_bags([str(tmp_path / "missing")]).fleet  # reported by the single-bag path
    with pytest.raises(Exception, match=r"no bag folder matches .*zzz\*"):
        resolve_bags([str(tmp_path / "zzz*")])
    assert bag_names([tmp_path / "a" / "run", tmp_path / "b" / "run", tmp_path / "x y"]) == ["run", "run-2", "x_y"]


def test_several_bags_refuse_node_mode(fleet_dir, tmp_path, capsys):
    code = evaluate.main([str(fleet_dir), *TOPICS, "--out-dir", str(tmp_path), "--node"])
    assert code == evaluate.EXIT_ERROR and "--node evaluates one bag" in capsys.readouterr().err


class Hanging:
    """A worker without a model: it reports every bag as failed at once, except one it never finishes."""

    def __init__(self, config):
        self.config = config

    def describe(self):
        return {"pid": os.getpid()}

    def score(self, bag, out_dir):
        from lcsnet_seg.eval.fleet_ray import Outcome

        if bag.endswith("hangs"):
            import threading

            threading.Event().wait()  # blocks until the driver kills this worker
        return Outcome(bag, "failed", reason="quick")


def test_a_bag_past_its_timeout_is_retried_once_then_reported(local_ray):
    import ray.cloudpickle

    from lcsnet_seg.eval.bag_eval import BagOptions
    from lcsnet_seg.eval.fleet_ray import WorkerConfig, run_fleet

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    config = WorkerConfig("unused.onnx", "onnxruntime", BagOptions("/camera/image_raw"))
    # A deadline, not a timing: on a loaded machine worker start-up can take long, and the assertions below
    # say what went wrong if the deadline ends the run. 15 s per bag: far above a quick bag, far below a hang.
    results, _ = run_fleet(
        [("a", None), ("hangs", None), ("b", None)],
        config,
        workers=1,
        gpu_share=0,
        worker_class=Hanging,
        bag_timeout_s=15,
        deadline_s=600,
    )
    by_bag = {outcome.bag: (outcome, attempts) for outcome, attempts in results}
    assert [by_bag[b][0].reason for b in ("a", "b")] == ["quick", "quick"]
    outcome, attempts = by_bag["hangs"]
    assert attempts == 2 and "not finished within --bag-timeout 15 s, on each of 2 attempts" in outcome.reason


def test_workers_share_a_gpu(local_ray, fleet_dir):
    """--workers-per-gpu 2: two workers at half a GPU each run side by side on the instance's one GPU
    (at a whole GPU each, the second could never start)."""
    from lcsnet_seg.eval.bag_eval import BagOptions
    from lcsnet_seg.eval.fleet_ray import WorkerConfig, run_fleet
    from lcsnet_seg.model import DEMO_ONNX

    config = WorkerConfig(
        str(DEMO_ONNX), "onnxruntime", BagOptions("/camera/image_raw", "/camera/labels", write_output_bag=False)
    )
    jobs = [(str(fleet_dir / name), None) for name in GOOD]
    # 300 s: two workers start on a loaded machine in far less; a share ignored would leave one waiting forever
    results, descriptions = run_fleet(jobs, config, workers=2, gpu_share=0.5, deadline_s=300)
    assert len({d["pid"] for d in descriptions}) == 2
    assert [d["ray_gpu_ids"] for d in descriptions] == [["0"], ["0"]]  # both on the one GPU
    assert [(outcome.status, outcome.reason) for outcome, _ in results] == [("scored", None)] * 3


def test_more_gpu_workers_than_gpus_is_refused_before_any_work(local_ray, fleet_dir, tmp_path):
    from lcsnet_seg.errors import ConfigError
    from lcsnet_seg.eval.bag_eval import BagOptions
    from lcsnet_seg.eval.fleet_run import evaluate_fleet

    bags = [fleet_dir / name for name in GOOD]
    with pytest.raises(
        ConfigError,
        match="3 workers of backend torch_cuda at 2 per GPU need 1.5 GPUs; this machine "
        "has 1: lower --workers or raise --workers-per-gpu",
    ):
        evaluate_fleet(
            bags,
            tmp_path / "out",
            model=tmp_path / "m.pth",
            backend="torch_cuda",
            options=BagOptions("/camera/image_raw", "/camera/labels"),
            workers=3,
            workers_per_gpu=2,
        )
    assert not (tmp_path / "out" / "metrics.json").exists()
    assert (
        evaluate.main([str(fleet_dir), *TOPICS, "--out-dir", str(tmp_path / "o"), "--workers-per-gpu", "0"])
        == evaluate.EXIT_USAGE
    )


def test_worker_counts_and_gpu_use():
    from lcsnet_seg.eval.fleet_run import default_workers, uses_gpu

    assert default_workers(True, {"GPU": 2, "CPU": 16}) == 2
    assert default_workers(True, {"GPU": 2, "CPU": 16}, workers_per_gpu=4) == 8
    assert default_workers(True, {"GPU": 1, "CPU": 4}, workers_per_gpu=8) == 4  # one CPU each
    assert default_workers(False, {"CPU": 16}) == 8 and default_workers(False, {"CPU": 1}) == 1
    assert uses_gpu("torch_cuda", Path("m.pth"), 0) and uses_gpu("auto", Path("m.engine"), 0)
    assert uses_gpu("auto", Path("m.pth"), 1) and not uses_gpu("auto", Path("m.pth"), 0)
    assert not uses_gpu("onnxruntime", Path("m.onnx"), 4) and not uses_gpu("auto", Path("m.onnx"), 4)


def test_more_workers_than_cpus_is_refused_before_any_work(local_ray, fleet_dir, tmp_path):
    from lcsnet_seg.errors import ConfigError
    from lcsnet_seg.eval.bag_eval import BagOptions
    from lcsnet_seg.eval.fleet_run import evaluate_fleet

    with pytest.raises(ConfigError, match="3 workers take a CPU each; the local Ray instance has 2: lower --workers"):
        evaluate_fleet(
            [fleet_dir / name for name in GOOD],
            tmp_path / "out",
            model=tmp_path / "m.onnx",
            backend="onnxruntime",
            options=BagOptions("/camera/image_raw", "/camera/labels"),
            workers=3,
        )
