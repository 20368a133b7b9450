"""The nine MEG protocols and the CENTRALIZED baseline, one module each.

Each module has `run(st: Stages) -> images`: its flowgraph, stage by stage and hop by hop, for a batch of
tasks (flowgraphs.stages), so the module reads as the protocol's description. The roles are this project's reading of the acronyms of Zhong et al.,
"Mobile Edge Generation: A New Era to 6G" (IEEE Network 2024), which names the protocols but publishes
no code (see docs/protocols.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from flowgraphs.protocol_table import IMAGE_AT_UE, PROTOCOLS, SINGLE_ES, canonical_name

__all__ = ["IMAGE_AT_UE", "PROTOCOLS", "SINGLE_ES", "canonical_name", "get"]


def get(name: str) -> Callable:
    """The `run(st)` function of a protocol."""
    return importlib.import_module(f"flowgraphs.protocols.{canonical_name(name).lower()}").run
