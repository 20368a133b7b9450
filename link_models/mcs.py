"""5G NR modulation and coding schemes (TS 38.214) and link adaptation from a measured BLER table.

- `mcs(index, table)` / `mcs_table(table)`: the MCS tables of TS 38.214 5.1.3.1 (PDSCH; PUSCH without
  transform precoding uses the same ones) through Sionna's `decode_mcs_index`, in this project's vocabulary:
  modulation qpsk | 16qam | 64qam | 256qam, code rate R, spectral efficiency m R bits per channel use.
  Tables 1 (up to 64-QAM), 2 (up to 256-QAM) and 3 (low spectral efficiency); table 4 needs 1024-QAM,
  which the links do not have.
- `transport_block(mcs, num_coded_bits)`: the transport block size for a resource (Sionna's
  `calculate_tb_size`, TS 38.214 5.1.3.2).
- `BlerTable`: BLER against SNR per MCS, measured with this project's `DigitalLink` on a protocol hop's link
  (AWGN, one resource block, n = 1008) with each channel estimator, one file per estimator
  (`link_models/data/bler_table_{perfect,lmmse,ls}.json`, made by scripts/make_bler_table.py);
  `BlerTable.shipped(estimator)` reads the one the link uses. Curves a file lacks (not measured yet) come
  from the first table, `bler_table.json` (perfect CSI, n = 3072, 128 subcarriers: optimistic for a hop).
- `LinkAdaptation`: the scheduler's rule: the highest MCS whose BLER at the SNR is at most the target
  (default 10 %), interpolated linearly in log10 BLER between measured points; if none of the table's MCSs
  qualifies, the highest qualifying row of the low-spectral-efficiency table 3 below them (as a scheduler
  moves a cell-edge UE to MCS table qam64LowSE), else the lowest such row; or a fixed MCS index.

Only `mcs`, `mcs_table` and `transport_block` import Sionna; the table and the link adaptation read JSON.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from meg_common import validate
from meg_common.errors import InputError
from meg_common.io import read_json
from meg_common.vocabulary import BITS_PER_SYMBOL

MODULATION_NAMES = {bits: str(name) for name, bits in BITS_PER_SYMBOL.items()}
"""Bits per symbol -> modulation name (the MCS tables use 2, 4, 6 and 8)."""
TABLES = (1, 2, 3)
MAX_INDEX = {1: 28, 2: 27, 3: 28}
DATA = Path(__file__).parent / "data"
DEFAULT_BLER_TABLE = DATA / "bler_table.json"  # the first table (perfect CSI, n = 3072): fallback for missing curves
LOW_SE_TABLE = 3
LDPC_RATE_MIN = 1 / 5  # below it 5G repeats coded bits (circular buffer); LinkConfig cannot build such a code


@dataclass(frozen=True)
class MCS:
    """One row of a TS 38.214 MCS table."""

    index: int
    table: int
    bits_per_symbol: int
    code_rate: float  # target code rate R (x 1024 in the standard's tables)

    @property
    def modulation(self) -> str:
        return MODULATION_NAMES[self.bits_per_symbol]

    @property
    def spectral_efficiency(self) -> float:
        """Information bits per channel use, m R."""
        return self.bits_per_symbol * self.code_rate

    @property
    def shannon_snr_db(self) -> float:
        """The SNR at which the AWGN capacity equals the spectral efficiency: 10 log10(2^(m R) - 1)."""
        return 10 * math.log10(2 ** self.spectral_efficiency - 1)

    @property
    def key(self) -> str:
        """'m:R x 1024', the same for equal rows of different tables (they share one BLER curve)."""
        return f"{self.bits_per_symbol}:{self.code_rate * 1024:g}"

    def block(self, n: int) -> tuple[int, int]:
        """(k, n) of an LDPC codeword of about `n` coded bits at this rate: n rounded down to whole symbols,
        k = round(R n). InputError when R < 1/5 (5G would repeat coded bits; the links cannot)."""
        n = validate.positive_int("n", n) // self.bits_per_symbol * self.bits_per_symbol
        k = round(self.code_rate * n)
        if self.code_rate < LDPC_RATE_MIN:
            raise InputError(f"MCS {self.index} of table {self.table} has code rate {self.code_rate:.3f} < 1/5, "
                             "which needs 5G's bit repetition; use an MCS with rate >= 0.2")
        return k, n

    def to_dict(self) -> dict:
        return {"index": self.index, "table": self.table, "modulation": self.modulation,
                "bits_per_symbol": self.bits_per_symbol, "code_rate": self.code_rate,
                "spectral_efficiency": self.spectral_efficiency}


def _check_table(table: int) -> int:
    if table == 4:
        raise InputError("MCS table 4 needs 1024-QAM, which the links do not have; use table 1, 2 or 3")
    return int(validate.choice("table", table, TABLES))


@functools.cache
def mcs_table(table: int = 1) -> tuple[MCS, ...]:
    """Every MCS of a TS 38.214 PDSCH table (1, 2 or 3), from Sionna's `decode_mcs_index`."""
    import torch

    from meg_common.rng import import_sionna

    table = _check_table(table)
    decode = import_sionna().nr.utils.decode_mcs_index
    rows = []
    for index in range(32):
        try:
            m, r = decode(index, table_index=table, is_pusch=False, device="cpu")
        except ValueError:  # indices past the table's last modulation row are reserved
            break
        rate = round(float(torch.as_tensor(r)) * 2048) / 2048  # the standard's R x 1024 in steps of 0.5
        rows.append(MCS(index, table, int(m), rate))
    return tuple(rows)


def mcs(index: int, table: int = 1) -> MCS:
    """The MCS `index` of a TS 38.214 table; InputError naming the valid range otherwise."""
    rows = mcs_table(table)
    index = validate.integer("mcs_index", index, 0, len(rows) - 1)
    return rows[index]


def transport_block(m: MCS, num_coded_bits: int) -> dict:
    """Transport block of TS 38.214 5.1.3.2 for `num_coded_bits` (one layer): tb_size, cb_size, num_cb,
    tb_crc_length, cb_crc_length (bits)."""
    from meg_common.rng import import_sionna

    num_coded_bits = validate.positive_int("num_coded_bits", num_coded_bits)
    calc = import_sionna().nr.utils.calculate_tb_size
    tb, cb, num_cb, tb_crc, cb_crc = calc(modulation_order=m.bits_per_symbol, target_coderate=m.code_rate,
                                          num_coded_bits=num_coded_bits, return_cw_length=False, device="cpu")
    return {"tb_size": int(tb), "cb_size": int(cb), "num_cb": int(num_cb), "tb_crc_length": int(tb_crc),
            "cb_crc_length": int(cb_crc)}


def shipped_table_path(estimator: str, channel: str = "awgn") -> Path:
    """The shipped BLER table measured with `estimator` (perfect | ls | lmmse) on `channel` (awgn:
    bler_table_{estimator}.json; a fading channel: bler_table_{estimator}_{channel}.json)."""
    suffix = "" if channel == "awgn" else f"_{channel}"
    return DATA / f"bler_table_{estimator}{suffix}.json"


class BlerTable:
    """Measured BLER against SNR (Es/N0 per RE, dB) per MCS, from the JSON scripts/make_bler_table.py writes.

    Between measured points the BLER is interpolated linearly in log10 BLER; a point without block errors
    counts as 0.5 / codewords; the curve is made non-increasing in SNR (a running minimum) so noise in the
    measurement cannot reorder MCSs. Below the first point the BLER is 1, above the last it stays at the
    last point's value (both conservative).
    """

    def __init__(self, data: dict | str | Path | None = None):
        if data is None or isinstance(data, str | Path):
            path = Path(data) if data is not None else DEFAULT_BLER_TABLE
            if not path.is_file():
                raise InputError(f"BLER table {path} not found; make it with "
                                 "`python scripts/make_bler_table.py --out link_models/data/bler_table.json`")
            data = read_json(path)
        try:
            self.settings = data.get("settings", {})
            self.tables = {int(t): {int(i): key for i, key in rows.items()} for t, rows in data["tables"].items()}
            self.mcs_info = {int(t): {int(i): info for i, info in rows.items()}
                             for t, rows in data.get("mcs", {}).items()}
            self._curves = {}
            for key, curve in data["curves"].items():
                points = sorted((p for p in curve["points"] if p["codewords"] > 0), key=lambda p: p["snr_db"])
                if points:
                    snr = np.array([p["snr_db"] for p in points], dtype=float)
                    bler = np.array([max(p["block_errors"], 0.5) / p["codewords"] for p in points])
                    self._curves[key] = (snr, np.log10(np.minimum.accumulate(np.minimum(bler, 1.0))))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise InputError(f"BLER table is malformed ({type(exc).__name__}: {exc}); regenerate it with "
                             "scripts/make_bler_table.py") from None

    @classmethod
    def shipped(cls, estimator: str = "perfect", channel: str = "awgn") -> BlerTable:
        """The shipped table for `estimator`: its finished curves, and for MCSs it has no finished curve of,
        the curves of DEFAULT_BLER_TABLE (`sources` says which curve came from where). On a fading
        `channel` with a table of its own (scripts/make_bler_table.py --channel): only that table's finished
        curves (its MCSs are the ones the open loop may pick there; no AWGN curve is mixed in); without
        one, the AWGN table (`channel` attribute says which)."""
        channel = str(channel).lower()
        if channel != "awgn" and shipped_table_path(str(estimator).lower(), channel).is_file():
            return _shipped_channel(str(estimator).lower(), channel)
        return _shipped(str(estimator).lower())

    def indices(self, table: int = 1) -> list[int]:
        """MCS indices of `table` that have a measured curve, ascending."""
        rows = self.tables.get(int(table), {})
        return sorted(i for i, key in rows.items() if key in self._curves)

    def bler(self, index: int, snr_db: float, table: int = 1) -> float:
        """Interpolated BLER of MCS `index` of `table` at `snr_db`."""
        key = self.tables.get(int(table), {}).get(int(index))
        if key not in self._curves:
            have = self.indices(table)
            raise InputError(f"the BLER table has no curve for MCS {index} of table {table}; it has "
                             f"{have if have else 'none of that table'} (regenerate with --tables {table})")
        snr, log_bler = self._curves[key]
        snr_db = float(snr_db)
        if snr_db < snr[0]:
            return 1.0
        return float(10 ** np.interp(snr_db, snr, log_bler))


@functools.cache
def _shipped_channel(estimator: str, channel: str) -> BlerTable:
    path = shipped_table_path(estimator, channel)
    own = read_json(path)
    done = {key: curve for key, curve in own.get("curves", {}).items() if curve.get("done")}
    table = BlerTable({**own, "curves": done})
    table.sources = dict.fromkeys(table._curves, path.name)
    table.channel = channel
    return table


@functools.cache
def _shipped(estimator: str) -> BlerTable:
    fallback = read_json(DEFAULT_BLER_TABLE) if DEFAULT_BLER_TABLE.is_file() else None
    path = shipped_table_path(estimator)
    if not path.is_file():
        if fallback is None:
            raise InputError(f"no BLER table for estimator '{estimator}': make it with "
                             f"`python scripts/make_bler_table.py --estimator {estimator}`")
        table = BlerTable(fallback)
        table.sources = dict.fromkeys(table._curves, DEFAULT_BLER_TABLE.name)
        return table
    own = read_json(path)
    done = {key: curve for key, curve in own.get("curves", {}).items() if curve.get("done")}
    data = {"settings": own.get("settings", {}), "curves": dict(done), "tables": {}, "mcs": {}}
    for source in (fallback or {}, own):  # own rows win
        for name in ("tables", "mcs"):
            for t, rows in source.get(name, {}).items():
                data[name].setdefault(t, {}).update(rows)
    for key, curve in (fallback or {}).get("curves", {}).items():
        data["curves"].setdefault(key, curve)
    table = BlerTable(data)
    table.sources = {key: (path.name if key in done else DEFAULT_BLER_TABLE.name) for key in table._curves}
    return table


@dataclass
class LinkAdaptation:
    """Picks the MCS for an SNR: `select(snr_db) -> index` (see the module doc for the rule).

    table: TS 38.214 table (1, 2, 3); target: BLER target; fixed: an MCS index to use at every SNR
    (None: adapt); bler_table: a BlerTable, a path, or None for the shipped table of `estimator`.
    """

    table: int = 1
    target: float = 0.1
    fixed: int | None = None
    bler_table: BlerTable | str | Path | None = None
    estimator: str = "perfect"
    channel: str = "awgn"
    """Whose shipped table (bler_table None): the channel's own where one is shipped, else AWGN's."""

    def __post_init__(self) -> None:
        self.table = _check_table(self.table)
        self.target = validate.number("target", self.target, 0, 1)
        if not 0 < self.target < 1:
            raise InputError(f"target={self.target}: the BLER target must be between 0 and 1 (e.g. 0.1)")
        if self.fixed is not None:
            self.fixed = validate.integer("mcs_index", self.fixed, 0, MAX_INDEX[self.table])
            return  # a fixed MCS needs no table
        if self.bler_table is None:
            self.bler_table = BlerTable.shipped(self.estimator, self.channel)
        elif not isinstance(self.bler_table, BlerTable):
            self.bler_table = BlerTable(self.bler_table)
        if not self.bler_table.indices(self.table):
            raise InputError(f"the BLER table has no curve for MCS table {self.table}; regenerate it with "
                             f"scripts/make_bler_table.py --tables {self.table}, or give a fixed MCS index")

    def __call__(self, snr_db: float) -> int:
        return self.select(snr_db)

    def select(self, snr_db: float) -> int:
        """The highest MCS index whose BLER at `snr_db` is <= target; the lowest measured one if none is."""
        if self.fixed is not None:
            return self.fixed
        snr_db = validate.number("snr_db", snr_db, -100, 100, unit=" dB")
        indices = self.bler_table.indices(self.table)
        ok = [i for i in indices if self.bler_table.bler(i, snr_db, self.table) <= self.target]
        return max(ok) if ok else min(indices)

    def mcs(self, snr_db: float) -> MCS:
        """The selected MCS with its modulation and code rate; where no MCS of the table meets the target, a
        row of the low-SE table 3 with a lower spectral efficiency than the table's lowest (if the BLER table
        has them; see the module doc)."""
        index = self.select(snr_db)
        if self.fixed is not None or self.table == LOW_SE_TABLE:
            return mcs(index, self.table)
        table, low = self.bler_table, LOW_SE_TABLE
        if table.bler(index, snr_db, self.table) <= self.target:
            return mcs(index, self.table)
        floor = min(mcs(i, self.table).spectral_efficiency for i in table.indices(self.table))
        if not table.indices(low) and str(self.channel).lower() != "awgn":
            # a fading channel's own table without low-SE rows: below its lowest MCS, the AWGN table's low-SE
            # rows decide (HARQ covers what the fading adds: a 24-byte control message at -10 dB on TDL-A
            # arrived 60/60 at table 3's MCS 0, and 38/64 at table 1's MCS 0, the fading table's lowest row)
            table = BlerTable.shipped(self.estimator, "awgn")
        below = [i for i in table.indices(low) if mcs(i, low).spectral_efficiency < floor - 1e-9]
        if not below:
            return mcs(index, self.table)
        ok = [i for i in below if table.bler(i, snr_db, low) <= self.target]
        return mcs(max(ok) if ok else min(below), low)
