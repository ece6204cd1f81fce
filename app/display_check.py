"""Before the studio opens a window: are the system libraries of Qt's X11 (xcb) platform plugin there?

On a bare Debian/Ubuntu the PySide6 wheel's ``libqxcb.so`` cannot load (``libxcb-cursor0`` and, on
some images, ``libxcb-icccm4``, ``libxcb-keysyms1``, ``libxkbcommon-x11-0``, ``libegl1`` are not
installed) and Qt aborts with a message that names none of them. This module finds what is missing
— ``ldd`` on the plugin, else a look-up of each library the plugin needs (``ldconfig -p`` /
``ctypes.util.find_library``) — and installs the Debian packages when it runs as root with apt-get,
or prints the one exact command to run. It imports no Qt module (``python -m app.display_check``).
"""
from __future__ import annotations

import argparse
import ctypes.util
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# Libraries Qt 6's xcb plugin (libqxcb.so → libQt6XcbQpa.so.6) loads, and the Debian/Ubuntu package
# that ships each one.
XCB_LIBRARIES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libEGL.so.1": "libegl1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}

LddFn = Callable[[Path], "str | None"]
FindFn = Callable[[str], bool]


def xcb_plugin() -> Path | None:
    """The PySide6 wheel's xcb platform plugin, found without importing Qt."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return path if path.exists() else None


def run_ldd(path: Path) -> str | None:
    """``ldd`` output for ``path``; None when ldd is absent or fails."""
    if shutil.which("ldd") is None:
        return None
    try:
        proc = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def not_found_in_ldd(text: str) -> list[str]:
    """Sonames ``ldd`` reports as ``=> not found`` (each once, in order)."""
    found: list[str] = []
    for line in text.splitlines():
        name, sep, rest = line.strip().partition("=>")
        if sep and rest.strip() == "not found" and name.strip() not in found:
            found.append(name.strip())
    return found


def library_present(soname: str) -> bool:
    """Whether the dynamic linker can find ``soname`` (the ld.so cache, then find_library)."""
    try:
        cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        cache = ""
    if any(line.strip().startswith(soname + " ") for line in cache.splitlines()):
        return True
    stem = soname.removeprefix("lib").split(".so")[0]
    return ctypes.util.find_library(stem) == soname


def missing_libraries(plugin: Path | None, *, ldd: LddFn = run_ldd, present: FindFn = library_present) -> list[str]:
    """Sonames the xcb plugin needs and the system lacks: from ``ldd`` on the plugin when it can run,
    else by looking up each library of :data:`XCB_LIBRARIES`."""
    text = ldd(plugin) if plugin is not None else None
    if text is not None:
        return not_found_in_ldd(text)
    return [name for name in XCB_LIBRARIES if not present(name)]


def packages_for(sonames: Sequence[str]) -> tuple[list[str], list[str]]:
    """(Debian packages to install, sonames of no known package)."""
    packages = sorted({XCB_LIBRARIES[s] for s in sonames if s in XCB_LIBRARIES})
    unknown = [s for s in sonames if s not in XCB_LIBRARIES]
    return packages, unknown


def install_command(packages: Sequence[str], *, root: bool) -> list[str]:
    return [*([] if root else ["sudo"]), "apt-get", "install", "-y", *packages]


def needs_xcb(env: dict[str, str] | None = None) -> bool:
    """Whether Qt will load the xcb plugin: Linux, no other platform chosen, not a Wayland-only session."""
    env = dict(os.environ) if env is None else env
    if not sys.platform.startswith("linux"):
        return False
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.split(":")[0] == "xcb"
    return not (env.get("WAYLAND_DISPLAY") and not env.get("DISPLAY"))


def check(*, install: bool = False, plugin: Path | None = None, ldd: LddFn = run_ldd,
          present: FindFn = library_present, run: Callable[[list[str]], int] | None = None,
          is_root: bool | None = None, has_apt: bool | None = None, out=None) -> int:
    """0 when the xcb plugin can load (or is not needed); else install the packages (``install``,
    root, apt-get) or print the exact command, and return 1 when something is still missing."""
    out = out or sys.stderr
    plugin = plugin if plugin is not None else xcb_plugin()
    missing = missing_libraries(plugin, ldd=ldd, present=present)
    if not missing:
        return 0
    packages, unknown = packages_for(missing)
    root = (os.geteuid() == 0) if is_root is None else is_root
    apt = (shutil.which("apt-get") is not None) if has_apt is None else has_apt
    run = run or (lambda cmd: subprocess.call(cmd, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}))
    print(f"i2i-studio: Qt's X11 display plugin needs libraries that are not installed: {', '.join(missing)}",
          file=out)
    if packages and install and root and apt:
        command = install_command(packages, root=True)
        print(f"installing them: {' '.join(command)}", file=out)
        if run(command) != 0:  # a fresh image may have no package lists yet
            run(["apt-get", "update"])
            run(command)
        missing = missing_libraries(plugin, ldd=ldd, present=present)
        if not missing:
            return 0
        packages, unknown = packages_for(missing)
    if packages:
        print("install them with:\n  " + " ".join(install_command(packages, root=root)), file=out)
    if unknown:
        print(f"no known Debian package ships {', '.join(unknown)}; install the package that provides it "
              f"(e.g. `apt-file search {unknown[0]}`)", file=out)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.display_check",
                                     description="check (and with --install, install) the system libraries "
                                                 "Qt's X11 plugin needs")
    parser.add_argument("--install", action="store_true", help="install missing packages with apt-get when root")
    args = parser.parse_args(argv)
    if not needs_xcb():
        return 0
    return check(install=args.install)


if __name__ == "__main__":
    sys.exit(main())
