"""StarGAN v2 inference speed on this machine (issue 3, item 6).

Times, batch 1, median of N after warm-up: the generator, mapping network and style encoder and a
full reference-guided pass (style encoder + generator) at 256² with the released configurations
(random weights), execution variants (no_grad vs inference_mode, channels-last, bfloat16 autocast,
bfloat16 weights), and the preview path of the default model through the task runner (cold, and a
slider move that reuses the cached source features and style codes). Achieved GFLOP/s are shown beside
a float32 sgemm rate measured in the same run; bfloat16 outputs are compared with float32 by PSNR.

    i2i bench stargan2 [--threads 2] [--repeats 5] [--quick] [--tag NAME]
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import count_flops, print_table, psnr, sgemm_gflops, time_median, write_results
from engine.devices import cpu_name, native_bf16
from engine.nets import stargan2 as sg
from engine.train.common import he_init


@contextlib.contextmanager
def mode(kind: str, dtype: torch.dtype | None) -> Iterator[None]:
    grad_ctx = torch.inference_mode() if kind == "inference_mode" else torch.no_grad()
    with grad_ctx:
        if dtype is None:
            yield
        else:
            with torch.autocast("cpu", dtype=dtype):
                yield


def released(config: str) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    nets = sg.build(sg.CONFIGS[config], with_discriminator=False)
    for k, m in nets.items():
        if k != "fan":
            he_init(m)  # the trained networks' initialisation keeps activations in a realistic range
        m.eval()
    return nets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer variants (smoke run)")
    ap.add_argument("--tag", default="", help="results file suffix: bench/results/stargan2_TAG.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    reps = args.repeats
    sgemm = sgemm_gflops()
    print(f"float32 sgemm ceiling: {sgemm:.0f} GFLOP/s on {args.threads} threads")
    rows: list[dict[str, Any]] = []
    # bfloat16 is emulated where the CPU lacks avx512_bf16/amx_bf16 (20–300× slower than float32):
    # the quick run leaves it out there instead of spending most of its time on it
    with_bf16 = native_bf16() or not args.quick
    if not with_bf16:
        print(f"bfloat16 cases skipped: {cpu_name()} has no native bfloat16 (run without --quick to time them)")

    def add(name: str, fn: Callable[[], Any], flops: int | None, **extra: Any) -> float:
        # The ceiling is re-measured beside every case: on a shared machine the load drifts.
        ceiling = sgemm_gflops(n=1024, repeats=5)
        med, best = time_median(fn, repeats=reps, warmup=1)
        row = {"case": name, "median_ms": med * 1e3, "min_ms": best * 1e3,
               "gflop": flops / 1e9 if flops else None,
               "gflops_s": flops / med / 1e9 if flops else None,
               "sgemm_now": ceiling,
               "pct_sgemm": 100 * flops / med / 1e9 / ceiling if flops else None, **extra}
        rows.append(row)
        print(f"  {name:<48s} {med * 1e3:8.1f} ms", flush=True)
        return med

    # ------------------------------------------------------------------ released AFHQ (w_hpf 0) at 256²
    nets = released("afhq")
    G, Fm, E = nets["generator"], nets["mapping_network"], nets["style_encoder"]
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    ref = torch.rand(1, 3, 256, 256) * 2 - 1
    y = torch.tensor([1])
    z = torch.randn(1, 16)
    with torch.no_grad():
        s = E(ref, y)
        g_flops = count_flops(lambda: G(x, s))
        e_flops = count_flops(lambda: E(ref, y))
        f_flops = count_flops(lambda m=Fm: m(z, y))  # bound now: Fm is deleted below
        out32 = G(x, s).clamp(-1, 1)

    variants = [("float32, no_grad", "no_grad", None, False),
                ("float32, inference_mode", "inference_mode", None, False),
                ("float32, inference_mode, channels_last", "inference_mode", None, True),
                ("bfloat16 autocast", "inference_mode", torch.bfloat16, False),
                ("bfloat16 autocast, channels_last", "inference_mode", torch.bfloat16, True)]
    if args.quick:
        variants = variants[1:2] + (variants[3:4] if with_bf16 else [])
    times: dict[str, float] = {}
    for label, kind, dtype, cl in variants:
        fmt = torch.channels_last if cl else torch.contiguous_format
        G.to(memory_format=fmt)
        xi = x.contiguous(memory_format=fmt)

        def run(kind=kind, dtype=dtype, xi=xi) -> torch.Tensor:
            with mode(kind, dtype):
                return G(xi, s)

        out = run().float().clamp(-1, 1)
        extra = {"psnr_vs_fp32_db": psnr(out, out32)} if dtype is not None else {}
        times[label] = add(f"afhq G 256² — {label}", run, g_flops, **extra)
    G.to(memory_format=torch.contiguous_format)

    # bfloat16 weights and activations throughout (no autocast casts)
    if not args.quick:
        Gb = released("afhq")["generator"].to(torch.bfloat16)
        Gb.load_state_dict({k: v.to(torch.bfloat16) for k, v in G.state_dict().items()})
        xb, sb = x.to(torch.bfloat16), s.to(torch.bfloat16)

        def run_b() -> torch.Tensor:
            with torch.inference_mode():
                return Gb(xb, sb)

        out = run_b().float().clamp(-1, 1)
        times["bfloat16 weights"] = add("afhq G 256² — bfloat16 weights", run_b, g_flops,
                                        psnr_vs_fp32_db=psnr(out, out32))
        del Gb

    # float32 vs bfloat16 autocast alternated run by run, so load drift hits both alike
    def fp32_run() -> torch.Tensor:
        with mode("inference_mode", None):
            return G(x, s)

    def bf16_run() -> torch.Tensor:
        with mode("inference_mode", torch.bfloat16):
            return G(x, s)

    bf16_paired_speedup = None
    if with_bf16:
        paired: dict[str, list[float]] = {"fp32": [], "bf16": []}
        fp32_run(), bf16_run()
        for _ in range(reps):
            for key, fn in (("fp32", fp32_run), ("bf16", bf16_run)):
                t0 = time.perf_counter()
                fn()
                paired[key].append(time.perf_counter() - t0)
        bf16_paired_speedup = float(np.median(paired["fp32"]) / np.median(paired["bf16"]))
        print(f"  bfloat16 autocast speed-up, alternated runs: {bf16_paired_speedup:.2f}×")

    def inf(fn: Callable[[], Any]) -> Callable[[], Any]:
        def wrapped() -> Any:
            with torch.inference_mode():
                return fn()
        return wrapped

    add("afhq mapping network (1 code)", inf(lambda m=Fm: m(z, y)), f_flops)
    add("afhq style encoder 256²", inf(lambda: E(ref, y)), e_flops)
    add("afhq reference-guided pass 256² (E + G), float32", inf(lambda: G(x, E(ref, y))), g_flops + e_flops)

    def ref_bf16() -> torch.Tensor:
        with mode("inference_mode", torch.bfloat16):
            return G(x, E(ref, y))

    if with_bf16:
        add("afhq reference-guided pass 256² (E + G), bfloat16", ref_bf16, g_flops + e_flops)
    h_cache = None
    with torch.inference_mode():
        h_cache = G.encode_source(x)
    dec_flops = count_flops(lambda: G.decode_style(h_cache[0], s, h_cache[1]))
    add("afhq slider move 256² (decoder only, cached encoder)", inf(lambda: G.decode_style(h_cache[0], s, h_cache[1])),
        dec_flops)
    add("afhq G preview 128² (float32)", inf(lambda: G(x[:, :, ::2, ::2], s)),
        count_flops(lambda: G(x[:, :, ::2, ::2], s)))
    del nets, G, Fm, E

    # ------------------------------------------------------------------ released CelebA-HQ (w_hpf 1, FAN masks)
    if not args.quick:
        nets = released("celeba_hq")
        G, E, fan = nets["generator"], nets["style_encoder"], nets["fan"]
        with torch.inference_mode():
            masks = fan.get_heatmap(x)
        fan_flops = count_flops(lambda: fan(x * 0.5 + 0.5))
        gh_flops = count_flops(lambda: G(x, s, masks))
        add("celeba_hq G 256² with masks, float32", inf(lambda: G(x, s, masks)), gh_flops)
        add("celeba_hq FAN masks 256²", inf(lambda: fan.get_heatmap(x)), fan_flops)
        add("celeba_hq reference-guided pass (FAN + E + G), float32",
            inf(lambda: G(x, E(ref, y), fan.get_heatmap(x))), gh_flops + fan_flops + e_flops)
        del nets, G, E, fan

    # ------------------------------------------------------------------ default model preview via the task
    preview = bench_preview(reps, with_bf16=with_bf16)
    rows.extend(preview)
    for r in preview:
        print(f"  {r['case']:<48s} {r['median_ms']:8.1f} ms")

    print()
    print_table(rows, ["case", "median_ms", "min_ms", "gflop", "gflops_s", "sgemm_now", "pct_sgemm",
                       "psnr_vs_fp32_db"])
    fp32 = times.get("float32, inference_mode")
    bf16 = min((v for k, v in times.items() if "bfloat16" in k), default=None)
    summary = {
        "sgemm_gflops": sgemm,
        "generator_256_gflop": g_flops / 1e9,
        "fp32_floor_ms": g_flops / sgemm / 1e6,
        "fp32_pct_of_ceiling": next((r["pct_sgemm"] for r in rows
                                     if r["case"].endswith("float32, inference_mode")), None),
        "bf16_speedup_vs_fp32": fp32 / bf16 if fp32 and bf16 else None,
        "bf16_speedup_alternated": bf16_paired_speedup,
        "bf16_psnr_db": next((r["psnr_vs_fp32_db"] for r in rows if r["case"].endswith("bfloat16 autocast")), None),
        "preview_ms": next((r["median_ms"] for r in preview if r["case"].startswith("default preview, cold")), None),
        "slider_ms": next((r["median_ms"] for r in preview if r["case"].startswith("default preview, slider")), None),
    }
    print()
    for k, v in summary.items():
        print(f"{k:<24s} {v:.3g}" if isinstance(v, float) else f"{k:<24s} {v}")
    path = write_results(f"stargan2_{args.tag}" if args.tag else "stargan2",
                         {"threads": args.threads, "repeats": reps, "rows": rows, "summary": summary})
    print(f"wrote {path}")


def bench_preview(reps: int, *, with_bf16: bool = True) -> list[dict[str, Any]]:
    """The default model at its preview size through the task runner (registered default, else
    random), in float32 and (``with_bf16``) bfloat16."""
    import tempfile

    from engine.requests.base import FrozenArray
    from engine.requests.stargan2 import StarGANLatentRequest
    from engine.tasks import LRUCache, ModelStore, make_context, run_request
    from engine.weights import Manifest, register_file, save_state_dicts

    manifest = Manifest()
    entries = [e for e in manifest.by_family("stargan2") if e.extra.get("default")]
    tmp = None
    if entries:
        name, source = entries[0].name, "registered default"
    else:  # no trained default yet: same architecture, random weights
        tmp = tempfile.TemporaryDirectory()
        manifest = Manifest(Path(tmp.name))
        nets = released_default()
        path = Path(tmp.name) / "default.safetensors"
        save_state_dicts({k: m.state_dict() for k, m in nets.items()}, path)
        register_file(manifest, name="default", family="stargan2", config_name="default",
                      config=sg.CONFIGS["default"], path=path, provenance={"kind": "trained-here", "command": "bench"})
        name, source = "default", "random weights, default config"
    rng = np.random.default_rng(0)
    src = FrozenArray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    models = ModelStore(manifest=manifest)
    models.get(name, torch.device("cpu"))  # load once: loading is not part of a preview
    rows = []
    precisions = ("float32", "bfloat16") if with_bf16 else ("float32",)
    for label, precision in ((p, p) for p in precisions):
        counter = iter(range(10_000))

        def cold(counter=counter, precision=precision) -> None:
            req = StarGANLatentRequest(model=name, source=src, seed=next(counter), precision=precision)
            run_request(req, make_context(1, req, models, LRUCache(8)))

        cache = LRUCache(64)
        psis = iter(np.linspace(0.3, 1.0, 200))

        def slider(psis=psis, precision=precision, cache=cache) -> None:
            req = StarGANLatentRequest(model=name, source=src, seed=1, psi=float(next(psis)), precision=precision)
            run_request(req, make_context(1, req, models, cache))

        for case, fn in ((f"default preview, cold ({label})", cold),
                         (f"default preview, slider move ({label})", slider)):
            med, best = time_median(fn, repeats=max(reps, 7), warmup=2)
            rows.append({"case": case, "median_ms": med * 1e3, "min_ms": best * 1e3, "model": source})
    outs = {}
    for precision in precisions if with_bf16 else ():
        req = StarGANLatentRequest(model=name, source=src, seed=5, precision=precision)
        outs[precision] = run_request(req, make_context(1, req, models, LRUCache(8))).image
    if outs:
        a, b = (torch.from_numpy(outs[k].astype(np.float32)) / 127.5 - 1 for k in ("float32", "bfloat16"))
        for r in rows:
            if "bfloat16" in r["case"]:
                r["psnr_vs_fp32_db"] = psnr(a, b)  # on the uint8 outputs
    if tmp is not None:
        tmp.cleanup()
    return rows


def released_default() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    nets = sg.build(sg.CONFIGS["default"], with_discriminator=False)
    for m in nets.values():
        he_init(m)
    return nets


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"bench took {time.perf_counter() - t0:.0f} s")
