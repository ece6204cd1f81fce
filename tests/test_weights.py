"""Weights registry: manifest, verify statuses, safe loading, strict-load reports, import."""
from __future__ import annotations

import json
import pickle

import pytest
import torch
from torch import nn

from engine import weights as W
from engine.api import WeightsError
from engine.families import Family, get_family, register, state_dict_keys


class TinyNet(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)
        self.norm = nn.BatchNorm2d(width)
        self.register_buffer("constant", torch.ones(2), persistent=True)


def _build(cfg):
    return {"net": TinyNet(cfg["width"]), "head": nn.Linear(cfg["width"], 2)}


def _convert(paths, cfg):
    raw = W.read_torch_file(paths[0])
    return {"net": raw["model"], "head": raw["head"]}


register(Family(name="test_tiny", build=_build, configs={"small": {"width": 4}, "wide": {"width": 6}},
                convert=_convert, inference_subnets=("net", "head"),
                optional_keys=lambda sub: {"constant"} if sub == "net" else set()))


class Evil:
    def __reduce__(self):
        return (print, ("this code must never run",))


def _official_file(tmp_path, width=4, drop_constant=True):
    m = _build({"width": width})
    sd = m["net"].state_dict()
    if drop_constant:
        sd.pop("constant")
    p = tmp_path / "official.pth"
    torch.save({"model": sd, "head": m["head"].state_dict()}, p)
    return p, m


def test_import_verify_and_load(weights_dir, tmp_path):
    p, m = _official_file(tmp_path)
    entry = W.import_official([p], name="tiny", family_name="test_tiny", config_name="small")
    manifest = W.Manifest()
    assert manifest.get("tiny").sha256 == entry.sha256
    assert entry.provenance == {"kind": "official", "upstream": "official.pth"}
    assert manifest.verify(entry).status == "verified"
    loaded = W.build_and_load(entry, manifest)
    assert torch.equal(loaded["net"].conv.weight, m["net"].conv.weight)
    assert torch.equal(loaded["net"].constant, torch.ones(2))  # optional key filled by the architecture


def test_verify_reports_missing_mismatch_unreadable(weights_dir, tmp_path):
    p, _ = _official_file(tmp_path)
    entry = W.import_official([p], name="tiny", family_name="test_tiny", config_name="small")
    manifest = W.Manifest()
    f = manifest.file_path(entry)
    data = f.read_bytes()
    f.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert manifest.verify(entry).status == "mismatch"
    f.write_bytes(b"garbage")
    entry.bytes, entry.sha256 = f.stat().st_size, W.sha256_file(f)
    assert manifest.verify(entry).status == "unreadable"
    f.unlink()
    assert manifest.verify(entry).status == "missing"
    with pytest.raises(WeightsError, match="missing"):
        W.build_and_load(entry, manifest)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on protocol 4
def test_pickled_code_is_refused(tmp_path, capsys):
    p = tmp_path / "evil.ckpt"
    with open(p, "wb") as fh:
        pickle.dump({"state_dict": Evil()}, fh)
    with pytest.raises(WeightsError, match="never unpickles"):
        W.read_torch_file(p)
    assert "must never run" not in capsys.readouterr().out


@pytest.mark.parametrize("case", ["text", "lfs", "truncated_zip", "truncated_legacy", "pickled_object"])
def test_non_checkpoints_are_called_what_they_are(tmp_path, case):
    """A text file, an LFS pointer or a cut-off download is named as such, not as "pickled code";
    torch's advice to load with weights_only=False is never repeated."""
    import argparse

    good = tmp_path / "good.pth"
    p = tmp_path / "latest_net_G.pth"
    if case == "text":
        p.write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>\n")
        expected = "not a PyTorch checkpoint: it is a text file"
    elif case == "lfs":
        p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 12345\n")
        expected = "Git LFS pointer"
    elif case in ("truncated_zip", "truncated_legacy"):
        torch.save({"w": torch.zeros(64, 64)}, good, _use_new_zipfile_serialization=case == "truncated_zip")
        data = good.read_bytes()
        p.write_bytes(data[: len(data) // 2])
        expected = "is truncated"
    else:
        torch.save({"w": torch.zeros(2), "opt": argparse.Namespace(lr=1)}, p)
        expected = "refused.*argparse.Namespace"
    with pytest.raises(WeightsError, match=expected) as info:
        W.read_torch_file(p)
    message = str(info.value)
    assert "weights_only" not in message and "add_safe_globals" not in message
    if case != "pickled_object":
        assert "pickled" not in message and "possibly code" not in message


def test_strict_load_reports_all_problems_together(weights_dir, tmp_path):
    p, _ = _official_file(tmp_path, width=6)  # wrong width for config "small"
    raw = torch.load(p, weights_only=True)
    raw["model"]["extra.weight"] = torch.zeros(1)
    del raw["head"]["bias"]
    torch.save(raw, p)
    with pytest.raises(WeightsError) as info:
        W.import_official([p], name="bad", family_name="test_tiny", config_name="small")
    msg = str(info.value)
    assert "key 'conv.weight' has shape [6, 3, 3, 3], expected [4, 3, 3, 3]" in msg
    assert "unexpected key 'extra.weight'" in msg
    assert "head: missing key 'bias'" in msg
    assert not (weights_dir / "bad.safetensors").exists()
    assert "bad" not in W.Manifest().entries


def test_keys_view_matches_state_dict_format():
    keys = state_dict_keys(get_family("test_tiny").build({"width": 4}))
    assert keys["net"]["conv.weight"] == [[4, 3, 3, 3], "float32"]
    assert keys["net"]["norm.num_batches_tracked"] == [[], "int64"]


def test_manifest_unknown_name_and_bad_json(weights_dir):
    with pytest.raises(WeightsError, match="no model named 'x'"):
        W.Manifest().get("x")
    (weights_dir / "manifest.json").write_text("{not json")
    with pytest.raises(WeightsError, match="not valid JSON"):
        W.Manifest()


def test_manifest_save_is_atomic_json(weights_dir, tmp_path):
    p, _ = _official_file(tmp_path)
    W.import_official([p], name="tiny", family_name="test_tiny", config_name="small")
    data = json.loads((weights_dir / "manifest.json").read_text())
    assert [m["name"] for m in data["models"]] == ["tiny"]
    assert not list(weights_dir.glob(".manifest-*"))
