"""`meg-phy` subcommands of the generation side (generate, train, eval-model), one module each."""
