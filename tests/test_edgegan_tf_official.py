"""EdgeGAN against the official TensorFlow code: a real ``tf.train.Saver`` checkpoint and the official
networks' outputs, both made by the official code, imported with ``i2i weights import`` and reproduced.

How ``tests/data/edgegan_tf/`` was made (details and the exact patch list in its README.md; TensorFlow is
never needed to run these tests):

- code: sysu-imsl/EdgeGAN at commit 7867a5a (the ``edgegan/`` package only), run with tensorflow-cpu
  2.21.0 and tf-slim 1.1.0 on Python 3.11 in a separate virtual environment outside the repository;
- patches, none touching the arithmetic: ``import tensorflow.compat.v1 as tf`` everywhere;
  ``tf.contrib.layers`` / ``contrib.slim`` -> ``tf_slim`` (the same code, split out of TF 1.15), so the
  generators' first norm is contrib's ``batch_norm`` with its variable names; the gradient-penalty blend's
  ``contrib.distributions.Uniform`` -> ``tf.random_uniform``; deconv reshaped to its requested output
  shape (TF 2 leaves the batch dimension unknown); the classifier's NCHW convs run as NHWC between
  transposes (CPU TF has no NCHW Conv2D); small widths: encoder 4 / (8, 16, 32, 32) and classifier
  ``size = 4`` instead of the hard-coded 64 / (128, 256, 512, 512) and 64;
- model: ``EdgeGAN(z_dim=16, gf_dim=4, df_dim=4)``, 64×128 pairs, 5 classes, discriminator input 80 px
  (so the legacy bicubic resize is exercised at a non-integer scale), every other flag at the official
  default (instance norms, resnet encoder, multiclasses, RMSProp);
- ``build_train_model()``, variables initialised, then every float variable re-drawn from numpy
  ``RandomState(19)`` (weights N(0, 1/fan_in), biases N(0, 0.1) (update gates N(0.5, 0.1)), batch-norm γ
  and moving variance U(0.5, 1.5), β and moving mean N(0, 0.2), PReLU slopes U(0.05, 0.4),
  spectral-norm u N(0, 1), RMSProp slots U(0.1, 0.9)), so that no variable is exactly 0 or 1, and saved
  with the official ``EdgeGAN.save`` (step 2); the training graph's outputs for fixed pairs and z
  (generators, the three discriminators on real and fake, resized inputs, the classifier) are recorded;
- the official test graph (``build_test_model``, restored with the official ``EdgeGAN.load``) is run on
  fixed sketches with batch 2 and batch 1: encoder μ, log σ, z and both generators' outputs;
- kept: ``checkpoints/`` (``checkpoint``, ``.index``, ``.data-00000-of-00001``; the 6.7 MB graph
  ``.meta`` is left out, no importer reads it) and ``outputs.npz`` (NHWC arrays).
"""
from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.nets.edgegan import (
    CONFIGS,
    TFInstanceNorm,
    build,
    convert,
    state_dicts_to_tf,
    tf_legacy_resize_bicubic,
    tf_skip_reason,
    tf_variable_map,
)
from engine.requests.base import WeightsError
from engine.train.edgegan import _resize as train_resize
from engine.weights import Manifest, build_and_load
from engine.weights.tf_checkpoint import (
    crc32c,
    decode_entry,
    encode_entry,
    list_variables,
    masked_crc32c,
    read_checkpoint,
    read_table,
    write_checkpoint,
    write_table,
)

DATA = Path(__file__).resolve().parent / "data" / "edgegan_tf"
CKPT = DATA / "checkpoints"
PREFIX = CKPT / "EdgeGAN-Model-2"
CONFIG = CONFIGS["tf_reference"]
TOL = 1e-4


@pytest.fixture(scope="module")
def official() -> dict[str, np.ndarray]:
    with np.load(DATA / "outputs.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, torch.nn.Module]:
    """The reference checkpoint imported through the CLI (index and data file given, as the README says)."""
    from engine.cli import main

    folder = tmp_path_factory.mktemp("weights")
    mp = pytest.MonkeyPatch()
    mp.setenv("I2I_WEIGHTS_DIR", str(folder))
    try:
        assert main(["weights", "import", str(PREFIX) + ".index", str(PREFIX) + ".data-00000-of-00001",
                     "--as", "edgegan_tf_reference", "--family", "edgegan", "--config", "tf_reference"]) == 0
        manifest = Manifest()
        entry = manifest.get("edgegan_tf_reference")
        assert entry.provenance["kind"] == "official"
        nets = build_and_load(entry, manifest)
    finally:
        mp.undo()
    assert set(nets) == {"encoder", "edge_generator", "image_generator", "joint_discriminator",
                         "image_discriminator", "edge_discriminator", "classifier"}
    return nets


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2)


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).numpy()


def _close(ours: torch.Tensor | np.ndarray, ref: np.ndarray) -> None:
    ours = ours.numpy() if isinstance(ours, torch.Tensor) else ours
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL)


# ------------------------------------------------------------------------------ checksums
def test_reference_checkpoint_stores_masked_crcs_and_reads_verified() -> None:
    items = dict(read_table(PREFIX.with_name(PREFIX.name + ".index")))
    entry = decode_entry(items[b"G1/g_lin_0/bias"])
    raw = (CKPT / "EdgeGAN-Model-2.data-00000-of-00001").read_bytes()[entry.offset:entry.offset + entry.size]
    assert entry.crc32c == masked_crc32c(raw) and entry.crc32c != crc32c(raw)
    variables = read_checkpoint(CKPT)  # the folder's `checkpoint` file names the prefix; every CRC checked
    assert len(variables) == len(list_variables(PREFIX)) == 412
    assert all(v.dtype == torch.float32 for v in variables.values())


def test_raw_tensor_crcs_as_the_old_writer_stored_them_are_rejected(tmp_path: Path) -> None:
    write_checkpoint(tmp_path / "m", {"x": torch.arange(10.0)})
    index = tmp_path / "m.index"
    items = read_table(index)
    e = decode_entry(items[1][1])
    data = (tmp_path / "m.data-00000-of-00001").read_bytes()
    raw_crc = crc32c(data[e.offset:e.offset + e.size])
    write_table(index, [items[0], (items[1][0], encode_entry(replace(e, crc32c=raw_crc)))])
    with pytest.raises(WeightsError, match="x: tensor checksum mismatch"):
        read_checkpoint(tmp_path / "m")


def test_our_writer_round_trips_the_official_variables_with_tf_rules(tmp_path: Path) -> None:
    """What we write is what TensorFlow's BundleReader accepts: every tensor's masked CRC, checked by
    the same reader that reads the official checkpoint above (TF 2.21 itself read such a file)."""
    variables = read_checkpoint(PREFIX)
    write_checkpoint(tmp_path / "EdgeGAN-Model-2", variables)
    items = read_table(tmp_path / "EdgeGAN-Model-2.index")
    assert [k for k, _ in items] == [k for k, _ in read_table(PREFIX.with_name(PREFIX.name + ".index"))]
    data = (tmp_path / "EdgeGAN-Model-2.data-00000-of-00001").read_bytes()
    for _, value in items[1:]:
        e = decode_entry(value)
        assert e.crc32c == masked_crc32c(data[e.offset:e.offset + e.size])
    back = read_checkpoint(tmp_path / "EdgeGAN-Model-2")
    assert set(back) == set(variables) and all(torch.equal(back[k], variables[k]) for k in variables)


# ------------------------------------------------------------------------------ strict import
def test_every_reference_variable_is_mapped_or_deliberately_skipped() -> None:
    names = set(list_variables(PREFIX))
    mapped = {tf for entries in tf_variable_map(CONFIG).values() for tf, _, _ in entries}
    assert mapped <= names  # our name map is the official graph's, classifier and batch norms included
    skipped = names - mapped
    assert all(tf_skip_reason(n) is not None for n in skipped)
    assert {n for n in skipped if not re.search(r"/RMSProp(_1)?$", n)} == {
        "G1/batch_norm/BatchNorm/moving_mean", "G1/batch_norm/BatchNorm/moving_variance",
        "G2/batch_norm/BatchNorm/moving_mean", "G2/batch_norm/BatchNorm/moving_variance",
        "D2/Conv_1/weights", "D2/Conv_1/biases", "D2/Conv_1/D2/Conv_1/u"}
    assert all(tf_skip_reason(n) is None for n in mapped)


def test_unmapped_variables_are_reported_not_dropped(tmp_path: Path) -> None:
    variables = read_checkpoint(PREFIX)
    variables["global_step"] = torch.tensor(2, dtype=torch.int64)
    variables["G1/g_lin_0/extra"] = torch.ones(3)
    write_checkpoint(tmp_path / "m", variables)
    with pytest.raises(WeightsError, match="neither maps nor deliberately skips") as err:
        convert([tmp_path / "m.index"], CONFIG)
    assert "global_step" in str(err.value) and "G1/g_lin_0/extra" in str(err.value)


def test_missing_classifier_and_batch_norm_variables_are_reported(tmp_path: Path) -> None:
    variables = read_checkpoint(PREFIX)
    del variables["G2/batch_norm/BatchNorm/gamma"], variables["D2/mru_conv_unit_t_4_layer_0/Conv_3/weights"]
    write_checkpoint(tmp_path / "m", variables)
    with pytest.raises(WeightsError, match="lacks 2 variables") as err:
        convert([tmp_path / "m"], CONFIG)
    assert "G2/batch_norm/BatchNorm/gamma" in str(err.value)
    assert "D2/mru_conv_unit_t_4_layer_0/Conv_3/weights" in str(err.value)


def test_files_of_two_checkpoints_are_refused(tmp_path: Path) -> None:
    shutil.copy(PREFIX.with_name(PREFIX.name + ".index"), tmp_path / "other.index")
    with pytest.raises(WeightsError, match="one TF checkpoint"):
        convert([PREFIX.with_name(PREFIX.name + ".index"), tmp_path / "other.index"], CONFIG)


# ------------------------------------------------------------------------------ outputs
@pytest.mark.parametrize("batch", [2, 1])
def test_encoder_and_generators_reproduce_the_official_test_graph(imported, official, batch: int) -> None:
    x = _nchw(official["sketch_pairs"][:batch])[..., :64]  # the test graph's left half
    with torch.no_grad():
        _, mu, log_sigma = imported["encoder"](x, noise="none")
        _close(mu, official[f"test{batch}/mu"])
        _close(log_sigma, official[f"test{batch}/log_sigma"])
        # the official z is μ + ε·σ with ONE normal number ε for the whole call ("scalar" noise)
        z = official[f"test{batch}/z"]
        eps = (z - official[f"test{batch}/mu"]) / np.exp(official[f"test{batch}/log_sigma"])
        assert np.ptp(eps) < 1e-4
        z_ours, _, _ = imported["encoder"](x, noise="scalar", generator=torch.Generator().manual_seed(5))
        drawn = torch.randn((), generator=torch.Generator().manual_seed(5))
        _close(z_ours, official[f"test{batch}/mu"] + drawn.item() * np.exp(official[f"test{batch}/log_sigma"]))
        labels = torch.from_numpy(official["sketch_classes"][:batch]).long()
        for sub, key in (("edge_generator", "edge_output"), ("image_generator", "image_output")):
            _close(_nhwc(imported[sub](torch.from_numpy(z), labels)), official[f"test{batch}/{key}"])


def test_generators_reproduce_the_official_training_graph(imported, official) -> None:
    z = torch.from_numpy(official["z_train"])
    z_dim = CONFIG["z_dim"]
    with torch.no_grad():
        for sub, key in (("edge_generator", "edge_output"), ("image_generator", "image_output")):
            _close(_nhwc(imported[sub](z[:, :z_dim], z[:, z_dim].long())), official[f"train/{key}"])


def test_the_old_instance_norm_would_not_reproduce_them(imported, official) -> None:
    """The reference data tells the generators' first norm apart: the plain instance norm we had is off."""
    gen = build(CONFIG, only=("image_generator",))["image_generator"]
    gen.load_state_dict(imported["image_generator"].state_dict())
    gen.fc_norm = TFInstanceNorm()
    z = torch.from_numpy(official["test1/z"])
    with torch.no_grad():
        out = _nhwc(gen(z, torch.tensor([int(official["sketch_classes"][0])])))
    assert np.abs(out - official["test1/image_output"]).max() > 50 * TOL


def test_discriminators_reproduce_the_official_outputs(imported, official) -> None:
    pairs = _nchw(official["pairs"])
    fake_pairs = torch.cat([_nchw(official["train/edge_output"]), _nchw(official["train/image_output"])], 3)
    with torch.no_grad():
        _close(imported["joint_discriminator"](pairs), official["train/truejoint_dis_output"])
        _close(imported["joint_discriminator"](fake_pairs), official["train/fakejoint_dis_output"])
        for sub, real, fake in (("image_discriminator", "resized_inputs", "resized_image_output"),
                                ("edge_discriminator", "resized_edges", "resized_edge_output")):
            prefix = "trueimage" if sub == "image_discriminator" else "trueedge"
            _close(imported[sub](_nchw(official[f"train/{real}"])), official[f"train/{prefix}_dis_output"])
            _close(imported[sub](_nchw(official[f"train/{fake}"])),
                   official[f"train/{prefix.replace('true', 'fake')}_dis_output"])


def test_classifier_reproduces_the_official_logits(imported, official) -> None:
    with torch.no_grad():
        _close(imported["classifier"](_nchw(official["pairs"])[..., 64:]), official["train/trueimage_class_output"])
        _close(imported["classifier"](_nchw(official["train/image_output"])), official["train/fakeimage_class_output"])


def test_legacy_bicubic_resize_matches_tf1_resize_images(official) -> None:
    """The official pipeline resizes the discriminators' inputs with TF 1's resize_images(BICUBIC): no
    half-pixel offset. Ours matches it; PyTorch's half-pixel bicubic does not."""
    pairs = _nchw(official["pairs"])
    cases = (("resized_edges", pairs[..., :64]), ("resized_inputs", pairs[..., 64:]),
             ("resized_image_output", _nchw(official["train/image_output"])),
             ("resized_edge_output", _nchw(official["train/edge_output"])))
    for key, src in cases:
        _close(_nhwc(tf_legacy_resize_bicubic(src, CONFIG["dis_size"])), official[f"train/{key}"])
    fake = _nchw(official["train/image_output"]).requires_grad_()
    resized = train_resize(fake, CONFIG["dis_size"])  # what the trainer feeds the image discriminator
    _close(_nhwc(resized.detach()), official["train/resized_image_output"])
    resized.sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    half_pixel = F.interpolate(pairs[..., 64:], size=(80, 80), mode="bicubic", align_corners=False)
    assert np.abs(_nhwc(half_pixel) - official["train/resized_inputs"]).max() > 0.1


def test_export_then_import_keeps_every_mapped_tensor(imported, tmp_path: Path) -> None:
    state = {k: m.state_dict() for k, m in imported.items()}
    tf = state_dicts_to_tf(state, CONFIG)
    write_checkpoint(tmp_path / "EdgeGAN-Model-3", tf)
    back = convert([tmp_path], CONFIG)
    for sub, sd in back.items():
        for k, v in sd.items():
            if sub == "classifier" and k.endswith(("weight_u", "weight_v")):
                continue  # re-derived by one power iteration from the stored u, as TF does
            assert torch.equal(v, state[sub][k]), (sub, k)
