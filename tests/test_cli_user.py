"""The `i2i` command line as a person uses it: errors on their own line, the model that runs is
named (and a look-alike refused), every help example runs as printed, every generate task runs over
a folder, optional face tools are found in the fetch cache."""
from __future__ import annotations

import argparse
import io
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine import cli
from engine.api import InputError, MissingDependencyError
from engine.cli import common as cli_common
from engine.weights import REPO_ROOT

from .helpers import register_tiny
from .test_preview_sizes import register_config


def _parsers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, prefix + (name,))


def help_examples() -> list[str]:
    """Every command line printed under ``examples:`` in any help text."""
    return [line.strip() for _, p in _parsers(cli.build_parser()) for line in (p.epilog or "").splitlines()
            if line.strip().startswith("i2i ")]


def generate_parsers() -> dict[str, argparse.ArgumentParser]:
    return {path[1]: p for path, p in _parsers(cli.build_parser()) if len(path) == 2 and path[0] == "generate"}


@pytest.fixture
def in_user_dir(tmp_path, monkeypatch):
    """A working folder like a user's checkout: the repository's assets, outputs written here."""
    (tmp_path / "assets").symlink_to(REPO_ROOT / "assets")
    monkeypatch.chdir(tmp_path)
    return tmp_path


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_an_error_after_progress_starts_on_its_own_line(weights_dir, monkeypatch, tmp_path):
    """On a terminal the progress line is refreshed in place; an error ends it first instead of
    being glued to it (`loading model  0.0%i2i: error: …`)."""
    register_tiny(weights_dir, "edgegan", "tiny", "edge_tiny")
    sketch = tmp_path / "s.png"
    from engine.io import save_image
    save_image(sketch, np.full((32, 32, 3), 255, np.uint8) - np.eye(32, dtype=np.uint8)[..., None] * 255)
    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    rc = cli.main(["generate", "sketch", "--sketch", str(sketch), "--class", "no-such-class", "--out",
                   str(tmp_path / "o.png")])
    err = term.getvalue()
    assert rc == 2 and "\rloading model" in err  # the refreshed progress line was shown
    error_lines = [line for line in err.split("\n") if "i2i: error:" in line]
    assert error_lines and all(line.startswith("i2i: error: model 'edge_tiny' has no class") for line in error_lines)


def test_config_names_the_model_and_refuses_a_look_alike(weights_dir, capsys, in_user_dir):
    register_config("cocosnet", "small_ade20k", "scenes16", default=True, semantic_nc=16)
    args = ["generate", "cocosnet", "--input", "assets/examples/maps/scene_000019.png",
            "--exemplar", "assets/examples/exemplars/scene_000039.png",
            "--exemplar-map", "assets/examples/maps/scene_000039.png", "--out", "o.png"]
    assert cli.main([*args, "--config", "ade20k"]) == 2
    err = capsys.readouterr().err
    assert "scenes16 is small_ade20k, not ade20k" in err and "16 classes, ade20k has 151" in err
    assert "--model scenes16" in err and not Path("o.png").exists()
    assert cli.main([*args, "--config", "ade20k", "--model", "scenes16"]) == 2  # an explicit clash, too
    assert "does not fit --config ade20k" in capsys.readouterr().err
    # an exact config runs, and the model is named before it runs
    register_tiny(weights_dir, "cocosnet", "tiny_ade20k", "coco_tiny")
    from PIL import Image
    Image.fromarray(np.repeat(np.arange(8, dtype=np.uint8), 8)[None].repeat(64, 0)).save("map8.png")
    args = [("map8.png" if a.startswith("assets/examples/maps/") else a) for a in args]
    assert cli.main([*args, "--config", "tiny_ade20k"]) == 0
    err = capsys.readouterr().err
    assert "model: coco_tiny (cocosnet/tiny_ade20k, 8 classes, 64 px, trained here)" in err
    assert Path("o.png").exists()


def test_every_help_example_runs_as_printed(in_user_dir, capsys):
    """With the repository's weights and assets, each example of every help text succeeds."""
    examples = help_examples()
    assert {e.split()[2] for e in examples if e.startswith("i2i generate ")} == set(generate_parsers())
    for example in examples:
        rc = cli.main(shlex.split(example)[1:])
        assert rc == 0, f"{example}\n{capsys.readouterr().err[-2000:]}"
    assert Path("out/bird.png").exists() and len(list(Path("out/panoptic").glob("*.png"))) == 3


@pytest.mark.parametrize("task", sorted(generate_parsers()))
def test_every_generate_task_runs_over_a_folder(task, in_user_dir, capsys):
    """The task's first help example, with its input replaced by a folder holding that input and a
    broken file: the good one is written to the output folder, the bad one is reported and skipped,
    progress is shown per file, the model loads once."""
    parser = generate_parsers()[task]
    mode = parser.get_default("folder_mode")
    assert isinstance(mode, cli.FolderMode), f"{task} has no folder mode"
    example = next(e for e in help_examples() if e.split()[2] == task)
    argv = shlex.split(example)[1:]
    args = parser.parse_args(argv[2:])
    value = getattr(args, mode.input)
    first = Path(value[0] if isinstance(value, list) else value)
    folder = Path("inputs")
    folder.mkdir()
    shutil.copy(first, folder / first.name)
    if first.suffix == ".json":  # a scene JSON names its bitmaps beside it
        for bitmap in first.parent.glob("*.png"):
            shutil.copy(bitmap, folder / bitmap.name)
    (folder / f"broken{first.suffix}").write_text("not an image\n")
    option = next(a.option_strings[0] for a in parser._actions if a.dest == mode.input)
    out_option = "--out"
    rebuilt: list[str] = []
    skip = 0
    for token in argv:
        if skip:
            skip -= 1
            continue
        if token == option:
            rebuilt += [option, str(folder)]
            skip = len(value) if isinstance(value, list) else 1
        elif token == out_option:
            rebuilt += [out_option, "results"]
            skip = 1
        elif token.startswith("--save-") and token not in ("--save-stages",):
            skip = 1  # extra outputs: not needed here
        else:
            rebuilt.append(token)
    rc = cli.main(rebuilt)
    captured = capsys.readouterr()
    assert rc == 1, captured.err[-2000:]
    assert (Path("results") / f"{first.stem}.png").exists()
    assert f"skipped {folder / f'broken{first.suffix}'}:" in captured.err
    assert "[1/2]" in captured.err and "[2/2]" in captured.err
    assert "1 of 2 inputs done" in captured.out and "skipped 1: broken" in captured.out
    assert cli_common._session is not None and cli_common._session.models._cache.misses <= 1


def test_a_folder_run_loads_the_model_once(in_user_dir, capsys):
    rc = cli.main(["generate", "panoptic", "--input", "assets/examples/maps", "--instances",
                   "assets/examples/maps/instances", "--out", "many"])
    assert rc == 0 and len(list(Path("many").glob("*.png"))) == 3
    assert cli_common._session.count == 3 and cli_common._session.models._cache.misses == 1
    assert cli.main(["generate", "panoptic", "--input", "assets/examples/maps", "--out", "one.png"]) == 2
    assert "give a folder for the outputs" in capsys.readouterr().err


def test_face_tools_fetched_by_data_fetch_are_found(tmp_path, monkeypatch):
    """`i2i data fetch` puts dlib-bin and libdlib-data under .cache/i2i; the face landmark tool finds
    both there. A stand-in dlib module marks the fetched wheel, so the lookup is what is tested: it
    reaches the face detector (which finds no face in a blank image) instead of "not installed"."""
    import sys

    from engine.inputs.cocosnet import face_landmarks_from_photo

    cache = tmp_path / "cache"
    monkeypatch.setenv("I2I_DATA_CACHE", str(cache))
    monkeypatch.delenv("I2I_DLIB_PREDICTOR", raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "dlib-bin" not in p])  # no fetched dlib on the path
    real_dlib = sys.modules.pop("dlib", None)
    try:
        photo = np.zeros((32, 32, 3), np.uint8)
        with pytest.raises(MissingDependencyError, match="i2i data fetch"):
            face_landmarks_from_photo(photo)  # nothing installed, nothing fetched: says how to get it
        wheel = cache / "dlib-bin"
        (wheel / "dlib").mkdir(parents=True)
        (wheel / "dlib" / "__init__.py").write_text(
            "def get_frontal_face_detector():\n    return lambda image, upsample: []\n")
        (wheel / ".fetched").write_text("")
        data = cache / "dlib-data"
        (data / "usr/share/dlib").mkdir(parents=True)
        (data / "usr/share/dlib/shape_predictor_68_face_landmarks.dat").write_bytes(b"\0")
        (data / ".fetched").write_text("")
        with pytest.raises(InputError, match="no face was found"):
            face_landmarks_from_photo(photo)
    finally:  # the stand-in must not outlive the test (later tests may use the real fetched dlib)
        sys.modules.pop("dlib", None)
        if real_dlib is not None:
            sys.modules["dlib"] = real_dlib


def test_eval_reads_generated_folders_of_every_split_and_names_its_naming(in_user_dir, capsys):
    """A small build (20 samples: train 18, val 1, test 1); `i2i generate panoptic --input SPLIT/label`
    writes the outputs under the names `i2i eval` reads, and `--split all` evaluates every split.
    A split a build lacks and a badly named folder are explained."""
    import warnings

    from engine.data.common import DataWarning
    from engine.data.recipes import build

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # procedural stand-ins on a fresh clone
        build("scenes", Path("small"), n=20, size=32, progress=False)
        build("scenes", Path("tiny"), n=6, size=32, progress=False)
    for split in ("train", "val", "test"):
        assert cli.main(["generate", "panoptic", "--input", f"small/{split}/label", "--instances",
                         f"small/{split}/instance", "--out", "generated"]) == 0
    capsys.readouterr()
    assert cli.main(["eval", "generated", "--data", "small", "--split", "all", "--backbone", "none",
                     "--json", "report.json"]) == 0
    out = capsys.readouterr().out
    assert "[train, scenes]" in out and "[val, scenes]" in out and "[test, scenes]" in out
    assert {p.name for p in Path(".").glob("report-*.json")} == {"report-train.json", "report-val.json",
                                                                 "report-test.json"}
    assert cli.main(["eval", "generated", "--data", "tiny", "--split", "val", "--backbone", "none"]) == 2
    err = capsys.readouterr().err
    assert "tiny has no val samples (it has train 6)" in err and "--n 20" in err
    Path("renamed").mkdir()
    for p in Path("generated").glob("*.png"):
        p.rename(Path("renamed") / f"scene_{p.name}")
    assert cli.main(["eval", "renamed", "--data", "small", "--split", "test", "--backbone", "none"]) == 2
    err = capsys.readouterr().err
    assert "reads <id>.png, the sample's file name" in err and "scene_000" in err
