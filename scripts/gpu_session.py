"""Train the embedded defaults on a lent GPU in one prepared call (../shared/TRAINING.md §4).

A lent GPU comes for minutes, with its own torch and no PySide6, over a copy of the working tree
(at most 64 MiB: the training data — StarGAN v2's faces as DCGAN latents with the DCGAN —, the backbone where a job
needs it, and float16 warm starts travel as one carried pack):

    here:   python scripts/gpu_session.py pack [--jobs J]  # .gpu/pack.tar.gz: data, backbone, float16 warm starts
    there:  python3 scripts/gpu_session.py smoke --minutes 1   # unpack, every job for 1 minute
    there:  python3 scripts/gpu_session.py train --minutes 7   # every job side by side
    here:   python scripts/gpu_session.py unpack DIR      # the returned job tars -> runs/gpu/<job>/
    here:   python scripts/gpu_session.py adopt runs/gpu/<job> --hardware "..."   # into weights/
    here:   python scripts/gpu_session.py keep-d RUN      # a StarGAN v2 run's D -> weights/training/ (next pack)

Before the call, keep what the pack already holds out of the tree that travels: list `/.gpu/`,
`/weights/*.safetensors`, `/weights/training/` (and the PNGs under docs/ and bench/results/) in
.git/info/exclude and `git rm -r --cached` the tracked ones; `git reset` afterwards.

Each job trains with its own weights folder (so concurrent exports never race on one manifest)
and ends in ``$OUT/<job>.tar``: the exported weights (float16 when float32 would not fit the
16 MiB a returned file may have), its manifest entry, the run log and the last sample grids. The
tars are rewritten every 2 minutes while the jobs run, so a cut-off call still returns the latest
checkpoints' inference networks.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GPU = ROOT / ".gpu"
MAX_RETURNED = 15 * 2**20           # a returned file may have 16 MiB
BACKBONE = "mobilenet_v2-b0353104.pth"

INIT = GPU / "init"                 # float16 copies of the warm-start weights: they travel inside the pack
# StarGAN v2's discriminator from the adopted run (not an app file): the next lease goes on with it, not a fresh one
TRAINING = ROOT / "weights" / "training"
D_SUFFIX = ".discriminator.safetensors"
# panoptic and its SPADE baseline: the same schedule, the same wall time, side by side on the one GPU
PANOPTIC = ("panoptic --data data/scenes --size 128 --ndf 16 --batch 16 --steps 1000000 --minutes {minutes} "
            "--decay-minutes {decay} --ema-beta 0.999 --sample-every 500 --save-every 500 --workers 2 --threads 2 ")
# one pack, one call: the tree that travels must stay under 64 MiB with it (the jobs' data, the backbone)
# StarGAN v2's faces travel as latents (45,000 training faces in 18 MB: `i2i data build faces --latents --n 50000
# --seed 20 --out data/faces_bank20`) with the DCGAN that renders them there; 2,700 as PNGs filled the carry before
FACES_BANK = "data/faces_bank20"
FACES = [FACES_BANK, ".cache/i2i/gan-face-generate"]
SCENES = ["data/scenes/train/image", "data/scenes/train/label", "data/scenes/train/instance"]
# (job, training data, warm start (manifest entries, sent as float16 run folders), export name,
#  command after `engine.cli train`; StarGAN v2 also returns its discriminator)
JOBS: list[dict] = [
    dict(name="stargan2_faces", data=FACES, init=["stargan2_faces"], export="stargan2_faces", discriminator=True,
         backbone=False,
         cmd="stargan2 --data " + FACES_BANK + " --domains female,male --config faces64 --batch-size {batch} "
             "--lr 1e-4 --f-lr 1e-6 --r1-every 16 --ds-iter {ds_iter} --ema-beta 0.999 --iters 1000000 "
             "--sample-every 1000 --save-every 1000 --threads 2 --time-limit {minutes} "
             "--init .gpu/init/stargan2_faces.safetensors {d_options}"),
    dict(name="panoptic_scenes128", data=SCENES, init=["panoptic_scenes128"], export="panoptic_scenes128_gpu",
         cmd=PANOPTIC + "--config panoptic_scenes --mode panoptic --init .gpu/init/panoptic_scenes128"),
    dict(name="panoptic_scenes128_plain3", data=SCENES, init=["panoptic_scenes128"],
         export="panoptic_scenes128_plain3_gpu",
         cmd=PANOPTIC + "--config panoptic_scenes --mode panoptic --plain-levels 3 "
                        "--init .gpu/init/panoptic_scenes128"),
    dict(name="spade_scenes128", data=SCENES, init=["panoptic_scenes128_spade_baseline"],
         export="panoptic_scenes128_spade_baseline_gpu",
         cmd=PANOPTIC + "--config spade_scenes --init .gpu/init/panoptic_scenes128_spade_baseline"),
]


def _selected(names: list[str]) -> list[dict]:
    unknown = sorted(set(names) - {j["name"] for j in JOBS})
    if unknown:
        raise SystemExit(f"--jobs: no job named {', '.join(unknown)} (jobs: {', '.join(j['name'] for j in JOBS)})")
    return [j for j in JOBS if not names or j["name"] in names]


def _pack_items(jobs: list[dict]) -> list[str]:
    data = dict.fromkeys(d for j in jobs for d in j["data"])  # each folder once, in job order
    backbone = [f"weights/{BACKBONE}"] if any(j.get("backbone", True) for j in jobs) else []
    return [*data, *backbone, ".gpu/init"]


# ------------------------------------------------------------------------------------ here
def _write_init(jobs: list[dict]) -> None:
    """.gpu/init/: each job's warm start in float16 (half the bytes; training continues in float32).
    StarGAN v2 takes an exported file, panoptic a run folder (its config.json + latest/nets.safetensors)."""
    from safetensors.torch import save_file

    from engine.weights import Manifest, read_safetensors

    manifest = Manifest(ROOT / "weights")
    for name in sorted({n for j in jobs for n in j["init"]}):
        entry = manifest.get(name)
        state = {k: (t.half() if t.is_floating_point() else t).contiguous()
                 for k, t in read_safetensors(manifest.file_path(entry)).items()}
        if entry.family == "panoptic":
            run = INIT / name
            (run / "latest").mkdir(parents=True, exist_ok=True)
            (run / "config.json").write_text(json.dumps(dict(entry.config), indent=1))
            save_file(state, str(run / "latest" / "nets.safetensors"))
        else:
            if (TRAINING / f"{name}{D_SUFFIX}").exists():
                state.update(read_safetensors(TRAINING / f"{name}{D_SUFFIX}"))
            INIT.mkdir(parents=True, exist_ok=True)
            save_file(state, str(INIT / f"{name}.safetensors"))


def pack(jobs: list[dict]) -> None:
    """Write .gpu/pack.tar.gz for these jobs (gzip takes the tar headers down; PNGs and weights stay as they are)."""
    sys.path.insert(0, str(ROOT))
    GPU.mkdir(exist_ok=True)
    if INIT.exists():
        shutil.rmtree(INIT)
    _write_init(jobs)
    path = GPU / "pack.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=6) as tar:
        for item in _pack_items(jobs):
            tar.add(ROOT / item, arcname=item)
    print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB")


def unpack_results(folder: Path) -> None:
    """Returned job tars -> runs/gpu/<job>/."""
    for t in sorted(Path(folder).glob("*.tar")):
        dest = ROOT / "runs" / "gpu" / t.stem
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(t) as tar:
            tar.extractall(dest, filter="data")
        disc = Path(folder) / f"{t.stem}{D_SUFFIX}"
        if disc.exists():
            shutil.copyfile(disc, dest / disc.name)
        print(f"{t.name} -> {dest}: {sorted(p.name for p in dest.iterdir())}")


def adopt(folder: Path, hardware: str) -> None:
    """Register a returned job's weights (runs/gpu/<call>/<job>/) in weights/, provenance kept."""
    sys.path.insert(0, str(ROOT))
    from engine.weights import Manifest, register_file

    folder = Path(folder)
    returned = {p.stem: p for p in folder.glob("*.safetensors")}
    entries = [e for e in json.loads((folder / "manifest.json").read_text())["models"] if e["name"] in returned]
    if not entries:
        raise SystemExit(f"{folder}: no returned weights with a manifest entry")
    log = (folder / "train.log").read_text(errors="replace") if (folder / "train.log").exists() else ""
    for e in entries:
        dest = ROOT / "weights" / f"{e['name']}.safetensors"
        dest.write_bytes(returned[e["name"]].read_bytes())
        prov = dict(e["provenance"], hardware=hardware,
                    transport=(folder / "source.txt").read_text().strip() if (folder / "source.txt").exists() else "")
        if "time limit reached" in log or "trained to iteration" in log:
            prov["stopped_by"] = "its wall-time limit"
        entry = register_file(Manifest(), name=e["name"], family=e["family"], config_name=e["config_name"],
                              config=e["config"], path=dest, provenance=prov, description=e["description"],
                              extra=e.get("extra"))
        print(f"registered {entry.name}: {entry.bytes / 1e6:.1f} MB")
        disc = next(folder.glob(f"*{D_SUFFIX}"), None)
        if disc is not None:  # the discriminator trained beside these weights, for the next lease's warm start
            TRAINING.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(disc, TRAINING / f"{e['name']}{D_SUFFIX}")
            print(f"kept its discriminator: {TRAINING / (e['name'] + D_SUFFIX)}")


# ------------------------------------------------------------------------------------ there
def _unpack(jobs: list[dict]) -> None:
    path = GPU / "pack.tar.gz"
    if path.exists():
        with tarfile.open(path) as tar:
            tar.extractall(ROOT, filter="data")
    missing = [i for i in _pack_items(jobs) if not (ROOT / i).exists()]
    if missing:
        raise SystemExit(f"{path}: {', '.join(missing)} missing after unpacking")


def _job_weights(job: dict) -> Path:
    """A weights folder of the job's own (the backbone only), where its export is registered."""
    from engine.weights import Manifest

    wdir = GPU / "w" / job["name"]
    wdir.mkdir(parents=True, exist_ok=True)
    if (ROOT / "weights" / BACKBONE).exists() and not (wdir / BACKBONE).exists():
        os.symlink(ROOT / "weights" / BACKBONE, wdir / BACKBONE)
    src = json.loads((ROOT / "weights" / "manifest.json").read_text())
    (wdir / "manifest.json").write_text(json.dumps(dict(src, models=[]), indent=1))
    Manifest(wdir)  # fails here, not in the job, if the folder is unusable
    return wdir


def _launch(job: dict, minutes: float, fmt: dict, tag: str, device: str) -> subprocess.Popen:
    run = ROOT / "runs" / f"{tag}_{job['name']}"
    args = job["cmd"].format(minutes=minutes, **fmt).split()
    cmd = [sys.executable, "-m", "engine.cli", "train", *args[:1], "--device", device, "--out", str(run), *args[1:]]
    if tag == "train":
        cmd += ["--export", job["export"]]
    if fmt["resume"] and (run / "latest" / "nets.safetensors").exists():
        cmd += ["--resume"]  # a second call on the still-warm machine: go on from the run's latest checkpoint
    elif fmt["resume"]:  # the reply said warm: false — a fresh machine, nothing left of the first call
        print(f"{job['name']}: no run left by an earlier call on this machine; warm start instead", flush=True)
    env = dict(os.environ, I2I_WEIGHTS_DIR=str(_job_weights(job)), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    run.parent.mkdir(parents=True, exist_ok=True)
    log = open(ROOT / "runs" / f"{tag}_{job['name']}.log", "w")
    log.write(" ".join(cmd) + "\n")
    log.flush()
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _inference_nets(ckpt: Path) -> dict:
    """The networks inference needs from a checkpoint (EMA where the family keeps one)."""
    from engine.weights import read_safetensors, split_subnets

    nets = split_subnets(read_safetensors(ckpt))
    if "netG_ema" in nets:  # panoptic
        return {"netG": nets["netG_ema"]}
    return {k: v for k, v in nets.items() if k in ("netG", "netCorr")}  # cocosnet


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _weights_bytes(nets: dict, half: bool) -> bytes:
    from safetensors.torch import save

    flat = {f"{k}.{p}": (t.half() if half and t.is_floating_point() else t).contiguous()
            for k, sd in nets.items() for p, t in sd.items()}
    return save(flat, metadata={"transport": "float16" if half else "float32"})


def collect(job: dict, tag: str, out: Path) -> None:
    """$OUT/<job>.tar: exported weights (or the latest checkpoint's inference nets), log, samples."""
    from engine.weights import read_safetensors, split_subnets

    run = ROOT / "runs" / f"{tag}_{job['name']}"
    wdir = GPU / "w" / job["name"]
    exported = wdir / f"{job['export']}.safetensors"
    nets, source = None, None
    if exported.exists():
        nets, source = split_subnets(read_safetensors(exported)), "export"
    elif (run / "stargan2_ema.safetensors").exists():  # StarGAN v2 writes its EMA nets at each save
        nets, source = split_subnets(read_safetensors(run / "stargan2_ema.safetensors")), "checkpoint"
    elif (run / "latest" / "nets.safetensors").exists():
        try:
            nets, source = _inference_nets(run / "latest" / "nets.safetensors"), "checkpoint"
        except Exception as exc:  # a checkpoint being rewritten right now: next round
            print(f"{job['name']}: checkpoint unreadable now ({exc})")
    tmp = out / f"{job['name']}.tar.tmp"
    with tarfile.open(tmp, "w") as tar:
        if nets is not None:
            data = _weights_bytes(nets, half=False)
            if len(data) > MAX_RETURNED * 0.8:
                data = _weights_bytes(nets, half=True)
            _add_bytes(tar, f"{job['export']}.safetensors", data)
            _add_bytes(tar, "source.txt", source.encode())
        if (wdir / "manifest.json").exists():
            tar.add(wdir / "manifest.json", arcname="manifest.json")
        log = ROOT / "runs" / f"{tag}_{job['name']}.log"
        if log.exists():
            tar.add(log, arcname="train.log")
        samples = sorted((run / "samples").glob("*.png")) if (run / "samples").is_dir() else []
        for s in samples[-2:] + samples[:1] if len(samples) > 2 else samples:
            if tar.fileobj.tell() + s.stat().st_size < MAX_RETURNED:
                tar.add(s, arcname=f"samples/{s.name}")
    os.replace(tmp, out / f"{job['name']}.tar")
    if (run / "latest" / "nets.safetensors").exists() and job.get("discriminator"):
        try:  # beside the tar (its own 16 MiB): the next lease warm-starts D from it
            keep_discriminator(run, out / f"{job['name']}{D_SUFFIX}")
        except Exception as exc:  # a checkpoint being rewritten right now: next round
            print(f"{job['name']}: discriminator unreadable now ({exc})")


def keep_discriminator(run: Path, dest: Path) -> Path:
    """The discriminator of a StarGAN v2 run's latest checkpoint, float16, to ``dest`` (atomically)."""
    from engine.weights import read_safetensors, split_subnets

    disc = split_subnets(read_safetensors(run / "latest" / "nets.safetensors"))["discriminator"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(_weights_bytes({"discriminator": disc}, half=True))
    os.replace(tmp, dest)
    return dest


def _last_progress(log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    lines = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    rates = [ln for ln in lines if "it/s" in ln]
    return " || ".join(ln[:200] for ln in (rates[-1:] + lines[-1:])) if lines else "(no output)"


def run_jobs(minutes: float, tag: str, out: Path, fmt: dict, device: str, names: list[str]) -> dict[str, int]:
    jobs = _selected(names)
    _unpack(jobs)
    procs = {j["name"]: (j, _launch(j, minutes, fmt, tag, device)) for j in jobs}
    t0, last_collect = time.monotonic(), time.monotonic()
    while any(p.poll() is None for _, p in procs.values()):
        time.sleep(5)
        if tag == "train" and time.monotonic() - last_collect > 120:
            for j, _ in procs.values():
                collect(j, tag, out)
            last_collect = time.monotonic()
            print(f"[{time.monotonic() - t0:.0f} s] collected", flush=True)
        lead = procs[jobs[0]["name"]][1]  # the job the device time is for: if it breaks early, stop and say
        overrun = time.monotonic() - t0 > 60 * minutes + 150  # a job that overruns its own limit
        if overrun or (lead.poll() not in (None, 0) and time.monotonic() - t0 < 180):
            for _, p in procs.values():
                if p.poll() is None:
                    p.kill()
    codes = {}
    for name, (j, p) in procs.items():
        codes[name] = p.wait()
        if tag == "train":
            collect(j, tag, out)
        log = ROOT / "runs" / f"{tag}_{name}.log"
        print(f"{name}: exit {codes[name]} | {_last_progress(log)}", flush=True)
        if codes[name] != 0:
            print("\n".join(log.read_text(errors="replace").splitlines()[-12:]), flush=True)
    return codes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["pack", "smoke", "train", "unpack", "adopt", "keep-d"])
    ap.add_argument("folder", nargs="?", default="")
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--ds-iter", type=int, default=10000, help="StarGAN v2 diversity decay (≈ iterations reached)")
    ap.add_argument("--batch", type=int, default=64, help="StarGAN v2 batch (the GPU waits on launches: bigger pays)")
    ap.add_argument("--d-augment", default="", help="StarGAN v2: DiffAugment for D, e.g. color,translation,cutout")
    ap.add_argument("--d-domain", type=float, default=0.0,
                    help="StarGAN v2: --lambda-d-domain (D's heads also call the other domain's photos fake)")
    ap.add_argument("--decay", type=float, default=3.0, help="panoptic, CoCosNet: lr decay over the last minutes")
    ap.add_argument("--resume", action="store_true", help="continue each job's run left by an earlier call")
    ap.add_argument("--device", default="cuda", help="cpu: try the whole session here first")
    ap.add_argument("--jobs", default="", help="comma-separated job names (default: every job; the first leads)")
    ap.add_argument("--hardware", default="", help="adopt: where the job ran (recorded in the manifest)")
    args = ap.parse_args(argv)
    names = [n for n in args.jobs.split(",") if n]
    if args.what == "pack":
        pack(_selected(names))
        return 0
    if args.what == "unpack":
        unpack_results(Path(args.folder))
        return 0
    if args.what == "adopt":
        adopt(Path(args.folder), args.hardware)
        return 0
    if args.what == "keep-d":  # a run here (say a `--d-only` warm-up): its D for the next pack
        sys.path.insert(0, str(ROOT))
        name = next(j["export"] for j in JOBS if j.get("discriminator"))
        print(keep_discriminator(Path(args.folder), TRAINING / f"{name}{D_SUFFIX}"))
        return 0
    sys.path.insert(0, str(ROOT))
    out = Path(os.environ.get("OUT", ROOT / "out"))
    out.mkdir(parents=True, exist_ok=True)
    import torch

    print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}, "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}", flush=True)
    d_options = []  # StarGAN v2's discriminator options, none by default (the paper)
    if args.d_augment:
        d_options.append(f"--d-augment {args.d_augment}")
    if args.d_domain > 0:
        d_options.append(f"--lambda-d-domain {args.d_domain}")
    fmt = dict(ds_iter=args.ds_iter, decay=args.decay, batch=args.batch, resume=args.resume,
               d_options=" ".join(d_options))
    codes = run_jobs(args.minutes, args.what, out, fmt, args.device, names)
    if args.what == "smoke":
        with tarfile.open(out / "smoke_logs.tar", "w") as tar:
            for log in sorted((ROOT / "runs").glob("smoke_*.log")):
                tar.add(log, arcname=log.name)
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
