"""Hops over real link_models links: accounting, CRC retries counted on air, analog noise variance, reuse of
built links; and the flowgraph's per-node compute accounting."""

import math
import time

import pytest
import torch

from flowgraphs.config import LinkSpec, config_from_dict
from flowgraphs.hops import Hop, simulated_link
from flowgraphs.ledger import RunLedger
from flowgraphs.prompt_codec import decode_prompt, encode_prompt

PROMPT = "a large red circle at the center on a white background"


def hop(spec, payload="prompt", factory=simulated_link, records=None):
    return Hop("UE-ES1-" + payload, "UE", "ES1", payload, spec, seed=7, link_factory=factory,
               on_record=(records.append if records is not None else None))


def test_digital_hop_on_a_clean_link_delivers_once_with_full_accounting():
    records = []
    fixed = {"mcs": "none", "harq": False}  # QPSK rate 1/2 as configured (link adaptation: test_hop_adaptation.py)
    text, rec = hop(LinkSpec(scheme="digital", channel="ideal", **fixed), records=records).send_bytes(
        encode_prompt(PROMPT), decode_prompt)
    assert text == PROMPT and rec.delivered and rec.attempts == 1 and records == [rec]
    payload_bits = 8 * len(encode_prompt(PROMPT))
    assert rec.bits == payload_bits and rec.ber == 0 and rec.bler == 0
    spec = LinkSpec(**fixed)
    coded_symbols = math.ceil(payload_bits / spec.info_bits) * spec.codeword_bits / 2  # QPSK
    data_per_frame = spec.fft_size * (spec.num_ofdm_symbols - 2)  # two pilot OFDM symbols
    frames = math.ceil(coded_symbols / data_per_frame)
    assert rec.symbols == frames * spec.num_ofdm_symbols * (spec.fft_size + spec.cp_length)
    assert rec.airtime_s == pytest.approx(rec.symbols / (spec.fft_size * spec.subcarrier_spacing_khz * 1e3))
    assert rec.direction == "uplink" and rec.snr_db is None  # ideal channel: no SNR applies
    assert rec.snr_est_db is None or rec.snr_est_db > 60  # measured on the noiseless link


def test_failed_crc_is_retried_every_try_counted_and_never_pretended():
    blind = {"mcs": "none", "harq": False}  # whole-payload retries (HARQ: test_hop_adaptation.py)
    spec = LinkSpec(scheme="digital", snr_db=-10.0, max_attempts=3, **blind)
    text, rec = hop(spec).send_bytes(encode_prompt(PROMPT), decode_prompt)
    _, once = hop(LinkSpec(scheme="digital", snr_db=-10.0, max_attempts=1, **blind)).send_bytes(
        encode_prompt(PROMPT), decode_prompt)
    assert text is None and not rec.delivered and rec.attempts == 3
    assert rec.symbols == 3 * once.symbols and rec.airtime_s == pytest.approx(3 * once.airtime_s)
    assert rec.bits == 3 * once.bits and rec.bler > 0 and rec.ber > 0.01


class FlakyLink:
    """A link that flips one byte on its first `bad` sends (to check the retry logic on its own)."""

    def __init__(self, bad):
        self.bad, self.sent = bad, 0

    def send_bytes(self, data):
        self.sent += 1
        out = bytearray(data)
        if self.sent <= self.bad:
            out[0] ^= 0xFF
        stats = {"payload_bits": 8 * len(data), "total_symbols": 100, "airtime_s": 1e-3, "codewords": 1,
                 "bit_errors": 8 if self.sent <= self.bad else 0, "block_errors": int(self.sent <= self.bad)}
        return bytes(out), stats


@pytest.mark.parametrize("bad, attempts, delivered", [(0, 1, True), (1, 2, True), (2, 3, True), (3, 3, False)])
def test_retries_until_the_crc_passes(bad, attempts, delivered):
    link = FlakyLink(bad)
    text, rec = hop(LinkSpec(scheme="digital", max_attempts=3), factory=lambda spec, seed: link).send_bytes(
        encode_prompt(PROMPT), decode_prompt)
    assert (rec.attempts, rec.delivered, rec.symbols) == (attempts, delivered, 100 * attempts)
    assert text == (PROMPT if delivered else None)
    assert rec.bler == pytest.approx(min(bad, 3) / attempts)


def test_analog_hop_reports_the_noise_it_adds():
    values = torch.randn(2000, generator=torch.Generator().manual_seed(0)) * 3
    est, noise_var, rec = hop(LinkSpec(scheme="analog", snr_db=10.0, estimator="perfect"), payload="seed").send_values(values)
    measured = float((est - values).pow(2).mean())
    assert float(noise_var.mean()) == pytest.approx(measured, rel=0.2)
    assert measured == pytest.approx(9 * 10 ** (-10 / 10), rel=0.2)  # 1/SNR, scaled by the value power
    assert rec.scheme == "analog" and rec.values == 2000 and rec.ber is None and rec.attempts == 1
    assert rec.noise_var == pytest.approx(float(noise_var.mean()))
    # side information sent digitally adds its own symbols to the same hop; the link's 64 header bits ride
    # inside it (flowgraphs.transfer puts them in front), so they are counted once, as sent
    _, _, with_side = hop(LinkSpec(scheme="analog", snr_db=10.0), payload="seed").send_values(values, side=b"x" * 60)
    assert rec.bits == 64 and with_side.bits == 480
    assert with_side.symbols > rec.symbols and with_side.delivered


def test_flowgraph_accounts_compute_per_node_and_sums_hops():
    g = RunLedger(config_from_dict({}, n_es=3, protocol="uidcg", scheme="digital", channel="ideal"))
    assert g.nodes == ["UE", "ES1", "ES2", "ES3"]
    with g.on("ES2", steps=4):
        time.sleep(0.02)
    with g.on("ES2", steps=3):
        pass
    assert g.compute["ES2"]["steps"] == 7 and g.compute["ES2"]["seconds"] >= 0.02
    assert g.compute["UE"] == {"steps": 0, "seconds": 0.0, "work": 0}
    g.hop("ES1", "ES2", "prompt").send_bytes(encode_prompt(PROMPT), decode_prompt)
    g.hop("ES3", "UE", "prompt").send_bytes(encode_prompt("x"), decode_prompt)
    assert [r.direction for r in g.records] == ["backhaul", "downlink"]
    assert g.totals()["symbols"] == sum(r.symbols for r in g.records)
    assert g.totals()["bits"] == 8 * (len(encode_prompt(PROMPT)) + len(encode_prompt("x")))


@pytest.mark.parametrize("scheme", ["digital", "analog"])
def test_a_reused_link_depends_only_on_its_configuration_and_seed(scheme):
    from flowgraphs.session import Session

    spec = LinkSpec(scheme=scheme, snr_db=2.0, channel="tdl-a", mcs="none", harq=False)  # errors to tell seeds apart
    payload = bytes(range(200)) if scheme == "digital" else torch.linspace(-2, 2, 300)
    session = Session()

    def send(seed):
        link = session.link(spec, seed)
        return link.send_bytes(payload)[0] if scheme == "digital" else link.send_values(payload)[0]

    first = send(11)
    other = send(5)
    again = send(11)  # the cached link, after being used with another seed
    same = (lambda a, b: a == b) if scheme == "digital" else torch.equal
    assert same(first, again) and not same(first, other)


def test_a_run_keeps_one_link_state_per_ue_link_across_its_payloads():
    """Outer-loop adaptation is a UE's session: the prompt and the image a UE uploads in one run share one
    LinkState (the image's blocks continue the prompt's offset), the downlink has its own, and a batch of
    tasks gets each task's own states, equal to the tasks run alone (on the uplink, whose payloads do not pass
    through the model; the downlink image's bytes may differ by the batched kernels' rounding)."""
    from flowgraphs.config import config_from_dict
    from flowgraphs.runner import run_batch, run_protocol
    from flowgraphs.session import Session
    from flowgraphs.task import make_task

    session = Session()
    configs = [config_from_dict({"link": {"scheme": "digital", "channel": "tdl-a", "snr_db": 10.0}},
                                protocol="CENTRALIZED", seed=s, steps=4) for s in (1, 2)]
    tasks = [make_task(c, session) for c in configs]
    alone = [run_protocol(c, t, session) for c, t in zip(configs, tasks, strict=True)]
    for run, batched in zip(alone, run_batch(configs, tasks, session), strict=True):
        states = run.graph._link_states
        assert sorted((src, dst) for src, dst, _ in states) == [("ES1", "UE"), ("UE", "ES1")]
        up = [r for r in run.graph.records if r.direction == "uplink"]
        (uplink,) = [state for (src, _, _), state in states.items() if src == "UE"]
        assert len(uplink.history) == sum(r.first_tx_blocks for r in up)          # one session, both payloads
        assert [r.to_dict() for r in up] == [r.to_dict() for r in batched.graph.records if r.direction == "uplink"]
