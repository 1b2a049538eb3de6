"""The one replay loop (eval/replay.py), with a scripted segment step: what it counts, writes and keeps."""

from types import SimpleNamespace

import numpy as np

from lcsnet_seg.eval.replay import RECORDED, FrameOutput, NoOutputBag, replay_frames


class RecordingWriter:
    def __init__(self):
        self.images = []

    def write_image(self, topic, log_time, header, array, encoding):
        self.images.append((topic, log_time, encoding, array.copy()))

    def write_raw(self, *args):
        raise AssertionError("arrays are written as images")

    def close(self):
        pass


def frame(i, error=None, encoding="bgr8"):
    image = np.full((4, 6, 3), (10 * i, 20, 30), np.uint8)
    return SimpleNamespace(stamp=i, log_time=100 + i, header=None, image=image, encoding=encoding, error=error)


def scripted(skip=()):
    """Labels = frame number, overlay = the image in the input's (bgr) order; one reused buffer, as a GPU
    Segmenter's; frames in ``skip`` get no output."""
    buffer = np.zeros((4, 6), np.uint8)

    def segment(items):
        for index, f, wanted in items:
            if f.stamp in skip:
                yield index, f, None
                continue
            buffer[:] = f.stamp
            arrays = {"labels": buffer}
            if "overlay" in wanted:
                arrays["overlay"], arrays["color_mask"] = f.image, f.image[..., ::-1]
            yield index, f, FrameOutput(arrays, "bgr", latency_ms=2.0)

    return segment


def test_counts_writes_every_recorded_output_and_keeps_samples_of_any_encoding():
    frames = [frame(0), frame(1, error="corrupt"), frame(2), frame(3)]
    labels = SimpleNamespace(find=lambda stamp: np.full((4, 6), stamp, np.uint8))
    writer = RecordingWriter()
    scorer = replay_frames(
        frames,
        4,
        labels,
        writer,
        scripted(skip={2}),
        num_classes=8,
        samples=4,
        output_prefix="/out/",
        progress=lambda it, **_: it,
    )
    c = scorer.counts
    assert (c["frames_bad_image"], c["frames_without_output"], c["frames_segmented"], c["frames_scored"]) == (
        1,
        1,
        2,
        2,
    )
    assert scorer.cm.scores().pixel_accuracy == 1.0  # the reused label buffer was scored before it changed
    topics = sorted({t for t, *_ in writer.images})
    assert topics == sorted(f"/out/{o.topic}" for o in RECORDED)
    assert ("/out/overlay", 100, "bgr8") in [(t, lt, e) for t, lt, e, _ in writer.images]
    # bgr8 input: samples are kept (not only for rgb8), converted to RGB, for the frames that got output
    assert len(scorer.samples) == 2
    assert np.array_equal(scorer.samples[1].image_rgb[0, 0], (30, 20, 30))
    assert np.array_equal(scorer.samples[1].overlay_rgb, scorer.samples[1].image_rgb)


def test_without_an_output_bag_only_labels_are_asked_for_outside_samples():
    asked = []

    def segment(items):
        for index, f, wanted in items:
            asked.append(wanted)
            yield index, f, FrameOutput({"labels": np.zeros((4, 6), np.uint8)})

    replay_frames(
        [frame(i) for i in range(5)],
        5,
        None,
        NoOutputBag(),
        segment,
        num_classes=8,
        samples=1,
        output_prefix="/x",
        progress=lambda it, **_: it,
    )
    assert asked.count(("labels",)) == 4 and len(asked) == 5
