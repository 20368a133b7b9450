"""The words a link setting may take, each list defined once: channels, modulations, codes, estimators,
decoders, hop schemes, and the one "no noise" rule.

Every consumer reads these types: argparse `choices=` (`values(Channel)`), the config validators
(`validate.choice(..., values(Channel))`), the radios and the capacity bound (subsets defined here from the
same members), and the docs tables (tests/test_vocabulary.py checks all of them against this module). The
types are `StrEnum`s, so a member equals its text (`Channel.AWGN == "awgn"`) and configs keep plain strings.
This lives in meg_common because the radios (sdr_drivers) need the channels and may import nothing above
meg_common.

No noise: a link without noise has `snr_db = None` (the ideal channel always; `LinkConfig` stores None for
it). `noiseless(snr_db)` is the test, `effective_snr_db(channel, snr_db)` the SNR a link sees, and
`numeric_snr_db(snr_db)` the number for a model that needs one (the capacity bound, a simulated radio):
`NOISELESS_SNR_DB` where there is no noise.
"""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """Channel models of the simulated links (link_models.channels) and, as a subset, of the radios."""

    IDEAL = "ideal"
    AWGN = "awgn"
    RAYLEIGH = "rayleigh"
    TDL_A = "tdl-a"
    TDL_B = "tdl-b"
    TDL_C = "tdl-c"
    TDL_D = "tdl-d"
    TDL_E = "tdl-e"
    CDL_A = "cdl-a"
    CDL_B = "cdl-b"
    CDL_C = "cdl-c"
    CDL_D = "cdl-d"
    CDL_E = "cdl-e"


class Modulation(StrEnum):
    BPSK = "bpsk"
    QPSK = "qpsk"
    QAM16 = "16qam"
    QAM64 = "64qam"
    QAM256 = "256qam"

    @property
    def bits(self) -> int:
        """Bits per symbol."""
        return BITS_PER_SYMBOL[self]


BITS_PER_SYMBOL: dict[str, int] = {Modulation.BPSK: 1, Modulation.QPSK: 2, Modulation.QAM16: 4,
                                   Modulation.QAM64: 6, Modulation.QAM256: 8}
"""Bits per symbol of every modulation, keyed by its name (`BITS_PER_SYMBOL["16qam"] == 4`)."""


class Code(StrEnum):
    LDPC = "ldpc"
    NONE = "none"


class Estimator(StrEnum):
    """perfect: the true channel and N0; ls, lmmse: both estimated from the pilots."""

    PERFECT = "perfect"
    LS = "ls"
    LMMSE = "lmmse"


class Decoder(StrEnum):
    """LDPC decoders: fast (link_models.ldpc_fast, CPU) or Sionna's belief propagation (used on CUDA)."""

    FAST = "fast"
    SIONNA = "sionna"


class McsMode(StrEnum):
    """Link adaptation of a digital link (besides a fixed MCS index): auto is outer-loop link adaptation
    (OLLA: the MCS for the receiver's reported SNR less an offset moved by every ACK/NACK toward the BLER
    target), table the open-loop choice from the BLER table at the configured SNR."""

    AUTO = "auto"
    TABLE = "table"


class Fading(StrEnum):
    """How a TDL/CDL channel changes in time: block (a new draw every frame) or continuous (one channel per
    UE session that evolves with the UE's speed across frames, retransmissions and payloads)."""

    BLOCK = "block"
    CONTINUOUS = "continuous"


class Scheme(StrEnum):
    """How a protocol hop transmits (flowgraphs): analog values, digital bytes, the wired backhaul, the
    capacity bound of a digital hop, or SoftCast images on an analog hop."""

    ANALOG = "analog"
    DIGITAL = "digital"
    WIRED = "wired"
    CAPACITY = "capacity"
    SOFTCAST = "softcast"


# --- subsets, each from the members above ---------------------------------------------------------------------
CARRIERS = (Scheme.DIGITAL, Scheme.ANALOG)
"""What a link_models link carries: bytes (digital) or values (analog): `meg-phy link sweep --scheme`, the
over-the-air frame."""
ANALOG_SCHEMES = (Scheme.ANALOG, Scheme.SOFTCAST)
"""Hop schemes whose hop is an analog link."""
HOP_CARRIERS = (Scheme.ANALOG, Scheme.DIGITAL, Scheme.WIRED, Scheme.CAPACITY)
"""The links a hop's payloads travel on (a hop's carrier): every scheme but softcast, which is an analog
carrier whose images go as SoftCast (its image codec)."""
IMAGE_CODECS = {Scheme.SOFTCAST: "softcast"}
"""Schemes that name an image codec of their own besides their carrier (others send images as the run's
image_format: WebP, JPEG or PNG bytes, or the pixels as analog values)."""


def time_varying(channel: str) -> bool:
    """The channels whose fading evolves in time with the UE's speed (3GPP TDL and CDL): the only ones where
    continuous fading and `speed_mps` mean anything (AWGN, Rayleigh block fading and the ideal channel do not)."""
    return str(channel).startswith(("tdl-", "cdl-"))


def carrier_of(scheme: str) -> str:
    """The carrier of a hop scheme (HOP_CARRIERS): softcast is analog, every other scheme is its own."""
    return Scheme.ANALOG.value if scheme in ANALOG_SCHEMES else str(scheme)


def image_codec_of(scheme: str) -> str | None:
    """The image codec a hop scheme names (IMAGE_CODECS), or None (the run's image_format)."""
    return IMAGE_CODECS.get(scheme)

AIR_SCHEMES = (Scheme.ANALOG, Scheme.DIGITAL, Scheme.CAPACITY, Scheme.SOFTCAST)
"""Hop schemes of the air interface (uplink, downlink): every scheme but wired."""
CAPACITY_CHANNELS = (Channel.AWGN, Channel.RAYLEIGH)
"""Channels whose capacity link_models.capacity knows (a hop's ideal channel is AWGN without noise)."""
SIM_RADIO_CHANNELS = (Channel.AWGN, Channel.IDEAL, Channel.TDL_A, Channel.TDL_B, Channel.TDL_C, Channel.TDL_D,
                      Channel.TDL_E)
"""Channels the simulated radio pair (sdr_drivers.sim) applies."""
NOISY_CHANNELS = tuple(c for c in Channel if c != Channel.IDEAL)
"""Every channel but the ideal one (the channels a case study or a bandwidth sweep compares)."""


def values(kind) -> tuple[str, ...]:
    """The plain text of every member of an enum type, or of a subset (a tuple of members), in order:
    what argparse `choices=` and `meg_common.validate.choice` take."""
    return tuple(str(member.value) for member in kind)


# --- no noise ------------------------------------------------------------------------------------------------
NOISELESS_SNR_DB = 100.0
"""The SNR a model that needs a number uses for a link without noise (far above every MCS and radio floor)."""


def noiseless(snr_db: float | None) -> bool:
    """True for a link without noise: `snr_db is None`, the one convention."""
    return snr_db is None


def effective_snr_db(channel: str, snr_db: float | None) -> float | None:
    """The SNR a link on `channel` sees: None (no noise) on the ideal channel or when none is given."""
    return None if channel == Channel.IDEAL or snr_db is None else float(snr_db)


def numeric_snr_db(snr_db: float | None) -> float:
    """`snr_db` as a number for a model that needs one: NOISELESS_SNR_DB where there is no noise."""
    return NOISELESS_SNR_DB if noiseless(snr_db) else float(snr_db)


# --- the docs table ------------------------------------------------------------------------------------------
TABLE_ROWS: tuple[tuple[str, tuple, str], ...] = (
    ("channel", tuple(Channel), "`LinkConfig`, a hop (`[link]`, ...), `meg-phy link sweep --channel`, "
                                "`meg-phy run --channel`"),
    ("channel of a capacity hop", CAPACITY_CHANNELS, "`scheme = \"capacity\"` (ideal: awgn without noise)"),
    ("channel of the simulated radio", SIM_RADIO_CHANNELS, "`sdr_drivers.sim.SimRadio`, `meg-phy ota --channel`, "
                                                           "`--radio sim` hops"),
    ("modulation", tuple(Modulation), "`LinkConfig`, a hop, `--modulation`"),
    ("code", tuple(Code), "`LinkConfig`, `--code`"),
    ("estimator", tuple(Estimator), "`LinkConfig`, a hop, `--estimator`"),
    ("decoder", tuple(Decoder), "`LinkConfig`, `meg-phy link sweep --decoder`"),
    ("link adaptation (besides an MCS index)", tuple(McsMode), "`LinkConfig.mcs`, a hop's `mcs`, `--mcs`"),
    ("fading", tuple(Fading), "`LinkConfig.fading`, a hop's `fading`, `meg-phy link sweep --fading`"),
    ("scheme of a hop", tuple(Scheme), "a hop (`[link]`, `[backhaul]`, ...)"),
    ("scheme of the air interface", AIR_SCHEMES, "uplink and downlink hops, `meg-phy run --scheme`"),
    ("scheme of a link", CARRIERS, "`meg-phy link sweep --scheme`, the over-the-air frame (`meg-phy ota --scheme`)"),
)
"""The rows of the vocabulary table in docs/link-models.md: (setting, its values, who reads them)."""


def markdown_table() -> str:
    """The vocabulary table as docs/link-models.md holds it (tests/test_vocabulary.py compares the two)."""
    lines = ["| setting | values | read by |", "|---|---|---|"]
    lines += [f"| {name} | {', '.join(f'`{v}`' for v in values(members))} | {readers} |"
              for name, members, readers in TABLE_ROWS]
    return "\n".join(lines) + "\n"
