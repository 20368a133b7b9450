"""Session: the state that runs share, made explicit. Create one, pass it to every run.

    session = Session(evaluator=None)                  # None: the embedded evaluator
    outcome = run_protocol(config, session=session)    # flowgraphs.runner
    result, run, reference = evaluate(config, session)

A session holds what is expensive to build and safe to reuse: split LDMs and evaluators by folder, links
built once per link configuration (`LinkSpec.link_config()`), over-the-air frame codecs, and the radio link
factories. Nothing lives
in module-level caches, so two sessions share nothing, and inside one session a run cannot influence the
next: every hop reseeds the link it gets (`Session.link`), and models and evaluators are only read.

A UE mid-session (`link_warmup_tbs` > 0; the case study sets it): a digital hop on a link with outer-loop
adaptation does not start OLLA from offset 0 in every run. Per (hop configuration, sender, receiver) the
session runs a warm-up once (link_models.state.warm_up: `link_warmup_tbs` transport blocks of a UE session
on that link, its seed from the configuration and the hop's ends, not from any task) and every run's UE
state on that link starts from a copy of it (`LinkState.resumed`: the converged offset, the same channel
later by an idle time drawn from the task's seed). A task's start depends only on its configuration and its
own seed, so a batch of tasks equals the tasks run one by one, in any order or chunking; the tasks of a
campaign unit (and of every chunk of a point) are one UE's session at different times, each carrying on
from the converged state rather than from the task before it. Radio links, and links without OLLA
(mcs 'table', an index, 'none'), start as before.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from flowgraphs.config import LinkSpec, RunConfig
from flowgraphs.hops import LinkFactory, build_link
from meg_common.vocabulary import Scheme


class Session:
    """Models, evaluator, links and radios of a process's runs; see the module docstring."""

    def __init__(self, evaluator: str | None = None, placement=None, runtime: str = "torch",
                 radio_options: dict[str, Any] | None = None, link_warmup_tbs: int = 0):
        self.runtime = runtime
        """Where the models' UNets run: 'torch', 'onnx' or 'auto' (meg_phy.runtime)."""
        self.link_warmup_tbs = int(link_warmup_tbs)
        """Transport blocks of the warm-up that a UE's state on an OLLA link starts from (0: none, every run
        starts its UE's session; see the module doc)."""
        self.radio_options = dict(radio_options or {})
        """Settings of the radio link factories (flowgraphs.radio_link.radio_link_factory): `low_snr_below_db`,
        and for the simulated radio its impairments (`cfo_ppm`, `sco_ppm`, ...)."""
        self.evaluator = evaluator
        """Folder of the attribute evaluator that scores prompt matches (None: the embedded one)."""
        self.placement = placement
        """Where the ESs of this session's runs compute (flowgraphs.placement; None: in this process)."""
        self._models: dict[str | None, Any] = {}
        self._scorers: dict[str | None, Any] = {}
        self._links: dict[str, Any] = {}
        self._radios: dict[tuple[str, str | None], LinkFactory] = {}
        self._codecs: dict[tuple[Any, int], Any] = {}
        self._warm: dict[tuple[Any, str, str, int], Any] = {}

    def model(self, path: str | None = None):
        """The split LDM at `path` (None: the embedded default model), loaded once in this session."""
        if path not in self._models:
            from meg_phy.ldm import load_ldm

            ldm = load_ldm(path)
            ldm.set_runtime(self.runtime)
            self._models[path] = ldm
        return self._models[path]

    def scorer(self, path: str | None = None):
        """The attribute evaluator at `path` (default: the session's), loaded once in this session."""
        path = self.evaluator if path is None else path
        if path not in self._scorers:
            from meg_phy.evaluator import load_evaluator

            self._scorers[path] = load_evaluator(path)
        return self._scorers[path]

    def link(self, spec: LinkSpec, seed: int):
        """The simulated link of this hop configuration, built once per configuration and reseeded with `seed`
        (a `LinkFactory`): a hop's draws depend only on its configuration and seed, never on earlier runs."""
        link = self._built(spec)
        link.reseed(seed)
        return link

    def _built(self, spec: LinkSpec):
        key = (f"wired {spec.rate_bps} {spec.latency_s}" if spec.carrier == Scheme.WIRED
               else spec.carrier + _link_key(spec))
        if key not in self._links:
            self._links[key] = build_link(spec)
        return self._links[key]

    def link_warmup(self, config: RunConfig):
        """How a run's ledger gets the warmed-up UE state of a link, `(spec, src, dst) -> LinkState | None`
        (flowgraphs.ledger.RunLedger.link_state), or None: no warm-up (`link_warmup_tbs` 0, or a radio run)."""
        return self.warm_link_state if self.link_warmup_tbs > 0 and config.radio == "link" else None

    def warm_link_state(self, spec: LinkSpec, src: str, dst: str):
        """The UE state after the warm-up on this hop configuration's simulated link (run once per session and
        configuration; not to be advanced: a run takes `.resumed(seed)`), or None where the link has no OLLA."""
        blocks = self.link_warmup_tbs
        key = (spec, src, dst, blocks)
        if key not in self._warm:
            state = None
            if spec.carrier == Scheme.DIGITAL and blocks > 0:
                seed = zlib.crc32(f"{src}-{dst}-warmup {_link_key(spec)}".encode()) % 2**31
                link = self._built(spec)  # warm_up reseeds it and gives its generator back as it was
                if getattr(getattr(link, "cfg", None), "olla", False):
                    from link_models.state import warm_up

                    state = warm_up(link, blocks, seed)
            self._warm[key] = state
        return self._warm[key]

    @property
    def links(self) -> dict[str, Any]:
        """The links built so far, by configuration (a copy, for inspection)."""
        return dict(self._links)

    def frame_codec(self, frame, ldpc_iterations: int = 20):
        """The over-the-air FrameCodec of a `FrameConfig` (its LDPC codes take a while to build), built once in
        this session; radio links take it as `RadioLink(..., codec=...)`."""
        key = (frame, int(ldpc_iterations))
        if key not in self._codecs:
            from link_models.ota.frame import FrameCodec

            self._codecs[key] = FrameCodec(frame, ldpc_iterations=ldpc_iterations)
        return self._codecs[key]

    def link_factory(self, config: RunConfig) -> LinkFactory:
        """How the hops of a run reach the air: simulated links, or radio links over a simulated or real radio
        (one factory per radio and URI, so a Pluto is opened once per session); wired backhaul hops stay wired."""
        if config.radio == "link":
            return self.link
        key = (config.radio, config.uri)
        if key not in self._radios:
            from flowgraphs.radio_link import radio_link_factory

            self._radios[key] = radio_link_factory(config.radio, config.uri, frame_codec=self.frame_codec,
                                                   **self.radio_options)
        radio = self._radios[key]
        return lambda spec, seed: self.link(spec, seed) if spec.carrier == Scheme.WIRED else radio(spec, seed)


def _link_key(spec: LinkSpec) -> str:
    """A hop configuration's link settings as one string (`LinkSpec.link_config()`, keys sorted): what the
    session builds one link for, and what seeds that link's warm-up."""
    return json.dumps(spec.link_config().to_dict(), sort_keys=True)
