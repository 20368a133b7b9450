"""meg-phy: a physical-layer testbed for Mobile Edge Generation.

This package is the generation side (split latent diffusion, payload codecs, the embedded model,
metrics) and the `meg-phy` CLI core. It never imports radio code (`link_models`, `sdr_drivers`);
importing it is cheap: heavy modules (torch, diffusers) load only where they are used.
"""

__version__ = "0.1.0"
