"""The case study switches world by configuration: with a world-v2 reader in the evaluator folder, `auto`
draws partial prompts from meg_phy.world and scores with the reader's own fidelity and feature distance;
with the old evaluator it keeps the old prompts and the attribute-agreement adapter."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_sd  # noqa: E402

from flowgraphs.experiments import case_study as cs  # noqa: E402
from flowgraphs.experiments import world  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from meg_phy import evaluator as old
    from meg_phy.scenes import ATTRIBUTES
    from meg_phy.world import evaluator as v2

    root = tmp_path_factory.mktemp("worlds")
    torch.manual_seed(0)
    old.save_evaluator(old.AttributeClassifier(ATTRIBUTES), root / "v1")
    v2.save_evaluator(v2.SceneReader(channels=(8, 16, 16), hidden=16), root / "v2")
    return str(make_tiny_sd(root / "tiny")), str(root / "v1"), str(root / "v2")


def test_auto_detects_the_world_from_the_evaluator_folder(folders, tmp_path):
    _, v1, v2 = folders
    assert world.detect(v1) == "v1" and world.detect(v2) == "v2" and world.detect(str(tmp_path)) == "v1"


def test_v2_world_partial_prompts_and_its_own_scores(folders):
    from meg_phy.world import scenes

    model, _, v2 = folders
    plan = cs.Plan(grids=(), n_tasks=6, chunk=6, model=model, evaluator=v2, steps=6)
    h = cs.setup(plan.to_dict())
    assert h.world.name == "v2" and h.world.describe()["partial_prompts"]
    specs = [scenes.parse_prompt(p) for p in h.prompts]
    assert any(not scenes.is_complete(s) for s in specs)  # prompts leave attributes open
    result = cs.run_unit(h, cs.asdict(cs.Point("img2img-ue", "seed-analog-aware", "awgn", 10.0, 1)), [0, 1])
    for record in result["records"]:
        assert 0 <= record["fidelity"] <= 1 and record["feature_distance"] >= 0
    image = h.task("img2img-ue", 0).image
    assert image.shape[-2:] == tuple(h.ldm.resolution)  # the world's 64x64 input resized to the model's size
    ref, _ = h.reference("img2img-ue", 0)
    assert h.world.fidelity(ref, ref) == [1.0] and h.world.feature_distance(ref, ref)[0] == pytest.approx(0, abs=1e-6)


def test_v1_adapter_is_the_share_of_attributes_read_alike(folders):
    model, v1, _ = folders
    plan = cs.Plan(grids=(), n_tasks=2, chunk=2, model=model, evaluator=v1, steps=6)
    h = cs.setup(plan.to_dict())
    assert h.world.name == "v1" and not h.world.describe()["partial_prompts"]
    a, b = h.reference("img2img-ue", 0)[0], h.reference("text-to-image", 1)[0]
    ra, rb = h.world.scorer.read(a)[0], h.world.scorer.read(b)[0]
    assert h.world.fidelity(a, b) == [sum(ra[k] == rb[k] for k in ra) / 5]
    assert h.world.fidelity(a, a) == [1.0] and h.world.feature_distance(a, b) is None
