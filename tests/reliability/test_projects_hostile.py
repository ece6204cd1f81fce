"""Issue 15, studio side: hostile projects, autosaves, settings, window state, lock files and
config folders. Every case gets a result or one plain message naming the file, in bounded time and
memory, creating nothing outside its folder and harming nothing already saved; the studio always
starts. The module prints its figure (cases tried / cases passed) at the end."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import QMessageBox

from app.main import MainWindow
from app.project import AUTOSAVE_NAME, SUFFIX, load_project, projects_equal, save_project
from app.settings import Settings
from engine.api import InputError

from .projects_cases import ERROR, OK, Counter, autosave_cases, project_cases, sound_project, start_cases

ROOT = Path(__file__).resolve().parents[2]
MAX_RSS_BYTES = int(1.5 * 1024**3)
MAX_CASE_SECONDS = 20.0
BATCH = 50  # load_project cases per child process (its peak RSS is measured per batch)

COUNTER = Counter()


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


CHILD = textwrap.dedent("""
    import json, sys, time, traceback
    from app.project import load_project
    from engine.api import InputError
    for path in sys.argv[1:]:
        t0 = time.perf_counter()
        try:
            load_project(path)
            out = {"outcome": "ok", "message": ""}
        except InputError as exc:
            out = {"outcome": "error", "message": str(exc)}
        except BaseException as exc:
            out = {"outcome": "crash", "message": "".join(traceback.format_exception(exc))[-600:]}
        out["seconds"] = time.perf_counter() - t0
        print(json.dumps(out), flush=True)
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
    print(json.dumps({"vmhwm_kb": int(hwm)}))
""")


def test_load_project_refuses_every_hostile_file_plainly_in_bounded_memory(tmp_path):
    """load_project on each hostile file, in child processes (peak RSS per batch): an InputError
    that names the file, or a project for the cases that are sound; nothing written anywhere."""
    cases = project_cases()
    built = tmp_path / "cases"
    built.mkdir()
    paths = [case.build(built) for case in cases]
    work = tmp_path / "cwd"
    work.mkdir()
    before = tree(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for start in range(0, len(cases), BATCH):
        batch = list(zip(cases[start:start + BATCH], paths[start:start + BATCH], strict=True))
        proc = subprocess.run([sys.executable, "-c", CHILD, *(str(p) for _, p in batch)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=120)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        assert proc.returncode == 0 and len(lines) == len(batch) + 1, proc.stderr[-2000:]
        rss = lines[-1]["vmhwm_kb"] * 1024
        for (case, path), got in zip(batch, lines[:-1], strict=True):  # the last line is the peak RSS
            problems = []
            if got["outcome"] != case.expect:
                problems.append(f"expected {case.expect}, got {got['outcome']}: {got['message']}")
            if got["outcome"] == ERROR and (path.name not in got["message"] or "\n" in got["message"]):
                problems.append(f"message does not name {path.name} in one line: {got['message']!r}")
            if got["seconds"] > MAX_CASE_SECONDS:
                problems.append(f"took {got['seconds']:.1f} s")
            if rss > MAX_RSS_BYTES:
                problems.append(f"its batch peaked at {rss / 2**30:.2f} GiB")
            COUNTER.record(f"load_project {case.name}", not problems, "; ".join(problems))
    assert not COUNTER.failures, "\n".join(COUNTER.failures)
    assert tree(tmp_path) == before, "files were created or removed while loading"


@pytest.fixture
def window(qtbot, weights_dir):
    win = MainWindow(autosave=False)
    qtbot.addWidget(win)
    yield win
    win.shutdown()


def test_studio_open_project_keeps_the_open_project_on_every_hostile_file(qtbot, window, tmp_path):
    """MainWindow.open_project on each hostile file: a refused file leaves the open project, its
    file and the window as they were, with a status message naming the file; the window stays up."""
    cases = project_cases()
    built = tmp_path / "cases"
    built.mkdir()
    paths = [case.build(built) for case in cases]
    prev = tmp_path / "previous.i2i"
    save_project(prev, sound_project())
    prev_bytes = prev.read_bytes()
    assert window.open_project(prev)
    shown = window.project()
    failures_before = len(COUNTER.failures)
    for case, path in zip(cases, paths, strict=True):
        problems = []
        before = tree(tmp_path)
        t0 = time.perf_counter()
        opened = window.open_project(path)
        seconds = time.perf_counter() - t0
        text = window.message.text()
        if case.expect == ERROR and opened:
            problems.append("opened a file load_project refuses")
        if case.gui_refuses and opened:
            problems.append("opened a file whose values a workspace cannot take")
        if case.expect == OK and not opened and not case.gui_refuses:
            problems.append(f"refused a sound file: {text}")
        if not opened:
            if path.name not in text:
                problems.append(f"message does not name {path.name}: {text!r}")
            if window.project_path != prev or not projects_equal(window.project(), shown):
                problems.append("the open project changed")
        if prev.read_bytes() != prev_bytes:
            problems.append("the previous project file changed")
        if tree(tmp_path) != before:
            problems.append(f"files appeared: {sorted(tree(tmp_path) ^ before)[:3]}")
        if seconds > MAX_CASE_SECONDS:
            problems.append(f"took {seconds:.1f} s")
        COUNTER.record(f"open_project {case.name}", not problems, "; ".join(problems))
        if opened:
            assert window.open_project(prev)
    assert not COUNTER.failures[failures_before:], "\n".join(COUNTER.failures[failures_before:])


def _start(qtbot, folder: Path, monkeypatch) -> MainWindow:
    monkeypatch.setenv("I2I_CONFIG_DIR", str(folder))
    win = MainWindow(restore="yes")
    qtbot.addWidget(win)
    return win


def _dispose(win: MainWindow) -> None:
    """Shut down as after a crash (lock and autosave stay) and free the window now, so a loop of
    starts does not hold dozens of windows until the test ends."""
    win.shutdown(end_session=False)
    win.close()
    win.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def _check_start(qtbot, monkeypatch, tmp_path, case, label: str) -> str:
    """Start the real studio on a damaged config folder; '' when it behaved, else the problem."""
    folder = tmp_path / label / "config"
    case.build(folder)
    before = tree(tmp_path)
    original = (folder / case.set_aside).read_bytes() if case.set_aside and (folder / case.set_aside).is_file() \
        else None
    t0 = time.perf_counter()
    try:
        win = _start(qtbot, folder, monkeypatch)
    except Exception as exc:  # the bug this guards against: a start-up that raises
        return f"the studio did not start: {type(exc).__name__}: {exc}"
    problems = []
    try:
        seconds = time.perf_counter() - t0
        text = win.message.text().lower()
        for name in case.names:
            if name not in text:
                problems.append(f"start-up message does not mention {name!r}: {text!r}")
        if case.set_aside:
            moved = [p for p in folder.iterdir() if p.name.startswith(Path(case.set_aside).stem + "-damaged-")]
            if len(moved) != 1 or moved[0].name not in win.message.text():
                problems.append(f"{case.set_aside} was not set aside and named: {[p.name for p in folder.iterdir()]}")
            elif original is not None and moved[0].read_bytes() != original:
                problems.append("the set-aside file's contents changed")
        if seconds > MAX_CASE_SECONDS:
            problems.append(f"start took {seconds:.1f} s")
        outside = {p for p in tree(tmp_path) - before if not p.startswith(f"{label}/config")}
        if outside:
            problems.append(f"files created outside the config folder: {sorted(outside)[:3]}")
    finally:
        _dispose(win)
    if problems or not case.set_aside:
        return "; ".join(problems)
    # the next start must not trip over the same thing again
    try:
        again = _start(qtbot, folder, monkeypatch)
    except Exception as exc:
        return f"the second start failed: {type(exc).__name__}: {exc}"
    text = again.message.text().lower()
    _dispose(again)
    if case.set_aside and "set aside" in text:
        return f"the second start set something aside again: {text!r}"
    return ""


def test_studio_starts_with_any_damaged_settings_window_state_or_lock(qtbot, monkeypatch, tmp_path,
                                                                      save_changes_answers):
    failures_before = len(COUNTER.failures)
    for i, case in enumerate(start_cases()):
        problem = _check_start(qtbot, monkeypatch, tmp_path, case, f"s{i}")
        COUNTER.record(f"start {case.name}", not problem, problem)
    assert not COUNTER.failures[failures_before:], "\n".join(COUNTER.failures[failures_before:])


def test_studio_starts_and_sets_aside_any_damaged_autosave(qtbot, monkeypatch, tmp_path, save_changes_answers):
    """A crashed session whose autosave is damaged: the studio starts with defaults, renames the
    autosave (kept for the user) and says so; the next start is clean. Every 8th refused project
    case (they differ in what is damaged; the loader itself is covered case by case above)."""
    failures_before = len(COUNTER.failures)
    for i, case in enumerate(autosave_cases(project_cases())[::8]):
        problem = _check_start(qtbot, monkeypatch, tmp_path, case, f"a{i}")
        COUNTER.record(f"start {case.name}", not problem, problem)
    assert not COUNTER.failures[failures_before:], "\n".join(COUNTER.failures[failures_before:])


def test_autosave_that_is_a_folder_is_set_aside_even_without_a_lock(qtbot, monkeypatch, tmp_path):
    folder = tmp_path / "config"
    (folder / AUTOSAVE_NAME).mkdir(parents=True)
    win = _start(qtbot, folder, monkeypatch)
    assert "not a file" in win.message.text() and "set aside" in win.message.text()
    assert not (folder / AUTOSAVE_NAME).exists()
    assert win.autosaver is not None  # autosave still works this session
    win.workspaces["exemplar"].editor.doc.labels[:4, :4] = 5
    win.autosave().result(timeout=30)
    assert load_project(folder / AUTOSAVE_NAME).workspaces["exemplar"].arrays["labels"][0, 0] == 5
    win.shutdown()
    COUNTER.record("start autosave-folder-without-lock", True)


def test_config_dir_that_is_a_file_starts_with_defaults_and_says_so(qtbot, monkeypatch, tmp_path):
    path = tmp_path / "config-file"
    path.write_text("not a folder")
    win = _start(qtbot, path, monkeypatch)
    text = win.message.text()
    assert str(path) in text and "is a file" in text
    assert win.autosaver is None and win.settings.values == Settings.defaults().values
    win._device_changed("cpu")  # saving the settings fails with a message, not an exception
    assert "Could not save the settings" in win.message.text()
    win.shutdown()
    assert path.read_text() == "not a folder"
    COUNTER.record("start config-dir-is-a-file", True)


def test_settings_schema_zero_or_negative_keeps_valid_values_and_reports():
    for schema in (0, -3):
        folder = Path(os.environ["I2I_CONFIG_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "settings.json").write_text(json.dumps({"schema": schema, "brush_size": 30, "theme": 5}))
        s = Settings.load()
        assert s["brush_size"] == 30 and s["theme"] == "dark"
        assert any(f"schema {schema!r}" in p for p in s.problems) and any("theme" in p for p in s.problems)
        COUNTER.record(f"settings schema {schema} keeps valid values", True)


# ------------------------------------------------------------------------------------ saving
def test_saved_projects_follow_the_umask_and_keep_an_existing_files_mode(tmp_path):
    old = os.umask(0o027)
    try:
        save_project(tmp_path / "a.i2i", sound_project())
        assert stat.S_IMODE((tmp_path / "a.i2i").stat().st_mode) == 0o640
        os.umask(0o002)
        save_project(tmp_path / "b.i2i", sound_project())
        assert stat.S_IMODE((tmp_path / "b.i2i").stat().st_mode) == 0o664
        os.chmod(tmp_path / "a.i2i", 0o600)  # the user's own choice survives a re-save
        save_project(tmp_path / "a.i2i", sound_project())
        assert stat.S_IMODE((tmp_path / "a.i2i").stat().st_mode) == 0o600
    finally:
        os.umask(old)
    COUNTER.record("save follows umask", True)


def test_a_failed_save_leaves_the_previous_file_and_no_temporary(qtbot, window, tmp_path, monkeypatch):
    """Saves stay atomic: a write that fails half-way (disk full while writing, fsync error) leaves
    the old project byte for byte, no temporary file, and the studio says so."""
    path = tmp_path / f"work{SUFFIX}"
    assert window.save_project(path) == path
    old = path.read_bytes()
    window.workspaces["exemplar"].editor.doc.labels[:8, :8] = 7
    for failing in ("fsync", "write"):
        with monkeypatch.context() as m:
            if failing == "fsync":
                m.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
            else:
                def writestr(self, *a, **k):
                    raise OSError(28, "No space left on device")
                m.setattr(zipfile.ZipFile, "writestr", writestr)
            assert window.save_project(path) is None
        assert "Could not save" in window.message.text() and path.name in window.message.text()
        assert path.read_bytes() == old
        assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [path.name]
        assert window.is_modified()
        COUNTER.record(f"save fails in {failing}: previous file intact", True)
    assert window.save_project(path) == path  # and a save that works replaces it
    assert load_project(path).workspaces["exemplar"].arrays["labels"][0, 0] == 7


def test_refused_project_message_is_non_modal(qtbot, window, tmp_path, monkeypatch):
    """A refused file is reported in the status bar, never in a blocking dialog."""
    modal = []
    for name in ("critical", "warning", "information"):
        monkeypatch.setattr(QMessageBox, name, lambda *a, n=name, **k: modal.append(n))
    bad = tmp_path / f"bad{SUFFIX}"
    bad.write_bytes(b"PK\x03\x04 broken")
    assert not window.open_project(bad)
    assert modal == [] and "bad.i2i" in window.message.text()
    with pytest.raises(InputError, match="bad.i2i"):
        load_project(bad)
    assert np.array_equal(window.project().workspaces["exemplar"].arrays["labels"],
                          np.zeros((256, 256), np.int32))
