"""`meg-phy protocols`: the nine MEG protocols and the baseline, one line each."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("protocols", help="list the MEG protocols with a one-line description each",
                                   description="List the MEG protocols that `meg-phy run --protocol NAME` runs.")
    parser.set_defaults(func=main)


def main(args) -> int:
    from flowgraphs.protocols import PROTOCOLS

    width = max(map(len, PROTOCOLS))
    for name, description in PROTOCOLS.items():
        print(f"{name:<{width}}  {description}")
    return 0
