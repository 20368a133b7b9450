"""Explicit run state: a Session builds one link per configuration and reseeds it for every hop, so runs in one
process (tiny random SD folder, real links) cannot influence each other."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_sd import make_tiny_sd  # noqa: E402

from flowgraphs.config import LinkSpec, config_from_dict  # noqa: E402
from flowgraphs.runner import run_protocol  # noqa: E402
from flowgraphs.session import Session  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(make_tiny_sd(tmp_path_factory.mktemp("tiny-sd")))


def test_links_are_built_once_per_configuration_and_distinct_between_configurations():
    session = Session()
    a, b = LinkSpec(scheme="digital", snr_db=3.0), LinkSpec(scheme="digital", snr_db=4.0)
    first = session.link(a, 1)
    assert session.link(a, 2) is first  # reused, reseeded
    assert session.link(b, 1) is not first and session.link(LinkSpec(scheme="analog", snr_db=3.0), 1) is not first
    assert len(session.links) == 3
    assert Session().link(a, 1) is not first  # sessions share nothing


def test_runs_in_one_session_cannot_influence_each_other(model):
    session = Session()
    a = config_from_dict({"downlink": {"snr_db": 0.0}}, model=model, steps=10, protocol="EIUG", snr_db=5.0)
    b = config_from_dict({}, model=model, steps=10, protocol="CIAG", snr_db=-3.0, scheme="digital",
                         modulation="16qam", channel="tdl-a")
    first = run_protocol(a, session=session)
    other = run_protocol(b, session=session)
    again = run_protocol(a, session=session)
    fresh = run_protocol(a, session=Session())
    for run in (again, fresh):
        assert torch.equal(run.image, first.image)
        assert [r.to_dict() for r in run.graph.records] == [r.to_dict() for r in first.graph.records]
    assert not torch.equal(other.image, first.image)
    assert session.model(model) is session.model(model)  # the model is loaded once per session


def test_frame_codecs_are_per_session():
    from link_models.ota.config import FrameConfig

    session = Session()
    codec = session.frame_codec(FrameConfig())
    assert session.frame_codec(FrameConfig()) is codec and codec.cfg == FrameConfig()
    assert session.frame_codec(FrameConfig(), ldpc_iterations=10) is not codec
    assert Session().frame_codec(FrameConfig()) is not codec


def test_radio_options_reach_the_radio_link_factory(monkeypatch):
    """`meg-phy run --low-snr-below-db/--cfo-ppm/--sco-ppm` travel as the session's radio options."""
    import flowgraphs.radio_link as radio_link
    from flowgraphs.config import config_from_dict
    from flowgraphs.session import Session

    seen = {}

    def factory(radio, uri=None, frame_codec=None, **options):
        seen.update(radio=radio, **options)
        return lambda spec, seed: None

    monkeypatch.setattr(radio_link, "radio_link_factory", factory)
    session = Session(radio_options={"low_snr_below_db": -3.0, "cfo_ppm": 50.0})
    session.link_factory(config_from_dict({}, radio="sim"))
    assert seen == {"radio": "sim", "low_snr_below_db": -3.0, "cfo_ppm": 50.0}
