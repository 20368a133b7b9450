"""LinkConfig: validation with one-line InputErrors, the SNR conventions (Es/N0 per RE vs Eb/N0 per info bit),
a frozen configuration and its resolution (ResolvedLink) as a separate step."""

import dataclasses
import math

import pytest

from link_models import LinkConfig, ResolvedLink, resolve
from meg_common.errors import InputError


def test_ebno_and_snr_follow_the_textbook_definitions():
    cfg = LinkConfig(modulation="16qam", k=1024, n=2048, ebno_db=3.0).resolved()
    assert cfg.es_no_db == pytest.approx(3.0 + 10 * math.log10(4 * 0.5))
    assert cfg.noise_variance == pytest.approx(1 / (10 ** 0.3 * 4 * 0.5))
    config = LinkConfig(modulation="qpsk", code="none", k=512, snr_db=6.0)
    snr = config.resolved()
    assert snr.eb_no_db == pytest.approx(6.0 - 10 * math.log10(2))
    assert snr.n == 512 and config.n == 2048  # uncoded: a block is k bits; the configuration keeps what was given


def test_with_snr_switches_operating_point():
    cfg = LinkConfig(ebno_db=1.0).with_snr(snr_db=7.0)
    assert cfg.snr_db == 7.0 and cfg.ebno_db is None and cfg.resolved().es_no_db == 7.0


def test_ideal_channel_has_no_noise_and_snr_db_none():
    ideal = LinkConfig(channel="ideal")
    assert ideal.noise_variance == 0.0 and ideal.snr_db is None and ideal.noiseless
    assert ideal.resolved().es_no_db is None and ideal.resolved().eb_no_db is None
    # an SNR given to the ideal channel is not kept: no noise is snr_db None, one convention
    assert LinkConfig(channel="ideal", snr_db=5.0) == ideal
    assert not LinkConfig(snr_db=5.0).noiseless


def test_the_configuration_is_frozen_and_resolving_does_not_change_it():
    cfg = LinkConfig(mcs="auto", snr_db=5.0, n=1024)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.k = 12  # type: ignore[misc]
    before = cfg.to_dict()
    resolved = cfg.resolved()
    assert cfg.to_dict() == before and (cfg.modulation, cfg.k, cfg.n) == ("qpsk", 1024, 1024)
    assert isinstance(resolved, ResolvedLink) and resolved.config is cfg and resolve(resolved) is resolved
    assert resolved.mcs_index is not None and resolved.n == 1008 and resolved.k != cfg.k
    assert resolved.channel == "awgn" and resolved.snr_db == 5.0  # the other settings read through
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.k = 12  # type: ignore[misc]
    # another operating point resolves again from the configuration, so n never drifts
    assert resolved.with_snr(snr_db=25.0).with_snr(snr_db=5.0) == resolved
    assert resolved.to_dict()["mcs_index"] == resolved.mcs_index and resolved.to_dict()["mcs"] == "auto"


@pytest.mark.parametrize("kwargs, fragment", [
    ({"modulation": "8psk", "snr_db": 1}, "unknown modulation"),
    ({"channel": "tdl-f", "snr_db": 1}, "unknown channel"),
    ({"estimator": "mmse", "snr_db": 1}, "unknown estimator"),
    ({"k": 10000, "n": 20000, "snr_db": 1}, "5G LDPC supports"),
    ({"k": 1024, "n": 1050, "snr_db": 1}, "code rate"),
    ({"k": 100, "n": 1000, "snr_db": 1}, "code rate"),
    ({"k": 1024, "n": 2049, "snr_db": 1}, "multiple"),
    ({"modulation": "16qam", "k": 1024, "n": 2046, "snr_db": 1}, "multiple"),
    ({}, "exactly one"),
    ({"channel": "awgn"}, "only the ideal channel has no noise"),
    ({"snr_db": float("inf")}, "finite"),
    ({"snr_db": 1, "ebno_db": 2}, "exactly one"),
    ({"snr_db": float("nan")}, "finite"),
    ({"snr_db": 1, "pilot_symbols": (2, 14)}, "pilot symbol index"),
    ({"snr_db": 1, "pilot_symbols": "2,x"}, "pilot_symbols"),
    ({"snr_db": 1, "estimator": "ls", "pilot_symbols": ()}, "needs pilot_symbols"),
    ({"snr_db": 1, "fft_size": 0}, "positive integer"),
    ({"snr_db": 1, "speed_mps": -1.0}, ">= 0"),
    ({"snr_db": 1, "device": "tpu"}, "device"),
])
def test_bad_settings_raise_one_line_input_errors(kwargs, fragment):
    with pytest.raises(InputError) as info:
        LinkConfig(**kwargs)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_pilot_symbols_parse_from_text_and_sort():
    assert LinkConfig(snr_db=1, pilot_symbols="11,2").pilot_symbols == (2, 11)
