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

from .requests.base import EngineError, Failure, InputError, Request, Result
from .limits import MAX_PREVIEW_SIZE, MAX_SEED, MIN_PREVIEW_SIZE, printable
from .progress import end_line, write_refreshed
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


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one ``i2i: error:`` line naming the argument (exit status 2), not usage + error."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        raise CliError(f"{self.prog.removeprefix('i2i ')}: {message}")


def int_arg(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse ``type`` for a whole number in [lo, hi] (limits from :mod:`engine.limits`)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {lo}..{hi}")
        return value

    parse.__name__ = "whole number"
    return parse


def float_arg(lo: float, hi: float) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number in [lo, hi]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not lo <= value <= hi:  # NaN fails both comparisons
            raise argparse.ArgumentTypeError(f"{text} is outside {lo:g}..{hi:g}")
        return value

    parse.__name__ = "number"
    return parse


IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class FolderMode:
    """How an ``i2i generate`` task runs over a folder (``--input DIR --out DIR``).

    ``input``: the option (its dest) naming the one input file of a run; given a folder, the task runs
    once per file with these ``suffixes``. ``companions``: per-input options that may name a folder
    too; the file with the input's stem is taken from it. ``outputs``: options naming output files,
    which then name folders, each run writing ``<stem>.png`` there.
    """

    input: str
    suffixes: tuple[str, ...] = IMAGE_SUFFIXES
    companions: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ("out",)


def add_common_generate_args(p: argparse.ArgumentParser, *, model_help: str = "",
                             folder: FolderMode | None = None, examples: Sequence[str] = ()) -> None:
    """Options every ``i2i generate`` task shares; ``folder`` says how it runs over a folder of
    inputs, ``examples`` are command lines shown under the help (tests run each as printed)."""
    if folder is not None:
        p.set_defaults(folder_mode=folder)
    if examples:
        p.epilog = "examples (from the repository folder):\n" + "\n".join(f"  {e}" for e in examples)
        p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--model", default="", help=model_help or "weights manifest entry (default: the family's default model)")
    p.add_argument("--seed", type=int_arg(0, MAX_SEED), default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="compute device")
    p.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="float32 on CPU by default; bfloat16 is faster on CPUs with AVX-512-bf16/AMX")
    p.add_argument("--preview-size", type=int_arg(MIN_PREVIEW_SIZE, MAX_PREVIEW_SIZE), default=None,
                   help=f"run at this working resolution ({MIN_PREVIEW_SIZE}..{MAX_PREVIEW_SIZE} px)")


class TaskProgress:
    """Stage progress of one request on stderr: a refreshed line on a terminal, one line per stage
    otherwise (logs, pipes)."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._stage = ""

    def __call__(self, stage: str, fraction: float) -> None:
        if self._tty:
            write_refreshed(sys.stderr, f"{stage:<28s} {fraction * 100:5.1f}%")
        elif stage != self._stage:
            print(f"  {stage}", file=sys.stderr, flush=True)
        self._stage = stage

    def done(self) -> None:
        end_line(sys.stderr)


class CliSession:
    """Every request of one command shares one model store and cache: a folder run, a grid or an
    evaluation loads its model once. The first use of each model names it on stderr."""

    def __init__(self) -> None:
        from .devices import configure_threads
        from .tasks import LRUCache, ModelStore

        configure_threads()
        self.models = ModelStore()
        self.cache = LRUCache(256)
        self.count = 0
        self._named: set[str] = set()

    def run(self, request: Request) -> Result:
        from .tasks import CancelToken, make_context, run_request

        self.count += 1
        self._name_model(request.model)
        progress = TaskProgress()
        ctx = make_context(self.count, request, self.models, self.cache, CancelToken(), progress)
        try:
            result = run_request(request, ctx)
        finally:
            progress.done()
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        return result

    def _name_model(self, name: str) -> None:
        if not name or name in self._named:
            return
        from .weights import Manifest

        entry = Manifest().entries.get(name)
        if entry is not None:  # (an unknown name is reported by the task itself)
            self._named.add(name)
            print(f"model: {name} ({describe_entry(entry)})", file=sys.stderr)


def describe_entry(entry) -> str:
    """``cocosnet/small_ade20k, 16 classes, 128 px, trained here`` — what a model is, in one line."""
    cfg = entry.config
    parts = [f"{entry.family}/{entry.config_name}"]
    if "semantic_nc" in cfg:
        parts.append(f"{cfg['semantic_nc']} classes")
    size = cfg.get("size") or cfg.get("img_size") or cfg.get("crop_size") or cfg.get("image_size")
    if size:
        parts.append(f"{size} px")
    parts.append(str(entry.provenance.get("kind", "?")).replace("-", " "))
    return ", ".join(parts)


_session: CliSession | None = None


def session() -> CliSession:
    """The command's shared :class:`CliSession` (created on first use)."""
    global _session
    if _session is None:
        _session = CliSession()
    return _session


def run_task(request: Request) -> Result:
    """Run one request synchronously (no scheduler) in the command's session, progress on stderr."""
    return session().run(request)


# ------------------------------------------------------------------------------ folders
def _folder_input(args: argparse.Namespace, mode: FolderMode) -> Path | None:
    value = getattr(args, mode.input, None)
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    return Path(value) if value and Path(value).is_dir() else None


def _companion(folder: Path, stem: str, option: str) -> Path:
    found = sorted(p for p in folder.glob(f"{stem}.*") if p.is_file())
    if not found:
        raise InputError(f"--{option.replace('_', '-')} folder {folder} has no {stem}.* for this input")
    return found[0]


def run_over_folder(args: argparse.Namespace, mode: FolderMode, source: Path) -> int:
    """Run the task once per input file of ``source`` in one session (the model loads once); a bad
    file is reported and skipped. Exit status 0 when every file ran, 1 when some were skipped."""
    files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in mode.suffixes)
    if not files:
        raise CliError(f"{source} holds no input files ({' '.join(mode.suffixes)})")
    out_dirs: dict[str, Path] = {}
    for name in mode.outputs:
        value = getattr(args, name, None)
        if not value:
            continue
        d = Path(value)
        if (d.exists() and not d.is_dir()) or (not d.exists() and d.suffix.lower() in IMAGE_SUFFIXES):
            raise CliError(f"--{name.replace('_', '-')} {d}: with a folder of inputs, give a folder for the outputs")
        d.mkdir(parents=True, exist_ok=True)
        out_dirs[name] = d
    companions = {name: Path(v) for name in mode.companions
                  if (v := getattr(args, name, None)) and Path(v).is_dir()}
    was_list = isinstance(getattr(args, mode.input), list)
    done, skipped = 0, []
    for i, path in enumerate(files, 1):
        print(f"[{i}/{len(files)}] {path}", file=sys.stderr, flush=True)
        one = argparse.Namespace(**vars(args))
        setattr(one, mode.input, [str(path)] if was_list else str(path))
        for name, d in out_dirs.items():
            setattr(one, name, str(d / f"{path.stem}.png"))
        try:
            for name, d in companions.items():
                setattr(one, name, str(_companion(d, path.stem, name)))
            args.func(one)
            done += 1
        except (InputError, CliError, ValueError, OSError) as exc:  # this file's problem: skip it
            end_line(sys.stderr)
            print(f"skipped {path}: {_message(exc)}", file=sys.stderr, flush=True)
            skipped.append(path.name)
    summary = f"{done} of {len(files)} inputs done, outputs in {args.out}"
    if skipped:
        summary += f"; skipped {len(skipped)}: {', '.join(skipped)}"
    print(summary)
    if not done:
        raise CliError(f"no input in {source} could be used (see the messages above)")
    return 1 if skipped else 0


def _check_output_files(args: argparse.Namespace, mode: FolderMode) -> None:
    """Before any work: each output option of a one-input run names an image file we can write."""
    for name in mode.outputs:
        value = getattr(args, name, None)
        if not value:
            continue
        path = Path(value)
        option = f"--{name.replace('_', '-')}"
        if path.is_dir():
            raise CliError(f"{option} {value} is a folder; give an image file name (e.g. {path / 'out.png'})")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise CliError(f"{option} {value}: give a file name ending in one of {' '.join(IMAGE_SUFFIXES)}")


def _message(exc: BaseException) -> str:
    """The user's message of an error: typed errors as they are; a stray KeyError or OS error says
    what it is about instead of a bare ``101`` or ``id``."""
    if isinstance(exc, (CliError, EngineError)):
        text = str(exc)
    elif isinstance(exc, KeyError):
        text = f"missing or unknown key {exc.args[0]!r}" if exc.args else "missing key"
    elif isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        text = str(exc) or type(exc).__name__
    # escape codes and other control characters in file names or file contents are shown, not run
    return "\n".join(printable(line, 2000) for line in text.split("\n"))


def default_model(family: str, override: str = "") -> str:
    """``--model`` if given, else the family's default model (engine.weights.default_model, as the studio)."""
    from .weights import current_manifest, default_model as resolve

    return resolve(current_manifest(), family, override)


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
        print(f"{printable(e.name):<28} {printable(e.family):<10} {printable(e.config_name):<16} "
              f"{e.bytes / 1e6:9.1f}M  {printable(prov)}: {printable(detail, 200)}")
    return 0


def _cmd_weights_verify(args: argparse.Namespace) -> int:
    from .weights import Manifest

    m = Manifest()
    bad = 0
    for e in m.entries.values():
        r = m.verify(e)
        bad += r.status != "verified"
        print(f"{r.status:<11} {printable(e.name):<28} {printable(r.message, 400)}")
    if not m.entries:
        print(f"no models registered in {m.path}")
    return 1 if bad else 0


def _cmd_weights_import(args: argparse.Namespace) -> int:
    from .weights import import_official

    entry = import_official([Path(p) for p in args.paths], name=args.name, family_name=args.family,
                            config_name=args.config, replace=args.force)
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
    p.add_argument("--force", action="store_true", help="replace a model already registered under this name")
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
    parser = OneLineParser(prog="i2i", description="i2i-studio engine command line")
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
    global _session
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    _session = None  # each command loads its models afresh
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        mode: FolderMode | None = getattr(args, "folder_mode", None)
        source = _folder_input(args, mode) if mode is not None else None
        if source is not None:
            return run_over_folder(args, mode, source)
        if mode is not None:
            _check_output_files(args, mode)
        return int(args.func(args) or 0)
    except (CliError, EngineError, KeyError, OSError, ValueError) as exc:
        if debug:
            raise
        end_line(sys.stderr)  # never glue the message to a progress line
        print(f"i2i: error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        end_line(sys.stderr)
        print("i2i: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's flush at exit
        return 0


def print_failure(f: Failure) -> None:
    print(f"i2i: error ({f.kind}): {f.message}", file=sys.stderr)


if __name__ == "__main__":
    # `python -m engine.cli`: run the imported module, whose CliError the task modules raise
    from engine.cli import main as _main

    sys.exit(_main())
