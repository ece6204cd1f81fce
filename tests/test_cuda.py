"""CUDA tests (issue 17): they run only where a CUDA device is available and skip elsewhere.

Float32 outputs on the GPU match the CPU's (TF32 off), a request through the engine's task runner
on ``cuda`` returns a finite uint8 image of the right size, bfloat16 autocast stays ≥ 35 dB from
float32, and one training step of each trainer runs on the GPU. No Qt is needed, nor this folder's
conftest fixtures:

    python3 -m pytest -q -p no:cacheprovider --noconftest tests/test_cuda.py

Each helper takes the device, so it can be tried on ``cpu`` where no GPU is available.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("I2I_COMPILE", "off")  # no inductor compile behind the task runner here

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CPU = torch.device("cpu")


@pytest.fixture
def no_tf32() -> Iterator[None]:
    """Exact float32 on the GPU while comparing with the CPU (TF32 convolutions differ ~1e-3)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _psnr(ref: torch.Tensor, out: torch.Tensor) -> float:
    """PSNR in dB of ``out`` against ``ref``, both scaled by ``ref``'s largest magnitude."""
    scale = ref.float().abs().max().clamp_min(1e-6)
    mse = torch.mean(((ref.float() - out.float()) / scale) ** 2).item()
    return float("inf") if mse == 0 else 10 * float(np.log10(4.0 / mse))


# ---------------------------------------------------------------------------------- forward passes
def stargan_forward(device: torch.device, config: str = "tiny") -> torch.Tensor:
    from engine.nets import stargan2 as sg

    torch.manual_seed(0)
    nets = sg.build(sg.CONFIGS[config], with_discriminator=False)
    a = sg.network_args(sg.CONFIGS[config])
    G, F = nets["generator"].to(device).eval(), nets["mapping_network"].to(device).eval()
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(1, 3, a["img_size"], a["img_size"], generator=g) * 2 - 1).to(device)
    z = torch.randn(1, a["latent_dim"], generator=g).to(device)
    with torch.no_grad():
        return G(x, F(z, torch.tensor([1], device=device))).cpu()


def cocosnet_forward(device: torch.device) -> torch.Tensor:
    from engine.nets import cocosnet as cc

    torch.manual_seed(0)
    cfg = cc.CONFIGS["tiny_ade20k"]
    nets = cc.build(cfg)
    net_corr, net_g = nets["netCorr"].to(device).eval(), nets["netG"].to(device).eval()
    nc, size = int(cfg["semantic_nc"]), int(cfg["size"])
    g = torch.Generator().manual_seed(1)

    def one_hot() -> torch.Tensor:
        lab = torch.randint(0, nc, (1, size // 8, size // 8), generator=g)
        lab = lab.repeat_interleave(8, 1).repeat_interleave(8, 2)
        return torch.nn.functional.one_hot(lab, nc).permute(0, 3, 1, 2).float().to(device)

    sem, ref_sem = one_hot(), one_hot()
    ref = (torch.rand(1, 3, size, size, generator=g) * 2 - 1).to(device)
    with torch.no_grad():
        return net_g(sem, net_corr(ref, sem, ref_sem)["warp_out"]).cpu()


def panoptic_forward(device: torch.device, config: str = "panoptic_tiny") -> torch.Tensor:
    from engine.inputs.panoptic import conditioning
    from engine.nets import panoptic as P

    torch.manual_seed(0)
    cfg = dict(P.CONFIGS[config])
    netG = P.build_generator(cfg).to(device).eval()
    labels = np.zeros((32, 32), np.int32)
    labels[16:] = 1
    labels[4:14, 4:28] = 2
    inst = labels.copy()
    inst[4:14, 4:16] = 2001
    inst[4:14, 16:28] = 2002
    sem, ids = conditioning(labels, inst, cfg)
    with torch.no_grad():
        return netG(sem.to(device), ids.to(device)).cpu()


@CUDA
@pytest.mark.parametrize("forward", [stargan_forward, cocosnet_forward, panoptic_forward],
                         ids=["stargan2_tiny", "cocosnet_tiny_ade20k", "panoptic_tiny"])
def test_cuda_float32_matches_cpu(forward, no_tf32) -> None:
    cpu, gpu = forward(CPU), forward(torch.device("cuda"))
    assert gpu.shape == cpu.shape and torch.isfinite(gpu).all()
    torch.testing.assert_close(gpu, cpu, atol=2e-3, rtol=2e-3)


# ---------------------------------------------------------------------------------- the task runner
def run_requests(device: torch.device, root: Path) -> list[np.ndarray]:
    """A StarGAN v2 and a CoCosNet request (tiny random weights in a temporary manifest) through
    ``run_request`` on ``device``."""
    from engine.nets import cocosnet as cc
    from engine.nets import stargan2 as sg
    from engine.requests.base import FrozenArray
    from engine.requests.cocosnet import ExemplarRequest
    from engine.requests.stargan2 import StarGANLatentRequest
    from engine.tasks import LRUCache, ModelStore, make_context, run_request
    from engine.weights import Manifest, register_file, save_state_dicts

    manifest = Manifest(root)

    def register(family: str, config_name: str, config: dict, nets: dict) -> str:
        path = root / f"{config_name}.safetensors"
        save_state_dicts({k: m.state_dict() for k, m in nets.items()}, path)
        register_file(manifest, name=config_name, family=family, config_name=config_name, config=config, path=path,
                      provenance={"kind": "trained-here", "command": "tests/test_cuda.py: random weights"})
        return config_name

    torch.manual_seed(0)
    sg_cfg, cc_cfg = dict(sg.CONFIGS["tiny"]), dict(cc.CONFIGS["tiny_ade20k"])
    sg_name = register("stargan2", "tiny", sg_cfg, sg.build(sg_cfg, with_discriminator=False))
    cc_name = register("cocosnet", "tiny_ade20k", cc_cfg, cc.build(cc_cfg))
    rng = np.random.default_rng(0)
    models, cache = ModelStore(manifest=manifest, compile="off"), LRUCache(16)
    labels = rng.integers(0, int(cc_cfg["semantic_nc"]), (48, 40)).astype(np.int32)
    requests = [
        StarGANLatentRequest(model=sg_name, source=FrozenArray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)),
                             seed=3, target_domain=1, precision="float32", device=device.type),
        ExemplarRequest(model=cc_name, input_map=FrozenArray(labels),
                        exemplar=FrozenArray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)),
                        exemplar_map=FrozenArray(labels[:40, :40].copy()), precision="float32", device=device.type),
    ]
    outs = []
    for i, req in enumerate(requests):
        result = run_request(req, make_context(i, req, models, cache, device=device))
        assert result.device == str(device)
        outs.append(result.image)
    models.clear()
    return outs


def check_images(images: list[np.ndarray]) -> None:
    stargan, cocosnet = images
    assert stargan.dtype == np.uint8 and stargan.shape == (32, 32, 3)  # the tiny model's size
    # the input map's aspect ratio (48×40), longer side the model's working size (64)
    assert cocosnet.dtype == np.uint8 and cocosnet.shape == (64, 53, 3)
    assert all(img.std() > 0 for img in images)


@CUDA
def test_task_runner_on_cuda_returns_uint8_images(tmp_path: Path, no_tf32) -> None:
    from engine.devices import pick_device

    assert pick_device("cuda").type == "cuda" and pick_device("auto").type == "cuda"
    gpu = run_requests(torch.device("cuda"), tmp_path / "gpu")
    check_images(gpu)
    cpu = run_requests(CPU, tmp_path / "cpu")
    for a, b in zip(gpu, cpu, strict=True):  # same weights (same seed): within a rounding step or two
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 3


# ---------------------------------------------------------------------------------- bfloat16
def bf16_psnr(device: torch.device) -> float:
    """bfloat16 autocast vs float32, StarGAN v2 afhq generator at 256² (trained-like He init)."""
    from engine.nets import stargan2 as sg
    from engine.train.common import he_init

    torch.manual_seed(0)
    G = sg.build(sg.CONFIGS["afhq"], with_discriminator=False)["generator"]
    he_init(G)
    G = G.to(device).eval()
    x, s = (torch.rand(1, 3, 256, 256) * 2 - 1).to(device), torch.randn(1, 64).to(device)
    with torch.inference_mode():
        ref = G(x, s)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = G(x, s)
    assert torch.isfinite(out).all()
    return _psnr(ref, out)


@CUDA
def test_stargan_stages_replay_as_cuda_graphs(no_tf32) -> None:
    """On CUDA the StarGAN v2 generator's two stages become CUDA-graph twins after their first call,
    and a replay with new inputs returns what the eager network returns for them."""
    from engine.compiled import StageCompiler
    from engine.nets import stargan2 as sg

    torch.manual_seed(0)
    a = sg.network_args(sg.CONFIGS["tiny"])
    G = sg.build(sg.CONFIGS["tiny"], with_discriminator=False)["generator"].cuda().eval()
    compiler = StageCompiler("auto", autostart=True)

    def inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(1, 3, a["img_size"], a["img_size"], generator=g) * 2 - 1
        return x.cuda(), torch.randn(1, a["style_dim"], generator=g).cuda()

    with torch.inference_mode():
        x, s = inputs(1)
        h, cache = compiler(G, "encode_source", x, None, once=True)
        compiler(G, "decode_style", h, s, cache, None)
        assert compiler.wait(120)
        assert [(r.stage, r.ok) for r in compiler.records] == [("Generator.encode_source", True),
                                                              ("Generator.decode_style", True)], compiler.records
        x2, s2 = inputs(2)
        h2, cache2 = compiler(G, "encode_source", x2, None, once=True)
        out = compiler(G, "decode_style", h2, s2, cache2, None)
        out_again = compiler(G, "decode_style", h2, s, cache2, None)  # the next replay must not rewrite `out`
        ref, ref_again = G(x2, s2), G(x2, s)
    assert compiler.calls["Generator.decode_style compiled"] == 2
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out_again, ref_again, atol=1e-5, rtol=1e-4)


@CUDA
def test_bf16_autocast_psnr_on_cuda(no_tf32) -> None:
    assert bf16_psnr(torch.device("cuda")) >= 35.0


# ---------------------------------------------------------------------------------- training steps
def stargan_train_step(device: torch.device, tmp: Path) -> dict[str, float]:
    from engine.train.common import DistInfo
    from engine.train.stargan2 import StarGAN2Trainer
    from tests.test_stargan2_train import _make_data, _options

    _make_data(tmp / "faces" / "train")
    trainer = StarGAN2Trainer(_options(tmp / "faces", tmp / "run", iters=1), info=DistInfo(device=device))
    return {k: float(v) for k, v in trainer.train_step().items()}  # 0-d tensors on the device


def cocosnet_train_step(device: torch.device, tmp: Path) -> dict[str, float]:
    from engine.families import get_family
    from engine.train import cocosnet as T
    from tests.test_cocosnet_train import _batch, _pairs, _scenes

    root = _scenes(tmp / "scenes")
    torch.manual_seed(0)
    family = get_family("cocosnet")
    nets = {k: m.to(device) for k, m in family.build(family.configs["tiny_ade20k"]).items()}
    trainer = T.CocosnetTrainer(nets, T.PRESETS["ade20k"], features=None)
    batch = {k: v.to(device) for k, v in _batch(_pairs(root, seed=3), 2).items()}
    losses, _ = trainer.step(batch)
    return losses


def edgegan_train_step(device: torch.device, tmp: Path) -> dict[str, float]:
    from engine.nets.edgegan import CONFIGS, build
    from engine.train.edgegan import ObjectTrainer

    cfg = dict(CONFIGS["tiny"], classes=["cat", "dog"])
    torch.manual_seed(0)
    nets = {k: m.to(device) for k, m in build(cfg).items()}
    trainer = ObjectTrainer(nets, cfg)
    return trainer.step((torch.rand(2, 3, 32, 64) * 2 - 1).to(device), torch.tensor([0, 1], device=device))


def panoptic_train_steps(device: torch.device, tmp: Path) -> dict[str, float]:
    from engine.cli import main
    from tests.test_panoptic_train import SMALL, _make_scenes

    data = _make_scenes(tmp / "scenes")
    run = tmp / "run"
    assert main(["train", "panoptic", "--data", str(data), "--steps", "2", "--out", str(run), *SMALL,
                 "--device", device.type]) == 0
    assert (run / "latest" / "nets.safetensors").exists()
    return {"ok": 1.0}


@CUDA
@pytest.mark.parametrize("step", [stargan_train_step, cocosnet_train_step, edgegan_train_step, panoptic_train_steps],
                         ids=["stargan2", "cocosnet", "edgegan", "panoptic"])
def test_one_training_step_on_cuda(step, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("I2I_CONFIG_DIR", str(tmp_path / "config"))
    losses = step(torch.device("cuda"), tmp_path)
    assert losses and all(np.isfinite(v) for v in losses.values()), losses
