"""The transfer table (flowgraphs.transfer): every payload travels on every carrier it lists, a lost payload
becomes the one stand-in the table names, and control messages get through at -10 dB, counted on air."""

from dataclasses import replace

import pytest
import torch

from flowgraphs.config import config_from_dict
from flowgraphs.ledger import RunLedger
from flowgraphs.session import Session
from flowgraphs.stages import Stages
from flowgraphs.task import make_task
from flowgraphs.transfer import TRANSFERS, LostContext, transfer_for
from meg_common.errors import InputError

SEEDS = [31, 32, 33]


@pytest.fixture(scope="module")
def session():
    return Session()


def _stages(session, downlink, seeds=SEEDS, backhaul=None):
    tables = {"downlink": downlink} if backhaul is None else {"backhaul": backhaul}
    configs = [config_from_dict(tables, protocol="EIUG" if backhaul is None else "DIUG", seed=s, steps=10,
                                strength=0.7, image_at="ue", n_es=1 if backhaul is None else 2) for s in seeds]
    tasks = [make_task(c, session) for c in configs]
    return Stages([RunLedger(c.resolved(), session.link_factory(c)) for c in configs], tasks)


def test_every_row_decodes_what_it_encoded_without_noise(session):
    """On a noiseless hop every row gives back what was sent: bytes exactly, values to float precision."""
    ldm = session.model()
    latent = ldm.start(None, None, steps=10, generator=torch.Generator().manual_seed(0))
    image = torch.rand(1, 3, *ldm.resolution, generator=torch.Generator().manual_seed(1))
    values = {"latent": latent, "image": image, "sketch": image, "prompt": "a red circle", "control": b"\x01\x02"}
    carriers = {"digital", "analog", "wired"}
    for payload, carrier, codec in TRANSFERS:
        if carrier not in carriers:
            continue
        carrier = codec or carrier                # the hop's scheme: softcast is the analog carrier's codec
        hop = {"scheme": carrier, "channel": "ideal"}
        wired = carrier == "wired"           # wired hops are backhaul: ES1 -> ES2
        st = _stages(session, None if wired else hop, seeds=[5], backhaul=hop if wired else None)
        got = st._send("ES1", ["ES2" if wired else "UE"], {"latent": "seed"}.get(payload, payload), payload,
                       [values[payload]])
        (arrived,), noise = got[0]
        if payload in ("prompt", "control"):
            assert arrived == values[payload], (payload, carrier)
        elif payload == "latent":
            tol = 0.05 if carrier == "digital" else 1e-3     # digital latents are quantised (seed_format)
            assert (arrived.latents - latent.latents).abs().max() < tol, carrier
            assert arrived.step == latent.step
        elif payload == "image" and carrier == "analog":   # digital and wired images go as compressed bytes
            assert (arrived - image).abs().max() < 1e-4, carrier
        else:
            assert arrived.shape == image.shape, (payload, carrier)
        assert noise[0] == pytest.approx(0.0, abs=1e-6) or carrier == "softcast", (payload, carrier)


def test_a_lost_payload_becomes_the_tables_stand_in(session):
    ldm = session.model()
    latent = ldm.start(None, None, steps=10, generator=torch.Generator().manual_seed(0))
    image = torch.rand(1, 3, 8, 8)
    context = LostContext(ldm, seed=7)
    fresh, var = transfer_for("latent", "digital").lost(latent, context)
    assert var == 0.0 and fresh.step == 0 and fresh.total == latent.num_inference_steps
    again, _ = transfer_for("latent", "analog").lost(latent, context)
    assert torch.equal(fresh.latents, again.latents)               # one rule for every carrier
    grey, _ = transfer_for("sketch", "softcast").lost(image, context)
    assert torch.equal(grey, torch.full_like(image, 0.5))
    assert transfer_for("prompt", "digital").lost("a", context) == (None, 0.0)
    with pytest.raises(InputError, match="cannot travel on a analog hop"):
        transfer_for("prompt", "analog")


@pytest.mark.parametrize("channel", ["awgn", "tdl-a"])
def test_control_messages_arrive_at_minus_10_db_and_cost_air(session, channel):
    """A 16-byte control message (a noise seed with its schedule) per task, at -10 dB on a hop whose data
    would go analog: sent digitally at the robust control MCS with HARQ, every task's delivered, every
    transmission counted on that hop's record."""
    st = _stages(session, {"scheme": "analog", "channel": channel, "snr_db": -10.0})
    messages = [bytes([i]) * 16 for i in range(len(SEEDS))]
    assert st.send_control("ES1", "UE", messages) == messages
    for g in st.graphs:
        (record,) = g.records
        assert record.name == "ES1-UE-control" and record.delivered and record.scheme == "digital"
        assert record.mcs_table == 3 and record.mcs_index == 0
        assert record.symbols > 1000 and record.bits >= 8 * (16 + 4)


def test_an_analog_latent_sends_its_header_and_side_information_and_pays_for_them(session):
    """Nothing is free on air: with side_info = 'link' (the default) the analog latent's hop carries the link
    header (scale, count) and the codec's side information as a control message, counted in its bits and
    symbols; 'session' (agreed in advance) sends the values alone."""
    from flowgraphs.transfer import LINK_HEADER
    from meg_phy.codecs import seed as codec

    ldm = session.model()
    latent = ldm.start(None, None, steps=10, generator=torch.Generator().manual_seed(0))
    records = {}
    for mode in ("link", "session"):
        config = config_from_dict({"downlink": {"scheme": "analog", "snr_db": -5.0}}, protocol="EIUG", seed=3,
                                  steps=10, side_info=mode)
        st = Stages(RunLedger(config.resolved(), session.link_factory(config)), make_task(config, session))
        st.send_latent("ES1", "UE", [latent])
        (records[mode],) = st.graphs[0].records
    values, side = codec.seed_to_analog(latent, normalise=False)
    link, free = records["link"], records["session"]
    assert link.bits >= 8 * (LINK_HEADER.size + len(side))      # header + side information, every try counted
    assert free.bits == 64                                        # the link header, counted but not sent
    assert link.symbols > free.symbols + 100 and link.delivered and free.delivered
    assert link.values == free.values == values.numel()


def test_a_budget_chooses_what_fits_and_the_hop_never_spends_more(session):
    """A hop with `channel_uses` N: an analog latent goes in exactly N uses (repeated and combined), a digital one
    as the finest seed format the fit rule lets in, sent with HARQ within N; nothing fits in a few uses, so
    nothing is sent and the receiver generates from scratch (the table's stand-in). HopRecord.budget says so,
    and a record without a budget has no such key."""
    ldm = session.model()
    latent = ldm.start(None, None, steps=10, generator=torch.Generator().manual_seed(0))
    values = latent.latents.numel()
    analog = _stages(session, {"scheme": "analog", "snr_db": 0.0, "channel_uses": values}, seeds=[5])
    analog.cfg = analog.graphs[0].config = replace(analog.cfg, side_info="session")
    (got,), _ = analog._send("ES1", ["UE"], "seed", "latent", [latent])[0]
    (record,) = analog.graphs[0].records
    assert record.budget == {"uses": values, "fits": True, "spent": values, "copies": 2.0} and record.delivered
    assert got.latents.shape == latent.latents.shape
    for uses, fmt in ((16384, "float32"), (16, None)):
        st = _stages(session, {"scheme": "digital", "snr_db": 10.0, "mcs": "table", "channel_uses": uses}, seeds=[5])
        (got,), _ = st._send("ES1", ["UE"], "seed", "latent", [latent])[0]
        (record,) = st.graphs[0].records
        assert record.budget["setting"] == fmt and record.budget["spent"] <= uses
        assert record.budget["planning_bler"] >= 0.1 and record.budget["mcs_index"] is not None
        if fmt is None:
            assert not record.budget["fits"] and record.symbols == 0 and not record.delivered
            assert got.step == 0 and got.total == latent.num_inference_steps     # generated from scratch
        else:
            assert record.delivered and torch.equal(got.latents, latent.latents.to(got.latents))
        assert record.to_dict()["budget"] == record.budget
    plain = _stages(session, {"scheme": "digital", "snr_db": 10.0}, seeds=[5])
    plain._send("ES1", ["UE"], "seed", "latent", [latent])
    assert plain.graphs[0].records[0].budget is None and "budget" not in plain.graphs[0].records[0].to_dict()
