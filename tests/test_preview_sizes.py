"""Live-preview sizes are the model's rule, asked through engine.api: never below what the model
accepts, aligned to its stride, at most its native size; None where a model has no reduced size."""
from __future__ import annotations

import pytest

from engine.api import ExemplarRequest, PanopticRequest, Request, SceneRequest, StarGANLatentRequest, preview_size_for
from engine.families import PreviewGrid, get_family
from engine.nets.edgegan import background_depth
from engine.weights import Manifest, WeightsEntry


def register_config(family: str, config_name: str, name: str, default: bool = False, **overrides) -> None:
    """A manifest entry (no file needed: sizes come from the config alone)."""
    config = {**get_family(family).configs[config_name], **overrides}
    m = Manifest()
    m.add(WeightsEntry(name=name, family=family, config_name=config_name, config=config, file=f"{name}.safetensors",
                       bytes=0, sha256="", provenance={"kind": "trained-here", "command": "test"},
                       extra={"default": True} if default else {}))
    m.save()


def test_preview_grid_fits_minimum_stride_and_native():
    grid = PreviewGrid(minimum=64, stride=32, native=128)
    assert [grid.fit(w) for w in (1, 49, 64, 95, 96, 127, 128, 1000)] == [64, 64, 64, 64, 96, 96, 128, 128]
    with pytest.raises(ValueError):
        PreviewGrid(minimum=48, stride=32, native=128)


def test_each_family_answers_with_sizes_its_model_accepts(weights_dir):
    register_config("cocosnet", "small_ade20k", "coco128", default=True)
    register_config("stargan2", "celeba_hq", "sg256")
    register_config("panoptic", "panoptic_tiny_vae", "pan_vae")
    register_config("edgegan", "tiny", "edge_bg")
    coco = ExemplarRequest()  # "" = the family's default model
    assert [preview_size_for(coco, w) for w in (40, 56, 100, 500)] == [64, 64, 96, 128]
    sg = StarGANLatentRequest(model="sg256")  # 5 down-samplings with the high-pass path: stride 32
    assert [preview_size_for(sg, w) for w in (10, 100, 300)] == [64, 96, 256]
    assert preview_size_for(PanopticRequest(model="pan_vae"), 48) is None  # the VAE fixes the size
    step = 2 ** background_depth(Manifest().get("edge_bg").config)  # the scene's background U-Net
    assert preview_size_for(SceneRequest(model="edge_bg"), 5) == step
    assert preview_size_for(SceneRequest(model="edge_bg"), 1000) == 64  # its bg_size
    assert preview_size_for(Request(), 77) == 77  # an untyped request: nothing to fit
    assert preview_size_for(ExemplarRequest(model="not_registered"), 77) == 77  # running it reports the name


def test_the_task_runs_at_the_size_the_rule_gives(weights_dir):
    """The CoCosNet task and the rule agree: the fitted size runs, the unfitted one is refused."""
    from engine.api import InputError
    from engine.tasks.exemplar import working_size

    register_config("cocosnet", "small_ade20k", "coco128", default=True)
    config = Manifest().get("coco128").config
    assert working_size(config, preview_size_for(ExemplarRequest(), 56)) == 64
    with pytest.raises(InputError, match="at least 64"):
        working_size(config, 56)
