"""The grounded recipe's parts (meg_phy.training.grounding): which words name which object, the object's pixels,
the captured cross-attention, and a loss that moves attention onto the object."""

import pytest
import torch

from meg_phy import scenes
from meg_phy.training import components, data, grounding

NAMING = set(scenes.SHAPES) | {s + "s" for s in scenes.SHAPES} | set(scenes.COLOURS_RGB) | set(scenes.SIZE_RANGES) \
    | {"shape", "shapes", "top", "bottom", "left", "right", "center"}


def _words(text: str) -> list[str]:
    return ["<start>", *text.replace(",", " , ").split()]        # the tokenizer's positions (FastTokenizer)


def test_grounded_positions_are_exactly_the_words_that_name_each_object():
    gen = torch.Generator().manual_seed(0)
    for seed in range(300):
        scene = scenes.complete({}, seed)
        spec, order = data.prompt_spec(scene, gen)
        text, groundings = grounding.prompt_groundings(spec)
        assert text == scenes.make_prompt(spec)
        words = _words(text)
        named = sorted(p for positions, _ in groundings for p in positions)
        # every naming word before the background phrase is grounded, and nothing else is
        end = words.index("on") if " background" in text else len(words)
        assert named == [i for i, w in enumerate(words[:end]) if w in NAMING]
        covered = sorted(o for _, objects in groundings for o in objects)
        assert covered == list(range(len(spec["objects"])))
        assert sorted(order) == list(range(len(scene["objects"])))


def test_a_counted_phrase_grounds_every_object_it_counts():
    spec = {"objects": [{"colour": "blue", "shape": "triangle"}] * 2 + [{"shape": "circle", "position": "top left"}]}
    text, groundings = grounding.prompt_groundings(spec)
    words = _words(text)
    assert text == "two blue triangles and a circle at the top left"
    assert [([words[p] for p in pos], objs) for pos, objs in groundings] == \
        [(["blue", "triangles"], [0, 1]), (["circle", "top", "left"], [2])]


def test_object_masks_cover_the_rendered_object():
    for seed in range(20):
        scene = scenes.complete({"objects": [{}], "background": "white"}, seed)
        image = scenes.render(scene, seed)
        drawn = (image - image[:, :1, :1]).abs().amax(0) > 0.05         # pixels the object changed
        mask = grounding.object_masks(scene, seed)
        assert mask.shape == (1, 64, 64)
        assert (drawn & mask[0]).sum() >= drawn.sum(), seed
        assert mask[0].sum() <= 1.3 * drawn.sum(), seed                   # the shape and its edge, no more


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return components.build_unet().eval()


def test_capture_records_every_cross_attention_layer_and_changes_nothing(unet):
    x, t, text = torch.randn(2, 4, 8, 8), torch.tensor([900, 100]), torch.randn(2, components.MAX_TOKENS, 96)
    before = {name: type(p) for name, p in unet.attn_processors.items()}
    with torch.no_grad():
        plain = unet(x, t, text).sample
        with grounding.AttentionCapture(unet) as maps:
            captured = unet(x, t, text).sample
    assert {name: type(p) for name, p in unet.attn_processors.items()} == before
    torch.testing.assert_close(captured, plain, rtol=1e-5, atol=1e-5)
    assert sorted(m.shape[2] for m in maps) == [16] * 4 + [64] * 3            # 8x8 and 4x4 layers
    for m in maps:
        assert m.shape[0] == 2 and m.shape[-1] == components.MAX_TOKENS
        torch.testing.assert_close(m.sum(-1), torch.ones(m.shape[:-1]))


def test_loss_is_zero_inside_the_object_and_uniform_gives_its_area():
    targets = torch.zeros(1, 4, 64, 64, dtype=torch.bool)
    targets[0, 1, :32, :32] = True                                           # token 1: the top-left quarter
    inside = torch.zeros(1, 2, 64, 4)
    cells = torch.zeros(8, 8, dtype=torch.bool)
    cells[:4, :4] = True
    inside[0, :, cells.flatten(), 1] = 1.0
    assert float(grounding.attention_loss([inside], targets)) == pytest.approx(0.0)
    uniform = torch.full((1, 2, 16, 4), 0.25)
    assert float(grounding.attention_loss([uniform], targets)) == pytest.approx(0.75 ** 2)
    found = grounding.attention_in_object([uniform, inside], targets)
    assert found["uniform"] == pytest.approx(0.25) and found["inside"] == pytest.approx(0.625)


def test_the_loss_moves_attention_onto_the_object(unet):
    """A few optimiser steps on the token loss alone raise the share of attention inside the objects: the
    gradient reaches the UNet through the captured probabilities."""
    model = components.build_unet()
    model.load_state_dict(unet.state_dict())
    seeds = list(range(8))
    scene_list = data.scenes_for(seeds)
    gen = torch.Generator().manual_seed(1)
    specs = [data.prompt_spec(s, gen) for s in scene_list]
    text = torch.randn(8, components.MAX_TOKENS, 96, generator=gen)
    targets = grounding.targets_for(scene_list, seeds, specs, components.MAX_TOKENS)
    x, t = torch.randn(8, 4, 8, 8, generator=gen), torch.full((8,), 900)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    shares = []
    for _ in range(15):
        with grounding.AttentionCapture(model) as maps:
            model(x, t, text)
        shares.append(grounding.attention_in_object([m.detach() for m in maps], targets)["ratio"])
        loss = grounding.attention_loss(maps, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert shares[0] < 1.5 and shares[-1] > 1.5 * shares[0], shares
