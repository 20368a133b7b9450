"""Builders for the embedded model's parts: tiny configs of standard diffusers/transformers classes.

Every part is a stock class (AutoencoderKL, CLIPTextModel + CLIPTokenizer, UNet2DConditionModel,
DDPM/DDIM schedulers) so the trained folder is an ordinary Stable-Diffusion diffusers folder that
`StableDiffusionPipeline.from_pretrained` loads; only the sizes are ours.
"""

from __future__ import annotations

from meg_phy.scenes import IMAGE_SIZE, VOCABULARY

LATENT_CHANNELS = 4
VAE_FACTOR = 4  # 32x32x3 -> 8x8x4: 3072 / 256 = 12x fewer values
TEXT_HIDDEN = 64
MAX_TOKENS = 16  # bos + 11 template words + eos, padded
BOS, EOS, UNK = "<|startoftext|>", "<|endoftext|>", "<|unk|>"
SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "prediction_type": "epsilon", "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, sample_size=IMAGE_SIZE,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=16,
    )


def build_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // VAE_FACTOR, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
        # attention only at the 4x4 level (and the mid block): at 8x8 it costs 2.5x the training speed
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(64, 64), layers_per_block=1, norm_num_groups=16,
        cross_attention_dim=TEXT_HIDDEN, attention_head_dim=8,
    )


def build_text_encoder(vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=vocab_size, hidden_size=TEXT_HIDDEN, intermediate_size=4 * TEXT_HIDDEN,
                            num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=MAX_TOKENS,
                            projection_dim=TEXT_HIDDEN, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return CLIPTextModel(config)


def tokenizer_files() -> tuple[dict[str, int], list[str]]:
    """vocab.json and merges.txt contents so that each vocabulary word is exactly one token.

    CLIP's BPE starts from characters (the last one suffixed with '</w>'). The merges rebuild each word
    from its end: every merge joins a plain character to a token ending in '</w>', so the only pair that
    can merge inside a word is the one next to its growing suffix, and no word's merges can split another
    word. Unknown words stay as character tokens that training never sees.
    """
    vocab: dict[str, int] = {BOS: 0, EOS: 1, UNK: 2}
    merges: list[str] = []

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    for ch in "abcdefghijklmnopqrstuvwxyz":
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
    """A CLIPTokenizer over the project's vocabulary (save it with `save_pretrained`)."""
    from transformers import CLIPTokenizer

    vocab, merges = tokenizer_files()
    return CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges], unk_token=UNK, bos_token=BOS,
                         eos_token=EOS, pad_token=EOS, model_max_length=MAX_TOKENS)


def build_train_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(**{k: v for k, v in SCHEDULE.items() if k != "set_alpha_to_one"})


def build_inference_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULE)
