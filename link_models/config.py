"""LinkConfig: every setting of a link in one validated dataclass (no Sionna import, so the CLI stays fast).

SNR conventions (see docs/link-models.md):
- `snr_db` is Es/N0 per resource element: unit-energy symbols, complex noise variance N0 per RE.
- `ebno_db` is Eb/N0 per information bit on the data resource elements (the textbook definition),
  Es/N0 = Eb/N0 * bits_per_symbol * code_rate. Pilot and cyclic-prefix overheads are not folded into
  Eb/N0 (unlike Sionna's `ebnodb2no(..., resource_grid=...)`); they are reported separately in LinkStats,
  so uncoded AWGN results line up with the closed forms.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from meg_common import validate
from meg_common.config import ConfigMixin, Lowercase
from meg_common.errors import InputError
from meg_common.vocabulary import (
    BITS_PER_SYMBOL,
    Channel,
    Code,
    Decoder,
    Estimator,
    Fading,
    McsMode,
    Modulation,
    effective_snr_db,
    noiseless,
    numeric_snr_db,
    time_varying,
    values,
)

MODULATIONS: dict[str, int] = {str(m.value): BITS_PER_SYMBOL[m] for m in Modulation}
"""Bits per symbol of each modulation (meg_common.vocabulary.Modulation), as plain text keys."""
CODES = values(Code)
ESTIMATORS = values(Estimator)
CHANNELS = values(Channel)
DEVICES = ("cpu", "cuda")
FADINGS = values(Fading)
MCS_MODES = values(McsMode)
DECODERS = values(Decoder)  # fast: link_models.ldpc_fast (CPU; Sionna's is used on CUDA devices)

# 5G NR LDPC limits (TS 38.212 5.3.2 / 5.4.2.1): information block and code rate.
LDPC_K_MIN, LDPC_K_MAX = 12, 8448
LDPC_N_MAX = 316 * 384
LDPC_RATE_MIN, LDPC_RATE_MAX = 1 / 5, 0.95
MCS_BLOCK = 24  # MCS codewords: a multiple of every modulation order (2, 4, 6, 8), so n never moves with the MCS
CRC_BITS = 24   # HARQ: CRC24B per codeword (TS 38.212 5.1), the ACK/NACK the receiver sends back
MCS_MIN_INFO_BITS = 10 * CRC_BITS
"""Information bits an MCS codeword carries at least: at the lowest rates a codeword of `n` bits would hold
so few (table 3's MCS 0: 30 of 1008, 24 of them the CRC) that the CRC took most of the air, which no 5G
system does (it sizes a code block to the transport block, up to 3840/8448 bits); so n grows until k reaches
this (the CRC at most 10 %). A longer code at the same rate only lowers the BLER, so the BLER table measured
at the nominal n stays on the safe side (measured on the hop's link, one resource block, LMMSE, 600 first
transmissions: table 3 MCS 0 at -10 dB 0.358 at k=30 and 0.117 at k=240; MCS 2 at -7.5 dB 0.097 and 0.002)."""
CHOICES: dict[str, tuple[str, ...]] = {"modulation": tuple(MODULATIONS), "code": CODES, "channel": CHANNELS,
                                      "estimator": ESTIMATORS, "decoder": DECODERS, "fading": FADINGS}
"""The named settings of a link and the words each takes (meg_common.vocabulary), checked by `LinkConfig` and
`HopLink` alike."""
MAX_TRANSMISSIONS = 16
MAX_ARQ = 32  # RLC maxRetxThreshold (TS 38.322) goes up to 32
AGGREGATION = (1, 2, 4, 8)
"""Slot aggregation factors (TS 38.331 pdsch-AggregationFactor): a transport block's coded bits repeated
over 2, 4 or 8 times the resources, below the lowest MCS (OLLA at the cell edge, link_models.scheduled)."""


@dataclass(frozen=True)
class LinkSettings(ConfigMixin):
    """The settings every link has (channel, noise, MCS, modulation, estimator, OFDM grid, fading), each
    declared once here with the defaults of a protocol hop's link (one resource block, LMMSE estimation, link
    adaptation, 10 dB). `LinkConfig` (what a link is built from) and `HopLink` (a link as a run configures it)
    are these settings and their own; LinkConfig keeps five link-level defaults of its own (perfect CSI, 128
    subcarriers, a 9-sample prefix, no MCS, no noise level given). Frozen; `ideal()`: the same link without
    noise."""

    modulation: Lowercase = "qpsk"
    """Used without an MCS (otherwise the MCS sets it)."""
    channel: Lowercase = "awgn"
    estimator: Lowercase = "lmmse"
    """perfect (true channel and N0), ls or lmmse (channel and N0 estimated from the pilots)."""
    snr_db: float | None = 10.0
    """Es/N0 per resource element, dB (the link models' definition). None: no noise (the ideal channel has
    none, whatever snr_db says; meg_common.vocabulary.effective_snr_db)."""
    fft_size: int = 12
    """Subcarriers (one 5G resource block by default: small payloads fill their frames)."""
    num_ofdm_symbols: int = 14
    subcarrier_spacing_khz: float = 30.0
    cp_length: int = 1
    speed_mps: float = 0.0
    """UE speed for TDL/CDL Doppler (a pedestrian: 3 km/h = 0.833 m/s)."""
    mcs: str | int | None = "auto"
    """Digital links: 'auto' (outer-loop link adaptation, starting from the highest TS 38.214 MCS whose BLER
    at snr_db is at most 10 % in the shipped BLER table), 'table' (that MCS, open loop), an MCS index, or
    None / 'none' (modulation and code as given)."""
    mcs_table: int = 1
    """The TS 38.214 MCS table an MCS index refers to (1: up to 64-QAM; 2: 256-QAM; 3: low spectral
    efficiency, down to QPSK at rate 30/1024: what control messages use)."""
    fading: Lowercase = "block"
    """TDL/CDL channels: 'block' (a new draw every frame) or 'continuous' (the UE's channel evolves with
    `speed_mps` across frames, retransmissions and payloads; link_models.fading)."""
    prb: int | None = None
    """Resource blocks per slot (12 subcarriers each); None: fft_size as given."""

    def ideal(self):
        """The same link without noise (for a reference run): the ideal channel, perfect CSI, snr_db None."""
        return dataclasses.replace(self, channel=Channel.IDEAL.value, estimator=Estimator.PERFECT.value, snr_db=None)


@dataclass(frozen=True)
class HopLink(LinkSettings):
    """A link as a run configures it (a protocol hop's `[link]`, `[uplink]`, `[hops.NAME]` tables; flowgraphs.
    config.LinkSpec layers the hop's own settings on top): the link settings, the code as a rate and a
    codeword length, and a channel-use budget. Validated with the place it was configured
    (`validate(where)`), and made the `LinkConfig` a link is built from in one place (`as_link_config`; then
    `LinkConfig.resolved()` applies the MCS).

    As configured, not as resolved: an ideal channel keeps the `snr_db` it was given (a hop layered on it may
    set another channel), and `as_link_config` drops it (meg_common.vocabulary.effective_snr_db)."""

    code_rate: float = 0.5
    """LDPC rate k/n for digital links without an MCS; k is rounded to a whole number of bits."""
    codeword_bits: int = 1024
    """LDPC codeword length n (with an MCS: rounded down to a multiple of 24 bits)."""
    channel_uses: int | None = None
    """A budget: the channel uses (resource elements that carry a payload: coded bits, or two analog values
    each; pilots and cyclic prefix not charged) one payload may take (link_models.budget). An analog payload
    is repeated and combined into exactly this many; a digital one goes as the best setting that the link's
    fit rule lets in, with HARQ rounds while they fit. None: no budget."""

    RANGES: ClassVar[dict[str, tuple[Any, float, float]]] = {
        "mcs_table": (validate.integer, 1, 4), "code_rate": (validate.number, 0.1, 0.95),
        "codeword_bits": (validate.integer, 64, 8448), "subcarrier_spacing_khz": (validate.number, 15, 240),
        "fft_size": (validate.integer, 12, 4096), "num_ofdm_symbols": (validate.integer, 4, 28),
        "cp_length": (validate.integer, 0, 1024)}
    """Each numeric setting's check and range (a subclass adds its own)."""

    def validate(self, where: str):
        """This configuration, checked (InputError naming `where`, e.g. "[downlink]")."""
        _check_choices(self, CHOICES, where)
        _mcs_index(self.mcs, where)
        if self.snr_db is not None:
            validate.number("snr_db", self.snr_db, -40, 60, where=where)
        elif self.channel != Channel.IDEAL:
            raise InputError(f"config {where}: snr_db needs a value on channel {self.channel!r}; no noise is "
                             f"channel 'ideal'")
        for name, (check, low, high) in self.RANGES.items():
            check(name, getattr(self, name), low, high, where=where)
        if self.channel_uses is not None:
            validate.integer("channel_uses", self.channel_uses, 1, 1 << 30, where=where)
        return self

    @property
    def info_bits(self) -> int:
        """LDPC k for this rate and codeword length."""
        return int(round(self.codeword_bits * self.code_rate))

    def as_link_config(self, *, digital: bool, max_transmissions: int = 1, arq_max: int = 0,
                       bler_table: str | None = None) -> LinkConfig:
        """The LinkConfig of this link: the ideal channel noiseless (snr_db None); a `digital` link carries
        the MCS (resolved for snr_db by `LinkConfig.resolved()`, from `bler_table` if given: a radio's own
        table), `max_transmissions` (HARQ) and `arq_max`; an analog one neither."""
        return LinkConfig(modulation=self.modulation, code="ldpc", k=self.info_bits, n=self.codeword_bits,
                          channel=self.channel, estimator=self.estimator,
                          snr_db=effective_snr_db(self.channel, self.snr_db),
                          fft_size=self.fft_size if self.prb is None else 12 * self.prb,
                          num_ofdm_symbols=self.num_ofdm_symbols,
                          subcarrier_spacing_khz=self.subcarrier_spacing_khz, cp_length=self.cp_length,
                          mcs=_mcs_index(self.mcs, "link") if digital else None, mcs_table=self.mcs_table,
                          max_transmissions=max_transmissions if digital else 1,
                          bler_table=bler_table if digital else None, fading=self.fading, speed_mps=self.speed_mps,
                          arq_max=arq_max if digital else 0)


@dataclass(frozen=True)
class LinkConfig(LinkSettings):
    """Settings of one OFDM link, as configured; frozen and validated on construction (InputError with a
    one-line fix). What a link transmits with is `resolved()`: a `ResolvedLink` (the MCS applied).

    The frame is one Sionna ResourceGrid: `num_ofdm_symbols` x `fft_size` resource elements, one stream,
    pilots on every subcarrier of the OFDM symbols in `pilot_symbols` (Kronecker pattern).
    With `code="none"` a block is `k` uncoded bits (the resolved `n` is `k`; the bit stream is zero-padded to
    whole symbols).

    No noise is `snr_db = None` (and no `ebno_db`): the ideal channel, which stores None whatever SNR it is
    given (meg_common.vocabulary.noiseless). Every other channel needs exactly one of snr_db / ebno_db.

    Link adaptation (`mcs`): None uses `modulation`, `k` and `n` as given. An MCS index of TS 38.214 table
    `mcs_table`, or "auto" (the highest MCS whose BLER at `snr_db` is at most `bler_target` in the shipped
    BLER table measured with this config's `estimator`, or the file `bler_table`; below the table's lowest
    MCS, table 3's low-SE rows; link_models.mcs.LinkAdaptation), sets the resolved `modulation` and `k` from
    the MCS and keeps `n` as the codeword length, rounded down to a multiple of 24 bits (longer at the lowest
    rates, so a codeword carries at least MCS_MIN_INFO_BITS information bits); the resolved `mcs_index` tells
    which MCS was chosen, `mcs_table_used` of which table. Rates below 1/5 (the lowest MCSs) use the rate-1/5
    LDPC mother code (`ldpc_n` bits) and repeat its bits cyclically up to `n`, as 5G's circular buffer does.
    `max_transmissions` > 1 turns on HARQ (chase combining, link_models.digital): each codeword carries a
    CRC24B and is sent again until it passes.
    "table" is the open-loop rule above at the configured `snr_db`. "auto" is outer-loop link adaptation
    (OLLA, link_models.state): transport block by transport block, the MCS the same BLER table allows at the
    receiver's reported SNR (its own estimate, `report_delay_frames` old) less an offset that every
    first-transmission ACK/NACK moves toward `bler_target` (steps `olla_step_db` up, `olla_step_db` target /
    (1 - target) down); it resolves to the table's MCS at `snr_db` (the first report a UE gives) and sends
    through link_models.scheduled. `arq_max` > 0: RLC acknowledged mode after HARQ, up to `arq_max`
    retransmissions of a codeword whose HARQ failed. `fading` "continuous": TDL/CDL evolve with `speed_mps`
    over a UE's session (link_models.fading); "block": a new draw per frame. OLLA, ARQ and continuous fading
    send in rounds of `harq_rtt_frames` frames (the HARQ round trip, the feedback delay).
    `prb` (1..275): resource blocks per slot; it sets `fft_size` = 12 prb, and with an MCS a transport block
    fills one slot (one frame): its size and code-block segmentation are TS 38.214 5.1.3.2 / 38.212 5.2.2
    (Sionna's `calculate_tb_size` for the frame's data resource elements), each code block one LDPC codeword
    of `k` = the code-block size (its CRC24B included) and `n` = the slot's coded bits / code blocks
    (`ResolvedLink.tb_size`, `num_cb`). Without `prb` a codeword is `n` bits, whatever the grid.
    Estimators: perfect (true channel and true N0), ls, lmmse (both estimate N0 from the pilots).
    """

    estimator: Lowercase = "perfect"   # link-level defaults (LinkSettings has a hop's)
    snr_db: float | None = None
    fft_size: int = 128
    cp_length: int = 9
    mcs: str | int | None = None
    code: str = "ldpc"
    k: int = 1024
    n: int = 2048
    ebno_db: float | None = None
    pilot_symbols: tuple[int, ...] = (2, 11)
    delay_spread_ns: float = 100.0
    carrier_frequency_hz: float = 3.5e9
    repetition: int = 1
    batch: int = 32
    device: str | None = None
    ldpc_iterations: int = 20
    decoder: str = "fast"
    bler_target: float = 0.1
    bler_table: str | None = None
    max_transmissions: int = 1
    arq_max: int = 0
    olla_step_db: float = 1.0
    report_delay_frames: int = 1
    harq_rtt_frames: int = 8
    aggregation: int = 1

    def __post_init__(self) -> None:
        """Normalise the values (lower-case names, typed numbers, no SNR on the ideal channel), check every
        setting, and resolve once to check what depends on the MCS (the result is not stored here)."""
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in CHOICES:
            put(name, str(getattr(self, name)).lower())
        _check_choices(self, CHOICES)
        if self.fading == Fading.CONTINUOUS and not time_varying(self.channel):
            put("fading", Fading.BLOCK.value)  # flat channels do not change in time: nothing to correlate
        put("arq_max", validate.integer("arq_max", self.arq_max, 0, MAX_ARQ))
        put("olla_step_db", validate.number("olla_step_db", self.olla_step_db, 0.01, 10, unit=" dB"))
        put("report_delay_frames", validate.integer("report_delay_frames", self.report_delay_frames, 1, 1000))
        put("harq_rtt_frames", validate.integer("harq_rtt_frames", self.harq_rtt_frames, 1, 1000))
        put("aggregation", validate.choice("aggregation", self.aggregation, AGGREGATION))
        if self.prb is not None:
            put("prb", validate.integer("prb", self.prb, 1, 275))
            put("fft_size", 12 * self.prb)
        if self.aggregation > 1 and self.mcs is None:
            raise InputError(f"aggregation={self.aggregation} repeats an MCS codeword; give an MCS (or aggregation 1)")
        if self.arq_max and self.max_transmissions < 2:
            raise InputError(f"arq_max={self.arq_max}: ARQ retransmits what HARQ could not deliver, so it needs "
                             "HARQ's CRC; set max_transmissions >= 2 (or arq_max 0)")
        for name in ("k", "n", "fft_size", "num_ofdm_symbols", "repetition", "batch", "ldpc_iterations"):
            validate.positive_int(name, getattr(self, name))
        validate.non_negative_int("cp_length", self.cp_length)
        put("max_transmissions", validate.integer("max_transmissions", self.max_transmissions, 1, MAX_TRANSMISSIONS))
        put("mcs", parse_mcs(self.mcs))
        if self.code == "none" and self.mcs is not None:
            raise InputError(f"mcs={self.mcs!r} needs code 'ldpc' (an MCS is a modulation and an LDPC rate); "
                             "use code='ldpc' or mcs=None")
        if self.mcs is not None:
            put("mcs_table", validate.integer("mcs_table", self.mcs_table, 1, 4))
            put("bler_target", validate.number("bler_target", self.bler_target, 0, 1))
            if not 0 < self.bler_target < 1:
                raise InputError(f"bler_target={self.bler_target}: give a BLER target between 0 and 1 (e.g. 0.1)")
            if self.n < MCS_BLOCK:
                raise InputError(f"n={self.n}: an MCS codeword needs at least {MCS_BLOCK} coded bits; choose a larger n")
        put("pilot_symbols", _pilot_indices(self.pilot_symbols, self.num_ofdm_symbols))
        if len(self.pilot_symbols) >= self.num_ofdm_symbols:
            raise InputError("pilot_symbols leave no OFDM symbol for data; use fewer pilot symbols")
        if self.estimator != "perfect" and not self.pilot_symbols:
            raise InputError(f"estimator '{self.estimator}' needs pilot_symbols; give e.g. --pilot-symbols 2,11 "
                             "or use --estimator perfect")
        if self.estimator != "perfect" and self.fft_size < 3:
            raise InputError(f"estimator '{self.estimator}' estimates the noise from the pilots of >= 3 "
                             f"subcarriers; fft_size={self.fft_size} is too small (or use --estimator perfect)")
        for name in ("subcarrier_spacing_khz", "carrier_frequency_hz"):
            validate.positive_float(name, getattr(self, name))
        for name in ("delay_spread_ns", "speed_mps"):
            validate.non_negative_float(name, getattr(self, name))
        if self.channel == Channel.IDEAL:
            put("snr_db", None)   # the ideal channel has no noise: snr_db None is the one convention
            put("ebno_db", None)
        elif (self.snr_db is None) == (self.ebno_db is None):
            raise InputError("give exactly one of snr_db (Es/N0 per resource element) or ebno_db "
                             "(Eb/N0 per information bit); only the ideal channel has no noise")
        for name in ("snr_db", "ebno_db"):
            value = getattr(self, name)
            if value is not None:
                if not validate.is_real(value) or not math.isfinite(value):
                    raise InputError(f"{name}={value!r}: must be a finite number of dB (no noise: channel 'ideal')")
                put(name, float(value))
        if self.mcs in MCS_MODES and self.ebno_db is not None:
            raise InputError(f"mcs '{self.mcs}' picks the MCS for snr_db (Es/N0 per resource element); give snr_db "
                             "instead of ebno_db, or a fixed MCS index")
        if self.device is not None:
            put("device", str(self.device))
            if self.device.split(":")[0] not in DEVICES:
                raise InputError(f"device '{self.device}': use 'cpu', 'cuda', 'cuda:N' or None (automatic)")
        self.resolved()  # what depends on the MCS (LDPC limits, HARQ's CRC, whole symbols) fails here, not later

    def resolved(self) -> ResolvedLink:
        """What a link transmits with: this configuration with its MCS applied (a new frozen value; the
        same for equal configurations)."""
        return _resolve(self)

    @property
    def olla(self) -> bool:
        """True with outer-loop link adaptation (mcs 'auto')."""
        return self.mcs == McsMode.AUTO

    @property
    def scheduled(self) -> bool:
        """True when the link sends in HARQ rounds with per-UE state (OLLA, ARQ or continuous fading:
        link_models.scheduled); False: the one-shot path of link_models.digital."""
        return self.olla or self.arq_max > 0 or self.fading == Fading.CONTINUOUS

    # --- derived quantities (of the configuration; a ResolvedLink has the same ones after the MCS) ---------
    @property
    def noiseless(self) -> bool:
        return noiseless(self.snr_db) and self.ebno_db is None

    @property
    def noise_variance(self) -> float:
        """Complex noise variance N0 per resource element for unit-energy symbols (0 without noise)."""
        return self.resolved().noise_variance

    def with_snr(self, *, snr_db: float | None = None, ebno_db: float | None = None) -> LinkConfig:
        """A copy at another operating point (exactly one of snr_db / ebno_db)."""
        return dataclasses.replace(self, snr_db=snr_db, ebno_db=ebno_db)


@dataclass(frozen=True)
class ResolvedLink:
    """A `LinkConfig` with its MCS applied: the modulation and code a link transmits with (`LinkConfig.
    resolved()`). `config` is the configuration as given; every setting the MCS does not decide reads
    through to it (`resolved.channel`, `resolved.snr_db`, ...)."""

    config: LinkConfig
    modulation: str
    k: int
    n: int
    ldpc_n: int
    """Length of the LDPC code actually built: n, or the rate-1/5 mother code repeated up to n."""
    mcs_index: int | None = None
    """The TS 38.214 MCS chosen (None without link adaptation)."""
    mcs_table_used: int | None = None
    """The MCS table of mcs_index (mcs_table, or 3 where auto fell back to its low-SE rows)."""
    tb_size: int | None = None
    """With `prb` and an MCS: the TS 38.214 transport block size of one slot (bits)."""
    num_cb: int = 1
    """With `prb` and an MCS: code blocks (codewords) per transport block."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "config":  # copy / pickle probe before the fields exist
            raise AttributeError(name)
        return getattr(self.config, name)

    def resolved(self) -> ResolvedLink:
        return self

    @property
    def bits_per_symbol(self) -> int:
        return MODULATIONS[self.modulation]

    @property
    def code_rate(self) -> float:
        return self.k / self.n

    @property
    def noiseless(self) -> bool:
        return self.config.noiseless

    @property
    def es_no_db(self) -> float | None:
        """Es/N0 per resource element in dB (from snr_db, or from ebno_db via bits per symbol and code rate);
        None without noise."""
        if self.snr_db is not None:
            return float(self.snr_db)
        if self.ebno_db is None:
            return None
        return float(self.ebno_db) + 10 * math.log10(self.bits_per_symbol * self.code_rate)

    @property
    def eb_no_db(self) -> float | None:
        """Eb/N0 per information bit on the data resource elements, in dB; None without noise."""
        if self.ebno_db is not None:
            return float(self.ebno_db)
        if self.snr_db is None:
            return None
        return float(self.snr_db) - 10 * math.log10(self.bits_per_symbol * self.code_rate)

    @property
    def noise_variance(self) -> float:
        """Complex noise variance N0 per resource element for unit-energy symbols (0 without noise)."""
        es_no_db = self.es_no_db
        return 0.0 if es_no_db is None else 10 ** (-es_no_db / 10)

    def with_snr(self, *, snr_db: float | None = None, ebno_db: float | None = None) -> ResolvedLink:
        """The configuration at another operating point, resolved again (auto picks the MCS for it)."""
        return self.config.with_snr(snr_db=snr_db, ebno_db=ebno_db).resolved()

    def to_dict(self) -> dict[str, Any]:
        """The configuration (`config.to_dict()`) with what the MCS decided: modulation, k, n, ldpc_n,
        mcs_index, mcs_table_used."""
        return {**self.config.to_dict(), "modulation": self.modulation, "k": self.k, "n": self.n,
                "ldpc_n": self.ldpc_n, "mcs_index": self.mcs_index, "mcs_table_used": self.mcs_table_used,
                "tb_size": self.tb_size, "num_cb": self.num_cb}


def resolve(cfg: LinkConfig | ResolvedLink) -> ResolvedLink:
    """The ResolvedLink of a configuration (a ResolvedLink as it is); InputError for anything else."""
    if isinstance(cfg, ResolvedLink):
        return cfg
    if isinstance(cfg, LinkConfig):
        return cfg.resolved()
    raise InputError(f"a link needs a LinkConfig, not {type(cfg).__name__}; build one with LinkConfig(...)")


@functools.lru_cache(maxsize=4096)
def _resolve(cfg: LinkConfig) -> ResolvedLink:
    """modulation and k from the MCS (fixed, or chosen for snr_db); n rounded to MCS_BLOCK bits and long
    enough for MCS_MIN_INFO_BITS; then the checks of what a code can build."""
    modulation, k, n = cfg.modulation, cfg.k, cfg.n
    mcs_index = mcs_table_used = tb_size = None
    num_cb = 1
    if cfg.code == "none":
        n = k
    elif cfg.mcs is not None:
        from link_models.mcs import mcs

        if cfg.mcs in MCS_MODES:
            # the open loop reads its channel's table (at the mean SNR); OLLA's inner loop the AWGN one (at the
            # reported, instantaneous SNR), so its first MCS is that table's too
            channel = cfg.channel if cfg.mcs == McsMode.TABLE else Channel.AWGN.value
            adaptation = link_adaptation(cfg.mcs_table, cfg.bler_target, cfg.bler_table, cfg.estimator, channel)
            row = adaptation.mcs(min(max(numeric_snr_db(cfg.snr_db), -100.0), 100.0))
        else:
            row = mcs(cfg.mcs, cfg.mcs_table)
        mcs_index, mcs_table_used, modulation = row.index, row.table, row.modulation
        if cfg.prb is not None:  # one transport block per slot, segmented into code blocks (TS 38.212 5.2.2)
            from link_models.mcs import transport_block

            coded = (cfg.num_ofdm_symbols - len(cfg.pilot_symbols)) * cfg.fft_size * row.bits_per_symbol
            tb = transport_block(row, coded)
            tb_size, num_cb = tb["tb_size"], tb["num_cb"]
            k = tb["cb_size"]
            n = coded // num_cb // row.bits_per_symbol * row.bits_per_symbol
        else:
            nominal_n = n // MCS_BLOCK * MCS_BLOCK
            n = max(nominal_n, math.ceil(MCS_MIN_INFO_BITS / row.code_rate / MCS_BLOCK) * MCS_BLOCK)
            k = max(LDPC_K_MIN, round(row.code_rate * n))
        n *= cfg.aggregation  # slot aggregation: the same k over `aggregation` times the coded bits
    m = MODULATIONS[modulation]
    ldpc_n = n
    if cfg.code == "ldpc":
        if cfg.mcs is not None and k < LDPC_RATE_MIN * n:  # repeat the rate-1/5 mother code
            ldpc_n = 5 * k // m * m
        _check_ldpc(k, ldpc_n)
    if cfg.max_transmissions > 1 and k <= CRC_BITS:
        raise InputError(f"k={k}: HARQ puts a {CRC_BITS}-bit CRC in every codeword, so k must exceed "
                         f"{CRC_BITS}; use a longer codeword or max_transmissions=1")
    if cfg.code == "ldpc" and n % m:
        raise InputError(f"n={n} is not a multiple of the {m} bits per {modulation} symbol; "
                         f"choose n as a multiple of {m} (as 5G NR rate matching does)")
    return ResolvedLink(cfg, modulation, k, n, ldpc_n, mcs_index, mcs_table_used, tb_size, num_cb)


def _check_ldpc(k: int, n: int) -> None:
    if not LDPC_K_MIN <= k <= LDPC_K_MAX:
        raise InputError(f"k={k}: 5G LDPC supports {LDPC_K_MIN} <= k <= {LDPC_K_MAX} information bits; "
                         "choose k in that range (or --code none)")
    if n > LDPC_N_MAX:
        raise InputError(f"n={n}: 5G LDPC supports n <= {LDPC_N_MAX}; choose a smaller n")
    rate = k / n
    if not LDPC_RATE_MIN <= rate <= LDPC_RATE_MAX:
        raise InputError(f"k={k}, n={n}: code rate {rate:.3f} outside 5G LDPC's [1/5, 0.95]; "
                         f"choose n between {math.ceil(k / LDPC_RATE_MAX)} and {5 * k}")


@functools.cache
def link_adaptation(table: int, target: float, bler_table: str | None = None, estimator: str = "perfect",
                    channel: str = "awgn"):
    """The LinkAdaptation of a BLER table file (None: the shipped one measured with `estimator` on `channel`,
    AWGN's where the channel has none) for `table` and `target`, read once per process (a table regenerated
    while a process runs is seen by the next one)."""
    from link_models.mcs import LinkAdaptation

    return LinkAdaptation(table=table, target=target, bler_table=bler_table, estimator=estimator, channel=channel)


def _check_choices(config, choices: dict[str, tuple[str, ...]], where: str | None = None) -> None:
    """Each named setting of `config` that `choices` lists is one of its words."""
    for name, allowed in choices.items():
        if hasattr(config, name):
            validate.choice(name, getattr(config, name), allowed, where=where)


def _mcs_index(value: Any, where: str) -> str | int | None:
    """A configured mcs as LinkConfig takes it: 'auto', 'table', an index of table 1, or None for 'none'."""
    from link_models.mcs import MAX_INDEX

    mcs = parse_mcs(value)
    if isinstance(mcs, int):
        validate.integer("mcs", mcs, 0, MAX_INDEX[1], where=where)
    return mcs


def parse_mcs(value) -> str | int | None:
    """None | 'auto' (OLLA) | 'table' (open loop) | an MCS index (int, or digits as text from a command line)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in MCS_MODES:
            return text
        if text.isdigit():
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return int(value)
    raise InputError(f"mcs={value!r}: give 'auto' (outer-loop link adaptation), 'table' (open-loop from the "
                     "BLER table), an MCS index 0..28, or none "
                     "(modulation, k and n as given)")


def _pilot_indices(value, num_ofdm_symbols: int) -> tuple[int, ...]:
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise InputError(f"pilot_symbols '{value}': expected OFDM symbol indices like '2,11'") from None
    indices = tuple(value)
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < num_ofdm_symbols:
            raise InputError(f"pilot symbol index {i!r}: must be an integer in [0, {num_ofdm_symbols - 1}] "
                             f"(num_ofdm_symbols={num_ofdm_symbols})")
    if len(set(indices)) != len(indices):
        raise InputError(f"pilot_symbols {list(indices)}: indices repeat; give each OFDM symbol once")
    return tuple(sorted(indices))
