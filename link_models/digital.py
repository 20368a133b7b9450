"""The digital link: bits -> 5G LDPC -> QAM -> OFDM frames -> channel -> estimation -> LMMSE -> LDPC -> bits.

Two ways in:
- `link(batch_size, ebno_db=None)` (Sionna `sim_ber` style): `batch_size` random codewords through the
  link, returns (bits, decoded bits), both [batch_size, k]; `sionna.phy.utils.sim_ber(link, ...)` works.
- `link.send_bytes(payload)`: any payload of >= 1 byte, segmented into k-bit blocks (zero-padded tail),
  carried in as many frames as needed, returned with LinkStats.

Scrambling (TS 38.211 7.3.1.1): the coded bits of a pass (after repetition, codewords back to back) are
XORed with the 5G Gold sequence of c_init = n_RNTI 2^15 + n_ID, and the receiver flips the signs of the
LLRs back before combining and decoding (see `scrambling_sequence`). The sequence depends only on these
constants, so sender and receiver built from one LinkConfig agree. Without it a structured payload (zero
padding, flat image regions) sits on few constellation points: at 10 dB (64-QAM, LMMSE) all-zero codewords
failed 92 % of the time against 14 % for random bits.

`link.send_bytes_many(payloads, seeds)` sends several payloads at once, each with its own seed, HARQ and N0
estimate, bit for bit as one `send_bytes` each after `reseed` (OFDMTransport.send_many says what is batched).

Codewords are packed back to back over the data resource elements of consecutive frames (a codeword may
straddle two frames); each call of `cfg.batch` frames' worth of codewords is one batched pass.

Link adaptation: with `cfg.mcs` set, the modulation and code come from the MCS (LinkConfig resolves it);
`set_operating_point` picks again for the new SNR and rebuilds the code when the MCS changes. Codes of rate
below 1/5 send the rate-1/5 mother code (`cfg.ldpc_n` bits) repeated cyclically to `cfg.n` bits; the
receiver adds the LLRs of the copies.

HARQ (`cfg.max_transmissions` > 1, `send_bits` / `send_bytes`): every codeword carries `cfg.k - 24` payload
bits and a CRC24B. After each transmission the receiver adds the new LLRs to those it kept (chase
combining), decodes, and checks the CRC; codewords that fail are sent again (packed into fresh frames), up
to `max_transmissions` times. Every transmission is counted in frames, symbols and airtime; `transmissions`
in the statistics is the most any codeword needed, `codeword_transmissions` their sum.

OLLA (`mcs="auto"`), RLC ARQ (`arq_max`) and time-correlated fading (`fading="continuous"`) send through
link_models.scheduled instead: HARQ rounds, an MCS per round, per-UE state (link_models.state.LinkState)
passed with each payload (`send_bytes(payload, state=...)`, `send_bytes_many(..., states=[...])`). The link
keeps one built code per MCS it has used (`code_for`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit

from link_models.base import OFDMLink
from link_models.coding import build_code
from link_models.config import CRC_BITS, LinkConfig, ResolvedLink
from link_models.modulation import build_modem
from link_models.ofdm import OFDMTransport
from link_models.stats import LinkStats
from meg_common.errors import InputError
from meg_common.rng import import_sionna, preserved_global_rng

SCRAMBLING_RNTI = 1  # n_RNTI and n_ID of the 5G scrambler: any fixed pair, known to both ends
SCRAMBLING_ID = 0


@njit(cache=True)
def _gold_bits(c_init: int, length: int) -> np.ndarray:  # pragma: no cover (compiled; tested against Sionna)
    """TS 38.211 5.2.1's length-31 Gold sequence, the recurrence of Sionna's `generate_prng_seq` compiled."""
    n_c = 1600
    x1 = np.zeros(length + n_c + 31, np.uint8)
    x2 = np.zeros(length + n_c + 31, np.uint8)
    x1[0] = 1
    for k in range(31):
        x2[k] = (c_init >> k) & 1
    for i in range(length + n_c):
        x1[i + 31] = x1[i + 3] ^ x1[i]
        x2[i + 31] = x2[i + 3] ^ x2[i + 2] ^ x2[i + 1] ^ x2[i]
    out = np.empty(length, np.float32)
    for i in range(length):
        out[i] = x1[i + n_c] ^ x2[i + n_c]
    return out


_GOLD: dict[int, np.ndarray] = {}
"""The longest sequence made so far in this process, per c_init: a shorter one is its prefix."""


def _gold(c_init: int, length: int) -> np.ndarray:
    if len(_GOLD.get(c_init, ())) < length:
        _GOLD[c_init] = _gold_bits(c_init, max(4096, 1 << (int(length) - 1).bit_length()))
    return _GOLD[c_init][:length]


def scrambling_sequence(length: int, rnti: int = SCRAMBLING_RNTI, n_id: int = SCRAMBLING_ID) -> np.ndarray:
    """The first `length` bits (0/1, float32) of the scrambling sequence of TS 38.211 7.3.1.1 (PDSCH, codeword
    0): Sionna's Gold sequence `generate_prng_seq` with c_init = n_RNTI 2^15 + n_ID, the sequence Sionna's
    `TB5GScrambler` applies. Not the block itself: it regenerates its sequence (a Python loop, 0.4 s for
    30 kbit, minutes for the megabits of a batched pass) whenever the input length changes, and every pass
    has its own length; here the recurrence is compiled and the sequence kept, grown to the next power of
    two when a longer one is asked for, and a shorter one is its prefix."""
    return _gold(rnti * 2 ** 15 + n_id, int(length))


@dataclass
class Pass:
    """What one batched pass through the link measured."""

    bits_hat: torch.Tensor  # [codewords, k]
    llr: torch.Tensor       # [codewords, ldpc_n] channel LLRs (copies and the prior added), before decoding
    frames: int
    symbols: int            # data symbols that carried coded bits
    sq_error: float         # sum |x_hat - x|^2 over those symbols
    no_eff: float           # sum of the equaliser's effective noise variance over those symbols
    no_est: float | None = None  # the N0 the receiver used (estimated unless the estimator is perfect)
    snr_est: float | None = None  # the receiver's SNR estimate mean |h_hat|^2 / N0_hat (link adaptation reports)


class Code:
    """The encoder, decoder, modem, rate matching and CRC of one resolved configuration (one MCS)."""

    def __init__(self, cfg: ResolvedLink, device: str, crc: bool):
        self.cfg = cfg
        self.encoder, self.decoder = build_code(cfg.code, cfg.k, cfg.ldpc_n, cfg.bits_per_symbol, device,
                                                num_iter=cfg.ldpc_iterations, decoder=cfg.decoder)
        self.mapper, self.demapper = build_modem(cfg.modulation, device)
        self.repeat = (torch.arange(cfg.n, device=device) % cfg.ldpc_n) if cfg.ldpc_n < cfg.n else None
        self.crc_encoder = self.crc_decoder = None
        if crc:
            sionna_crc = import_sionna().fec.crc
            self.crc_encoder = sionna_crc.CRCEncoder("CRC24B", k=cfg.k - CRC_BITS, device=device)
            self.crc_decoder = sionna_crc.CRCDecoder(self.crc_encoder, device=device)
        self.key = code_key(cfg)


def code_key(cfg: ResolvedLink) -> tuple:
    return (cfg.modulation, cfg.k, cfg.n, cfg.ldpc_n, cfg.max_transmissions)


class DigitalLink(OFDMLink):
    """A 5G-LDPC / QAM / OFDM link configured by a LinkConfig; reproducible given `seed`."""

    schemes = ("digital",)

    def build(self, cfg: LinkConfig) -> None:
        self.build_code(cfg)
        self.transport = OFDMTransport(cfg, self.device)

    def build_code(self, cfg: LinkConfig) -> None:
        """Encoder, decoder, modem, rate matching and CRC for cfg's modulation and (k, n): the link's current
        code (`code_for`)."""
        code = self.code_for(cfg)
        self.code = code
        self.encoder, self.decoder = code.encoder, code.decoder
        self.mapper, self.demapper, self.repeat = code.mapper, code.demapper, code.repeat
        self.crc_encoder, self.crc_decoder = code.crc_encoder, code.crc_decoder
        self._code_key = code.key

    def code_for(self, cfg: LinkConfig | ResolvedLink) -> Code:
        """The built code of a resolved configuration (one per MCS, built once: the 5G code and modem draw
        nothing, so building order does not matter). Scheduled links (OLLA, ARQ) always carry the CRC their
        ACK/NACK needs."""
        cfg = cfg.resolved()
        if not hasattr(self, "_codes"):
            self._codes: dict[tuple, Code] = {}
        key = code_key(cfg)
        if key not in self._codes:
            self._codes[key] = Code(cfg, self.device, crc=cfg.max_transmissions > 1 or cfg.scheduled)
        return self._codes[key]

    def scramble(self, x: torch.Tensor, llr: bool = False) -> torch.Tensor:
        """One pass's coded bits [L] XOR the first L bits of the scrambling sequence (TB5GScrambler's
        operation); `llr`: LLRs [L] with their signs flipped where the sequence is 1 (descrambling)."""
        c = torch.from_numpy(scrambling_sequence(x.shape[-1])).to(device=x.device, dtype=x.dtype)
        return x * (1 - 2 * c) if llr else torch.abs(x - c)

    @property
    def harq(self) -> bool:
        """True when the link retransmits by itself (HARQ); a hop then sends a payload once."""
        return self.cfg.max_transmissions > 1 or self.cfg.scheduled

    @property
    def uses_per_codeword(self) -> int:
        """Channel uses (complex data symbols) one transmission of a codeword takes: n / bits per symbol."""
        return self.cfg.n // self.cfg.bits_per_symbol

    @property
    def payload_bits_per_codeword(self) -> int:
        """Payload bits one codeword carries: k, less the CRC when HARQ is on."""
        return self.cfg.k - (CRC_BITS if self.harq else 0)

    def set_operating_point(self, snr_db: float | None = None, ebno_db: float | None = None) -> None:
        """Move to another SNR; with `mcs="auto"` the MCS is chosen again and the code rebuilt if it changed."""
        super().set_operating_point(snr_db=snr_db, ebno_db=ebno_db)
        if code_key(self.cfg) != self._code_key:
            self.build_code(self.cfg)  # deterministic: the 5G code and modem draw nothing

    @property
    def codewords_per_batch(self) -> int:
        """Codewords that fill `cfg.batch` frames."""
        bits_per_frame = self.transport.data_symbols_per_frame * self.cfg.bits_per_symbol
        return max(1, self.cfg.batch * bits_per_frame // self.cfg.n)

    # --- batched simulation ----------------------------------------------------------------------------------
    def random_bits(self, num_codewords: int) -> torch.Tensor:
        return torch.randint(0, 2, (num_codewords, self.cfg.k), generator=self.generator,
                             device=self.device).to(torch.float32)

    def forward(self, batch_size: int, ebno_db: float | torch.Tensor | None = None,
                snr_db: float | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch_size` random codewords through the link: (bits, decoded bits), both [batch_size, k].

        The signature of Sionna's `sim_ber` Monte-Carlo function: `sim_ber(link, ebno_dbs, batch_size, ...)`
        works. Given `ebno_db` or `snr_db`, the link moves to that operating point first."""
        if ebno_db is not None or snr_db is not None:
            self.set_operating_point(snr_db=None if snr_db is None else float(snr_db),
                                     ebno_db=None if ebno_db is None else float(ebno_db))
        bits = self.random_bits(int(batch_size))
        return bits, self.transmit(bits).bits_hat

    @torch.no_grad()
    def transmit(self, bits: torch.Tensor, prior: torch.Tensor | None = None) -> Pass:
        """One batched pass of codeword bits [codewords, k] (float 0/1) at the current operating point.

        `prior` [codewords, ldpc_n]: LLRs kept from earlier transmissions of the same codewords (HARQ chase
        combining), added to this pass's LLRs before decoding."""
        return self.transmit_many([bits], [prior], [self.generator])[0]

    @torch.no_grad()
    def transmit_many(self, bits: Sequence[torch.Tensor], priors: Sequence[torch.Tensor | None],
                      generators: Sequence[torch.Generator], code: Code | None = None,
                      fading: Sequence | None = None) -> list[Pass]:
        """`transmit` of several groups of codewords at once, group i on frames of its own and drawing its
        channel from generators[i]: one Pass per group, each equal to `transmit` of that group alone with that
        generator. Encoding, mapping, demapping and decoding run once for all groups (they work codeword by
        codeword, symbol by symbol); the channel runs per group (OFDMTransport.send_many says why).

        `code`: the MCS's code (`code_for`; default the link's current one); `fading[i]`: group i's UE channel
        (link_models.fading.FadingState) with continuous fading."""
        code = code or self.code
        ccfg = code.cfg
        m = ccfg.bits_per_symbol
        counts = [int(b.shape[0]) for b in bits]
        with preserved_global_rng():
            coded = code.encoder(torch.cat(list(bits)))
            if code.repeat is not None:
                coded = coded[:, code.repeat]
            sizes = [c * coded.shape[1] for c in counts]
            # each group's stream is padded to whole symbols, as when it goes alone
            streams = [torch.nn.functional.pad(self.scramble(part.reshape(-1)), (0, -size % m))
                       for part, size in zip(coded.split(counts), sizes, strict=True)]
            xs = code.mapper(torch.cat(streams)).split([s.numel() // m for s in streams])
            received = self.transport.send_many(list(xs), self.no, list(generators),
                                                None if fading is None else list(fading))
            snr_est = list(self.transport.snr_est)
            x_hat = torch.cat([r[0] for r in received])
            no_eff = torch.cat([r[1] for r in received])
            llrs = code.demapper(x_hat, no_eff).split([x.shape[0] * m for x in xs])
            combined = []
            for llr, size, count, prior in zip(llrs, sizes, counts, priors, strict=True):
                llr = self.scramble(llr[:size], llr=True).reshape(count, -1)
                if code.repeat is not None:
                    llr = torch.zeros(count, ccfg.ldpc_n, dtype=llr.dtype, device=llr.device) \
                        .index_add_(1, code.repeat, llr)
                combined.append(llr if prior is None else llr + prior)
            bits_hat = code.decoder(torch.cat(combined)).split(counts)
        return [Pass(bits_hat=b, llr=llr, frames=frames, symbols=x.shape[0],
                     sq_error=float((xh - x).abs().square().sum()), no_eff=float(ne.sum()), no_est=no_est,
                     snr_est=est)
                for b, llr, x, (xh, ne, frames, no_est), est in zip(bits_hat, combined, xs, received, snr_est,
                                                                    strict=True)]

    # --- payloads --------------------------------------------------------------------------------------------
    def send_bits(self, bits: torch.Tensor, state=None) -> tuple[torch.Tensor, LinkStats]:
        """A 1-D tensor of 0/1 bits (any length >= 1) through the link: (decoded bits, stats); `state`: the
        UE's LinkState (scheduled links: OLLA, ARQ, continuous fading; None: a session of its own)."""
        return self.send_bits_many([bits], [self.generator], states=[state])[0]

    def send_bits_many(self, payloads: Sequence[torch.Tensor], seeds: Sequence[int | torch.Generator],
                       budgets: Sequence[int | None] | None = None, states: Sequence | None = None
                       ) -> list[tuple[torch.Tensor, LinkStats]]:
        """Several bit vectors in one batched send, vector i drawing from its own generator (`seeds[i]`: an
        int, or a generator that is advanced): per vector what `reseed(seeds[i])` then `send_bits(payloads[i])`
        gives, bit for bit, HARQ included (its own codewords, frames, N0 estimates, retransmissions).

        `budgets[i]` (None: no limit): the channel uses (coded symbols, `uses_per_codeword` a codeword) vector
        i may spend. Its first transmission must fit (InputError otherwise); a HARQ round of retransmissions
        goes out only while every codeword still pending fits in what is left, so it never spends more.
        `stats.crc_failures` says how many codewords the receiver's CRC still rejects at the end.

        The payloads go in lockstep: the j-th pass of every payload still sending is one `transmit_many`,
        and each payload's passes are the ones it makes alone, in the same order, so each generator sees the
        same draws.

        `states[i]`: the LinkState of payload i's UE on a scheduled link (link_models.scheduled, OLLA / ARQ /
        continuous fading), advanced by the send; None (or no `states`) starts a session of its own. A link
        that is not scheduled takes no state (InputError)."""
        if self.cfg.scheduled:
            from link_models.scheduled import send_scheduled

            if budgets is not None and any(b is not None for b in budgets):
                raise InputError("channel-use budgets need a one-shot link: mcs 'table' or an index, no ARQ, "
                                 "block fading")
            bits = [self._check_bits(b) for b in payloads]
            return send_scheduled(self, bits, self.generators(seeds, len(bits)),
                                  list(states) if states is not None else [None] * len(bits))
        if states is not None and any(s is not None for s in states):
            raise InputError("a LinkState goes with a scheduled link (mcs 'auto', arq_max > 0 or continuous "
                             "fading); this link has none of them")
        jobs = [_Job(self._check_bits(b), self) for b in payloads]
        generators = self.generators(seeds, len(jobs))
        limits = list(budgets) if budgets is not None else [None] * len(jobs)
        if len(limits) != len(jobs):
            raise InputError(f"{len(jobs)} payloads for {len(limits)} budgets; give one budget per payload")
        per_cw = self.uses_per_codeword
        for job, limit in zip(jobs, limits, strict=True):
            if limit is not None and job.codewords * per_cw > limit:
                raise InputError(f"{job.codewords} codewords take {job.codewords * per_cw} channel uses, the "
                                 f"budget is {limit}; send less or give more uses")

        def room(i: int) -> bool:  # every pending codeword of payload i fits in what its budget has left
            return limits[i] is None or jobs[i].pending.numel() * per_cw <= limits[i] - jobs[i].sent * per_cw
        step = self.codewords_per_batch
        live = list(range(len(jobs)))
        while live:  # one round: a transmission of every payload's pending codewords
            for i in live:
                jobs[i].transmissions += 1
            rounds = max(math.ceil(jobs[i].pending.numel() / step) for i in live)
            for j in range(rounds):
                group = [i for i in live if j * step < jobs[i].pending.numel()]
                idxs = [jobs[i].pending[j * step:(j + 1) * step] for i in group]
                passes = self.transmit_many([jobs[i].words[idx] for i, idx in zip(group, idxs, strict=True)],
                                            [None if jobs[i].llr is None else jobs[i].llr[idx]
                                             for i, idx in zip(group, idxs, strict=True)],
                                            [generators[i] for i in group])
                for i, idx, p in zip(group, idxs, passes, strict=True):
                    jobs[i].take(idx, p, self.harq)
            if not self.harq:
                break
            words = torch.cat([jobs[i].words_hat[jobs[i].pending] for i in live])
            crc_ok = self.crc_decoder(words)[1].reshape(-1).split([jobs[i].pending.numel() for i in live])
            for i, ok in zip(live, crc_ok, strict=True):
                jobs[i].pending = jobs[i].pending[~ok]
            live = [i for i in live if jobs[i].pending.numel() and jobs[i].transmissions < self.cfg.max_transmissions
                    and room(i)]
        return [self._finish(job) for job in jobs]

    def _check_bits(self, bits) -> torch.Tensor:
        bits = torch.as_tensor(bits).reshape(-1).to(device=self.device, dtype=torch.float32)
        if bits.numel() == 0:
            raise InputError("nothing to send: the payload is empty; give at least one byte")
        if ((bits != 0) & (bits != 1)).any():
            raise InputError("send_bits needs bits: every element must be 0 or 1")
        return bits

    def _finish(self, job: _Job) -> tuple[torch.Tensor, LinkStats]:
        """Decoded bits and statistics of one payload once its transmissions are over."""
        k, num = self.payload_bits_per_codeword, job.bits.numel()
        blocks_hat = job.words_hat if self.crc_decoder is None else job.words_hat[:, :k]
        bits_hat = blocks_hat.reshape(-1)[:num]
        stats = self._stats(job.passes, payload_bits=num, codewords=job.codewords)
        stats.transmissions = job.transmissions
        stats.crc_failures = int(job.pending.numel()) if self.harq else None
        stats.padding_bits = job.codewords * k - num
        stats.bit_errors = int((bits_hat != job.bits).sum())
        stats.ber = stats.bit_errors / num
        stats.block_errors = int((blocks_hat != job.blocks).any(dim=1).sum())
        stats.bler = stats.block_errors / job.codewords
        return bits_hat, stats

    def send_bytes(self, payload: bytes, state=None) -> tuple[bytes, LinkStats]:
        """Bytes through the link (MSB first): (received bytes of the same length, stats); `state`: the UE's
        LinkState on a scheduled link (send_bits_many)."""
        return self.send_bytes_many([payload], [self.generator], states=[state])[0]

    def send_bytes_many(self, payloads: Sequence[bytes], seeds: Sequence[int | torch.Generator],
                        budgets: Sequence[int | None] | None = None, states: Sequence | None = None
                        ) -> list[tuple[bytes, LinkStats]]:
        """Several payloads in one batched send, payload i drawing from its own generator (`seeds[i]`: an int,
        or a generator that is advanced): per payload what `reseed(seeds[i])` then `send_bytes(payloads[i])`
        gives, bit for bit; `budgets`: channel uses per payload; `states`: per payload its UE's LinkState
        (send_bits_many)."""
        bits = [torch.from_numpy(np.unpackbits(_payload_bytes(p)).astype(np.float32)) for p in payloads]
        out = self.send_bits_many(bits, seeds, budgets, states)
        return [(np.packbits(b.to("cpu", torch.uint8).numpy()).tobytes(), stats) for b, stats in out]

    def _stats(self, passes: list[Pass], payload_bits: int, codewords: int) -> LinkStats:
        t = self.transport
        frames = sum(p.frames for p in passes)
        symbols = sum(p.symbols for p in passes)
        sq_error = sum(p.sq_error for p in passes)
        sent = sum(p.bits_hat.shape[0] for p in passes)
        estimates = [p.no_est for p in passes if p.no_est is not None]
        cfg = self.cfg
        return LinkStats(
            mcs_index=cfg.mcs_index, mcs_table=cfg.mcs_table_used, modulation=cfg.modulation,
            code_rate=cfg.code_rate, transmissions=1,
            codeword_transmissions=sent, no_est=sum(estimates) / len(estimates) if estimates else None,
            payload_bits=payload_bits, coded_bits=sent * self.cfg.n,
            data_symbols=frames * t.data_symbols_per_frame, pilot_symbols=frames * t.pilot_symbols_per_frame,
            cp_samples=frames * self.cfg.num_ofdm_symbols * self.cfg.cp_length,
            total_symbols=frames * t.samples_per_frame, frames=frames, codewords=codewords,
            airtime_s=frames * t.frame_duration_s, snr_db=self.cfg.es_no_db, ebno_db=self.cfg.eb_no_db,
            snr_est_db=10 * math.log10(symbols / sq_error) if sq_error > 0 else math.inf,
            noise_var=sum(p.no_eff for p in passes) / symbols)


def _payload_bytes(payload) -> np.ndarray:
    """A payload as uint8 (InputError for what is not bytes or is empty)."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise InputError(f"send_bytes needs bytes, got {type(payload).__name__}")
    data = np.frombuffer(bytes(payload), dtype=np.uint8)
    if data.size == 0:
        raise InputError("nothing to send: the payload is empty; give at least one byte")
    return data


class _Job:
    """One payload of `send_bits_many`: its codewords, what arrived of them, HARQ state and passes."""

    def __init__(self, bits: torch.Tensor, link: DigitalLink):
        k = link.payload_bits_per_codeword
        self.bits = bits
        self.codewords = math.ceil(bits.numel() / k)
        self.blocks = torch.nn.functional.pad(bits, (0, self.codewords * k - bits.numel())).reshape(self.codewords, k)
        self.words = self.blocks if link.crc_encoder is None else link.crc_encoder(self.blocks)
        self.words_hat = torch.zeros_like(self.words)
        self.llr: torch.Tensor | None = None
        self.pending = torch.arange(self.codewords, device=link.device)
        self.passes: list[Pass] = []
        self.transmissions = 0
        self.sent = 0  # codeword transmissions so far

    def take(self, idx: torch.Tensor, p: Pass, harq: bool) -> None:
        """What one pass of codewords `idx` brought: decoded words, and with HARQ the combined LLRs."""
        if harq:
            if self.llr is None:
                self.llr = torch.zeros(self.codewords, p.llr.shape[1], dtype=p.llr.dtype, device=p.llr.device)
            self.llr[idx] = p.llr
        self.words_hat[idx] = p.bits_hat
        self.sent += int(idx.numel())
        p.llr = None  # keep only the combined LLRs
        self.passes.append(p)
