"""Run configuration: TOML layers ([link] < [direction] < [hops.SRC-DST] < [hops.SRC-DST-PAYLOAD]), CLI on top,
and one-line errors for unknown keys and bad values."""

import pytest

from flowgraphs.config import LinkSpec, config_from_dict, load_config
from meg_common.errors import InputError

TOML = """
protocol = "eiug"
prompt = "a small blue square at the left on a black background"
n_es = 3
[link]
scheme = "digital"
snr_db = 12
[uplink]
snr_db = -5
[hops.ES2-UE]
channel = "tdl-a"
[hops.ES2-UE-seed]
snr_db = 3
"""


def write(tmp_path, text):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_layers_give_each_hop_its_own_link(tmp_path):
    cfg = load_config(write(tmp_path, TOML))
    assert cfg.protocol == "EIUG"  # case-insensitive on input
    assert cfg.hop_spec("ES1-UE-seed", "downlink") == LinkSpec(scheme="digital", snr_db=12.0)
    assert cfg.hop_spec("UE-ES1-prompt", "uplink").snr_db == -5.0
    far = cfg.hop_spec("ES2-UE-seed", "downlink")
    assert (far.channel, far.snr_db, far.scheme) == ("tdl-a", 3.0, "digital")
    assert cfg.hop_spec("ES2-UE-image", "downlink").snr_db == 12.0  # link-level override only changes the channel
    assert cfg.hop_spec("ES2-UE-image", "downlink").channel == "tdl-a"


def test_command_line_wins_over_the_file(tmp_path):
    cfg = load_config(write(tmp_path, TOML), snr_db=20.0, n_es=None, protocol="ciag", channel="rayleigh")
    assert (cfg.protocol, cfg.n_es, cfg.link.snr_db, cfg.link.channel) == ("CIAG", 3, 20.0, "rayleigh")
    assert cfg.hop_spec("UE-ES1-seed", "uplink").snr_db == -5.0  # a direction override still applies


def test_reference_config_is_noiseless_everywhere(tmp_path):
    ideal = load_config(write(tmp_path, TOML)).ideal()
    for name, direction in [("UE-ES1-prompt", "uplink"), ("ES2-UE-seed", "downlink"), ("ES1-ES2-seed", "backhaul")]:
        spec = ideal.hop_spec(name, direction)
        assert (spec.channel, spec.estimator) == ("ideal", "perfect")
        assert spec.scheme == ("wired" if direction == "backhaul" else "digital")  # only the channel is ideal


@pytest.mark.parametrize("text, fragment", [
    ("colour = 'red'", "unknown key 'colour'"),
    ("[link]\nsnr = 3", "unknown key 'snr'"),
    ("[link]\nscheme = 'quantum'", "scheme = 'quantum' is not known"),
    ("[link]\nsnr_db = 'high'", "snr_db = 'high': expected a number"),
    ("[downlink]\nchannel = 'tdl-z'", "channel = 'tdl-z' is not known"),
    ("n_es = 5", "n_es = 5 is out of range"),
    ("n_es = 1.5", "n_es = 1.5: expected a whole number"),
    ("strength = 0", "strength = 0.0 is out of range"),
    ("protocol = 'FOO'", "protocol 'FOO' is not known"),
    ("[hops.UE-ES9]\nsnr_db = 1", "not a hop name"),
    ("[hops.UE-ES1-video]\nsnr_db = 1", "not a hop name"),
    ("[hops.ES1-UE]\nmax_attempts = 0", "max_attempts = 0 is out of range"),
    ("link = 3", "expected a table"),
    ("protocol = ", "not valid TOML"),
])
def test_bad_files_get_one_line_errors(tmp_path, text, fragment):
    with pytest.raises(InputError) as err:
        load_config(write(tmp_path, text))
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_and_missing_image_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(InputError, match="image .*no such file"):
        config_from_dict({}, image=str(tmp_path / "nope.png"))
    with pytest.raises(InputError, match="needs a uri"):
        config_from_dict({}, radio="pluto")


def test_prompts_are_always_digital_even_on_analog_links():
    from flowgraphs.ledger import RunLedger

    g = RunLedger(config_from_dict({}, scheme="analog"))
    assert g.hop("UE", "ES1", "prompt").spec.scheme == "digital"
    assert g.hop("UE", "ES1", "seed").spec.scheme == "analog"
    with pytest.raises(InputError, match="not in this run"):
        g.hop("UE", "ES3", "seed")
    with pytest.raises(InputError, match="no hop from UE to UE"):
        g.hop("UE", "UE", "seed")


def test_link_settings_are_declared_once_in_link_models():
    """link_models.config.LinkSettings owns every link setting and its default; LinkConfig (what a link is built
    from) and HopLink (a link as a run configures it) are LinkSettings, and a hop's LinkSpec declares only what
    the hop adds (its scheme, tries, wired rate and latency) on top of HopLink."""
    from dataclasses import fields

    from link_models.config import HopLink, LinkConfig, LinkSettings

    link = {f.name for f in fields(LinkSettings)}
    assert issubclass(LinkSpec, HopLink) and issubclass(HopLink, LinkSettings) and issubclass(LinkConfig, LinkSettings)
    own = set(LinkSpec.__annotations__) - {"RANGES"}
    assert own == {"scheme", "max_attempts", "harq", "arq_max", "rate_bps", "latency_s"} and not own & link
    assert set(HopLink.__annotations__) - {"RANGES"} == {"code_rate", "codeword_bits", "channel_uses"}
    # LinkConfig names its link-level defaults where it declares them; every other setting is LinkSettings'
    assert set(LinkConfig.__annotations__) & link == {"estimator", "snr_db", "fft_size", "cp_length", "mcs"}
    hop, base = LinkSpec(), LinkSettings()
    assert all(getattr(hop, name) == getattr(base, name) for name in link)
    # the flat [link] table and its overrides still reach every field, old configs load as before
    cfg = config_from_dict({"link": {"codeword_bits": 2016, "estimator": "ls"}, "downlink": {"channel_uses": 512}})
    down = cfg.hop_spec("ES1-UE-seed", "downlink")
    assert (down.codeword_bits, down.estimator, down.channel_uses) == (2016, "ls", 512)
    assert cfg.hop_spec("UE-ES1-prompt", "uplink").channel_uses is None
    with pytest.raises(InputError, match="channel_uses"):
        config_from_dict({"link": {"channel_uses": 0}})


@pytest.mark.parametrize("scheme, carrier, codec", [("analog", "analog", None), ("digital", "digital", None),
                                                    ("wired", "wired", None), ("capacity", "capacity", None),
                                                    ("softcast", "analog", "softcast")])
def test_a_hop_scheme_is_its_carrier_and_image_codec(scheme, carrier, codec):
    """The word a user writes (`scheme`) is read as the link that carries the hop (`carrier`, what the transfer
    table keys on) and the image codec it names, if any (softcast: SoftCast images on an analog carrier)."""
    from flowgraphs.transfer import transfer_for

    spec = LinkSpec(scheme=scheme)
    assert (spec.carrier, spec.image_codec) == (carrier, codec)
    assert transfer_for("image", spec.carrier, spec.image_codec) is transfer_for("image", scheme)
    assert transfer_for("latent", spec.carrier, spec.image_codec) is transfer_for("latent", carrier)
