"""`make run` on a fresh machine: the libraries Qt's xcb plugin needs are detected before the studio
starts, installed when root with apt-get, otherwise named with the one command that installs them.
The system look-ups (ldd, the linker cache, apt-get) are faked here; the logic is real."""
from __future__ import annotations

import io
from pathlib import Path

from app import display_check as dc

PLUGIN = Path("/site-packages/PySide6/Qt/plugins/platforms/libqxcb.so")

LDD_BARE_DEBIAN = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /site-packages/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007fa8)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007fa8)
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibEGL.so.1 => /lib/x86_64-linux-gnu/libEGL.so.1 (0x00007fa8)
"""


class FakeSystem:
    """ldd that reports ``missing`` until apt-get installed their packages; records commands."""

    def __init__(self, missing: list[str], apt_works_after_update: bool = False) -> None:
        self.missing = list(missing)
        self.commands: list[list[str]] = []
        self.updated = not apt_works_after_update

    def ldd(self, path: Path) -> str:
        assert path == PLUGIN
        lines = [f"\t{name} => not found" for name in self.missing]
        return "\n".join(["\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)", *lines]) + "\n"

    def run(self, cmd: list[str]) -> int:
        self.commands.append(cmd)
        if cmd[:2] == ["apt-get", "update"]:
            self.updated = True
            return 0
        if cmd[:2] == ["apt-get", "install"] and self.updated:
            installed = set(cmd[3:])
            self.missing = [s for s in self.missing if dc.XCB_LIBRARIES[s] not in installed]
            return 0
        return 100


def test_ldd_output_names_each_missing_library_once():
    assert dc.not_found_in_ldd(LDD_BARE_DEBIAN) == ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    assert dc.packages_for(dc.not_found_in_ldd(LDD_BARE_DEBIAN)) == (
        ["libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1"], [])


def test_without_ldd_each_library_is_looked_up():
    absent = {"libxcb-cursor.so.0", "libxkbcommon-x11.so.0", "libEGL.so.1"}
    missing = dc.missing_libraries(PLUGIN, ldd=lambda p: None, present=lambda s: s not in absent)
    assert set(missing) == absent
    assert dc.packages_for(missing)[0] == ["libegl1", "libxcb-cursor0", "libxkbcommon-x11-0"]


def test_a_user_without_root_gets_the_one_exact_command():
    system = FakeSystem(["libxcb-cursor.so.0", "libxcb-keysyms.so.1"])
    out = io.StringIO()
    rc = dc.check(install=True, plugin=PLUGIN, ldd=system.ldd, run=system.run, is_root=False, has_apt=True, out=out)
    assert rc == 1 and system.commands == []
    text = out.getvalue()
    assert "libxcb-cursor.so.0, libxcb-keysyms.so.1" in text
    assert "\n  sudo apt-get install -y libxcb-cursor0 libxcb-keysyms1\n" in text


def test_root_with_apt_installs_them_updating_package_lists_when_needed():
    system = FakeSystem(["libxcb-icccm.so.4", "libxcb-keysyms.so.1"], apt_works_after_update=True)
    out = io.StringIO()
    rc = dc.check(install=True, plugin=PLUGIN, ldd=system.ldd, run=system.run, is_root=True, has_apt=True, out=out)
    assert rc == 0 and system.missing == []
    install = ["apt-get", "install", "-y", "libxcb-icccm4", "libxcb-keysyms1"]
    assert system.commands == [install, ["apt-get", "update"], install]


def test_nothing_missing_is_silent_and_unknown_libraries_are_named():
    out = io.StringIO()
    assert dc.check(plugin=PLUGIN, ldd=FakeSystem([]).ldd, out=out) == 0 and out.getvalue() == ""
    system = FakeSystem([])
    system.ldd = lambda p: "\tlibfoo-bar.so.9 => not found\n"
    rc = dc.check(install=False, plugin=PLUGIN, ldd=system.ldd, run=system.run, is_root=True, has_apt=True, out=out)
    assert rc == 1 and "no known Debian package ships libfoo-bar.so.9" in out.getvalue()


def test_only_an_xcb_session_is_checked(monkeypatch):
    monkeypatch.setattr(dc.sys, "platform", "linux")
    assert dc.needs_xcb({"DISPLAY": ":0"})
    assert not dc.needs_xcb({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"})
    assert dc.needs_xcb({"QT_QPA_PLATFORM": "xcb"})
    assert not dc.needs_xcb({"WAYLAND_DISPLAY": "wayland-0"})
    monkeypatch.setattr(dc.sys, "platform", "darwin")
    assert not dc.needs_xcb({"DISPLAY": ":0"})
