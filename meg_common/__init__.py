"""meg_common: the small base package every layer of meg-phy may import.

It holds what the generation side, the links, the radios and the flowgraphs all need and that depends on
nothing heavy: user-facing errors (`errors`), atomic result files (`io`), provenance (`provenance`),
command-line helpers (`cli`), range checks for settings (`validate`) and typed config serialisation
(`config`). It imports no torch, diffusers or Sionna, so importing it is instant.
"""
