"""Builders for the embedded model: stock diffusers/transformers classes with tiny configs.

The folder they make is an ordinary Stable-Diffusion diffusers folder (loadable by
`StableDiffusionPipeline` / `StableDiffusionImg2ImgPipeline.from_pretrained`). As in Stable Diffusion the
VAE downsamples by 8 with 4 latent channels: a 3x64x64 image becomes a 4x8x8 latent, 48x fewer values.
"""

from __future__ import annotations

from meg_phy.scenes import IMAGE_SIZE, VOCABULARY

LATENT_CHANNELS = 4
VAE_FACTOR = 8
LATENT_SIZE = IMAGE_SIZE // VAE_FACTOR
TEXT_HIDDEN = 96
MAX_TOKENS = 40  # bos + the longest make_prompt text (3 full objects + background: 31 tokens) + eos, padded
BOS, EOS, UNK = "<|startoftext|>", "<|endoftext|>", "<|unk|>"
SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "prediction_type": "epsilon", "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}
VAE_CONFIG = {
    "in_channels": 3, "out_channels": 3, "latent_channels": LATENT_CHANNELS, "sample_size": IMAGE_SIZE,
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (16, 32, 64, 64), "layers_per_block": 1, "norm_num_groups": 16,
}
UNET_CONFIG = {
    "sample_size": LATENT_SIZE, "in_channels": LATENT_CHANNELS, "out_channels": LATENT_CHANNELS,
    # cross-attention at 8x8 and 4x4: prompts bind attributes to cells, so the 8x8 level needs the text
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "block_out_channels": (64, 128), "layers_per_block": 1, "norm_num_groups": 16,
    "cross_attention_dim": TEXT_HIDDEN, "attention_head_dim": 8,
}


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(**VAE_CONFIG)


def build_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**UNET_CONFIG)


def build_text_encoder(vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=vocab_size, hidden_size=TEXT_HIDDEN, intermediate_size=4 * TEXT_HIDDEN,
                            num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=MAX_TOKENS,
                            projection_dim=TEXT_HIDDEN, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return CLIPTextModel(config)


def tokenizer_files() -> tuple[dict[str, int], list[str]]:
    """vocab.json and merges.txt contents so that each vocabulary word (and ',') is exactly one token.

    CLIP's BPE starts from characters (the last one suffixed with '</w>'); the merges rebuild each word from
    its end, so the only pair that can merge inside a word is the one next to its growing suffix and no
    word's merges can split another word. Unknown words stay as character tokens training never sees.
    """
    vocab: dict[str, int] = {BOS: 0, EOS: 1, UNK: 2}
    merges: list[str] = []

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    for ch in "abcdefghijklmnopqrstuvwxyz,":
        add(ch)
        add(ch + "</w>")
    for word in sorted(VOCABULARY, key=lambda w: (len(w), w)):
        suffix = word[-1] + "</w>"
        for ch in reversed(word[:-1]):
            merge = f"{ch} {suffix}"
            suffix = ch + suffix
            if merge not in merges:
                merges.append(merge)
            add(suffix)
    return vocab, merges


def build_tokenizer():
    """A CLIPTokenizer over the world's vocabulary (save it with `save_pretrained`)."""
    from transformers import CLIPTokenizer

    vocab, merges = tokenizer_files()
    return CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges], unk_token=UNK, bos_token=BOS,
                         eos_token=EOS, pad_token=EOS, model_max_length=MAX_TOKENS)


class FastTokenizer:
    """Token ids of prompts made of vocabulary words and commas, without BPE: the same ids as
    `build_tokenizer()(prompts, padding="max_length")` (checked in the tests), at a fraction of the cost."""

    def __init__(self):
        vocab, _ = tokenizer_files()
        self.ids = {w: vocab[w + "</w>"] for w in VOCABULARY}
        self.ids[","] = vocab[",</w>"]
        self.bos, self.eos = vocab[BOS], vocab[EOS]

    def __call__(self, prompts: list[str]):
        import torch

        rows = []
        for p in prompts:
            words = p.lower().replace(",", " , ").split()
            ids = [self.bos] + [self.ids[w] for w in words][: MAX_TOKENS - 2] + [self.eos]
            rows.append(ids + [self.eos] * (MAX_TOKENS - len(ids)))
        return torch.tensor(rows)


def build_train_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(**{k: v for k, v in SCHEDULE.items() if k != "set_alpha_to_one"})


def build_inference_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULE)
