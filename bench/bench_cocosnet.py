"""CoCosNet inference speed on this machine: ade20k (released size, random weights) at 256² and at
the preview size, float32 vs bfloat16 autocast, achieved GFLOP/s beside an sgemm rate measured in
the same run, bfloat16 output PSNR against float32, and a 512² run with its peak memory.

    i2i bench cocosnet [--size 256] [--preview 128] [--runs 3] [--threads 2] [--skip-512]

Writes a table to stdout and JSON to bench/results/cocosnet.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import psnr, sgemm_gflops  # noqa: E402 - after sys.path gets the repo root (psnr: data range 2, images in [-1, 1])
from engine.devices import precision_context  # noqa: E402 - after sys.path gets the repo root
from engine.nets.cocosnet import CONFIGS, build, make_config, prepare_for_inference  # noqa: E402 - after sys.path gets the repo root


def make_inputs(config: dict[str, Any], size: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    nc = config["semantic_nc"]
    ref = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    labels = torch.randint(0, nc, (1, size // 16, size // 16), generator=g)
    sem = torch.nn.functional.one_hot(labels, nc).permute(0, 3, 1, 2).float()
    sem = torch.nn.functional.interpolate(sem, size=(size, size), mode="nearest")
    ref_sem = torch.flip(sem, dims=[2, 3])
    return ref, sem, ref_sem


def forward_fn(nets: dict[str, torch.nn.Module], ref: torch.Tensor, sem: torch.Tensor,
               ref_sem: torch.Tensor) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    def run() -> tuple[torch.Tensor, torch.Tensor]:
        warp = nets["netCorr"](ref, sem, ref_sem)["warp_out"]
        return warp, nets["netG"](sem, warp)
    return run


def count_flops(config: dict[str, Any], size: int) -> dict[str, float]:
    with torch.device("meta"):
        nets = build(config, init=False)
    for n in nets.values():
        n.eval()
    ref, sem, ref_sem = (t.to("meta") for t in make_inputs(config, size))
    out = {}
    with torch.no_grad():
        with FlopCounterMode(display=False) as fc:
            warp = nets["netCorr"](ref, sem, ref_sem)["warp_out"]
        out["netCorr"] = fc.get_total_flops() / 1e9
        with FlopCounterMode(display=False) as fc:
            nets["netG"](sem, warp)
        out["netG"] = fc.get_total_flops() / 1e9
    out["total"] = out["netCorr"] + out["netG"]
    return out


def time_it(fn: Callable[[], Any], precision: str, runs: int) -> tuple[list[float], Any]:
    device = torch.device("cpu")
    with precision_context(device, precision):
        out = fn()  # warm-up
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
    return times, out


def peak_rss_mib() -> float:
    """This process's resident-set high-water mark (VmHWM; unlike ru_maxrss it is not inherited
    across exec and can be reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> float:
    """Reset the high-water mark to the current RSS (Linux clear_refs 5); returns the new baseline."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return peak_rss_mib()


def correlation_memory(n: int = 16384, d: int = 64) -> dict[str, float]:
    """Peak resident-memory increase of the 512² correlation (N = 128² positions): our chunked
    softmax-attention vs materialising the N×N matrix and its softmax as the official code does.
    A small key width d keeps it fast; the matrix size depends on N only."""
    from engine.nets.cocosnet import softmax_attend

    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(1, n, d, generator=g), dim=2)
    k = q.transpose(1, 2).contiguous()
    v = torch.randn(1, n, 3, generator=g)

    with torch.inference_mode():
        base = reset_peak_rss()
        softmax_attend(q, k, v, 0.01)
        chunked = peak_rss_mib() - base
        base = reset_peak_rss()
        f = torch.softmax(torch.matmul(q, k) / 0.01, dim=-1)
        torch.matmul(f, v)
        del f
        full = peak_rss_mib() - base
    return {"positions": n, "chunked_rss_increase_mib": chunked, "full_rss_increase_mib": full}


def preview_config(name: str) -> tuple[str, dict[str, Any]]:
    if name:
        return name, CONFIGS[name]
    try:
        from engine.weights import Manifest

        entries = [e for e in Manifest().by_family("cocosnet") if e.extra.get("default")]
        if entries:
            return f"{entries[0].name} ({entries[0].config_name})", dict(entries[0].config)
    except Exception:  # no manifest: fall back to the likely default shape
        pass
    return "small_ade20k (16 classes)", make_config("small_ade20k", semantic_nc=16)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--preview", type=int, default=128)
    p.add_argument("--preview-config", default="",
                   help="config for the preview timing (default: the registered default CoCosNet model's, "
                        "else small_ade20k with the 16 scenes classes)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-512", action="store_true")
    p.add_argument("--skip-plain", action="store_true", help="skip the as-loaded (SN hooks) float32 timing")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "cocosnet.json"))
    p.add_argument("--corr-memory-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.corr_memory_only:
        print(json.dumps(correlation_memory()))
        return 0
    torch.manual_seed(0)

    rows: list[dict[str, Any]] = []
    sgemm = sgemm_gflops()
    sgemm_bf16 = sgemm_gflops(dtype=torch.bfloat16)
    print(f"sgemm 2048² float32: {sgemm:.1f} GFLOP/s   bfloat16: {sgemm_bf16:.1f} GFLOP/s   threads {args.threads}")

    config = CONFIGS["ade20k"]
    flops = count_flops(config, args.size)
    print(f"ade20k FLOPs at {args.size}²: netCorr {flops['netCorr']:.1f} G, netG {flops['netG']:.1f} G, "
          f"total {flops['total']:.1f} G")
    nets = build(config)
    for n in nets.values():
        n.eval()
    inputs = make_inputs(config, args.size)
    fn = forward_fn(nets, *inputs)
    results: dict[str, Any] = {}

    def record(label: str, precision: str, times: list[float]) -> None:
        # the machine is shared: an sgemm rate taken right after the timing is the fair ceiling
        local = sgemm_gflops(repeats=3)
        best, med = min(times), statistics.median(times)
        rows.append(dict(model="ade20k", variant=label, size=args.size, precision=precision, best_s=best,
                         median_s=med, gflop=flops["total"], gflops_per_s=flops["total"] / best,
                         sgemm_adjacent_gflops=local, fraction_of_sgemm=flops["total"] / best / local))
        print(f"ade20k {args.size}² {label:<22} {precision:<9} best {best * 1e3:8.0f} ms  median {med * 1e3:8.0f} ms  "
              f"{flops['total'] / best:6.1f} GFLOP/s ({100 * flops['total'] / best / local:.0f}% of the sgemm "
              f"{local:.0f} GFLOP/s measured just after)")

    if not args.skip_plain:
        # as loaded: spectral-norm hooks, contiguous tensors (what the official modules do)
        times, _ = time_it(fn, "float32", args.runs)
        record("plain (SN hooks)", "float32", times)
    prepare_for_inference(nets)
    for precision in ("float32", "bfloat16"):
        times, out = time_it(fn, precision, args.runs)
        results[precision] = out
        record("prepared", precision, times)
    speedup = rows[-2]["best_s"] / rows[-1]["best_s"]
    # opt-in: the similarity product in bfloat16 too
    nets["netCorr"].low_precision_logits = True
    times, out = time_it(fn, "bfloat16", args.runs)
    nets["netCorr"].low_precision_logits = False
    results["bfloat16_lowcorr"] = out
    record("prepared, bf16 logits", "bfloat16", times)
    speedup_low = rows[-3]["best_s"] / rows[-1]["best_s"]
    quality = {"image_psnr_db": psnr(results["float32"][1], results["bfloat16"][1]),
               "warp_psnr_db": psnr(results["float32"][0], results["bfloat16"][0])}
    quality["lowcorr_image_psnr_db"] = psnr(results["float32"][1], results["bfloat16_lowcorr"][1])
    quality["lowcorr_warp_psnr_db"] = psnr(results["float32"][0], results["bfloat16_lowcorr"][0])
    print(f"bfloat16 speed-up {speedup:.2f}×, output PSNR vs float32 {quality['image_psnr_db']:.1f} dB "
          f"(warped exemplar {quality['warp_psnr_db']:.1f} dB)")
    print(f"bfloat16 + bf16 logits speed-up {speedup_low:.2f}×, PSNR {quality['lowcorr_image_psnr_db']:.1f} dB "
          f"(warped exemplar {quality['lowcorr_warp_psnr_db']:.1f} dB)")

    # preview: the default model (or its likely shape) at preview resolution
    pname, pconfig = preview_config(args.preview_config)
    pflops = count_flops(pconfig, args.preview)
    pnets = build(pconfig)
    prepare_for_inference(pnets)
    pfn = forward_fn(pnets, *make_inputs(pconfig, args.preview))
    for precision in ("float32", "bfloat16"):
        times, _ = time_it(pfn, precision, max(5, args.runs))
        best, med = min(times), statistics.median(times)
        rows.append(dict(model=pname, variant="prepared", size=args.preview, precision=precision, best_s=best,
                         median_s=med, gflop=pflops["total"], gflops_per_s=pflops["total"] / best,
                         fraction_of_sgemm=pflops["total"] / best / sgemm))
        print(f"{pname} {args.preview}² {precision:<9} best {best * 1e3:8.1f} ms  "
              f"median {med * 1e3:8.1f} ms  ({pflops['total']:.2f} GFLOP)")
    # preview with the released ade20k model
    afn = forward_fn(nets, *make_inputs(config, args.preview))
    times, _ = time_it(afn, "bfloat16", 2)
    aflops = count_flops(config, args.preview)["total"]
    rows.append(dict(model="ade20k", variant="prepared", size=args.preview, precision="bfloat16", best_s=min(times),
                     median_s=statistics.median(times), gflop=aflops, gflops_per_s=aflops / min(times),
                     fraction_of_sgemm=aflops / min(times) / sgemm))
    print(f"ade20k {args.preview}² bfloat16 best {min(times) * 1e3:8.0f} ms")

    big: dict[str, Any] = {}
    if not args.skip_512:
        # in a fresh process: peak RSS only grows, so earlier runs would hide the difference
        proc = subprocess.run([sys.executable, __file__, "--corr-memory-only", "--threads", str(args.threads)],
                              capture_output=True, text=True, check=True)
        big["correlation_memory"] = json.loads(proc.stdout.strip().splitlines()[-1])
        cm = big["correlation_memory"]
        print(f"correlation at 512² (16384×16384 logits): chunked peak +{cm['chunked_rss_increase_mib']:.0f} MiB, "
              f"full matrix peak +{cm['full_rss_increase_mib']:.0f} MiB")
        rss0 = reset_peak_rss()
        bfn = forward_fn(nets, *make_inputs(config, 512))
        with precision_context(torch.device("cpu"), "bfloat16"):
            t = time.perf_counter()
            bfn()
            big["seconds_bf16"] = time.perf_counter() - t
        big["peak_rss_mib"] = peak_rss_mib()
        big["rss_before_mib"] = rss0
        # the official code materialises the 16384×16384 float32 matrix (1 GiB) plus its softmax
        big["official_corr_matrix_mib"] = 16384 * 16384 * 4 * 2 / 2 ** 20
        print(f"ade20k 512² bfloat16: {big['seconds_bf16']:.1f} s, peak RSS {big['peak_rss_mib']:.0f} MiB "
              f"(from {big['rss_before_mib']:.0f} MiB with the model loaded) "
              f"(official full matrix + softmax alone: {big['official_corr_matrix_mib']:.0f} MiB)")

    report = dict(
        machine=dict(platform=platform.platform(), processor=platform.processor(), torch=torch.__version__,
                     threads=args.threads),
        sgemm_gflops=sgemm, sgemm_bf16_gflops=sgemm_bf16, flops_g=flops, rows=rows,
        bf16_speedup=speedup, bf16_lowcorr_speedup=speedup_low, bf16_quality=quality, size_512=big,
        note="random weights (xavier gain 0.02 / default init); "
             "timings are best-of and median of --runs after a warm-up",
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
