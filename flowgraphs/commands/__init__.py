"""`meg-phy` subcommands that need radios or flowgraphs (run, protocols, reproduce, demo, ota), one module each."""
