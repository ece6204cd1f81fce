"""engine.api.Session: the studio's one handle on the engine (model store, defaults, palettes)."""
from __future__ import annotations

import os

import pytest

import engine.weights as weights
from engine.api import ExemplarRequest, Session, WeightsError
from engine.weights import current_manifest

from .test_preview_sizes import register_config


@pytest.fixture
def session():
    s = Session()
    yield s
    assert s.close()


def test_manifest_is_read_once_and_again_only_when_the_file_changes(weights_dir, session, monkeypatch):
    register_config("cocosnet", "small_ade20k", "coco", default=True)
    reads = []
    original = weights.load_json
    monkeypatch.setattr(weights, "load_json", lambda *a, **k: (reads.append(a[0]), original(*a, **k))[1])
    for _ in range(5):  # what a drag asks per pointer move: size, default model, palette
        session.prepare(ExemplarRequest(), "preview")
        session.default_model("cocosnet")
        session.palette("cocosnet", "coco")
    assert len(reads) == 1
    register_config("cocosnet", "small_ade20k", "coco2")
    reads.clear()  # (registering read the file itself)
    path = weights_dir / "manifest.json"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a coarse file-system clock
    assert "coco2" in session.manifest().entries
    session.default_model("cocosnet")
    assert len(reads) == 1
    assert current_manifest() is session.manifest()


def test_default_model_is_one_rule_with_one_error(weights_dir, session):
    with pytest.raises(WeightsError, match="no cocosnet weights are registered.*i2i weights import"):
        session.default_model("cocosnet")
    register_config("cocosnet", "small_ade20k", "b_first")
    assert session.default_model("cocosnet") == "b_first"  # no flag: the first entry
    register_config("cocosnet", "small_ade20k", "a_flagged", default=True)
    assert session.default_model("cocosnet") == "a_flagged"  # the flagged one wins
    assert session.default_model("cocosnet", "b_first") == "b_first"  # an explicit name is kept
    assert [e.name for e in session.models("cocosnet")] == ["a_flagged", "b_first"]


def test_palette_follows_the_model_not_the_config_name(weights_dir, session):
    register_config("cocosnet", "small_ade20k", "scenes16", semantic_nc=16)  # config named after ADE20k, 16 classes
    register_config("cocosnet", "small_ade20k", "ade", semantic_nc=151)
    register_config("cocosnet", "small_celebahqedge", "faces")
    assert session.palette("cocosnet", "scenes16").name.startswith("scenes")
    assert session.palette("cocosnet", "ade").name.startswith("ade20k")
    assert session.palette("cocosnet", "faces").name.startswith("celebamask_hq")
    assert session.palette("panoptic").name.startswith("scenes")  # no model yet: the stock palette
    assert session.palette("stargan2") is None  # photos, not label maps


def test_session_applies_its_device_and_precision(weights_dir, session):
    session.device, session.precision = "cpu", "float32"
    prepared = session.prepare(ExemplarRequest(device="auto"), "full")
    assert (prepared.device, prepared.precision) == ("cpu", "float32")
    assert session.device_label() == "cpu"
    assert "cpu" in Session.devices()
