"""One definition of each vocabulary (meg_common.vocabulary): the command-line choices of every registered
subcommand, the config validators of every layer and the docs table all read the same lists; and one "no
noise" convention (snr_db None) that every hop consumer goes through."""

import argparse
import re
from pathlib import Path

import pytest

from meg_common import vocabulary as vocab
from meg_common.errors import InputError
from meg_common.vocabulary import (
    AIR_SCHEMES,
    CAPACITY_CHANNELS,
    CARRIERS,
    SIM_RADIO_CHANNELS,
    Channel,
    Code,
    Decoder,
    Estimator,
    Modulation,
    Scheme,
    values,
)

ROOT = Path(__file__).resolve().parent.parent

# every list an option of that name may offer: the full vocabulary or a subset defined from it
ALLOWED = {
    "channel": {values(Channel), values(SIM_RADIO_CHANNELS), values(CAPACITY_CHANNELS)},
    "modulation": {values(Modulation)},
    "code": {values(Code)},
    "estimator": {values(Estimator)},
    "decoder": {values(Decoder)},
    "scheme": {values(Scheme), values(AIR_SCHEMES), values(CARRIERS)},
}


def walk(parser: argparse.ArgumentParser, path: str = "meg-phy"):
    """(command path, dest, choices) of every option with choices, subcommands included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, f"{path} {name}")
        elif action.choices is not None:
            yield path, action.dest, tuple(action.choices)


@pytest.fixture(scope="module")
def options():
    from meg_phy.cli import build_parser  # every subcommand registered through its entry point

    return list(walk(build_parser()))


def test_every_cli_choice_of_a_link_setting_is_a_vocabulary_list(options):
    seen = {}
    for path, dest, choices in options:
        if dest in ALLOWED:
            assert choices in ALLOWED[dest], f"{path} --{dest}: {choices} is not a list of meg_common.vocabulary"
            seen[(path, dest)] = choices
    assert seen[("meg-phy link sweep", "channel")] == values(Channel)
    assert seen[("meg-phy link sweep", "scheme")] == values(CARRIERS)
    assert seen[("meg-phy link sweep", "decoder")] == values(Decoder)
    assert seen[("meg-phy run", "scheme")] == values(AIR_SCHEMES)
    assert seen[("meg-phy run", "estimator")] == values(Estimator)
    assert seen[("meg-phy ota loopback", "channel")] == values(SIM_RADIO_CHANNELS)
    assert seen[("meg-phy ota loopback", "modulation")] == values(Modulation)


def test_run_settings_choices_are_the_config_lists(options):
    from flowgraphs import config

    run = {dest: choices for path, dest, choices in options if path == "meg-phy run"}
    assert run["seed_format"] == config.SEED_FORMATS and run["image_format"] == config.IMAGE_FORMATS
    assert run["resume"] == config.RESUME_MODES and run["radio"] == config.RADIOS
    assert run["image_at"] == config.IMAGE_PLACES


def test_run_channel_is_checked_by_the_config_against_the_vocabulary():
    from flowgraphs.config import load_config

    assert load_config(channel="TDL-A").link.channel == "tdl-a"  # any case on the command line
    with pytest.raises(InputError) as info:
        load_config(channel="moon")
    assert listed(str(info.value), values(Channel))


def rejects(build, bad: str) -> str:
    with pytest.raises(InputError) as info:
        build(bad)
    return str(info.value)


def listed(message: str, names: tuple[str, ...]) -> bool:
    """The error names exactly these values, in order."""
    return re.search(r",?\s*".join(re.escape(n) for n in names), message) is not None


@pytest.mark.parametrize("field, kind", [("channel", Channel), ("modulation", Modulation),
                                         ("estimator", Estimator), ("code", Code), ("decoder", Decoder)])
def test_link_config_accepts_exactly_the_vocabulary(field, kind):
    from link_models.config import LinkConfig

    def build(value):
        return LinkConfig(**{field: value, "snr_db": 3.0, "k": 480, "n": 960})

    for member in kind:
        assert getattr(build(member.value.upper()), field) == member.value  # case-insensitive, stored as text
    assert listed(rejects(build, "nonsense"), values(kind))


@pytest.mark.parametrize("field, kind", [("channel", Channel), ("modulation", Modulation),
                                         ("estimator", Estimator), ("scheme", Scheme)])
def test_a_hop_accepts_exactly_the_vocabulary(field, kind):
    from flowgraphs.config import LinkSpec

    def build(value):
        return LinkSpec(**{field: value}).validate("[link]")

    for member in kind:
        assert getattr(build(member.value), field) == member.value
    assert listed(rejects(build, "nonsense"), values(kind))


def test_radios_capacity_and_frame_accept_their_subsets_of_the_channels():
    from link_models.capacity import CapacityConfig
    from link_models.ota.config import check_scheme
    from sdr_drivers.sim import SimRadio

    for channel in Channel:
        radio_ok = channel in SIM_RADIO_CHANNELS
        capacity_ok = channel in CAPACITY_CHANNELS
        try:
            SimRadio(channel=channel.value)
            assert radio_ok, channel
        except InputError as exc:
            assert not radio_ok and listed(str(exc), values(SIM_RADIO_CHANNELS))
        try:
            CapacityConfig(channel=channel.value)
            assert capacity_ok, channel
        except InputError as exc:
            assert not capacity_ok and listed(str(exc), values(CAPACITY_CHANNELS))
    assert [check_scheme(s.value) for s in CARRIERS] == list(values(CARRIERS))
    assert listed(rejects(check_scheme, "wired"), values(CARRIERS))


def test_the_docs_table_is_the_vocabulary():
    text = (ROOT / "docs" / "link-models.md").read_text(encoding="utf-8")
    assert vocab.markdown_table() in text, "docs/link-models.md: paste meg_common.vocabulary.markdown_table()"
    rows = {}
    for line in vocab.markdown_table().splitlines()[2:]:
        name, names, _ = (cell.strip() for cell in line.strip("|").split(" | "))
        rows[name] = tuple(re.findall(r"`([^`]+)`", names))
    assert rows["channel"] == values(Channel) and rows["scheme of a hop"] == values(Scheme)
    assert rows["modulation"] == tuple(vocab.BITS_PER_SYMBOL)


def test_no_other_module_keeps_its_own_copy_of_a_list():
    """A bracketed literal naming most of a vocabulary (4 channels, 3 modulations, the 3 estimators, 4 hop
    schemes) or generating the channel names appears only in meg_common/vocabulary.py; a branch on one or two
    names (`channel in ("awgn", "ideal")`) is behaviour, not a copy."""
    lists = {"channels": (values(Channel), 4), "modulations": (values(Modulation), 3),
             "estimators": (values(Estimator), 3), "schemes": (values(Scheme), 4)}
    bracketed = re.compile(r"[(\[{][^()\[\]{}]*[)\]}]")
    offenders = []
    for package in ("meg_common", "meg_phy", "link_models", "sdr_drivers", "flowgraphs", "scripts"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "vocabulary.py":
                continue
            text = path.read_text(encoding="utf-8")
            if re.search(r"f\"(tdl|cdl)-\{", text):
                offenders.append(f"{path.relative_to(ROOT)}: generates channel names")
            for group in bracketed.findall(text):
                quoted = set(re.findall(r"[\"']([a-z0-9-]+)[\"']", group))
                for name, (names, most) in lists.items():
                    if len(quoted & set(names)) >= most:
                        offenders.append(f"{path.relative_to(ROOT)}: {name} {group[:60]}")
    assert not offenders, offenders


# --- no noise ------------------------------------------------------------------------------------------------
def test_no_noise_is_snr_db_none_through_one_helper():
    assert vocab.noiseless(None) and not vocab.noiseless(-5.0)
    assert vocab.effective_snr_db("ideal", 10.0) is None and vocab.effective_snr_db("awgn", 10) == 10.0
    assert vocab.numeric_snr_db(None) == vocab.NOISELESS_SNR_DB and vocab.numeric_snr_db(3) == 3.0


def test_an_ideal_hop_has_no_noise_on_every_kind_of_link():
    from flowgraphs.config import LinkSpec, config_from_dict
    from flowgraphs.hops import capacity_link

    spec = LinkSpec(channel="ideal", snr_db=5.0).validate("[link]")
    assert spec.link_config().snr_db is None and spec.link_config().noise_variance == 0.0
    bound = capacity_link(LinkSpec(scheme="capacity", channel="ideal").validate("[link]")).cfg
    assert (bound.channel, bound.snr_db) == ("awgn", vocab.NOISELESS_SNR_DB)
    assert capacity_link(LinkSpec(scheme="capacity", snr_db=-3.0).validate("[link]")).cfg.snr_db == -3.0
    # the reference configuration: every hop noiseless, said as snr_db None
    ideal = config_from_dict({"link": {"snr_db": 3.0}, "uplink": {"snr_db": -5.0, "channel": "tdl-a"}}).ideal()
    for direction in ("uplink", "downlink"):
        hop = ideal.hop_spec("UE-ES1" if direction == "uplink" else "ES1-UE", direction)
        assert (hop.channel, hop.snr_db) == ("ideal", None) and hop.link_config().snr_db is None
    with pytest.raises(InputError, match="no noise is channel 'ideal'"):
        LinkSpec(snr_db=None).validate("[link]")
