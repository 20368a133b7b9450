"""The case study's world: partial prompts from meg_phy.scenes (the seed carries what they leave open),
img2img inputs that differ from the prompt in one colour, and the reader's own fidelity and feature distance."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_evaluator, make_tiny_sd  # noqa: E402

from flowgraphs.experiments import case_study as cs  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    return str(make_tiny_sd(root / "tiny")), str(make_tiny_evaluator(root / "evaluator"))


def test_partial_prompts_recoloured_inputs_and_the_readers_scores(folders):
    from meg_phy import scenes

    model, evaluator = folders
    plan = cs.Plan(grids=(), n_tasks=6, chunk=6, model=model, evaluator=evaluator, steps=6)
    h = cs.setup(plan.to_dict())
    assert h.world.describe()["partial_prompts"]
    specs = [scenes.parse_prompt(p) for p in h.prompts]
    assert any(not scenes.is_complete(s) for s in specs)  # prompts leave attributes open
    result = cs.run_unit(h, cs.asdict(cs.Point("img2img-ue", "seed-analog-aware", "awgn", 10.0, 1)), [0, 1])
    for record in result["records"]:
        assert 0 <= record["fidelity"] <= 1 and record["feature_distance"] >= 0
    image = h.task("img2img-ue", 0).image
    assert image.shape[-2:] == tuple(h.ldm.resolution)  # the world's 64x64 input resized to the model's size
    ref, _ = h.reference("img2img-ue", 0)
    assert h.world.fidelity(ref, ref) == [1.0] and h.world.feature_distance(ref, ref)[0] == pytest.approx(0, abs=1e-6)


def test_recoloured_input_changes_exactly_the_first_objects_colour():
    from meg_phy import scenes

    for seed, prompt in enumerate(["a red circle on a blue background", "two green stars",
                                   "a small yellow square at the top left and a ring"]):
        spec = scenes.parse_prompt(prompt)
        scene, edited = scenes.complete(spec, seed), scenes.recoloured(spec, seed)
        first, other = scene["objects"][0], edited["objects"][0]
        assert other["colour"] != first["colour"] and {**other, "colour": first["colour"]} == first
        assert edited["objects"][1:] == scene["objects"][1:] and edited["background"] == scene["background"]
        assert other["colour"] not in {o["colour"] for o in scene["objects"][1:]} | {scene["background"]}
