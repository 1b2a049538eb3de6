import pytest

from lcsnet_seg.classes import ClassSet, load_class_set
from lcsnet_seg.errors import ConfigError

EXPECTED = ["wall", "floor", "whiteboard", "projection screen", "table", "chair", "computer", "other"]


def write(tmp_path, text):
    path = tmp_path / "classes.yaml"
    path.write_text(text)
    return path


def test_default_class_set_is_the_seed_model_set():
    classes = load_class_set()
    assert list(classes.names) == EXPECTED
    lut = classes.palette_rgb()
    assert lut.shape == (256, 3) and lut.dtype.name == "uint8"
    assert tuple(lut[5]) == classes.colors[5]
    assert not lut[8:].any()
    assert len(set(classes.colors)) == len(classes), "palette colours must be distinguishable"


def test_ids_may_come_in_any_order(tmp_path):
    path = write(tmp_path, "classes:\n - {id: 1, name: b, color: [0, 0, 1]}\n - {id: 0, name: a, color: [0, 0, 0]}\n")
    assert load_class_set(path).names == ("a", "b")


@pytest.mark.parametrize(
    "body, message",
    [
        ("classes:\n - {id: 0, name: a, color: [0,0,0]}\n - {id: 0, name: b, color: [1,1,1]}\n", "appears twice"),
        ("classes:\n - {id: 0, name: a, color: [0,0,0]}\n - {id: 2, name: b, color: [1,1,1]}\n", "without gaps"),
        ("classes:\n - {id: 0, name: a, color: [0,0,300]}\n", "0-255"),
        ("classes:\n - {id: 0, name: a, color: [0,0]}\n", "0-255"),
        ("classes:\n - {id: 0, name: a, color: red}\n", "[R, G, B]"),
        ("classes:\n - {id: 0, name: a, color: [0,0,0]}\n - {id: 1, name: a, color: [1,1,1]}\n", "duplicate names"),
        ("classes:\n - {id: 0, name: a}\n", "needs the keys"),
        ("classes: []\n", "non-empty"),
        ("colours: 3\n", "top-level 'classes:'"),
        ("classes: [\n", "not valid YAML"),
    ],
)
def test_bad_class_files_give_one_clear_line(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_class_set(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_wrong_count_against_the_model(tmp_path):
    with pytest.raises(ConfigError, match="model predicts 5"):
        load_class_set(expected_count=5)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_class_set(tmp_path / "nope.yaml")


def test_records_round_trip():
    classes = load_class_set()
    assert ClassSet.from_records(classes.to_records()) == classes
