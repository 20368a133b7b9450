"""The scheduled digital link: HARQ rounds with outer-loop link adaptation, RLC ARQ and a UE's continuous channel.

Used by `DigitalLink.send_bits_many` when the configuration is scheduled (`mcs="auto"` (OLLA), `arq_max` > 0
or `fading="continuous"`). Each payload belongs to a UE whose `LinkState` (link_models.state) it carries.

A payload goes in rounds of `harq_rtt_frames` frames (the HARQ round trip: feedback of a round arrives
before the next one starts). In each round, per payload:
1. the receiver's SNR estimates that are at least `report_delay_frames` old are reported to OLLA;
2. HARQ retransmissions of the codewords that failed (same MCS, chase combining) go first;
3. the rest of the round is filled with new codewords (transport blocks of one LDPC codeword each, k - 24
   payload bits + CRC24B) at the MCS OLLA picks now: the BLER table's choice for (last report - offset)
   (`mcs="auto"`), or the configured MCS (`table` / an index);
4. after the round, every codeword's CRC is its ACK/NACK (1 feedback bit each); a first transmission's
   ACK/NACK moves OLLA's offset; a codeword that used its `max_transmissions` HARQ transmissions and still
   fails goes back to RLC (acknowledged mode): its payload bits are queued for new codewords (a fresh HARQ
   process at the current MCS), at most `arq_max` times per bit, with an RLC STATUS PDU on the reverse link;
5. the UE's clock moves by the round (at least `harq_rtt_frames` frames: idle frames wait for feedback).
Codewords of one MCS in one round share a pass (frames back to back); passes of one round follow one another
in time, so a continuous channel (link_models.fading) evolves through them.

Latency (`LinkStats.latency_slots`): frames from the payload's first frame to the end of the pass that
delivered its last codeword (or of its last pass). Batched sends: the payloads go in lockstep rounds, the
j-th pass of every payload in one `transmit_many` call per MCS, each with its own generator and state, so
each payload's draws are those it makes alone (bit for bit `send_bits` of each in turn).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from link_models.config import AGGREGATION, CRC_BITS
from link_models.state import LinkState, TbRecord
from link_models.stats import LinkStats
from meg_common.errors import InputError

STATUS_PDU_BITS = 40  # an RLC AM STATUS PDU with one NACK_SN (TS 38.322 6.2.2.5: 3-byte header + SN fields)


class _Cw:
    """One codeword (transport block): the payload bit ranges it carries, its code, HARQ state."""

    def __init__(self, pieces: list[tuple[int, int, int]], code, words: torch.Tensor, record: TbRecord | None):
        self.pieces = pieces  # (start, length, arq retransmissions so far)
        self.code = code
        self.words = words    # [k] with CRC
        self.words_hat = torch.zeros_like(words)
        self.llr: torch.Tensor | None = None
        self.tx = 0
        self.ok = False
        self.requeued = False  # its bits went back to RLC for new codewords (HARQ failed, ARQ had tries left)
        self.record = record


class _Flow:
    """One payload of a scheduled send."""

    def __init__(self, bits: torch.Tensor, state: LinkState, generator: torch.Generator):
        self.bits = bits
        self.state = state
        self.generator = generator
        self.queue: list[tuple[int, int, int]] = [(0, bits.numel(), 0)]  # bits not yet in a live codeword
        self.cws: list[_Cw] = []
        self.retx: list[_Cw] = []
        self.passes = []
        self.start = state.clock
        self.end = state.clock
        self.feedback_bits = 0
        self.arq = 0
        self.history_start = len(state.history)
        self.offset_start = state.olla.offset_db

    @property
    def busy(self) -> bool:
        return bool(self.queue or self.retx)

    def take(self, count: int) -> list[tuple[int, int, int]]:
        """Up to `count` bits from the head of the queue (RLC concatenation of segments)."""
        out, left = [], count
        while self.queue and left:
            start, length, arq = self.queue[0]
            n = min(length, left)
            out.append((start, n, arq))
            left -= n
            if n == length:
                self.queue.pop(0)
            else:
                self.queue[0] = (start + n, length - n, arq)
        return out


def send_scheduled(link, payloads: Sequence[torch.Tensor], generators: Sequence[torch.Generator],
                   states: Sequence[LinkState | None]) -> list[tuple[torch.Tensor, LinkStats]]:
    """Bit vectors through a scheduled DigitalLink (see the module doc): per payload (decoded bits, stats)."""
    cfg = link.cfg
    if len(states) != len(payloads):
        raise InputError(f"{len(payloads)} payloads for {len(states)} link states; give one state (or None) each")
    given = [id(s) for s in states if s is not None]
    if len(given) != len(set(given)):
        raise InputError("two payloads of one batched send carry the same LinkState; a UE sends one payload at "
                         "a time on a link: send them in turn")
    flows = []
    for bits, generator, state in zip(payloads, generators, states, strict=True):
        if state is None:  # a session of its own: its channel seed from the payload's generator
            seed = int(torch.randint(0, 2 ** 62, (), generator=generator, device=generator.device))
            state = LinkState(seed=seed)
        state.olla.target = cfg.bler_target
        state.olla.delta_up = cfg.olla_step_db
        if state.resumed_report:
            state.olla.report(csi_report_db(link, state))
            state.resumed_report = False
        flows.append(_Flow(bits, state, generator))
    adaptation = None
    if cfg.olla:
        from link_models.config import link_adaptation

        adaptation = link_adaptation(cfg.mcs_table, cfg.bler_target, cfg.bler_table, cfg.estimator)
    transport = link.transport
    per_frame = transport.data_symbols_per_frame
    capacity = cfg.harq_rtt_frames * per_frame  # data symbols of one round
    default_snr = cfg.es_no_db if cfg.es_no_db is not None else 100.0

    live = [f for f in flows if f.busy]
    while live:
        plans = []  # per flow: list of (code, [cw])
        for f in live:
            f.state.deliver_reports()
            groups: dict[tuple, tuple] = {}
            for cw in f.retx:
                groups.setdefault(cw.code.key, (cw.code, []))[1].append(cw)
            used = sum(cw.code.cfg.n // cw.code.cfg.bits_per_symbol for cw in f.retx)
            f.retx = []
            if f.queue:
                if adaptation is not None:
                    snr = f.state.olla.effective_snr_db(default_snr)
                    row, factor = _olla_choice(adaptation, min(max(snr, -100.0), 100.0))
                    rcfg = _with_mcs(cfg, row.index, row.table, factor)
                else:
                    rcfg = cfg
                code = link.code_for(rcfg)
                ccfg = code.cfg
                uses = ccfg.n // ccfg.bits_per_symbol
                k = ccfg.k - CRC_BITS
                need = math.ceil(sum(q[1] for q in f.queue) / k)
                count = min(need, max(0, (capacity - used) // uses))
                if count == 0 and not groups:
                    count = 1
                if count:
                    pieces = [f.take(k) for _ in range(count)]
                    blocks = torch.zeros(count, k, device=link.device)
                    for i, ps in enumerate(pieces):
                        offset = 0
                        for start, length, _ in ps:
                            blocks[i, offset:offset + length] = f.bits[start:start + length]
                            offset += length
                    words = code.crc_encoder(blocks)
                    new = []
                    record: TbRecord | None = None
                    for i, ps in enumerate(pieces):
                        if i % ccfg.num_cb:  # the code blocks of one transport block share its record
                            cw = _Cw(ps, code, words[i], record)
                            f.cws.append(cw)
                            new.append(cw)
                            continue
                        record = TbRecord(frame=f.state.clock, aggregation=ccfg.aggregation, mcs_index=ccfg.mcs_index if ccfg.mcs_index is not None
                                          else -1, mcs_table=ccfg.mcs_table_used or 0,
                                          reported_snr_db=f.state.olla.reported_snr_db
                                          if f.state.olla.reported_snr_db is not None else default_snr,
                                          offset_db=f.state.olla.offset_db)
                        cw = _Cw(ps, code, words[i], record)
                        f.cws.append(cw)
                        f.state.history.append(record)
                        new.append(cw)
                    groups.setdefault(code.key, (code, []))[1].extend(new)
            plans.append(list(groups.values()))
        round_start = {id(f): f.state.clock for f in live}
        # lockstep passes: the j-th pass of every flow, one transmit_many per code
        for j in range(max(len(p) for p in plans)):
            by_code: dict[tuple, list] = {}
            for f, plan in zip(live, plans, strict=True):
                if j < len(plan):
                    code, cws = plan[j]
                    by_code.setdefault(code.key, []).append((f, code, cws))
            for entries in by_code.values():
                code = entries[0][1]
                passes = link.transmit_many(
                    [torch.stack([cw.words for cw in cws]) for _, _, cws in entries],
                    [_prior(cws, code) for _, _, cws in entries],
                    [f.generator for f, _, _ in entries], code=code,
                    fading=[f.state.fading if cfg.fading == "continuous" else None for f, _, _ in entries])
                for (f, _, cws), p in zip(entries, passes, strict=True):
                    _take(f, code, cws, p, cfg)
        for f, plan in zip(live, plans, strict=True):
            _feedback(f, [cw for _, cws in plan for cw in cws], cfg)
            spent = f.state.clock - round_start[id(f)]
            if f.busy and spent < cfg.harq_rtt_frames:  # wait for the round's feedback
                f.state.advance(cfg.harq_rtt_frames - spent)
        live = [f for f in live if f.busy]
    return [_finish(link, f) for f in flows]


def csi_report_db(link, state: LinkState) -> float:
    """A resumed UE's latest periodic CSI report (LinkState.resumed_report): the wideband SNR (dB) of its
    channel in the slot `report_delay_frames` before its clock, mean |h|^2 Es/N0 from the continuous channel
    model (no noise drawn, no estimation error); without continuous fading, the configured SNR."""
    cfg = link.cfg
    snr_db = cfg.es_no_db if cfg.es_no_db is not None else 100.0
    model = getattr(link.transport, "continuous", None)
    if model is None:
        return snr_db
    from link_models.fading import FadingState

    a, tau = model.cir(FadingState(seed=state.fading.seed, clock=max(0, state.clock - cfg.report_delay_frames)), 1)
    gain = float(model.cir_to_ofdm(model.frequencies, a, tau, normalize=False).abs().square().mean())
    return snr_db + 10 * math.log10(max(gain, 1e-12))


def _prior(cws: list[_Cw], code) -> torch.Tensor | None:
    """The LLRs kept from earlier transmissions (HARQ chase combining), zeros for first transmissions; None
    when every codeword goes for the first time."""
    if all(cw.llr is None for cw in cws):
        return None
    zero = torch.zeros(code.cfg.ldpc_n, device=cws[0].words.device)
    return torch.stack([zero if cw.llr is None else cw.llr for cw in cws])


def _olla_choice(adaptation, snr_db: float):
    """The inner loop: (MCS row, slot aggregation factor) for the SNR OLLA asks about. The BLER table's
    choice (LinkAdaptation.mcs); where even its lowest row misses the target, the lowest row repeated over
    the smallest aggregation factor A that meets it, read as that row's curve at snr + 10 log10(A) (chase
    combining of A copies), or the largest factor."""
    row = adaptation.mcs(snr_db)
    table, target = adaptation.bler_table, adaptation.target
    if table.bler(row.index, snr_db, row.table) <= target:
        return row, 1
    for factor in AGGREGATION[1:]:
        if table.bler(row.index, snr_db + 10 * math.log10(factor), row.table) <= target:
            return row, factor
    return row, AGGREGATION[-1]


def _with_mcs(cfg, index: int, table: int, aggregation: int = 1):
    """The resolved configuration of MCS `index` of `table` (OLLA's choice), at the configured SNR."""
    import dataclasses

    return dataclasses.replace(cfg.config, mcs=int(index), mcs_table=int(table), aggregation=aggregation).resolved()


def _take(f: _Flow, code, cws: list[_Cw], p, cfg) -> None:
    """What one pass of `cws` brought: decoded words, combined LLRs; the clock moves by its frames; its SNR
    estimate becomes a report `report_delay_frames` after the pass ends."""
    for i, cw in enumerate(cws):
        cw.words_hat = p.bits_hat[i]
        cw.llr = p.llr[i]
        cw.tx += 1
    p.llr = None
    p.coded_bits = len(cws) * code.cfg.n
    f.passes.append(p)
    f.state.advance(p.frames)
    f.end = f.state.clock
    if p.snr_est is not None and p.snr_est > 0:
        f.state.pending_reports.append((f.state.clock + cfg.report_delay_frames, 10 * math.log10(p.snr_est)))


def _feedback(f: _Flow, sent: list[_Cw], cfg) -> None:
    """ACK/NACK of every codeword of the round (CRC), OLLA on first transmissions, HARQ and ARQ."""
    if not sent:
        return
    by_code: dict[tuple, list[_Cw]] = {}
    for cw in sent:
        by_code.setdefault(cw.code.key, []).append(cw)
    for cws in by_code.values():
        ok = cws[0].code.crc_decoder(torch.stack([cw.words_hat for cw in cws]))[1].reshape(-1)
        for cw, good in zip(cws, ok.tolist(), strict=True):
            cw.ok = bool(good)
    firsts: dict[int, tuple[TbRecord, list[_Cw]]] = {}  # transport blocks sent for the first time, in order
    for cw in sent:
        if cw.tx == 1 and cw.record is not None:
            firsts.setdefault(id(cw.record), (cw.record, []))[1].append(cw)
    for record, cws in firsts.values():  # a transport block is ACKed when all its code blocks pass
        record.ack = all(cw.ok for cw in cws)
        if cfg.olla:
            f.state.olla.feedback(record.ack)
    status = False
    for cw in sent:  # in the order they were scheduled
        f.feedback_bits += 1
        if cw.ok:
            cw.llr = None
            continue
        if cw.tx < cfg.max_transmissions:
            f.retx.append(cw)
            continue
        cw.llr = None
        again = [(s, n, a + 1) for s, n, a in cw.pieces if a < cfg.arq_max]
        if again:  # RLC: the bits go back to the head of the queue for new codewords
            f.queue[:0] = again
            cw.requeued = len(again) == len(cw.pieces)
            f.arq += 1
            status = True
    if status:
        f.feedback_bits += STATUS_PDU_BITS


def _finish(link, f: _Flow) -> tuple[torch.Tensor, LinkStats]:
    cfg = link.cfg
    t = link.transport
    num = f.bits.numel()
    bits_hat = torch.zeros_like(f.bits)
    for cw in f.cws:  # later codewords (ARQ retransmissions) overwrite what earlier ones brought
        k = cw.code.cfg.k - CRC_BITS
        offset = 0
        for start, length, _ in cw.pieces:
            bits_hat[start:start + length] = cw.words_hat[offset:offset + length]
            offset += length
        assert offset <= k
    failed = [cw for cw in f.cws if not cw.ok and not cw.requeued]
    passes = f.passes
    frames = sum(p.frames for p in passes)
    symbols = sum(p.symbols for p in passes)
    sq_error = sum(p.sq_error for p in passes)
    estimates = [p.no_est for p in passes if p.no_est is not None]
    last = f.cws[-1].code.cfg if f.cws else cfg
    nacks, blocks = f.state.first_tx_bler(f.history_start)
    stats = LinkStats(
        mcs_index=last.mcs_index, mcs_table=last.mcs_table_used, modulation=last.modulation,
        code_rate=last.code_rate, transmissions=max((cw.tx for cw in f.cws), default=1),
        codeword_transmissions=sum(p.bits_hat.shape[0] for p in passes),
        no_est=sum(estimates) / len(estimates) if estimates else None,
        payload_bits=num, coded_bits=sum(p.coded_bits for p in passes),
        data_symbols=frames * t.data_symbols_per_frame, pilot_symbols=frames * t.pilot_symbols_per_frame,
        cp_samples=frames * cfg.num_ofdm_symbols * cfg.cp_length, total_symbols=frames * t.samples_per_frame,
        frames=frames, codewords=len(f.cws), airtime_s=frames * t.frame_duration_s, snr_db=cfg.es_no_db,
        ebno_db=None if cfg.es_no_db is None else cfg.es_no_db - 10 * math.log10(last.bits_per_symbol * last.code_rate),
        snr_est_db=10 * math.log10(symbols / sq_error) if sq_error > 0 else math.inf,
        noise_var=sum(p.no_eff for p in passes) / symbols if symbols else None,
        crc_failures=len(failed), padding_bits=sum(cw.code.cfg.k - CRC_BITS for cw in f.cws) - sum(
            n for cw in f.cws for _, n, _ in cw.pieces),
        latency_slots=f.end - f.start, first_tx_blocks=blocks, first_tx_nacks=nacks,
        olla_offset_db=f.state.olla.offset_db if cfg.olla else None,
        olla_offset_start_db=f.offset_start if cfg.olla else None, arq_retransmissions=f.arq,
        feedback_bits=f.feedback_bits)
    stats.bit_errors = int((bits_hat != f.bits).sum())
    stats.ber = stats.bit_errors / num
    stats.block_errors = len(failed)
    stats.bler = stats.block_errors / max(1, len(f.cws))
    return bits_hat, stats

