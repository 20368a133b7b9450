"""The ledger of one protocol run: its nodes (UE, ES1..ESn), what each computed, and every hop between them.

The stages (flowgraphs.stages) write into it: `g.account(node, seconds, steps, work)` or `with g.on(node):`
for compute; `g.hop("ES1", "UE", "seed")` opens a hop with the link configuration the run gives that hop
(see flowgraphs.config) and records what it put on air; `g.broadcast("UE", ["ES1", "ES2"], "prompt")` is
one uplink transmission that every ES hears. A run's result (flowgraphs.result) is read from it.

Compute is accounted per node as denoising steps, work (latent elements the denoiser runs on, times steps:
a tile costs what it covers, a context window what it covers) and wall seconds.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from flowgraphs.config import RunConfig
from flowgraphs.hops import Broadcast, Hop, HopRecord, LinkFactory, control_spec, direction_of, simulated_link
from meg_common.errors import InputError


class RunLedger:
    """Nodes, per-node compute accounting and the record of every hop of one run."""

    def __init__(self, config: RunConfig, link_factory: LinkFactory | None = None, link_warmup=None):
        """`link_factory`: where hops get their links (normally `Session.link_factory(config)`; None: simulated
        links built anew for every hop, the same draws without a session's cache). `link_warmup`: where a UE's
        link state starts (normally `Session.link_warmup(config)`: `(spec, src, dst) -> warmed-up LinkState`
        or None; None: every link state starts a new session)."""
        self.config = config
        self.nodes = ["UE"] + [f"ES{i + 1}" for i in range(config.n_es)]
        self.compute = {node: {"steps": 0, "seconds": 0.0, "work": 0} for node in self.nodes}
        self.records: list[HopRecord] = []
        self._link_states: dict = {}
        self._factory = link_factory or simulated_link
        self._warmup = link_warmup

    @property
    def es(self) -> list[str]:
        return self.nodes[1:]

    @contextmanager
    def on(self, node: str, steps: int = 0, work: int = 0) -> Iterator[None]:
        """Run the enclosed step of this run on `node`: its wall time, `steps` denoising steps and `work`
        (latent elements x steps) are accounted there (model stages of a batch are timed by
        flowgraphs.stages, which shares their time among the tasks)."""
        self._check_node(node)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.compute[node]["seconds"] += time.perf_counter() - start
            self.compute[node]["steps"] += int(steps)
            self.compute[node]["work"] += int(work)

    def account(self, node: str, seconds: float = 0.0, steps: int = 0, work: int = 0) -> None:
        """Account compute measured elsewhere on `node` (an ES's step on its Ray actor, timed there)."""
        self._check_node(node)
        self.compute[node]["seconds"] += float(seconds)
        self.compute[node]["steps"] += int(steps)
        self.compute[node]["work"] += int(work)

    def hop(self, src: str, dst: str, payload: str, record: bool = True) -> Hop:
        """A hop named `SRC-DST-PAYLOAD` with its configured link; what it sends is recorded in `records`."""
        self._check_node(src)
        self._check_node(dst)
        name = f"{src}-{dst}-{payload}"
        spec = self.config.hop_spec(name, direction_of(src, dst))
        if payload == "prompt" and spec.carrier == "analog":  # text has no analog form: prompts go digital
            spec = replace(spec, scheme="digital")
        if payload == "control":
            spec = control_spec(spec)
        seed = hop_seed(self.config.seed, name, sum(r.name == name for r in self.records))
        return Hop(name, src, dst, payload, spec, seed, self._factory,
                   on_record=self.records.append if record else None,
                   link_state=lambda: self.link_state(src, dst, spec))

    def link_state(self, src: str, dst: str, spec):
        """The UE's state on the link SRC-DST with this configuration (link_models.state.LinkState), kept for
        the whole run: outer-loop adaptation and a time-correlated channel carry on from one payload to the
        next, as a base station keeps them for a UE's session (control messages, another configuration,
        have their own). With a warm-up (flowgraphs.session), it starts as that UE mid-session: the warmed-up
        state resumed at an idle time drawn from this run's seed; otherwise a new session."""
        from link_models.state import LinkState

        key = (src, dst, spec)
        if key not in self._link_states:
            seed = hop_seed(self.config.seed, f"{src}-{dst}-session")
            warm = self._warmup(spec, src, dst) if self._warmup is not None else None
            self._link_states[key] = LinkState(seed=seed) if warm is None else warm.resumed(seed)
        return self._link_states[key]

    def broadcast(self, src: str, dsts: list[str], payload: str) -> Broadcast:
        """One transmission from `src` that every node of `dsts` receives through its own hop `SRC-DST-PAYLOAD`
        (own SNR and noise draw), its cost counted once (flowgraphs.hops.Broadcast)."""
        return Broadcast([self.hop(src, dst, payload, record=False) for dst in dsts], on_record=self.records.append)

    def totals(self) -> dict[str, float | int]:
        """Bits, symbols and airtime over every hop, and apart: `air_symbols` (uplink + downlink, what the
        ratio to CENTRALIZED compares), `backhaul_bits`, `backhaul_symbols` (0 when wired) and
        `backhaul_transfer_s` (wired transfer time)."""
        backhaul = [r for r in self.records if r.direction == "backhaul"]
        return {
            "bits": sum(r.bits or 0 for r in self.records),
            "symbols": sum(r.symbols for r in self.records),
            "airtime_s": sum(r.airtime_s for r in self.records),
            "air_symbols": sum(r.symbols for r in self.records if r.direction != "backhaul"),
            "backhaul_bits": sum(r.bits or 0 for r in backhaul),
            "backhaul_symbols": sum(r.symbols for r in backhaul),
            "backhaul_transfer_s": sum(r.transfer_s for r in backhaul),
        }

    def _check_node(self, node: str) -> None:
        if node not in self.nodes:
            raise InputError(f"node {node!r} is not in this run; nodes: {', '.join(self.nodes)} (raise n_es for more ESs)")


def hop_seed(run_seed: int, name: str, index: int = 0) -> int:
    """The link seed of the index-th hop called `name` in a run: independent hops, reproducible runs."""
    return (run_seed * 1_000_003 + zlib.crc32(f"{name}#{index}".encode())) % 2**31
