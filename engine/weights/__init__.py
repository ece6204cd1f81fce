"""Weights registry: ``weights/manifest.json``, verification, safe loading, strict state-dict checks,
and import of official checkpoints.

Files are never unpickled: torch files go through ``torch.load(weights_only=True)``; our own files
are safetensors with keys ``<sub-network>.<parameter>``.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import pickletools
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as _st_load
from safetensors.torch import save_file as _st_save
from torch import nn

from ..families import StateDicts, get_family, resolve_config
from ..limits import (
    MAX_CHECKPOINT_BYTES,
    MAX_MODEL_PARAM_BYTES,
    MAX_NAME_LENGTH,
    MAX_PICKLE_BYTES,
    MAX_PICKLE_DEPTH,
    MAX_PICKLE_NODES,
    MAX_TENSOR_BYTES,
    load_json,
    printable,
)
from ..requests.base import InputError, WeightsError

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST_NAME = "manifest.json"


def weights_dir() -> Path:
    """``I2I_WEIGHTS_DIR`` or the repository's ``weights/`` folder."""
    return Path(os.environ.get("I2I_WEIGHTS_DIR", REPO_ROOT / "weights"))


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------
@dataclass
class WeightsEntry:
    """One model file. ``provenance`` is {"kind": "trained-here", "command": ...} or
    {"kind": "official", "upstream": "<upstream file name(s)>"}."""

    name: str
    family: str
    config_name: str
    config: dict[str, Any]
    file: str
    bytes: int
    sha256: str
    provenance: dict[str, str]
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_ENTRY_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "family": str, "config_name": str, "config": dict, "file": str, "bytes": int,
    "sha256": str, "provenance": dict, "description": str, "extra": dict,
}


def _entry_from_json(item: Any, where: str) -> WeightsEntry:
    """One manifest entry, its fields' types checked (a string or list entry is named, not a traceback)."""
    if not isinstance(item, dict):
        raise WeightsError(f"{where} must be an object, got {type(item).__name__}")
    label = printable(item.get("name", "?"))
    unknown = sorted(set(item) - set(_ENTRY_TYPES))
    if unknown:
        raise WeightsError(f"{where} ({label}) has unknown fields: {', '.join(printable(k) for k in unknown)}")
    for key, kind in _ENTRY_TYPES.items():
        if key not in item:
            if key in ("description", "extra"):
                continue
            raise WeightsError(f"{where} ({label}) lacks the field {key!r}")
        if not isinstance(item[key], kind) or isinstance(item[key], bool):
            raise WeightsError(f"{where} ({label}): {key!r} must be {getattr(kind, '__name__', kind)}, "
                               f"got {type(item[key]).__name__}")
    try:
        check_model_name(item["name"])
    except WeightsError as exc:
        raise WeightsError(f"{where}: {exc}") from None
    return WeightsEntry(**item)


def check_model_name(name: str) -> str:
    """A manifest name that is also a safe file stem in the weights folder (no folders, no ``..``)."""
    if not isinstance(name, str) or not name:
        raise WeightsError("model name is empty; give one with --as NAME (letters, digits, . _ -)")
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.fullmatch(name) or ".." in name:
        raise WeightsError(f"model name {printable(name)!r} is not allowed: use up to {MAX_NAME_LENGTH} letters, "
                           f"digits, '.', '_' or '-', starting with a letter or digit (no folders)")
    return name


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


Status = Literal["verified", "missing", "mismatch", "unreadable"]


@dataclass(frozen=True)
class VerifyReport:
    name: str
    status: Status
    message: str


class Manifest:
    """The list of model files in a weights folder."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else weights_dir()
        self.path = self.root / MANIFEST_NAME
        self.entries: dict[str, WeightsEntry] = {}
        if self.path.exists():
            try:
                raw = load_json(self.path, "weights manifest")
            except InputError as exc:
                raise WeightsError(str(exc)) from None
            models = raw.get("models", []) if isinstance(raw, dict) else None
            if not isinstance(models, list):
                raise WeightsError(f"{self.path}: expected an object with a 'models' list")
            for i, item in enumerate(models):
                entry = _entry_from_json(item, f"{self.path}: models[{i}]")
                self.entries[entry.name] = entry

    def get(self, name: str) -> WeightsEntry:
        if name not in self.entries:
            known = ", ".join(sorted(self.entries)) or "none"
            raise WeightsError(f"no model named {name!r} in {self.path} (registered: {known}); "
                               f"import one with `i2i weights import PATH --as {name} --family F --config C`")
        return self.entries[name]

    def by_family(self, family: str) -> list[WeightsEntry]:
        return [e for e in self.entries.values() if e.family == family]

    def default(self, family: str, *, need_background: bool = False) -> WeightsEntry | None:
        """The one default-model rule: the family's default-flagged entry, else its first one (with
        ``need_background``, only EdgeGAN entries that have a background network); None when none."""
        entries = self.by_family(family)
        if need_background:
            entries = [e for e in entries if e.config.get("background")]
        flagged = [e for e in entries if e.extra.get("default")]
        return (flagged or entries or [None])[0]

    def add(self, entry: WeightsEntry) -> None:
        self.entries[entry.name] = entry

    def save(self) -> None:
        """Atomic write (temp file + rename) so a crash never leaves half a manifest."""
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"version": 1, "models": [asdict(e) for e in sorted(self.entries.values(), key=lambda e: e.name)]}
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".manifest-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the manifest is a normal shared file
        os.replace(tmp, self.path)

    def file_path(self, entry: WeightsEntry) -> Path:
        return self.root / entry.file


    def verify(self, entry: WeightsEntry) -> VerifyReport:
        """verified / missing / mismatch (size or sha256) / unreadable."""
        path = self.file_path(entry)
        if not path.exists():
            return VerifyReport(entry.name, "missing", f"{path} does not exist")
        try:
            size = path.stat().st_size
            digest = sha256_file(path)
        except OSError as exc:
            return VerifyReport(entry.name, "unreadable", f"{path}: {exc}")
        if size != entry.bytes or digest != entry.sha256:
            return VerifyReport(entry.name, "mismatch",
                                f"{path}: expected {entry.bytes} bytes sha256 {entry.sha256[:12]}…, "
                                f"found {size} bytes sha256 {digest[:12]}…")
        try:
            check_parameter_bytes(entry)
        except WeightsError as exc:
            return VerifyReport(entry.name, "mismatch", str(exc))
        try:
            read_safetensors(path)
        except WeightsError as exc:
            return VerifyReport(entry.name, "unreadable", str(exc))
        return VerifyReport(entry.name, "verified", f"{size} bytes, sha256 ok")



# How to get a model of each family, for the "none registered" message.
_HOW_TO_GET = {
    "cocosnet": "import official ones with `i2i weights import latest_net_G.pth latest_net_Corr.pth --as NAME "
                "--family cocosnet --config ade20k` or train one with `i2i train cocosnet`",
    "stargan2": "import official ones with `i2i weights import 100000_nets_ema.ckpt --as NAME --family stargan2 "
                "--config celeba_hq` or train one with `i2i train stargan2`",
    "panoptic": "import SPADE's with `i2i weights import latest_net_G.pth --as spade_coco --family panoptic "
                "--config spade_coco` or train one with `i2i train panoptic`",
    "edgegan": "train them with `i2i train edgegan` or import the official checkpoint with `i2i weights import "
               "EdgeGAN-Model-N.index --as edgegan_class14 --family edgegan --config class14`",
}


def default_model(manifest: Manifest, family: str, name: str = "", *, need_background: bool = False) -> str:
    """``name`` when given, else the name of :meth:`Manifest.default`; no such entry is a
    :class:`WeightsError` saying how to get one (the CLI, the tasks and the studio all ask here)."""
    if name:
        return name
    entry = manifest.default(family, need_background=need_background)
    if entry is None:
        what = "with a background network " if need_background else ""
        how = _HOW_TO_GET.get(family, f"import one with `i2i weights import PATH --as NAME --family {family} "
                                      "--config C`")
        raise WeightsError(f"no {family} weights {what}are registered in {manifest.path}; {how}")
    return entry.name


_current: tuple[tuple[str, int, int], Manifest] | None = None


def current_manifest(root: Path | None = None) -> Manifest:
    """The manifest of ``root`` (default :func:`weights_dir`), read once and read again only when
    the file's modification time or size changes (the GUI asks on every preview). Treat it as
    read-only: to change the registry, load a fresh :class:`Manifest`, edit and save it."""
    global _current
    folder = Path(root) if root is not None else weights_dir()
    path = folder / MANIFEST_NAME
    try:
        st = path.stat()
        stamp = (str(path), st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (str(path), -1, -1)
    cached = _current
    if cached is not None and cached[0] == stamp:
        return cached[1]
    manifest = Manifest(folder)
    _current = (stamp, manifest)
    return manifest


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Safe reading
# --------------------------------------------------------------------------------------------
# The first bytes of the two torch.save formats: a zip archive (PyTorch >= 1.6) or a pickle stream
# (protocol 2+ starts with 0x80 and the protocol number).
_ZIP_MAGIC = b"PK\x03\x04"
_LFS_POINTER = b"version https://git-lfs"


def _sniff_torch_file(path: Path) -> str:
    """Why ``path`` cannot be a torch checkpoint, judged from its bytes alone ('' when it may be one)."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith(_ZIP_MAGIC):
        if not zipfile.is_zipfile(path):  # no end-of-archive record: the download stopped early
            return (f"{path} is truncated: it starts like a PyTorch checkpoint (a zip archive) but its end is "
                    f"missing; download or copy it again")
        return ""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return ""  # a legacy (pickle-based) checkpoint
    if head.startswith(_LFS_POINTER):
        return (f"{path} is not a PyTorch checkpoint but a Git LFS pointer (a small text file naming the real "
                f"one); fetch the real file with `git lfs pull` or download it again")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"{path} is not a PyTorch checkpoint (neither a zip archive nor a pickle stream)"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    shown = f" starting with {first[:40]!r}" if first else ""
    return f"{path} is not a PyTorch checkpoint: it is a text file{shown}"


def _unpickler_reason(exc: BaseException) -> str:
    """The part of torch's weights-only refusal that names the offending object, without its advice
    to load with ``weights_only=False`` (this program never does)."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    reason = text.split(marker, 1)[1] if marker in text else ""
    lines = [ln.strip() for ln in reason.splitlines() if ln.strip()]
    keep = [ln for ln in lines if "weights_only" not in ln and "torch.load" not in ln
            and not ln.lower().startswith(("check the documentation", "please file"))]
    # "Unsupported global: GLOBAL argparse.Namespace was not an allowed global by default. Please use
    # `torch.serialization.add_safe_globals(...)` ..." -> only the first sentence
    return keep[0].split(". Please", 1)[0].rstrip(".") if keep else ""


def read_torch_file(path: Path) -> Any:
    """Load a torch checkpoint with ``weights_only=True``; pickled code is refused, never run.
    Text files, truncated downloads and other non-checkpoints are named as such."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path} does not exist")
    if not path.is_file():
        raise WeightsError(f"{path} is not a file")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path} is empty")
    problem = _sniff_torch_file(path)
    if problem:
        raise WeightsError(problem)
    check_torch_file_bounds(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickler_reason(exc)
        raise WeightsError(
            f"{path} was refused: it contains pickled Python objects other than tensors "
            f"(possibly code), which this program never unpickles" + (f" ({reason})" if reason else "")
        ) from exc
    except EOFError as exc:
        raise WeightsError(f"{path} is truncated: the file ends in the middle of the checkpoint; "
                           f"download or copy it again") from exc
    except (RuntimeError, ValueError, OSError, KeyError, zipfile.BadZipFile, SafetensorError,
            struct.error, OverflowError, MemoryError, RecursionError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "EOF" in detail or "failed finding central directory" in detail:
            raise WeightsError(f"{path} is truncated: the file ends in the middle of the checkpoint; "
                               f"download or copy it again") from exc
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({detail})") from exc


def _pickle_records(path: Path) -> list[tuple[str, bytes]]:
    """The pickle streams of a torch file, each named, within :data:`MAX_PICKLE_BYTES`; the tensor
    storages of a zip checkpoint are checked against the tensor-byte limits on the way."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
                total = 0
                for info in infos:
                    if "/data/" in info.filename:
                        if info.file_size > MAX_TENSOR_BYTES:
                            raise WeightsError(f"{path}: tensor storage {printable(info.filename)} holds "
                                               f"{info.file_size / 1e9:.1f} GB, more than the "
                                               f"{MAX_TENSOR_BYTES / 1024**3:.0f} GiB per-tensor limit")
                        total += info.file_size
                if total > MAX_CHECKPOINT_BYTES:
                    raise WeightsError(f"{path} holds {total / 1e9:.1f} GB of tensors, more than the "
                                       f"{MAX_CHECKPOINT_BYTES / 1024**3:.0f} GiB limit")
                records = []
                for info in infos:
                    if info.filename.endswith(".pkl"):
                        if info.file_size > MAX_PICKLE_BYTES:
                            raise WeightsError(f"{path}: {printable(info.filename)} is "
                                               f"{info.file_size / 1e6:.0f} MB of pickle, more than the "
                                               f"{MAX_PICKLE_BYTES // 1024**2} MiB limit")
                        records.append((info.filename, zf.read(info)))
                return records
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
            raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({exc})") from None
    return []  # legacy format: scanned from the file (see check_torch_file_bounds)


def check_torch_file_bounds(path: Path) -> None:
    """Refuse, before ``torch.load`` runs, a checkpoint whose pickle nests containers deeper than
    :data:`MAX_PICKLE_DEPTH` or would expand (shared references counted each time they are used) to
    more than :data:`MAX_PICKLE_NODES` objects: keys of deeply nested, shared tuples take
    exponential time to hash inside the unpickler. The opcodes are scanned, nothing is built."""
    import io as _io

    records = _pickle_records(path)
    if records:
        for name, data in records:
            _scan_pickle(_io.BytesIO(data), f"{path} ({printable(name)})")
        return
    with open(path, "rb") as fh:  # legacy format: magic, protocol, sys info, the object, storage keys
        for _ in range(5):
            if not _scan_pickle(fh, str(path)) or fh.tell() > MAX_PICKLE_BYTES:
                break


def _scan_pickle(stream: Any, where: str) -> bool:
    """Track (depth, expanded size) of every stack item of one pickle read from ``stream``;
    False when it is not a well-formed pickle (torch.load then names the problem)."""
    stack: list[tuple[int, int]] = []
    marks: list[int] = []
    memo: dict[int, tuple[int, int]] = {}
    try:
        for op, arg, _pos in pickletools.genops(stream):
            name = op.name
            if name == "MARK":
                marks.append(len(stack))
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                if stack:
                    memo[len(memo) if name == "MEMOIZE" else int(arg)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(int(arg), (0, 1)))
            elif name == "DUP":
                stack.append(stack[-1] if stack else (0, 1))
            elif name in ("POP",):
                if stack:
                    stack.pop()
            elif name == "POP_MARK":
                if marks:
                    del stack[marks.pop():]
            elif name == "STOP":
                break
            elif name in ("PROTO", "FRAME"):
                pass
            else:
                before = op.stack_before
                if pickletools.markobject in before:
                    cut = marks.pop() if marks else 0
                    popped = stack[cut:]
                    del stack[cut:]
                    n_plain = before.index(pickletools.markobject)
                else:
                    popped = []
                    n_plain = len(before)
                if n_plain:
                    popped += stack[-n_plain:]
                    del stack[-n_plain:]
                depth = 1 + max((d for d, _ in popped), default=0) if popped else 0
                size = 1 + sum(n for _, n in popped)
                if depth > MAX_PICKLE_DEPTH:
                    raise WeightsError(f"{where} was refused: its pickle nests containers more than "
                                       f"{MAX_PICKLE_DEPTH} deep")
                if size > MAX_PICKLE_NODES:
                    raise WeightsError(f"{where} was refused: its pickle expands to more than "
                                       f"{MAX_PICKLE_NODES:,} objects (shared nested containers)")
                stack.extend([(depth, size)] * len(op.stack_after))
    except WeightsError:
        raise
    except Exception:
        return False
    return True


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        check_safetensors_header(path)
        return _st_load(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError, OverflowError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file: {exc}") from exc


def check_safetensors_header(path: Path) -> None:
    """Refuse a safetensors file whose header declares a tensor above :data:`MAX_TENSOR_BYTES` (or
    all together above :data:`MAX_CHECKPOINT_BYTES`), from the header alone."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise WeightsError(f"{path} is not a readable safetensors file: shorter than its 8-byte header length")
        n = struct.unpack("<Q", head)[0]
        if n > 100 * 1024**2:
            raise WeightsError(f"{path} is not a readable safetensors file: header length {n} is implausible")
        try:
            header = json.loads(fh.read(n))
        except (ValueError, RecursionError):
            return  # malformed: safetensors itself names the problem
    if not isinstance(header, dict):
        return
    total = 0
    for key, info in header.items():
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(v, int) for v in offsets):
            size = offsets[1] - offsets[0]
            if size > MAX_TENSOR_BYTES:
                raise WeightsError(f"{path}: tensor {printable(key)} is {size / 1e9:.1f} GB, more than the "
                                   f"{MAX_TENSOR_BYTES / 1024**3:.0f} GiB per-tensor limit")
            total += max(size, 0)
    if total > MAX_CHECKPOINT_BYTES:
        raise WeightsError(f"{path} holds {total / 1e9:.1f} GB of tensors, more than the "
                           f"{MAX_CHECKPOINT_BYTES / 1024**3:.0f} GiB limit")


def split_subnets(flat: Mapping[str, torch.Tensor]) -> StateDicts:
    """``{"generator.a.b": t}`` -> ``{"generator": {"a.b": t}}``."""
    out: StateDicts = {}
    for key, tensor in flat.items():
        sub, _, name = key.partition(".")
        out.setdefault(sub, {})[name] = tensor
    return out


def join_subnets(state: StateDicts) -> dict[str, torch.Tensor]:
    return {f"{sub}.{k}": v.detach().cpu().contiguous() for sub, sd in state.items() for k, v in sd.items()}


def save_state_dicts(state: StateDicts, path: Path, metadata: Mapping[str, str] | None = None) -> None:
    """Write {sub: state dict} as one safetensors file (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    _st_save(join_subnets(state), str(tmp), metadata=dict(metadata or {}))
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Strict loading with one readable report
# --------------------------------------------------------------------------------------------
def check_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], *, label: str = "",
                     optional: Iterable[str] = ()) -> list[str]:
    """Problems of loading ``state`` into ``module`` strictly, one plain sentence each."""
    expected = module.state_dict()
    optional = set(optional)
    problems: list[str] = []
    prefix = f"{label}: " if label else ""
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    for k in missing:
        problems.append(f"{prefix}missing key {k!r} (expected shape {list(expected[k].shape)})")
    for k in unexpected:
        problems.append(f"{prefix}unexpected key {k!r} (shape {list(state[k].shape)}) is not part of this architecture")
    for k, v in state.items():
        if k in expected and tuple(expected[k].shape) != tuple(v.shape):
            problems.append(f"{prefix}key {k!r} has shape {list(v.shape)}, expected {list(expected[k].shape)}")
    return problems


def load_strict(modules: Mapping[str, nn.Module], state: StateDicts, *, source: str,
                optional: Mapping[str, Iterable[str]] | None = None,
                required_subnets: Iterable[str] | None = None) -> None:
    """Load every sub-network strictly; all problems are raised together in one WeightsError."""
    optional = optional or {}
    problems: list[str] = []
    wanted = list(required_subnets) if required_subnets is not None else list(modules)
    for sub in wanted:
        if sub not in state:
            problems.append(f"sub-network {sub!r} is absent (file has: {', '.join(state) or 'nothing'})")
    for sub, sd in state.items():
        if sub not in modules:
            problems.append(f"sub-network {sub!r} is not part of this architecture (expected: {', '.join(modules)})")
            continue
        problems += check_state_dict(modules[sub], sd, label=sub, optional=optional.get(sub, ()))
    if problems:
        shown = problems[:40]
        more = f"\n  … and {len(problems) - 40} more" if len(problems) > 40 else ""
        raise WeightsError(f"{source} does not fit the architecture ({len(problems)} problems):\n  "
                           + "\n  ".join(shown) + more)
    for sub, sd in state.items():
        modules[sub].load_state_dict(sd, strict=False)  # strictness checked above (optional keys allowed)


def build_and_load(entry: WeightsEntry, manifest: Manifest, *, check_hash: bool = True) -> dict[str, nn.Module]:
    """Build the entry's sub-networks and load its file strictly; modules are in eval mode on CPU."""
    family = get_family(entry.family)
    path = manifest.file_path(entry)
    if not path.exists():
        raise WeightsError(f"weights file for {entry.name!r} is missing: {path}. "
                           f"Run `i2i weights verify` or re-import it with `i2i weights import`.")
    if check_hash:
        report = manifest.verify(entry)
        if report.status != "verified":
            raise WeightsError(f"weights for {entry.name!r}: {report.status}: {report.message}")
    check_parameter_bytes(entry)
    modules = _build(family, entry.config, f"model {entry.name!r}")
    state = split_subnets(read_safetensors(path))
    load_strict(modules, state, source=str(path),
                optional={sub: family.optional_keys(sub) for sub in modules},
                required_subnets=[s for s in family.inference_subnets if s in modules])
    for m in modules.values():
        m.eval()
    return modules


def _build(family, config: Mapping[str, Any], what: str, device: str | None = None) -> dict[str, nn.Module]:
    """``family.build(config)``; a config the constructors reject is a WeightsError naming ``what``."""
    try:
        if device is None:
            return family.build(config)
        with torch.device(device):
            return family.build(config)
    except (TypeError, ValueError, KeyError, RuntimeError, ZeroDivisionError, OverflowError, AttributeError,
            IndexError, AssertionError) as exc:
        raise WeightsError(f"{what}: its config cannot build a {family.name} network "
                           f"({type(exc).__name__}: {printable(exc, 160)})") from None


def _config_numbers(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _config_numbers(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _config_numbers(v)]
    return []


def check_parameter_bytes(entry: WeightsEntry) -> int | None:
    """Refuse a config that would build more than :data:`MAX_MODEL_PARAM_BYTES` of float32
    parameters, before any real build. A config whose whole numbers are all within the range of the
    released configurations (each ≤ 1024, summing to ≤ 2048; the largest released one sums to 995)
    passes at once (None); any other is counted on the meta device, where nothing is allocated
    (seconds, so only then)."""
    numbers = _config_numbers(entry.config)
    if all(0 <= n <= 1024 for n in numbers) and sum(numbers) <= 2048:
        return None
    family = get_family(entry.family)
    modules = _build(family, entry.config, f"model {printable(entry.name)!r}", device="meta")
    n = sum(t.numel() for m in modules.values() for t in [*m.parameters(), *m.buffers()])
    if n * 4 > MAX_MODEL_PARAM_BYTES:
        raise WeightsError(f"model {printable(entry.name)!r}: its config asks for {n * 4 / 1e9:.1f} GB of parameters, "
                           f"more than the {MAX_MODEL_PARAM_BYTES / 1024**3:.0f} GiB limit")
    return n * 4


def register_file(manifest: Manifest, *, name: str, family: str, config_name: str,
                  config: Mapping[str, Any], path: Path, provenance: Mapping[str, str],
                  description: str = "", extra: Mapping[str, Any] | None = None) -> WeightsEntry:
    """Record a safetensors file that already lies in the weights folder."""
    path = Path(path).resolve()
    try:
        rel = path.relative_to(manifest.root.resolve())
    except ValueError as exc:
        raise WeightsError(f"{path} is not inside the weights folder {manifest.root}") from exc
    entry = WeightsEntry(name=name, family=family, config_name=config_name, config=dict(config),
                         file=rel.as_posix(), bytes=path.stat().st_size, sha256=sha256_file(path),
                         provenance=dict(provenance), description=description, extra=dict(extra or {}))
    manifest.add(entry)
    manifest.save()
    return entry


def import_official(paths: list[Path], *, name: str, family_name: str, config_name: str,
                    manifest: Manifest | None = None, replace: bool = False) -> WeightsEntry:
    """Convert official checkpoint file(s) into our format, check them strictly against the
    architecture, copy into the weights folder and record them in the manifest. A name already
    registered (or a file already there) is refused unless ``replace``."""
    check_model_name(name)
    manifest = manifest or Manifest()
    if not replace and (name in manifest.entries or (manifest.root / f"{name}.safetensors").exists()):
        raise WeightsError(f"a model named {name!r} already exists in {manifest.root}; choose another --as "
                           f"name or pass --force to replace it")
    family = get_family(family_name)
    config = resolve_config(family, config_name)
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise WeightsError(f"{p} does not exist")
    if family.convert is None:
        raise WeightsError(f"family {family_name!r} has no official checkpoint format to import")
    state = family.convert(paths, config)
    modules = family.build(config)
    load_strict(modules, state, source=", ".join(p.name for p in paths),
                optional={sub: family.optional_keys(sub) for sub in modules},
                required_subnets=[s for s in family.inference_subnets if s in modules])
    # Save what the modules now hold: optional keys the file lacked get their constant values.
    full = {sub: modules[sub].state_dict() for sub in state}
    out = manifest.root / f"{name}.safetensors"
    save_state_dicts(full, out, metadata={"family": family_name, "config": config_name})
    return register_file(manifest, name=name, family=family_name, config_name=config_name,
                         config=config, path=out,
                         provenance={"kind": "official", "upstream": ", ".join(p.name for p in paths)})

