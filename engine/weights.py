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
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as _st_load, save_file as _st_save
from torch import nn

from .api.base import WeightsError
from .families import StateDicts, get_family, resolve_config

REPO_ROOT = Path(__file__).resolve().parent.parent
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
                raw = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise WeightsError(f"{self.path} is not valid JSON: {exc}") from exc
            for item in raw.get("models", []):
                try:
                    entry = WeightsEntry(**item)
                except TypeError as exc:
                    raise WeightsError(f"{self.path}: entry {item.get('name', '?')!r} is malformed: {exc}") from exc
                self.entries[entry.name] = entry

    def get(self, name: str) -> WeightsEntry:
        if name not in self.entries:
            known = ", ".join(sorted(self.entries)) or "none"
            raise WeightsError(f"no model named {name!r} in {self.path} (registered: {known}); "
                               f"import one with `i2i weights import PATH --as {name} --family F --config C`")
        return self.entries[name]

    def by_family(self, family: str) -> list[WeightsEntry]:
        return [e for e in self.entries.values() if e.family == family]

    def default(self, family: str) -> WeightsEntry | None:
        """The family's default-flagged entry, else its first one; None when it has none."""
        entries = self.by_family(family)
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
            read_safetensors(path)
        except WeightsError as exc:
            return VerifyReport(entry.name, "unreadable", str(exc))
        return VerifyReport(entry.name, "verified", f"{size} bytes, sha256 ok")


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
    if path.stat().st_size == 0:
        raise WeightsError(f"{path} is empty")
    problem = _sniff_torch_file(path)
    if problem:
        raise WeightsError(problem)
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
    except (RuntimeError, ValueError, OSError, KeyError, zipfile.BadZipFile) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "EOF" in detail or "failed finding central directory" in detail:
            raise WeightsError(f"{path} is truncated: the file ends in the middle of the checkpoint; "
                               f"download or copy it again") from exc
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({detail})") from exc


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return _st_load(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file: {exc}") from exc


def read_any(path: Path) -> Any:
    """safetensors by extension or magic, else a torch file read safely."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    return read_torch_file(path)


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
    modules = family.build(entry.config)
    state = split_subnets(read_safetensors(path))
    load_strict(modules, state, source=str(path),
                optional={sub: family.optional_keys(sub) for sub in modules},
                required_subnets=[s for s in family.inference_subnets if s in modules])
    for m in modules.values():
        m.eval()
    return modules


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
                    manifest: Manifest | None = None) -> WeightsEntry:
    """Convert official checkpoint file(s) into our format, check them strictly against the
    architecture, copy into the weights folder and record them in the manifest."""
    manifest = manifest or Manifest()
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

