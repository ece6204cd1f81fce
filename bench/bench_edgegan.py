"""EdgeGAN speed on this machine: the object path (E -> G1 + G2) at the released class14 size (64 px)
and the 128 px option, float32 vs bfloat16 autocast (with output PSNR against float32); the whole
sketch task through the engine (pre-processing included); the scene task (3 objects + background
network at 256²); and the TF checkpoint reader (write + read + convert a class14-sized bundle).
Random weights: speed does not depend on them. GFLOP/s is reported beside a same-run sgemm rate.

    i2i bench edgegan [--runs 5] [--threads 2] [--quick]

Writes a table to stdout and JSON to bench/results/edgegan.json.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import count_flops, print_table, psnr, sgemm_gflops, time_median, write_results  # noqa: E402 - after sys.path gets the repo root
from engine.devices import precision_context  # noqa: E402 - after sys.path gets the repo root
from engine.nets.edgegan import CONFIGS, build, convert, state_dicts_to_tf  # noqa: E402 - after sys.path gets the repo root


def object_path(nets: dict[str, torch.nn.Module], size: int, precision: str) -> Callable[[], torch.Tensor]:
    x = torch.rand(1, 3, size, size) * 2 - 1
    label = torch.tensor([1])
    gen = torch.Generator().manual_seed(0)
    dev = torch.device("cpu")

    def run() -> torch.Tensor:
        with precision_context(dev, precision):
            z, _, _ = nets["encoder"](x, noise="scalar", generator=gen.manual_seed(0))
            nets["edge_generator"](z, label)
            return nets["image_generator"](z, label).float()
    return run


def bench_objects(runs: int, rows: list[dict[str, Any]], quick: bool) -> None:
    for cfg_name in (["class14"] if quick else ["class14", "class14_128"]):
        cfg = CONFIGS[cfg_name]
        nets = build(cfg, only=("encoder", "edge_generator", "image_generator"))
        for m in nets.values():
            m.eval()
        size = cfg["image_size"]
        ref = object_path(nets, size, "float32")()
        flops = count_flops(object_path(nets, size, "float32"))
        for precision in ("float32", "bfloat16"):
            fn = object_path(nets, size, precision)
            med, best = time_median(fn, runs)
            rows.append({"what": f"E+G1+G2 {cfg_name} {size}px", "precision": precision, "median_ms": med * 1e3,
                         "min_ms": best * 1e3, "GFLOP": flops / 1e9, "GFLOP/s": flops / best / 1e9,
                         "PSNR_vs_fp32": psnr(fn(), ref) if precision != "float32" else None})


def bench_tasks(runs: int, rows: list[dict[str, Any]], quick: bool) -> None:
    import cv2

    from engine.api import FrozenArray, SceneObject, SceneRequest, SketchObjectRequest
    from engine.tasks import LRUCache, ModelStore, make_context, run_request
    from engine.weights import Manifest, register_file, save_state_dicts

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = Manifest(root)
        for name, cfg in (("class14", CONFIGS["class14"]), ("small", dict(CONFIGS["small"], bg_size=256))):
            nets = build(cfg, only=("encoder", "edge_generator", "image_generator", "background_generator"))
            save_state_dicts({k: m.state_dict() for k, m in nets.items()}, root / f"{name}.safetensors")
            register_file(manifest, name=name, family="edgegan", config_name=name, config=cfg,
                          path=root / f"{name}.safetensors", provenance={"kind": "trained-here", "command": "bench"})
        store = ModelStore(manifest)
        sketch = np.full((480, 640), 255, np.uint8)
        cv2.circle(sketch, (320, 240), 150, 0, 3)
        cv2.line(sketch, (200, 200), (440, 300), 0, 3)
        req = SketchObjectRequest(model="class14", sketch=FrozenArray(sketch), class_name="cat")
        cache = LRUCache(4)
        med, best = time_median(lambda: run_request(req, make_context(1, req, store, cache)), runs)
        rows.append({"what": "sketch task 640×480 -> 64px (class14)", "precision": "float32",
                     "median_ms": med * 1e3, "min_ms": best * 1e3})
        if quick:
            return
        w = h = 256
        objects = []
        for cx, cy in [(60, 70), (150, 90), (200, 180)]:
            bm = np.full((h, w), 255, np.uint8)
            cv2.circle(bm, (cx, cy), 30, 0, 2)
            objects.append(SceneObject(sketch=FrozenArray(bm), class_name="cat",
                                       box=(cx - 35, cy - 35, cx + 35, cy + 35)))
        bg = np.full((h, w), 255, np.uint8)
        cv2.line(bg, (0, 200), (256, 190), 0, 2)
        scene = SceneRequest(model="class14", background_model="small", objects=tuple(objects),
                             background=FrozenArray(bg), size=(w, h))
        med, best = time_median(lambda: run_request(scene, make_context(1, scene, store, cache)), runs)
        rows.append({"what": "scene task 256², 3 objects + background (small)", "precision": "float32",
                     "median_ms": med * 1e3, "min_ms": best * 1e3})


def bench_tf_reader(rows: list[dict[str, Any]]) -> None:
    from engine.weights.tf_checkpoint import read_checkpoint, write_checkpoint

    cfg = CONFIGS["class14"]
    nets = build(cfg, only=("encoder", "edge_generator", "image_generator", "joint_discriminator",
                            "image_discriminator", "edge_discriminator"))
    tf = state_dicts_to_tf({k: m.state_dict() for k, m in nets.items()}, cfg)
    nbytes = sum(t.numel() * 4 for t in tf.values())
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_checkpoint(Path(tmp) / "EdgeGAN-Model-1", tf)
        t_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        read_checkpoint(Path(tmp) / "EdgeGAN-Model-1")
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        convert([Path(tmp) / "EdgeGAN-Model-1.index"], cfg)
        t_conv = time.perf_counter() - t0
    for what, t in (("write", t_write), ("read (crc32c checked)", t_read), ("read + convert", t_conv)):
        rows.append({"what": f"TF bundle {what}, class14 ({nbytes / 1e6:.0f} MB)", "precision": "",
                     "median_ms": t * 1e3, "min_ms": t * 1e3})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="64 px object path and the sketch task only")
    ap.add_argument("--out", default="", help="JSON path (default bench/results/edgegan.json)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sgemm = sgemm_gflops()
    rows: list[dict[str, Any]] = []
    bench_objects(args.runs, rows, args.quick)
    bench_tasks(args.runs, rows, args.quick)
    if not args.quick:
        bench_tf_reader(rows)
    print(f"sgemm float32 ceiling in this run: {sgemm:.0f} GFLOP/s, threads {args.threads}")
    print_table(rows, ["what", "precision", "median_ms", "min_ms", "GFLOP", "GFLOP/s", "PSNR_vs_fp32"])
    payload = {"sgemm_gflops": sgemm, "runs": args.runs, "rows": rows}
    if args.out:
        import json

        Path(args.out).write_text(json.dumps(payload, indent=1))
    else:
        print(f"wrote {write_results('edgegan', payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
