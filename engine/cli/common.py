"""What every ``i2i`` command shares: one-line argument errors, number arguments, the options of
``i2i generate``, running over a folder of inputs, the command's model session and its progress line.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..devices import configure_threads
from ..limits import MAX_PREVIEW_SIZE, MAX_SEED, MIN_PREVIEW_SIZE, printable
from ..progress import end_line, write_refreshed
from ..requests.base import EngineError, InputError, Request, Result
from ..tasks import CancelToken, LRUCache, ModelStore, make_context, run_request
from ..weights import Manifest, current_manifest
from ..weights import default_model as resolve_default_model


@dataclass
class CliGroups:
    """Sub-parser collections a command module adds to: ``i2i generate X``, ``i2i train X``,
    ``i2i data X``, and top-level commands (``i2i eval``)."""

    generate: argparse._SubParsersAction
    train: argparse._SubParsersAction
    data: argparse._SubParsersAction
    top: argparse._SubParsersAction


class CliError(Exception):
    """A user error reported as one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one ``i2i: error:`` line naming the argument (exit status 2), not usage + error."""

    def error(self, message: str):
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
    p.add_argument("--model", default="",
                   help=model_help or "weights manifest entry (default: the family's default model)")
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
        configure_threads()
        self.models = ModelStore()
        self.cache = LRUCache(256)
        self.count = 0
        self._named: set[str] = set()

    def run(self, request: Request) -> Result:
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


def reset_session() -> None:
    """Forget the command's session: each command loads its models afresh."""
    global _session
    _session = None


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
def folder_input(args: argparse.Namespace, mode: FolderMode) -> Path | None:
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
            print(f"skipped {path}: {error_message(exc)}", file=sys.stderr, flush=True)
            skipped.append(path.name)
    summary = f"{done} of {len(files)} inputs done, outputs in {args.out}"
    if skipped:
        summary += f"; skipped {len(skipped)}: {', '.join(skipped)}"
    print(summary)
    if not done:
        raise CliError(f"no input in {source} could be used (see the messages above)")
    return 1 if skipped else 0


def check_output_files(args: argparse.Namespace, mode: FolderMode) -> None:
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


def error_message(exc: BaseException) -> str:
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
    return resolve_default_model(current_manifest(), family, override)
