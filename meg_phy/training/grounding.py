"""Token-to-region attention: while the UNet trains, the words that name an object look at that object's pixels.

Why: the shipped model decides the layout at high noise. There, an object word's cross-attention inside its
own cells is what uniform attention gives (8.5-9 % against 8.3 %), and the x0-prediction places objects at
chance. TokenCompose (Wang et al., CVPR 2024) ties each object token's cross-attention to the object's
segmentation mask. Here the renderer gives the masks exactly, and `scenes.prompt_phrases` says which words
name which object. The loss pushes each such token's attention mass inside its object,
(1 - mass inside / mass)^2, at every cross-attention layer (8x8 and 4x4 for the embedded UNet).

The capture exists only inside `with AttentionCapture(unet)`: recording processors replace the
cross-attention processors for the step and the stock ones come back after it. The exported model's
weights and processors are stock diffusers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import AttnProcessor

from meg_phy import scenes

_UNGROUNDED = frozenset({"at", "in", "the"})
"""Words of an object phrase that name no property of the object: the article or count is the first word."""


def prompt_groundings(spec: dict) -> tuple[str, list[tuple[list[int], list[int]]]]:
    """`make_prompt(spec)` and, for each object phrase, the token positions of its naming words (size,
    colour, shape, position; position 0 is the tokenizer's start token) and the objects it names.

    'two blue triangles and a circle at the top left' -> [([2, 3], [0, 1]), ([6, 9, 10], [2])]."""
    groundings, position = [], 1
    for k, (phrase, objects) in enumerate(scenes.prompt_phrases(spec)):
        position += k > 0                     # ',' or 'and' before every phrase but the first: one token
        words = phrase.split()
        groundings.append(([position + j for j, w in enumerate(words) if j > 0 and w not in _UNGROUNDED], objects))
        position += len(words)
    return scenes.make_prompt(spec), groundings


def object_masks(scene: dict, seed: int) -> torch.Tensor:
    """[objects, 64, 64] bool: the pixels each object covers in the render of `scene` with `seed`."""
    return scenes.object_pixels(scenes.layout(scene, seed))


def token_targets(groundings: list[list[tuple[list[int], list[int]]]], masks: list[torch.Tensor],
                  tokens: int) -> torch.Tensor:
    """[B, tokens, 64, 64] bool: for each sample and token position, the pixels of the objects the token
    names (their union where a phrase counts several objects); all False for words that name none."""
    out = torch.zeros(len(groundings), tokens, *masks[0].shape[1:] if masks else (0, 0), dtype=torch.bool)
    for b, (sample, mask) in enumerate(zip(groundings, masks, strict=True)):
        for positions, objects in sample:
            region = mask[objects].any(dim=0)
            for p in positions:
                if p < tokens:
                    out[b, p] = region
    return out


def targets_for(scene_list: list[dict], seeds: list[int], specs: list[tuple[dict, list[int]] | None],
                tokens: int) -> torch.Tensor:
    """`token_targets` for prompts made by `data.prompt_spec` (the partial spec and which scene object each of
    its objects is; None for a dropped prompt) of the scenes rendered with `seeds`."""
    groundings, masks = [], []
    for scene, seed, spec in zip(scene_list, seeds, specs, strict=True):
        objects = object_masks(scene, seed)
        groundings.append([] if spec is None else prompt_groundings(spec[0])[1])
        masks.append(objects if spec is None else objects[spec[1]])
    return token_targets(groundings, masks, tokens)


class _Recording(AttnProcessor):
    """diffusers' AttnProcessor that also appends its attention probabilities [B, heads, pixels, tokens]."""

    def __init__(self, maps: list):
        super().__init__()
        self.maps = maps

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        scores = attn.get_attention_scores

        def recorded(query, key, mask=None):
            probs = scores(query, key, mask)
            self.maps.append(probs.unflatten(0, (-1, attn.heads)))
            return probs

        attn.get_attention_scores = recorded
        try:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        finally:
            del attn.get_attention_scores


class AttentionCapture:
    """`with AttentionCapture(unet) as maps:` the UNet's cross-attention layers append their probabilities
    [B, heads, pixels, tokens] to `maps` on every call; on exit the processors are the ones before."""

    def __init__(self, unet):
        self.unet = unet
        self.maps: list[torch.Tensor] = []

    def __enter__(self) -> list[torch.Tensor]:
        self.saved = self.unet.attn_processors
        self.unet.set_attn_processor({name: _Recording(self.maps) if ".attn2." in name else proc
                                      for name, proc in self.saved.items()})
        return self.maps

    def __exit__(self, *_) -> None:
        self.unet.set_attn_processor(self.saved)


def _inside_fraction(probs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample and token: the share of the token's attention mass (mean over heads) that falls on the
    cells its object covers at this layer's resolution, and the share of cells those are. [B, tokens] each."""
    attention = probs.mean(dim=1)                                    # [B, pixels, tokens]
    side = int(round(attention.shape[1] ** 0.5))
    b, t = targets.shape[:2]
    cells = F.adaptive_max_pool2d(targets.reshape(b * t, 1, *targets.shape[2:]).float(), side)
    cells = cells.reshape(b, t, side * side)                         # [B, tokens, pixels]
    inside = (attention.transpose(1, 2) * cells).sum(-1) / attention.sum(1).clamp_min(1e-12)
    return inside, cells.mean(-1)


def attention_loss(maps: list[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """TokenCompose's token loss: mean over layers and grounded tokens of (1 - share inside the object)^2."""
    grounded = targets.flatten(2).any(-1)                            # [B, tokens]
    if not maps or not grounded.any():
        return torch.zeros((), device=maps[0].device if maps else None)
    losses = [((1 - _inside_fraction(m, targets.to(m.device))[0]) ** 2)[grounded.to(m.device)].mean() for m in maps]
    return torch.stack(losses).mean()


def attention_in_object(maps: list[torch.Tensor], targets: torch.Tensor) -> dict[str, float]:
    """The go/no-go number: mean share of a grounded token's attention inside its object's cells, the share
    uniform attention would give (the cells' share of the image), and their ratio."""
    grounded = targets.flatten(2).any(-1)
    inside, uniform = [], []
    for m in maps:
        share, area = _inside_fraction(m, targets.to(m.device))
        inside.append(share[grounded.to(m.device)])
        uniform.append(area[grounded.to(m.device)])
    inside_mean, uniform_mean = float(torch.cat(inside).mean()), float(torch.cat(uniform).mean())
    return {"inside": round(inside_mean, 4), "uniform": round(uniform_mean, 4),
            "ratio": round(inside_mean / max(uniform_mean, 1e-12), 3)}
