"""State visible (issue 18): the active tool is shown, canvas keys work wherever the workspace has
the focus, out-of-date outputs are marked, status messages stay on their tab, Vary says when the
seed does nothing, and the StarGAN reference domain follows the chosen reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from app.main import MainWindow
from app.pickers import EXAMPLES
from app.settings import Settings
from engine.api import InputError, Request
from engine.tasks import TaskContext
from tests.test_app_session import menu_actions
from tests.test_app_workspaces import GatedEngine, register_tiny


@pytest.fixture
def shown_window(qtbot, weights_dir):
    def make(run_fn=None) -> MainWindow:
        win = MainWindow(Settings.defaults(), run_fn=run_fn or GatedEngine(), restore="no", autosave=False)
        qtbot.addWidget(win)
        win.show()
        qtbot.waitExposed(win)
        win.activateWindow()
        return win
    return make


def test_tool_keys_work_from_anywhere_in_the_workspace_and_show_the_tool(qtbot, shown_window):
    win = shown_window()
    ws = win.workspaces["exemplar"]
    win.tabs.setCurrentWidget(ws)
    canvas, buttons = ws.editor.canvas, ws.editor.tool_buttons
    focus = ws.editor.palette_list.list  # the class list has the focus, not the canvas
    focus.setFocus()
    qtbot.waitUntil(focus.hasFocus, timeout=2000)
    for key, tool in ((Qt.Key.Key_E, "eraser"), (Qt.Key.Key_F, "fill"), (Qt.Key.Key_I, "picker"),
                      (Qt.Key.Key_B, "brush")):
        qtbot.keyClick(focus, key)
        assert canvas.tool == tool
        assert buttons[tool].isChecked() and sum(b.isChecked() for b in buttons.values()) == 1
    size = canvas.brush_size
    qtbot.keyClick(focus, Qt.Key.Key_BracketRight)
    assert canvas.brush_size > size and ws.editor.size_spin.value() == canvas.brush_size
    qtbot.keyClick(focus, Qt.Key.Key_BracketLeft)
    assert canvas.brush_size == size
    # keys on the canvas itself keep the buttons in step too
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_E)
    assert buttons["eraser"].isChecked()
    # typing in the class search box is text, not a tool change
    ws.editor.palette_list.search.setFocus()
    qtbot.keyClicks(ws.editor.palette_list.search, "bf")
    assert ws.editor.palette_list.search.text() == "bf" and canvas.tool == "eraser"
    win.close()


def test_sketch_keys_work_from_the_layer_list(qtbot, shown_window):
    win = shown_window()
    ws = win.workspaces["scene"]
    win.tabs.setCurrentWidget(ws)
    ws.layers.setFocus()
    qtbot.waitUntil(ws.layers.hasFocus, timeout=2000)
    qtbot.keyClick(ws.layers, Qt.Key.Key_E)
    assert ws.canvas.erase and ws.tools.eraser.isChecked()
    width = ws.canvas.stroke_width
    qtbot.keyClick(ws.layers, Qt.Key.Key_BracketRight)
    assert ws.canvas.stroke_width == width + 1 == ws.tools.width.value()
    win.close()


def stroke(ws) -> None:
    doc = ws.editor.doc
    doc.begin_stroke()
    doc.stroke_to(10, 10, 4, 1)
    doc.end_stroke()


def test_output_marked_stale_after_cancel_failure_and_live_off(qtbot, weights_dir, shown_window):
    register_tiny(weights_dir, "panoptic", "panoptic_tiny", "pan_tiny")
    engine = GatedEngine()
    engine.gate.set()
    win = shown_window(engine)
    ws = win.workspaces["panoptic"]
    win.tabs.setCurrentWidget(ws)
    with qtbot.waitSignal(ws.resultShown, timeout=5000):
        stroke(ws)
    assert not ws.output.stale
    fresh = ws.output.grab().toImage()

    # Live off, then an edit: the output no longer shows the map
    ws.live.click()
    assert not ws.live.isChecked()
    stroke(ws)
    assert ws.output.stale and "Live is off" in ws.output.toolTip()
    assert ws.output.grab().toImage() != fresh  # visibly marked
    with qtbot.waitSignal(ws.resultShown, timeout=5000):
        ws.generate_button.click()
    assert not ws.output.stale

    # Cancel while a render runs
    engine.gate.clear()
    engine.entered.clear()
    engine.requests.clear()
    ws.live.click()
    stroke(ws)
    assert engine.entered.wait(5)
    menu_actions(win)["Cancel"].trigger()
    engine.gate.set()
    qtbot.waitUntil(lambda: not win.bridge.busy, timeout=5000)
    assert ws.output.stale and "Cancelled" in ws.output.toolTip()

    # a failed run
    def failing(request: Request, ctx: TaskContext):
        raise InputError("the map has no instances")

    win.bridge.session.scheduler._run_fn = failing
    with qtbot.waitSignal(win.bridge.failed, timeout=5000):
        stroke(ws)
    assert ws.output.stale and "failed" in ws.output.toolTip()
    win.close()


def test_status_message_stays_on_its_tab(qtbot, weights_dir, shown_window):
    register_tiny(weights_dir, "stargan2", "tiny", "sg_tiny")

    def failing(request: Request, ctx: TaskContext):
        raise InputError("the source photo is too small")

    win = shown_window(failing)
    sg, ex = win.workspaces["stargan"], win.workspaces["exemplar"]
    win.tabs.setCurrentWidget(sg)
    with qtbot.waitSignal(win.bridge.failed, timeout=5000):
        sg.source.set_image(np.zeros((8, 8, 3), np.uint8))
    assert "too small" in win.message.text()
    win.tabs.setCurrentWidget(ex)
    assert "too small" not in win.message.text()
    win.tabs.setCurrentWidget(sg)
    assert "too small" in win.message.text()  # back on its own tab
    win.close()


def test_vary_disabled_where_the_seed_does_nothing_and_changes_the_image_elsewhere(qtbot, weights_dir):
    register_tiny(weights_dir, "stargan2", "tiny", "sg_tiny")
    register_tiny(weights_dir, "panoptic", "panoptic_tiny", "pan_tiny")
    settings = Settings.defaults()
    settings.set("threads", 1)
    win = MainWindow(settings, restore="no", autosave=False)
    qtbot.addWidget(win)
    for key in ("exemplar", "edit", "makeup"):
        ws = win.workspaces[key]
        assert not ws.vary_button.isEnabled() and "exemplar" in ws.vary_button.toolTip(), key
    pan = win.workspaces["panoptic"]
    assert not pan.weights.entry.config.get("use_vae")
    assert not pan.vary_button.isEnabled() and "seed does nothing" in pan.vary_button.toolTip()
    sg = win.workspaces["stargan"]
    assert sg.vary_button.isEnabled()
    sg.set_mode("reference")
    assert not sg.vary_button.isEnabled() and "reference photo" in sg.vary_button.toolTip()
    sg.set_mode("latent")
    assert sg.vary_button.isEnabled()
    win.tabs.setCurrentWidget(sg)
    src = (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)
    with qtbot.waitSignal(sg.resultShown, timeout=20000) as first:
        sg.source.set_image(src)
    torch.manual_seed(123)
    with qtbot.waitSignal(sg.resultShown, timeout=20000) as second:
        sg.vary_button.click()
    assert not np.array_equal(first.args[0].image, second.args[0].image)  # the real model, a new style
    win.close()


def test_reference_domain_follows_the_chosen_reference_example(qtbot, weights_dir):
    from engine.families import get_family
    from engine.weights import Manifest, register_file, save_state_dicts

    fam = get_family("stargan2")
    config = {**fam.configs["tiny"], "domains": ["female", "male"]}
    path = weights_dir / "faces_tiny.safetensors"
    save_state_dicts({k: m.state_dict() for k, m in fam.build(config).items()}, path)
    register_file(Manifest(), name="faces_tiny", family="stargan2", config_name="tiny", config=config, path=path,
                  provenance={"kind": "trained-here", "command": "test"})
    win = MainWindow(Settings.defaults(), run_fn=GatedEngine(), restore="no", autosave=False)
    qtbot.addWidget(win)
    sg = win.workspaces["stargan"]
    sg.set_mode("reference")
    examples = {a.text(): a for a in sg.reference.gallery_button.menu().actions()}
    examples["male 000039"].trigger()  # the Examples menu of the Reference slot
    assert sg.reference.path == EXAMPLES / "faces" / "male_000039.png"
    assert sg.reference_domain.currentText() == "male"
    examples["female 000019"].trigger()
    assert sg.reference_domain.currentText() == "female"
    win.close()
