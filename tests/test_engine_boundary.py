"""The engine is headless: importing it and running one CLI inference never loads Qt."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import json, sys
import numpy as np
from PIL import Image
import engine, engine.api, engine.scheduler, engine.io, engine.weights, engine.cli
from engine.families import FAMILY_MODULES, get_family, resolve_config
from engine.weights import Manifest, register_file, save_state_dicts
from engine.tasks import TASK_MODULES
import importlib
for name in FAMILY_MODULES:
    get_family(name)
for name in TASK_MODULES:
    importlib.import_module(name)
fam = get_family("stargan2")
cfg = resolve_config(fam, "tiny")
nets = fam.build(cfg)
out = sys.argv[1]
m = Manifest()
save_state_dicts({k: v.state_dict() for k, v in nets.items()}, m.root / "tiny.safetensors")
register_file(m, name="tiny", family="stargan2", config_name="tiny", config=cfg,
              path=m.root / "tiny.safetensors", provenance={"kind": "trained-here", "command": "test"})
Image.fromarray(np.full((40, 50, 3), 120, np.uint8)).save(out + "/src.png")
code = engine.cli.main(["generate", "stargan2-latent", "--model", "tiny", "--source", out + "/src.png",
                        "--domain", "1", "--out", out + "/result.png"])
qt = sorted(k for k in sys.modules if k.split(".")[0] in ("PySide6", "PyQt5", "PyQt6", "shiboken6", "qimage2ndarray"))
print(json.dumps({"code": code, "qt": qt}))
"""


def test_engine_and_cli_inference_never_load_qt(tmp_path):
    env = {**os.environ, "I2I_WEIGHTS_DIR": str(tmp_path), "I2I_THREADS": "1"}
    env.pop("QT_QPA_PLATFORM", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, proc.stderr[-3000:]
    assert report["qt"] == [], f"engine loaded Qt modules: {report['qt']}"
    img = np.asarray(Image.open(tmp_path / "result.png"))
    assert img.ndim == 3 and img.shape[2] == 3 and img.std() > 0


def test_no_qt_import_statements_under_engine():
    offenders = []
    for path in (REPO / "engine").rglob("*.py"):
        for line in path.read_text().splitlines():
            s = line.strip()
            if s.startswith(("import ", "from ")) and any(q in s for q in ("PySide6", "PyQt", "qimage2ndarray")):
                offenders.append(f"{path.relative_to(REPO)}: {s}")
    assert offenders == []
