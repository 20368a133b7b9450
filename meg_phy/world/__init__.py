"""The embedded world, version 2 (issue 9): 64x64 scenes of 1-3 objects, free-order prompts, an evaluator
that reads them back. Lives beside `meg_phy.scenes` / `meg_phy.evaluator` (the 32x32 world) until the
default model switches over."""
