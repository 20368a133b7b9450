"""Adaptive links in the protocol hops: link adaptation, HARQ, the estimating receiver, the capacity scheme and
SoftCast, as a RunConfig reaches them; with the acceptance checks on the CENTRALIZED image."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_sd  # noqa: E402

from flowgraphs.config import LinkSpec, config_from_dict  # noqa: E402
from flowgraphs.hops import Hop, simulated_link  # noqa: E402
from flowgraphs.runner import run_protocol  # noqa: E402
from link_models.capacity import channel_uses  # noqa: E402
from meg_common.errors import InputError  # noqa: E402
from meg_phy import codecs  # noqa: E402
from meg_phy.scenes import render  # noqa: E402

TODAY = {"scheme": "digital", "mcs": "none", "modulation": "qpsk", "code_rate": 0.5, "estimator": "ls",
         "harq": False, "max_attempts": 3}
"""The digital hop before link adaptation: QPSK, LDPC rate 1/2, LS, blind retries."""
ATTRS = {"objects": [{"shape": "circle", "colour": "red", "size": "large", "position": "left"}], "background": "white"}


@pytest.fixture(scope="module")
def image_bytes():
    """What CENTRALIZED sends down: the image as WebP (quality 75) with the codec's header and CRC."""
    return codecs.encode_image(render(ATTRS, 0)[None], fmt="webp", quality=75)


def send(spec: LinkSpec, data: bytes, seed: int = 5):
    return Hop("ES1-UE-image", "ES1", "UE", "image", spec, seed, simulated_link).send_bytes(data, codecs.decode_image)


def test_centralized_image_at_20_db_takes_at_most_40_percent_of_todays_symbols(image_bytes):
    image, today = send(LinkSpec(snr_db=20.0, **TODAY), image_bytes)
    assert image is not None and today.delivered and (today.mcs_index, today.modulation) == (None, "qpsk")
    image, adapted = send(LinkSpec(scheme="digital", snr_db=20.0), image_bytes)
    assert image is not None and adapted.delivered
    assert adapted.symbols <= 0.4 * today.symbols, (adapted.symbols, today.symbols)
    assert adapted.mcs_index >= 17 and adapted.modulation == "64qam" and adapted.code_rate > 0.5
    assert adapted.mcs_table == 1 and today.mcs_table is None  # auto picks from table 1; fixed: no MCS
    assert adapted.transmissions >= 1 and adapted.attempts == adapted.transmissions


def test_centralized_image_at_minus_5_db_with_perfect_csi_is_delivered(image_bytes):
    for seed in (5, 6):
        image, rec = send(LinkSpec(scheme="digital", snr_db=-5.0, estimator="perfect"), image_bytes, seed)
        assert image is not None and rec.delivered and rec.ber == 0 and rec.code_rate < 0.25
    _, today = send(LinkSpec(snr_db=-5.0, **TODAY), image_bytes)
    assert not today.delivered  # the fixed rate-1/2 QPSK cliff


def test_harq_hop_sends_once_and_counts_every_transmission(image_bytes):
    """At 0 dB a fixed 16-QAM needs retransmissions: the hop calls the link once, the link combines."""
    spec = LinkSpec(scheme="digital", snr_db=6.0, mcs=12, estimator="perfect", max_attempts=4)
    image, rec = send(spec, image_bytes)
    _, single = send(LinkSpec(scheme="digital", snr_db=6.0, mcs=12, estimator="perfect", max_attempts=1), image_bytes)
    assert rec.mcs_index == 12 and rec.modulation == "16qam"
    assert single.transmissions == 1 and rec.symbols >= single.symbols
    if rec.transmissions > 1:
        assert rec.symbols > single.symbols
    assert rec.attempts == rec.transmissions <= 4


def test_blind_retries_stay_available_without_harq(image_bytes):
    _, rec = send(LinkSpec(snr_db=-10.0, **TODAY), image_bytes)
    assert not rec.delivered and rec.attempts == 3 and rec.transmissions == 3


def test_capacity_hop_takes_the_fewest_channel_uses(image_bytes):
    for snr in (-5.0, 0.0, 20.0):
        image, rec = send(LinkSpec(scheme="capacity", snr_db=snr), image_bytes)
        assert image is not None and rec.scheme == "capacity" and rec.delivered
        assert rec.symbols == channel_uses(8 * len(image_bytes), snr)
    with pytest.raises(InputError, match="capacity"):
        send(LinkSpec(scheme="capacity", channel="tdl-a"), image_bytes)


def test_link_spec_settings_reach_the_link_config():
    cfg = LinkSpec(scheme="digital", snr_db=20.0).link_config()
    assert cfg.mcs == "auto" and cfg.resolved().mcs_index is not None and cfg.estimator == "lmmse"
    assert cfg.max_transmissions == 4
    cfg = LinkSpec(scheme="digital", snr_db=3.0, mcs="none", harq=False).link_config()
    assert (cfg.mcs, cfg.modulation, cfg.k, cfg.n, cfg.max_transmissions) == (None, "qpsk", 512, 1024, 1)
    assert LinkSpec(scheme="analog").link_config().mcs is None
    with pytest.raises(InputError, match="mcs"):
        LinkSpec(mcs="best").validate("[link]")
    config = config_from_dict({"link": {"mcs": 9, "estimator": "ls"}, "downlink": {"mcs": "auto"}},
                              protocol="CENTRALIZED")
    assert config.hop_spec("ES1-UE-image", "downlink").mcs == "auto" and config.link.mcs == 9


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(make_tiny_sd(tmp_path_factory.mktemp("tiny-sd")))


def run(model, **kw):
    base = {"model": model, "steps": 4, "snr_db": 10.0, "protocol": "CENTRALIZED"}
    base.update(kw)
    return run_protocol(config_from_dict({}, **base))


def test_protocol_records_carry_the_mcs_and_transmissions(model):
    out = run(model, scheme="digital", snr_db=15.0)
    records = [r for r in out.graph.records if r.medium == "air"]
    assert records and all(r.mcs_index is not None and r.modulation and r.code_rate and r.transmissions >= 1
                           for r in records)
    d = records[-1].to_dict()
    assert {"mcs_index", "modulation", "code_rate", "transmissions"} <= set(d)


def test_softcast_image_hop_fits_its_channel_use_budget(model):
    out = run(model, scheme="softcast", softcast_uses=256, snr_db=10.0)
    image_hop = [r for r in out.graph.records if r.payload == "image"][-1]
    assert image_hop.scheme == "softcast" and image_hop.delivered and image_hop.values <= 2 * 256
    assert image_hop.bits > 64  # the SoftCast metadata went digitally on the same hop
    assert torch.isfinite(out.image).all() and 0 <= float(out.image.min()) and float(out.image.max()) <= 1


def test_capacity_scheme_runs_a_protocol(model):
    out = run(model, scheme="capacity", snr_db=0.0)
    image_hop = [r for r in out.graph.records if r.payload == "image"][-1]
    assert image_hop.scheme == "capacity" and image_hop.delivered and image_hop.symbols > 0


def test_the_hop_records_the_mcs_table_auto_used(image_bytes):
    """At -5 dB no table-1 MCS meets 10 % BLER with LMMSE: auto drops to table 3's low-rate rows, and says so."""
    _, rec = send(LinkSpec(scheme="digital", snr_db=-5.0), image_bytes)
    assert rec.mcs_table == 3 and rec.mcs_index is not None and rec.code_rate < 0.2
