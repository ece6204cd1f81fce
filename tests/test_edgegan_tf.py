"""TF1 tensor-bundle reader/writer and the EdgeGAN checkpoint import on checkpoints our writer makes
(a checkpoint written by the official TensorFlow code is tested in test_edgegan_tf_official.py)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.nets.edgegan import CONFIGS, TF_SCOPES, build, convert, state_dicts_to_tf
from engine.requests.base import WeightsError
from engine.weights import Manifest, build_and_load, import_official, load_strict
from engine.weights.tf_checkpoint import (
    crc32c,
    decode_varint,
    encode_varint,
    list_variables,
    masked_crc32c,
    read_checkpoint,
    read_table,
    resolve_prefix,
    unmask_crc32c,
    write_checkpoint,
    write_table,
)

torch.set_num_threads(1)


def test_crc32c_known_value_and_chunked_path() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    data = os.urandom(300_001)
    from engine.weights.tf_checkpoint import _crc32c_small

    assert crc32c(data) == _crc32c_small(data)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**35 + 7, 2**63 - 1])
def test_varint_round_trip(value: int) -> None:
    enc = encode_varint(value)
    assert decode_varint(enc, 0) == (value, len(enc))


def test_table_round_trip_spans_many_blocks(tmp_path: Path) -> None:
    items = [(f"key/{i:05d}".encode(), os.urandom(i % 50)) for i in range(600)]
    write_table(tmp_path / "t.index", items, block_size=512)
    assert read_table(tmp_path / "t.index") == items


def test_table_detects_corruption(tmp_path: Path) -> None:
    write_table(tmp_path / "t.index", [(b"a", b"x" * 40), (b"b", b"y" * 40)])
    raw = bytearray((tmp_path / "t.index").read_bytes())
    raw[10] ^= 0xFF
    (tmp_path / "t.index").write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="checksum"):
        read_table(tmp_path / "t.index")
    (tmp_path / "bad.index").write_bytes(b"\0" * 60)
    with pytest.raises(WeightsError, match="magic"):
        read_table(tmp_path / "bad.index")


def test_checkpoint_round_trip_dtypes_and_scalars(tmp_path: Path) -> None:
    tensors = {
        "a/w": torch.randn(3, 4, 5),
        "global_step": torch.tensor(1234, dtype=torch.int64),
        "b/flag": torch.tensor([True, False]),
        "c/i32": torch.arange(7, dtype=torch.int32),
        "d/half": torch.randn(4).half(),
    }
    prefix = write_checkpoint(tmp_path / "model-10", tensors)
    assert (tmp_path / "model-10.index").exists() and (tmp_path / "model-10.data-00000-of-00001").exists()
    back = read_checkpoint(prefix)
    assert set(back) == set(tensors)
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    assert list_variables(tmp_path / "model-10.index")["a/w"] == ([3, 4, 5], "float32")
    only = read_checkpoint(prefix, include=lambda n: n.startswith("a/"))
    assert list(only) == ["a/w"]


def test_index_entries_are_tf_bundle_protos(tmp_path: Path) -> None:
    """Decode the header and one entry field by field (what TensorFlow's BundleReader reads)."""
    from engine.weights.tf_checkpoint import decode_entry, parse_proto

    write_checkpoint(tmp_path / "m", {"x": torch.ones(2, 3)})
    items = read_table(tmp_path / "m.index")
    assert items[0][0] == b""
    header = parse_proto(items[0][1])
    assert header[1] == [1]  # num_shards
    assert parse_proto(header[3][0])[1] == [1]  # version.producer
    entry = decode_entry(items[1][1])
    assert entry.dtype == 1 and entry.shape == (2, 3) and entry.size == 24
    data = np.ones((2, 3), np.float32).tobytes()
    assert entry.crc32c == masked_crc32c(data) != crc32c(data)  # TF stores crc32c::Mask(crc)
    assert unmask_crc32c(entry.crc32c) == crc32c(data)


def test_data_corruption_is_reported(tmp_path: Path) -> None:
    write_checkpoint(tmp_path / "m", {"x": torch.ones(10)})
    data = tmp_path / "m.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[0] ^= 1
    data.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="checksum"):
        read_checkpoint(tmp_path / "m")


def test_resolve_prefix_forms(tmp_path: Path) -> None:
    write_checkpoint(tmp_path / "EdgeGAN-Model-7", {"x": torch.zeros(1)})
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "EdgeGAN-Model-7"\n')
    expect = tmp_path / "EdgeGAN-Model-7"
    assert resolve_prefix(tmp_path) == expect
    assert resolve_prefix(tmp_path / "EdgeGAN-Model-7.index") == expect
    assert resolve_prefix(tmp_path / "EdgeGAN-Model-7.data-00000-of-00001") == expect


def _official_like_bundle(folder: Path, cfg: dict, seed: int = 0) -> dict:
    """A checkpoint laid out like the released one: TF names and layouts, plus RMSProp slots, batch-norm
    moving averages and the classifier's unused head that the importer skips on purpose."""
    torch.manual_seed(seed)
    nets = build(cfg)
    sd = {k: m.state_dict() for k, m in nets.items() if k in TF_SCOPES}
    tf = state_dicts_to_tf(sd, cfg)
    extra = {f"{k}/RMSProp": torch.ones_like(v) for k, v in list(tf.items())[:3]}
    extra["G1/batch_norm/BatchNorm/moving_mean"] = torch.zeros(8 * cfg["gf_dim"])
    extra["D2/Conv_1/weights"] = torch.randn(1, 1, 12 * cfg["cf_dim"], 1)
    write_checkpoint(folder / "EdgeGAN-Model-100", {**tf, **extra})
    (folder / "checkpoint").write_text('model_checkpoint_path: "EdgeGAN-Model-100"\n'
                                       'all_model_checkpoint_paths: "EdgeGAN-Model-100"\n')
    return sd


def test_convert_round_trip_then_strict_load(tmp_path: Path) -> None:
    cfg = CONFIGS["tiny"]
    sd = _official_like_bundle(tmp_path, cfg)
    state = convert([tmp_path / "EdgeGAN-Model-100.index"], cfg)
    assert set(state) == set(TF_SCOPES)
    fresh = build(cfg)
    load_strict(fresh, state, source="bundle", required_subnets=["encoder", "edge_generator", "image_generator"])
    for sub, params in state.items():
        for k in params:
            if sub == "classifier" and k.endswith(("weight_u", "weight_v")):
                continue  # one power iteration from the stored u, as TF runs it (see _spectral_vectors)
            assert torch.equal(fresh[sub].state_dict()[k], sd[sub][k]), (sub, k)
    z = torch.rand(2, cfg["z_dim"])
    ref = build(cfg)
    ref["image_generator"].load_state_dict(sd["image_generator"])
    with torch.no_grad():
        assert torch.allclose(fresh["image_generator"](z, torch.tensor([0, 1])),
                              ref["image_generator"](z, torch.tensor([0, 1])))


def test_convert_reports_missing_variables_together(tmp_path: Path) -> None:
    cfg = CONFIGS["tiny"]
    tf = state_dicts_to_tf({k: m.state_dict() for k, m in build(cfg).items()}, cfg)
    del tf["E/FC8_mu/w"], tf["G1/g_dconv_2/deconv2d/b"]
    write_checkpoint(tmp_path / "m", tf)
    with pytest.raises(WeightsError) as err:
        convert([tmp_path / "m.index"], cfg)
    assert "E/FC8_mu/w" in str(err.value) and "G1/g_dconv_2/deconv2d/b" in str(err.value)


def test_convert_wrong_config_is_one_readable_error(tmp_path: Path, weights_dir: Path) -> None:
    cfg = dict(CONFIGS["tiny"])
    _official_like_bundle(tmp_path, cfg)
    with pytest.raises(WeightsError, match="lacks .* variables") as err:
        import_official([tmp_path / "EdgeGAN-Model-100.index"], name="x", family_name="edgegan",
                        config_name="small")
    assert "another --config" in str(err.value) and "the checkpoint has instead e.g. E/e_resnet_" in str(err.value)
    assert not (weights_dir / "x.safetensors").exists()


def test_import_official_registers_and_loads(tmp_path: Path, weights_dir: Path) -> None:
    from engine.cli import main

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    sd = _official_like_bundle(ckpt, CONFIGS["tiny"], seed=3)
    assert main(["weights", "import", str(ckpt), "--as", "eg_official", "--family", "edgegan", "--config", "tiny"]) == 0
    m = Manifest()
    entry = m.get("eg_official")
    assert entry.provenance["kind"] == "official"
    nets = build_and_load(entry, m)
    assert torch.equal(nets["encoder"].state_dict()["stem.weight"], sd["encoder"]["stem.weight"])


def test_import_refuses_an_existing_name_unless_forced(tmp_path: Path, weights_dir: Path, capsys) -> None:
    from engine.cli import main

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    _official_like_bundle(ckpt, CONFIGS["tiny"], seed=3)
    argv = ["weights", "import", str(ckpt), "--as", "eg", "--family", "edgegan", "--config", "tiny"]
    assert main(argv) == 0
    first = (weights_dir / "eg.safetensors").read_bytes()
    capsys.readouterr()
    assert main(argv) == 2
    assert "'eg' already exists" in capsys.readouterr().err
    _official_like_bundle(ckpt, CONFIGS["tiny"], seed=4)
    assert (weights_dir / "eg.safetensors").read_bytes() == first  # the refused import left it alone
    assert main([*argv, "--force"]) == 0
    assert (weights_dir / "eg.safetensors").read_bytes() != first
    assert main(["weights", "import", str(ckpt), "--as", "../eg2", "--family", "edgegan", "--config", "tiny"]) == 2
    assert not (tmp_path / "eg2.safetensors").exists()
