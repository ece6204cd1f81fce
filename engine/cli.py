"""The ``i2i`` command line: weights, generate, train, data, eval, bench, doctor.

Each generator/data/metrics module adds its own sub-commands through ``register_cli(groups)``
(see ``CLI_PLUGINS``), so this file stays the same when a task is added.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .api.base import EngineError, Failure, Request, Result
from .tasks import TASK_MODULES

# Modules exposing ``register_cli(groups: CliGroups) -> None``: every task module, the trainers,
# the data recipes and the metrics.
CLI_PLUGINS: tuple[str, ...] = (
    *TASK_MODULES,
    "engine.train.stargan2",
    "engine.train.cocosnet",
    "engine.train.panoptic",
    "engine.train.edgegan",
    "engine.data.cli",
    "engine.metrics.cli",
)


@dataclass
class CliGroups:
    """Sub-parser collections a plugin adds to: ``i2i generate X``, ``i2i train X``,
    ``i2i data X``, and top-level commands (``i2i eval``)."""

    generate: argparse._SubParsersAction
    train: argparse._SubParsersAction
    data: argparse._SubParsersAction
    top: argparse._SubParsersAction


class CliError(Exception):
    """A user error reported as one line, exit status 2."""


def add_common_generate_args(p: argparse.ArgumentParser, *, model_help: str = "") -> None:
    """Options every ``i2i generate`` task shares."""
    p.add_argument("--model", default="", help=model_help or "weights manifest entry (default: the family's default model)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="compute device")
    p.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="float32 on CPU by default; bfloat16 is faster on CPUs with AVX-512-bf16/AMX")
    p.add_argument("--preview-size", type=int, default=None, help="run at this working resolution")


def run_task(request: Request) -> Result:
    """Run one request synchronously (no scheduler), with progress on stderr."""
    from .devices import configure_threads
    from .tasks import CancelToken, LRUCache, ModelStore, make_context, run_request

    configure_threads()

    def progress(stage: str, fraction: float) -> None:
        print(f"\r{stage:<28s} {fraction * 100:5.1f}%", end="", file=sys.stderr, flush=True)

    ctx = make_context(1, request, ModelStore(), LRUCache(16), CancelToken(), progress)
    result = run_request(request, ctx)
    print(file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return result


def default_model(family: str, override: str = "") -> str:
    """``--model`` if given, else the first manifest entry of the family."""
    if override:
        return override
    from .weights import Manifest

    entries = Manifest().by_family(family)
    if not entries:
        raise CliError(f"no {family} weights are registered; import official ones with "
                       f"`i2i weights import PATH --as NAME --family {family} --config C` or train with `i2i train {family}`")
    default = [e for e in entries if e.extra.get("default")]
    return (default or entries)[0].name


# ------------------------------------------------------------------------------ weights
def _cmd_weights_list(args: argparse.Namespace) -> int:
    from .weights import Manifest

    m = Manifest()
    if not m.entries:
        print(f"no models registered in {m.path}")
        return 0
    print(f"{'name':<28} {'family':<10} {'config':<16} {'size':>10}  provenance")
    for e in m.entries.values():
        prov = e.provenance.get("kind", "?")
        detail = e.provenance.get("upstream") or e.provenance.get("command", "")
        print(f"{e.name:<28} {e.family:<10} {e.config_name:<16} {e.bytes / 1e6:9.1f}M  {prov}: {detail}")
    return 0


def _cmd_weights_verify(args: argparse.Namespace) -> int:
    from .weights import Manifest

    m = Manifest()
    bad = 0
    for e in m.entries.values():
        r = m.verify(e)
        bad += r.status != "verified"
        print(f"{r.status:<11} {e.name:<28} {r.message}")
    if not m.entries:
        print(f"no models registered in {m.path}")
    return 1 if bad else 0


def _cmd_weights_import(args: argparse.Namespace) -> int:
    from .weights import import_official

    entry = import_official([Path(p) for p in args.paths], name=args.name, family_name=args.family,
                            config_name=args.config)
    print(f"imported {entry.name}: {entry.family}/{entry.config_name}, {entry.bytes / 1e6:.1f} MB, sha256 {entry.sha256[:12]}…")
    return 0


def _cmd_weights_keys(args: argparse.Namespace) -> int:
    from .families import get_family, resolve_config, state_dict_keys

    family = get_family(args.family)
    config = resolve_config(family, args.config)
    if args.view:
        if args.view not in family.keys_extra:
            raise CliError(f"family {args.family!r} has no --{args.view} view")
        data = family.keys_extra[args.view](config)
    else:
        data = state_dict_keys(family.build(config))
    print(json.dumps(data, indent=1))
    return 0


def _add_weights(top: argparse._SubParsersAction) -> None:
    w = top.add_parser("weights", help="list, verify, import and inspect model files")
    ws = w.add_subparsers(dest="weights_cmd", required=True)
    ws.add_parser("list", help="models in weights/manifest.json").set_defaults(func=_cmd_weights_list)
    ws.add_parser("verify", help="check every file: verified / missing / mismatch / unreadable").set_defaults(func=_cmd_weights_verify)
    p = ws.add_parser("import", help="convert an official checkpoint, check it and register it")
    p.add_argument("paths", nargs="+", help="official file(s), e.g. 100000_nets_ema.ckpt or latest_net_G.pth latest_net_Corr.pth")
    p.add_argument("--as", dest="name", required=True, help="manifest name for the model")
    p.add_argument("--family", required=True, help="stargan2 | cocosnet | panoptic | edgegan")
    p.add_argument("--config", required=True, help="released configuration, e.g. celeba_hq, ade20k, spade_coco, class14")
    p.set_defaults(func=_cmd_weights_import)
    p = ws.add_parser("keys", help="print the state dict our architecture expects (manifest JSON format)")
    p.add_argument("family")
    p.add_argument("--config", required=True)
    p.add_argument("--tf-names", dest="view", action="store_const", const="tf-names",
                   help="(edgegan) TensorFlow variable names and layouts")
    p.set_defaults(func=_cmd_weights_keys, view=None)


# ------------------------------------------------------------------------------ doctor / bench
def _cmd_doctor(args: argparse.Namespace) -> int:
    import platform

    import numpy
    import torch

    from .devices import available_devices, pick_device
    from .weights import Manifest

    print(f"python      {platform.python_version()} ({platform.machine()})")
    print(f"torch       {torch.__version__}   threads {torch.get_num_threads()}")
    try:
        import torchvision
        print(f"torchvision {torchvision.__version__}")
    except Exception as exc:  # noqa: BLE001 - report, don't fail
        print(f"torchvision unavailable: {exc}")
    print(f"numpy       {numpy.__version__}")
    print(f"devices     {', '.join(available_devices())} (auto picks {pick_device('auto')})")
    cpu_flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    print(f"bf16 CPU    {'yes' if 'avx512_bf16' in cpu_flags or 'amx_bf16' in cpu_flags else 'no'}")
    m = Manifest()
    print(f"weights     {m.path}")
    for e in m.entries.values():
        r = m.verify(e)
        print(f"  {r.status:<11} {e.name} ({e.family}/{e.config_name})")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    bench_dir = Path(__file__).resolve().parent.parent / "bench"
    names = sorted(p.stem for p in bench_dir.glob("bench_*.py"))
    if args.list:
        print("benchmarks:", ", ".join(n.removeprefix("bench_") for n in names) or "none")
        return 0
    name = args.name or "speed"  # the same-run eager-vs-ours comparison
    target = bench_dir / f"bench_{name}.py"
    if not target.exists():
        raise CliError(f"no benchmark {name!r}; available: {', '.join(n.removeprefix('bench_') for n in names)}")
    sys.argv = [str(target), *(["--quick"] if args.quick else []), *args.rest]
    runpy.run_path(str(target), run_name="__main__")
    return 0


# ------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="i2i", description="i2i-studio engine command line")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    top = parser.add_subparsers(dest="command", required=True)
    _add_weights(top)
    gen = top.add_parser("generate", help="run a synthesis task and write images").add_subparsers(dest="task", required=True)
    train = top.add_parser("train", help="train a generator family").add_subparsers(dest="family", required=True)
    data = top.add_parser("data", help="build and inspect training data").add_subparsers(dest="data_cmd", required=True)
    p = top.add_parser("bench", help="run a benchmark from bench/ (no name: ours vs plain eager, same run)")
    p.add_argument("--list", action="store_true", help="list the benchmarks")
    p.add_argument("--quick", action="store_true", help="the benchmark's quick mode")
    p.add_argument("name", nargs="?")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    p.set_defaults(func=_cmd_bench)
    top.add_parser("doctor", help="devices, versions and weights status").set_defaults(func=_cmd_doctor)
    groups = CliGroups(generate=gen, train=train, data=data, top=top)
    for name in CLI_PLUGINS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # plugin not present in this build
            raise
        register: Callable[[CliGroups], None] | None = getattr(module, "register_cli", None)
        if register is not None:
            register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except (CliError, EngineError, KeyError, FileNotFoundError, ValueError) as exc:
        if debug:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"i2i: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("i2i: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's flush at exit
        return 0


def print_failure(f: Failure) -> None:
    print(f"i2i: error ({f.kind}): {f.message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
