"""Cost of the panoptic-aware layers against plain convolution / nearest upsampling (issue 5, item 7).

On a real panoptic map (a `scenes` val map when ``data/scenes`` exists, else a synthetic one with
touching same-class instances) resized to 256² and to the preview size, batch 1, median of N:

- 3×3 convolutions at the widths the generator uses at that resolution: plain ``F.conv2d``,
  panoptic-aware conv "sparse" (plain conv + recomputed boundary windows; the engine's default),
  "unfold" (dense formula), and the window-mask computation they share (cached per resolution);
- ×2 upsampling: nearest vs panoptic-aware (source search + gather, + hole encoder when holes exist);
- the whole generator, semantic-only (SPADE) vs panoptic, at ``--ngf`` (default 16; the released 64
  with ``--ngf 64``);
- with ``--models A,B``: trained models from the manifest through the engine's task runner (a new
  map each call, as an edit is: conditioning, id pyramid, generator, image), at ``--preview`` and
  at the model's native size, the models alternated call by call; p50 / p95 of ``--calls``.

Times are the MINIMUM of N runs (on a shared, loaded CPU the median mostly measures other
processes). Achieved GFLOP/s of the plain conv are shown beside a float32 sgemm rate measured in
the same run. ``pa_up_ms`` includes building the id pyramid, copy sources and window masks (done once
per forward and shared by every layer at that scale); ``pa_up_cached_ms`` reuses them.

    i2i bench panoptic [--threads 1] [--repeats 5] [--ngf 16] [--preview 128] [--quick]
    i2i bench panoptic --models panoptic_scenes128,panoptic_scenes128_spade_baseline --preview 96 --threads 2
"""
from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import print_table, sgemm_gflops, time_median, write_results
from engine.inputs.panoptic import conditioning
from engine.io import resize_nearest
from engine.nets import panoptic as P

REPO = Path(__file__).resolve().parent.parent


def panoptic_map() -> tuple[np.ndarray, np.ndarray, str]:
    """(labels, instances, source) of a realistic map."""
    val = REPO / "data" / "scenes" / "val"
    if (val / "instance").is_dir():
        from engine.io import load_instance_map, load_label_map

        best = None
        for p in sorted((val / "instance").glob("*.png"))[:20]:  # the val map with the most segments
            inst = load_instance_map(p)
            n = len(np.unique(inst))
            if best is None or n > best[0]:
                best = (n, p)
        p = best[1]
        return load_label_map(val / "label" / p.name), load_instance_map(p), f"data/scenes/val/{p.name}"
    rng = np.random.default_rng(0)
    labels = np.full((256, 256), 1, np.int32)
    labels[128:] = 6
    inst = labels.copy()
    for k in range(12):  # touching and overlapping things of one class
        y, x = rng.integers(20, 200, 2)
        labels[y:y + 40, x:x + 40] = 9
        inst[y:y + 40, x:x + 40] = 9001 + k
    return labels, inst, "synthetic"


def model_rows(models: list[str], labels: np.ndarray, inst: np.ndarray, preview: int, calls: int) -> list[dict]:
    """Per model and size, the task runner's wall time for one request (first call: model load, not timed)."""
    from engine.requests.base import FrozenArray
    from engine.requests.panoptic import PanopticRequest
    from engine.tasks import CancelToken, LRUCache, ModelStore, make_context, run_request

    store = ModelStore()
    cases = [(m, s) for m in models for s in (preview, None)]
    times: dict[tuple[str, int | None], list[float]] = {c: [] for c in cases}
    shape: dict[tuple[str, int | None], tuple[int, ...]] = {}
    for k in range(calls + 1):
        for case in cases:  # alternated, so load on the machine falls on every case alike
            req = PanopticRequest(model=case[0], labels=FrozenArray(labels), instances=FrozenArray(inst),
                                  preview_size=case[1])
            t0 = time.perf_counter()
            res = run_request(req, make_context(k, req, store, LRUCache(8), CancelToken()))  # new cache: a new map
            if k:
                times[case].append(time.perf_counter() - t0)
            shape[case] = res.image.shape
    return [{"model": m, "size": f"{shape[(m, s)][0]}²", "p50_ms": 1e3 * float(np.percentile(times[(m, s)], 50)),
             "p95_ms": 1e3 * float(np.percentile(times[(m, s)], 95))} for m, s in cases]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ngf", type=int, default=16)
    ap.add_argument("--preview", type=int, default=128)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--models", default="", help="comma-separated manifest names: time these through the task "
                                                 "runner at --preview and native size (and nothing else)")
    ap.add_argument("--calls", type=int, default=30, help="with --models: timed calls per model and size")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.models:
        labels, inst, source = panoptic_map()
        rows = model_rows(args.models.split(","), labels, inst, args.preview, args.calls)
        print(f"panoptic map: {source}; {args.threads} thread(s), {args.calls} calls each, alternated")
        print_table(rows, ["model", "size", "p50_ms", "p95_ms"])
        print(f"\nwrote {write_results('panoptic_models', {'threads': args.threads, 'map': source, 'rows': rows})}")
        return
    reps = 2 if args.quick else args.repeats
    sgemm = sgemm_gflops(1024 if args.quick else 2048)
    print(f"float32 sgemm ceiling: {sgemm:.0f} GFLOP/s on {args.threads} thread(s)")
    labels, inst, source = panoptic_map()
    print(f"panoptic map: {source} ({len(np.unique(inst))} instance ids)")
    cfg = dict(P.CONFIGS["panoptic_scenes"], ngf=args.ngf, spade_hidden=128, crop_size=256)
    layer_rows, up_rows, gen_rows = [], [], []
    for size in (256, args.preview):
        sem, ids = conditioning(resize_nearest(labels, (size, size)), resize_nearest(inst, (size, size)), cfg)
        # widths of the generator at this resolution (ngf 64: 64 channels at 256², 128 at 128², …)
        channels = [64, 128] if not args.quick else [64]
        for c in channels:
            torch.manual_seed(0)
            conv = P.PanopticConv2d(c, c, 3, padding=1).eval()
            x = torch.randn(1, c, size, size)
            pmap = P.PanopticMap(sem, ids)
            with torch.inference_mode():
                # partial() binds this iteration's tensors now, not when the timer calls
                win_t = time_median(partial(P.window_mask, ids, 3, 1, 1, 1), reps)[1]
                win = pmap.window((size, size), (3, 3), (1, 1), (1, 1), (1, 1))
                plain_t = time_median(partial(F.conv2d, x, conv.weight, conv.bias, padding=1), reps)[1]
                pa_conv = partial(P.panoptic_conv2d, x, conv.weight, conv.bias, win, (1, 1), (1, 1), (1, 1))
                sparse_t = time_median(partial(pa_conv, "sparse"), reps)[1]
                unfold_t = time_median(partial(pa_conv, "unfold"), reps)[1]
                diff = (pa_conv("sparse") - pa_conv("unfold")).abs().max().item()
            flops = 2 * c * c * 9 * size * size
            layer_rows.append({"size": size, "C": c, "boundary_%": 100 * win.boundary_fraction,
                               "plain_ms": plain_t * 1e3, "plain_GFLOP/s": flops / plain_t / 1e9,
                               "pa_sparse_ms": sparse_t * 1e3, "pa_unfold_ms": unfold_t * 1e3, "mask_ms": win_t * 1e3,
                               "sparse/plain": sparse_t / plain_t, "unfold/plain": unfold_t / plain_t,
                               "max|sparse-unfold|": diff})
        # upsampling into this resolution
        c = 64
        up = P.PanopticUpsample(c, sem.shape[1]).eval()
        low = torch.randn(1, c, size // 2, size // 2)

        def sources(sem=sem, ids=ids, half=size // 2):
            return P.upsample_sources(P.PanopticMap(sem, ids).ids_at((half, half)), ids)

        def upsample_fresh_map(up=up, low=low, sem=sem, ids=ids):
            return up(low, P.PanopticMap(sem, ids))

        with torch.inference_mode():
            near_t = time_median(partial(F.interpolate, low, scale_factor=2, mode="nearest"), reps)[1]
            src_t = time_median(sources, reps)[1]
            full_t = time_median(upsample_fresh_map, reps)[1]
            cached = P.PanopticMap(sem, ids)
            cached_t = time_median(partial(up, low, cached), reps)[1]
            _, _, found = P.upsample_sources(P.PanopticMap(sem, ids).ids_at((size // 2, size // 2)), ids)
        up_rows.append({"size": size, "C": c, "holes_%": 100 * (1 - found.float().mean().item()),
                        "nearest_ms": near_t * 1e3, "sources_ms": src_t * 1e3, "pa_up_ms": full_t * 1e3,
                        "pa_up_cached_ms": cached_t * 1e3, "pa_up/nearest": full_t / near_t,
                        "cached/nearest": cached_t / near_t})
        # whole generator
        for mode in ("semantic", "panoptic"):
            torch.manual_seed(0)
            g = P.build_generator(dict(cfg, mode=mode)).eval()
            with torch.inference_mode():
                t = time_median(partial(g, sem, ids), max(2, reps // 2))[1]
            gen_rows.append({"size": size, "ngf": args.ngf, "mode": mode, "ms": t * 1e3})
        sem_ms = gen_rows[-2]["ms"]
        gen_rows[-1]["panoptic/semantic"] = gen_rows[-1]["ms"] / sem_ms
    print("\n3×3 convolution, batch 1")
    print_table(layer_rows, ["size", "C", "boundary_%", "plain_ms", "plain_GFLOP/s", "pa_sparse_ms", "pa_unfold_ms",
                             "mask_ms", "sparse/plain", "unfold/plain", "max|sparse-unfold|"])
    print("\n×2 upsampling into SIZE, batch 1")
    print_table(up_rows, ["size", "C", "holes_%", "nearest_ms", "sources_ms", "pa_up_ms", "pa_up_cached_ms",
                          "pa_up/nearest", "cached/nearest"])
    print("\ngenerator forward, batch 1")
    print_table(gen_rows, ["size", "ngf", "mode", "ms", "panoptic/semantic"])
    path = write_results("panoptic", {"sgemm_gflops": sgemm, "threads": args.threads, "map": source,
                                      "conv": layer_rows, "upsample": up_rows, "generator": gen_rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
