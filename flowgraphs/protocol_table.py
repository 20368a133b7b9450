"""The protocol table: the nine MEG protocols and the CENTRALIZED baseline by name, and what sets them apart.

A bottom module, so that the run configuration (flowgraphs.config) can check and resolve protocol names
without importing the protocols' flowgraphs (flowgraphs.protocols), which sit above the stages.
"""

from __future__ import annotations

from meg_common.errors import InputError

PROTOCOLS: dict[str, str] = {
    "CENTRALIZED": "baseline: UE uploads prompt (+ image), one ES runs the whole LDM and sends the final image down",
    "UIEG": "UE-Inferencing, ES-Generating: UE encodes and noises its image, the seed goes up, the ES generates, the image comes down",
    "EIUG": "ES-Inferencing, UE-Generating: the ES denoises to the split step, the seed comes down, the UE finishes and decodes",
    "CIAG": "Collaborative Inferencing And Generating: seed up, the ES runs the middle steps, seed down, the UE finishes",
    "ESUC": "ES-Sketching, UE-Completing: the ES makes a rough few-step, low-resolution sketch, the UE completes it with img2img",
    "UIDG": "UE-Inferencing, Distributed Generating: the seed goes up to n ESs (one broadcast), they denoise it jointly, each its tile, and send image tiles",
    "DIUG": "Distributed Inferencing, UE-Generating: n ESs denoise one latent jointly to the split, each its tile; the tiles come down, the UE merges and finishes",
    "DSUC": "Distributed Sketching, UE-Completing: n ESs sketch one latent jointly, each its tile; sketch tiles come down, the UE stitches and completes",
    "UIDCG": "UE-Inferencing, Distributed Cooperative Generating: seed up, ES1..ESn run consecutive step ranges over (wired) backhaul, the image comes down",
    "DCSUC": "Distributed Cooperative Sketching, UE-Completing: ES1..ESn sketch in consecutive step ranges, the sketch comes down, the UE completes",
}
"""Protocol name -> one-line description (`meg-phy protocols`)."""

SINGLE_ES = ("CENTRALIZED", "UIEG", "EIUG", "CIAG", "ESUC")
"""Protocols that use one ES whatever n_es says."""

IMAGE_AT_UE = ("UIEG", "CIAG", "UIDG", "UIDCG")
"""Protocols that make their seed from the input image at the UE: they refuse image_at = "es"."""


def canonical_name(name: str) -> str:
    """Upper-case protocol name; InputError naming the known ones otherwise."""
    key = str(name).strip().upper()
    if key not in PROTOCOLS:
        raise InputError(f"protocol {name!r} is not known; choose one of: {', '.join(PROTOCOLS)} (see meg-phy protocols)")
    return key
