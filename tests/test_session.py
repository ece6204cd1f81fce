"""engine.api.Session: the studio's one handle on the engine (model store, defaults, palettes)."""
from __future__ import annotations

import os

import pytest

import engine.weights as weights
from engine.api import ExemplarRequest, Session, WeightsError
from engine.families import get_family
from engine.weights import Manifest, WeightsEntry, current_manifest


def register(name: str, family: str, config_name: str, default: bool = False, **overrides) -> None:
    config = {**get_family(family).configs[config_name], **overrides}
    m = Manifest()
    m.add(WeightsEntry(name=name, family=family, config_name=config_name, config=config, file=f"{name}.safetensors",
                       bytes=0, sha256="", provenance={"kind": "trained-here", "command": "test"},
                       extra={"default": True} if default else {}))
    m.save()


@pytest.fixture
def session():
    s = Session()
    yield s
    assert s.close()


def test_manifest_is_read_once_and_again_only_when_the_file_changes(weights_dir, session, monkeypatch):
    register("coco", "cocosnet", "small_ade20k", default=True)
    reads = []
    original = weights.load_json
    monkeypatch.setattr(weights, "load_json", lambda *a, **k: (reads.append(a[0]), original(*a, **k))[1])
    for _ in range(5):  # what a drag asks per pointer move: size, default model, palette
        session.prepare(ExemplarRequest(), "preview")
        session.default_model("cocosnet")
        session.palette("cocosnet", "coco")
    assert len(reads) == 1
    register("coco2", "cocosnet", "small_ade20k")
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
    register("b_first", "cocosnet", "small_ade20k")
    assert session.default_model("cocosnet") == "b_first"  # no flag: the first entry
    register("a_flagged", "cocosnet", "small_ade20k", default=True)
    assert session.default_model("cocosnet") == "a_flagged"  # the flagged one wins
    assert session.default_model("cocosnet", "b_first") == "b_first"  # an explicit name is kept
    assert [e.name for e in session.models("cocosnet")] == ["a_flagged", "b_first"]


def test_palette_follows_the_model_not_the_config_name(weights_dir, session):
    register("scenes16", "cocosnet", "small_ade20k", semantic_nc=16)  # config named after ADE20k, 16 classes
    register("ade", "cocosnet", "small_ade20k", semantic_nc=151)
    register("faces", "cocosnet", "small_celebahqedge")
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
