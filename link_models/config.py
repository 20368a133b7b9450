"""LinkConfig: every setting of a link in one validated dataclass (no Sionna import, so the CLI stays fast).

SNR conventions (see docs/link-models.md):
- `snr_db` is Es/N0 per resource element: unit-energy symbols, complex noise variance N0 per RE.
- `ebno_db` is Eb/N0 per information bit on the data resource elements (the textbook definition),
  Es/N0 = Eb/N0 * bits_per_symbol * code_rate. Pilot and cyclic-prefix overheads are not folded into
  Eb/N0 (unlike Sionna's `ebnodb2no(..., resource_grid=...)`); they are reported separately in LinkStats,
  so uncoded AWGN results line up with the closed forms.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from meg_common import validate
from meg_common.config import ConfigMixin
from meg_common.errors import InputError

MODULATIONS: dict[str, int] = {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}
CODES = ("ldpc", "none")
ESTIMATORS = ("perfect", "ls", "lmmse")
CHANNELS = ("ideal", "awgn", "rayleigh",
            *(f"tdl-{x}" for x in "abcde"), *(f"cdl-{x}" for x in "abcde"))
DEVICES = ("cpu", "cuda")
DECODERS = ("fast", "sionna")  # fast: link_models.ldpc_fast (CPU; Sionna's is used on CUDA devices)

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
MAX_TRANSMISSIONS = 16


@dataclass
class LinkConfig(ConfigMixin):
    """Settings of one OFDM link; validated on construction (InputError with a one-line fix).

    The frame is one Sionna ResourceGrid: `num_ofdm_symbols` x `fft_size` resource elements, one stream,
    pilots on every subcarrier of the OFDM symbols in `pilot_symbols` (Kronecker pattern).
    With `code="none"` a block is `k` uncoded bits (`n` is set to `k`; the bit stream is zero-padded to whole
    symbols).

    Link adaptation (`mcs`): None uses `modulation`, `k` and `n` as given. An MCS index of TS 38.214 table
    `mcs_table`, or "auto" (the highest MCS whose BLER at `snr_db` is at most `bler_target` in the shipped
    BLER table measured with this config's `estimator`, or the file `bler_table`; below the table's lowest
    MCS, table 3's low-SE rows; link_models.mcs.LinkAdaptation), sets `modulation` and `k` from the MCS and
    keeps `n` as the codeword length, rounded down to a multiple of 24 bits (longer at the lowest rates, so a
    codeword carries at least MCS_MIN_INFO_BITS information bits); `mcs_index` tells which MCS was
    chosen, `mcs_table_used` of which table. Rates
    below 1/5 (the lowest MCSs) use the rate-1/5 LDPC mother code (`ldpc_n` bits) and repeat its bits
    cyclically up to `n`, as 5G's circular buffer does. `max_transmissions` > 1 turns on HARQ (chase
    combining, link_models.digital): each codeword carries a CRC24B and is sent again until it passes.
    Estimators: perfect (true channel and true N0), ls, lmmse (both estimate N0 from the pilots).
    """

    modulation: str = "qpsk"
    code: str = "ldpc"
    k: int = 1024
    n: int = 2048
    channel: str = "awgn"
    estimator: str = "perfect"
    snr_db: float | None = None
    ebno_db: float | None = None
    fft_size: int = 128
    num_ofdm_symbols: int = 14
    subcarrier_spacing_khz: float = 30.0
    cp_length: int = 9
    pilot_symbols: tuple[int, ...] = (2, 11)
    delay_spread_ns: float = 100.0
    speed_mps: float = 0.0
    carrier_frequency_hz: float = 3.5e9
    repetition: int = 1
    batch: int = 32
    device: str | None = None
    ldpc_iterations: int = 20
    decoder: str = "fast"
    mcs: str | int | None = None
    mcs_table: int = 1
    bler_target: float = 0.1
    bler_table: str | None = None
    max_transmissions: int = 1

    def __post_init__(self) -> None:
        self.modulation = str(self.modulation).lower()
        self.code = str(self.code).lower()
        self.channel = str(self.channel).lower()
        self.estimator = str(self.estimator).lower()
        self.decoder = str(self.decoder).lower()
        validate.choice("modulation", self.modulation, tuple(MODULATIONS))
        validate.choice("code", self.code, CODES)
        validate.choice("channel", self.channel, CHANNELS)
        validate.choice("estimator", self.estimator, ESTIMATORS)
        validate.choice("decoder", self.decoder, DECODERS)
        for name in ("k", "n", "fft_size", "num_ofdm_symbols", "repetition", "batch", "ldpc_iterations"):
            validate.positive_int(name, getattr(self, name))
        validate.non_negative_int("cp_length", self.cp_length)
        self.max_transmissions = validate.integer("max_transmissions", self.max_transmissions, 1, MAX_TRANSMISSIONS)
        self.mcs = parse_mcs(self.mcs)
        self.mcs_index: int | None = None
        self.mcs_table_used: int | None = None  # mcs_table, or 3 where auto fell back to its low-SE rows
        if self.code == "none":
            if self.mcs is not None:
                raise InputError(f"mcs={self.mcs!r} needs code 'ldpc' (an MCS is a modulation and an LDPC rate); "
                                 "use code='ldpc' or mcs=None")
            self.n = self.k
        elif self.mcs is not None:
            self._resolve_mcs()
        self.ldpc_n = self.n
        if self.code == "ldpc":
            if self.mcs is not None and self.k < LDPC_RATE_MIN * self.n:  # repeat the rate-1/5 mother code
                self.ldpc_n = 5 * self.k // self.bits_per_symbol * self.bits_per_symbol
            self._check_ldpc()
        if self.max_transmissions > 1 and self.k <= CRC_BITS:
            raise InputError(f"k={self.k}: HARQ puts a {CRC_BITS}-bit CRC in every codeword, so k must exceed "
                             f"{CRC_BITS}; use a longer codeword or max_transmissions=1")
        m = self.bits_per_symbol
        if self.code == "ldpc" and self.n % m:
            raise InputError(f"n={self.n} is not a multiple of the {m} bits per {self.modulation} symbol; "
                             f"choose n as a multiple of {m} (as 5G NR rate matching does)")
        self.pilot_symbols = _pilot_indices(self.pilot_symbols, self.num_ofdm_symbols)
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
        if (self.snr_db is None) == (self.ebno_db is None):
            if self.channel == "ideal" and self.snr_db is None:
                self.snr_db = math.inf  # noiseless; nothing to configure
            else:
                raise InputError("give exactly one of snr_db (Es/N0 per resource element) or ebno_db "
                                 "(Eb/N0 per information bit)")
        for name in ("snr_db", "ebno_db"):
            value = getattr(self, name)
            if value is not None and (not validate.is_real(value) or math.isnan(value)
                                      or (math.isinf(value) and self.channel != "ideal")):
                raise InputError(f"{name}={value!r}: must be a finite number of dB")
        if self.device is not None:
            self.device = str(self.device)
            if self.device.split(":")[0] not in DEVICES:
                raise InputError(f"device '{self.device}': use 'cpu', 'cuda', 'cuda:N' or None (automatic)")

    def _resolve_mcs(self) -> None:
        """modulation and k from the MCS (fixed, or chosen for snr_db); n rounded to MCS_BLOCK bits and long
        enough for MCS_MIN_INFO_BITS."""
        from link_models.mcs import mcs

        self.mcs_table = validate.integer("mcs_table", self.mcs_table, 1, 4)
        self.bler_target = validate.number("bler_target", self.bler_target, 0, 1)
        if not 0 < self.bler_target < 1:
            raise InputError(f"bler_target={self.bler_target}: give a BLER target between 0 and 1 (e.g. 0.1)")
        if self.n < MCS_BLOCK:
            raise InputError(f"n={self.n}: an MCS codeword needs at least {MCS_BLOCK} coded bits; choose a larger n")
        if self.mcs == "auto":
            if self.snr_db is None and not (self.channel == "ideal" and self.ebno_db is None):
                raise InputError("mcs 'auto' picks the MCS for snr_db (Es/N0 per resource element); give snr_db "
                                 "instead of ebno_db, or a fixed MCS index")
            snr = math.inf if self.snr_db is None else self.snr_db
            if not validate.is_real(snr) or math.isnan(snr):
                raise InputError(f"snr_db={snr!r}: must be a number of dB")
            snr = float(snr)
            adaptation = link_adaptation(self.mcs_table, self.bler_target, self.bler_table, self.estimator)
            row = adaptation.mcs(min(max(snr, -100.0), 100.0))
        else:
            row = mcs(self.mcs, self.mcs_table)
        self.mcs_index = row.index
        self.mcs_table_used = row.table
        self.modulation = row.modulation
        self.nominal_n = self.n // MCS_BLOCK * MCS_BLOCK  # what with_snr starts from, so n never drifts
        self.n = max(self.nominal_n, math.ceil(MCS_MIN_INFO_BITS / row.code_rate / MCS_BLOCK) * MCS_BLOCK)
        self.k = max(LDPC_K_MIN, round(row.code_rate * self.n))

    def _check_ldpc(self) -> None:
        k, n = self.k, self.ldpc_n
        if not LDPC_K_MIN <= k <= LDPC_K_MAX:
            raise InputError(f"k={k}: 5G LDPC supports {LDPC_K_MIN} <= k <= {LDPC_K_MAX} information bits; "
                             "choose k in that range (or --code none)")
        if n > LDPC_N_MAX:
            raise InputError(f"n={n}: 5G LDPC supports n <= {LDPC_N_MAX}; choose a smaller n")
        rate = k / n
        if not LDPC_RATE_MIN <= rate <= LDPC_RATE_MAX:
            raise InputError(f"k={k}, n={n}: code rate {rate:.3f} outside 5G LDPC's [1/5, 0.95]; "
                             f"choose n between {math.ceil(k / LDPC_RATE_MAX)} and {5 * k}")

    # --- derived quantities -------------------------------------------------------------------------------
    @property
    def bits_per_symbol(self) -> int:
        return MODULATIONS[self.modulation]

    @property
    def code_rate(self) -> float:
        return self.k / self.n

    @property
    def es_no_db(self) -> float:
        """Es/N0 per resource element in dB (from snr_db, or from ebno_db via bits per symbol and code rate)."""
        if self.snr_db is not None:
            return float(self.snr_db)
        return float(self.ebno_db) + 10 * math.log10(self.bits_per_symbol * self.code_rate)

    @property
    def eb_no_db(self) -> float:
        """Eb/N0 per information bit on the data resource elements, in dB."""
        if self.ebno_db is not None:
            return float(self.ebno_db)
        return float(self.snr_db) - 10 * math.log10(self.bits_per_symbol * self.code_rate)

    @property
    def noise_variance(self) -> float:
        """Complex noise variance N0 per resource element for unit-energy symbols (0 for the ideal channel)."""
        if self.channel == "ideal":
            return 0.0
        return 10 ** (-self.es_no_db / 10)

    def with_snr(self, *, snr_db: float | None = None, ebno_db: float | None = None) -> LinkConfig:
        """A copy at another operating point (exactly one of snr_db / ebno_db)."""
        values = self.to_dict()
        values.update(snr_db=snr_db, ebno_db=ebno_db, n=getattr(self, "nominal_n", self.n))
        return LinkConfig(**values)


@functools.cache
def link_adaptation(table: int, target: float, bler_table: str | None = None, estimator: str = "perfect"):
    """The LinkAdaptation of a BLER table file (None: the shipped one measured with `estimator`) for `table`
    and `target`, read once per process (a table regenerated while a process runs is seen by the next one)."""
    from link_models.mcs import LinkAdaptation

    return LinkAdaptation(table=table, target=target, bler_table=bler_table, estimator=estimator)


def parse_mcs(value) -> str | int | None:
    """None | 'auto' | an MCS index (int, or digits as text from a command line)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        if text.isdigit():
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return int(value)
    raise InputError(f"mcs={value!r}: give 'auto' (link adaptation), an MCS index 0..28, or none "
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
