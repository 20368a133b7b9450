"""The factory that puts a protocol hop on a radio: a hop's LinkSpec -> link_models.ota.RadioLink.

    factory = radio_link_factory("sim")          # or ("pluto", "ip:192.168.2.1")
    link = factory(spec, seed)                   # a link_models.link.Link over the OTA frame

`flowgraphs.runner` uses it for `--radio sim|pluto`; the link itself lives in link_models.ota.radio_link.
"""

from __future__ import annotations

from link_models.config import LinkConfig, ResolvedLink
from link_models.mcs import shipped_table_path
from link_models.ota.config import FrameConfig
from link_models.ota.radio_link import RadioLink
from meg_common.errors import InputError
from meg_common.vocabulary import SIM_RADIO_CHANNELS, effective_snr_db, numeric_snr_db

LOW_SNR_BELOW_DB = 2.0
"""A radio hop whose SNR is below this uses the low-SNR burst mode (link_models.ota.lowsnr): the legacy frame's
Schmidl-Cox preamble and header stop working near +1 dB, the low-SNR mode's chirp preamble and repetition-coded
header work to about -11 dB (docs/over-the-air.md)."""
RADIO_BLER_TABLE = shipped_table_path("radio-sim")
"""BLER per MCS over the air (scripts/make_bler_table.py --radio sim); without it, the link-level table."""


def radio_link_factory(radio: str, uri: str | None = None, frame_codec=None,
                       low_snr_below_db: float | None = LOW_SNR_BELOW_DB, **sim_settings):
    """(spec, seed) -> RadioLink, the factory flowgraphs.runner uses for `--radio sim|pluto`.

    The link configuration is the hop's own (`spec.link_config()`); a radio link uses its modulation, code
    and code length, while the OFDM numerology on air is the over-the-air frame's (FrameConfig). Link
    adaptation on a radio picks the MCS from the BLER table measured over the air (`RADIO_BLER_TABLE`: the
    OTA receiver over the simulated radio with `sdr_drivers.sim.REALISTIC` impairments), not from the
    link-level one: the receiver needs 0.2-0.4 dB more than the link-level LMMSE table from MCS 7 up, and no
    MCS works below about 1.3 dB (frame synchronisation and header), so the link-level MCS fails on air
    near its threshold (docs/over-the-air.md). A digital radio link retransmits its failed frames itself (ARQ,
    link_models.ota.radio_link).
    'sim': a fresh SimRadio per hop at the hop's SNR and channel, with realistic impairments (20 ppm CFO
    and SCO, DC offset, IQ imbalance; override with keyword arguments). 'pluto': one PlutoRadio shared by
    every hop (a cabled loopback, or TX/RX Plutos with `uri` 'ip:A,ip:B'). `frame_codec(frame,
    ldpc_iterations) -> FrameCodec` supplies the frame codecs (a Session's `frame_codec`); default: the
    process-wide `link_models.ota.shared_codec`. `low_snr_below_db`: hops whose SNR is below it use the
    low-SNR burst mode (None: never); on a Pluto the hop's configured SNR decides, as nothing else is known
    before the first burst.
    """
    shared = {}

    def build(radio_obj, cfg: ResolvedLink, seed: int, snr_db) -> RadioLink:
        frame = FrameConfig(sample_rate=float(radio_obj.sample_rate))
        codec = frame_codec(frame, cfg.ldpc_iterations) if frame_codec is not None else None
        low = low_snr_below_db is not None and snr_db is not None and float(snr_db) < float(low_snr_below_db)
        return RadioLink(radio_obj, cfg, frame, seed=seed, codec=codec, mode="low-snr" if low else "legacy")

    def factory(spec, seed: int) -> RadioLink:
        cfg = spec.link_config(bler_table=str(RADIO_BLER_TABLE) if RADIO_BLER_TABLE.is_file() else None).resolved()
        if cfg.ldpc_n < cfg.n:  # the frame cannot repeat coded bits (MCS rate < 1/5): the rate-1/5 code, once
            cfg = LinkConfig(**{**cfg.config.to_dict(), "mcs": None, "modulation": cfg.modulation, "k": cfg.k,
                                "n": cfg.ldpc_n}).resolved()
        if radio == "sim":
            from sdr_drivers.sim import SimRadio

            channel = spec.channel if spec.channel in SIM_RADIO_CHANNELS else None
            if channel is None:
                raise InputError(f"channel '{spec.channel}' is not simulated by the radio; use one of "
                                 f"{', '.join(SIM_RADIO_CHANNELS)}")
            from sdr_drivers.sim import REALISTIC

            settings = {**REALISTIC, **sim_settings}
            snr = numeric_snr_db(effective_snr_db(spec.channel, spec.snr_db))
            return build(SimRadio(snr_db=snr, channel=channel, seed=seed, **settings), cfg, seed, snr)
        if radio == "pluto":
            if "radio" not in shared:
                from sdr_drivers.pluto import PlutoRadio

                tx_uri, _, rx_uri = (uri or "").partition(",")
                shared["radio"] = PlutoRadio(tx_uri or "ip:192.168.2.1", rx_uri=rx_uri or None)
            return build(shared["radio"], cfg, seed, spec.snr_db)
        raise InputError(f"radio '{radio}': choose sim or pluto")

    return factory
