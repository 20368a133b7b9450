"""The embedded default model, committed with the package.

`default/` is a standard Stable-Diffusion diffusers folder (model_index.json, unet/, vae/, text_encoder/,
tokenizer/, scheduler/) trained by `meg-phy train`; `evaluator/` is the scene reader
(`meg_phy.evaluator`) that reads generated images back. Nothing here is downloaded: these folders ship with the code.
"""

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL_DIR = MODELS_DIR / "default"
EVALUATOR_DIR = MODELS_DIR / "evaluator"
