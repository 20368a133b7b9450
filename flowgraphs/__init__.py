"""MEG protocols as flowgraphs: generation stages placed on nodes (UE, ES1..ESn), hops between them.

- `flowgraphs.config`: run configuration (TOML layers down to one hop), validated;
- `flowgraphs.hops`, `flowgraphs.ledger`: one accounted transmission; the nodes, their compute, every hop;
- `flowgraphs.stages`: the blocks protocols are made of (LDM stages, payload transfers, resume, tiles);
- `flowgraphs.protocols`: the nine MEG protocols and CENTRALIZED, one short module each;
- `flowgraphs.runner`, `flowgraphs.report`: a run with its noiseless reference and baseline, and its files;
- `flowgraphs.experiments`: the paper's case study (`meg-phy reproduce`).
See docs/protocols.md.
"""
