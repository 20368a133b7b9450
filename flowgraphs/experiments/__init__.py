"""Experiments built from protocol runs: the paper's case study (`meg-phy reproduce`)."""
