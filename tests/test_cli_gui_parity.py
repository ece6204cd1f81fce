"""The CLI and the studio resolve the same default model and palette and give the same pixels.

The default scenes model (``cocosnet_scenes128``: 16 classes, config ``small_ade20k``) used
to be decoded with the ADE20k palette by the CLI ("colour is not in the ade20k palette") while the
studio painted it in the scenes palette."""
from __future__ import annotations

import numpy as np
import pytest

from engine.api import ASSETS, ExemplarRequest, FrozenArray, Session, load_image, load_label_map, save_image
from engine.cli import main as cli_main
from engine.weights import current_manifest

MODEL = "cocosnet_scenes128"
MAPS, EXEMPLARS = ASSETS / "examples" / "maps", ASSETS / "examples" / "exemplars"


@pytest.fixture
def scenes_model():
    manifest = current_manifest()  # the shipped default: committed in weights/, never absent
    assert MODEL in manifest.entries and manifest.file_path(manifest.entries[MODEL]).exists()
    return MODEL


def test_cli_and_studio_give_the_same_image_for_a_scenes_colour_map(scenes_model, tmp_path):
    session = Session()
    try:
        # the default scenes model is the family's default, for both sides
        assert session.default_model("cocosnet") == scenes_model
        palette = session.palette("cocosnet", scenes_model)
        assert palette is not None and palette.name.startswith("scenes")
        # a colour map painted in the scenes palette (as the studio saves one, or a user paints one)
        colour_map = tmp_path / "my_scenes_colour_map.png"
        save_image(colour_map, palette.colorize(load_label_map(MAPS / "scene_000019.png")))
        exemplar, exemplar_map = EXEMPLARS / "scene_000039.png", MAPS / "scene_000039.png"
        out = tmp_path / "cli.png"

        code = cli_main(["generate", "cocosnet", "--model", scenes_model, "--input", str(colour_map),
                         "--exemplar", str(exemplar), "--exemplar-map", str(exemplar_map), "--seed", "7",
                         "--out", str(out)])
        assert code == 0

        # the studio's path: the editor decodes the file with the session's palette, the workspace
        # builds the request, the session runs it at full quality
        labels = load_label_map(colour_map, palette, num_classes=len(palette))
        ex_labels = load_label_map(exemplar_map, palette, num_classes=len(palette))
        request = ExemplarRequest(model=scenes_model, seed=7, exemplar=FrozenArray(load_image(exemplar)),
                                  input_map=FrozenArray(labels), exemplar_map=FrozenArray(ex_labels))
        result = session.run(request)
    finally:
        assert session.close()
    cli_image = load_image(out)
    assert cli_image.shape == result.image.shape
    assert np.array_equal(cli_image, result.image)
