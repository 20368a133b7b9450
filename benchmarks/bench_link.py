"""Link throughput: information bits/s of meg-phy's DigitalLink vs a bare Sionna chain built here, same run.

Both chains use the same configuration (5G LDPC k=1024 n=2048 with 20 BP iterations, 16-QAM, one 14 x 128
OFDM grid with pilots on symbols 2 and 11, AWGN, LS estimation + LMMSE equalisation, 32 frames per pass =
96 codewords), and run alternately so that machine load hits both alike. Target: ours >= 0.9x the bare
chain, compared in information bits per CPU second of this process (wall-clock rates on a shared machine
move with other jobs' load; they are reported too). The result also says where our link spends its time (forward hooks on its blocks).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch import nn

K, N, BITS_PER_SYMBOL, EBNO_DB, FRAMES = 1024, 2048, 4, 8.0, 32
TARGET = 0.9


class BareSionnaChain(nn.Module):
    """The textbook Sionna OFDM link (as in Sionna's tutorials), written out block by block."""

    def __init__(self, device: str):
        super().__init__()
        import sionna.phy as sn

        self.rg = sn.ofdm.ResourceGrid(num_ofdm_symbols=14, fft_size=128, subcarrier_spacing=30e3,
                                       cyclic_prefix_length=9, pilot_pattern="kronecker",
                                       pilot_ofdm_symbol_indices=[2, 11], device=device)
        self.codewords_per_frame = self.rg.num_data_symbols * BITS_PER_SYMBOL // N
        self.source = sn.mapping.BinarySource(device=device)
        self.encoder = sn.fec.ldpc.LDPC5GEncoder(K, N, num_bits_per_symbol=BITS_PER_SYMBOL, device=device)
        self.mapper = sn.mapping.Mapper("qam", BITS_PER_SYMBOL, device=device)
        self.rg_mapper = sn.ofdm.ResourceGridMapper(self.rg, device=device)
        self.awgn = sn.channel.AWGN(device=device)
        self.estimator = sn.ofdm.LSChannelEstimator(self.rg, interpolation_type="lin", device=device)
        self.equalizer = sn.ofdm.LMMSEEqualizer(self.rg, sn.mimo.StreamManagement(np.array([[1]]), 1),
                                                device=device)
        self.demapper = sn.mapping.Demapper("app", "qam", BITS_PER_SYMBOL, device=device)
        self.decoder = sn.fec.ldpc.LDPC5GDecoder(self.encoder, num_iter=20, hard_out=True, device=device)
        self.no = sn.utils.ebnodb2no(EBNO_DB, BITS_PER_SYMBOL, K / N)  # no resource_grid: per data RE

    @torch.no_grad()
    def forward(self, frames: int):
        b = self.source([frames, 1, 1, self.codewords_per_frame, K])
        c = self.encoder(b).reshape(frames, 1, 1, -1)
        y = self.awgn(self.rg_mapper(self.mapper(c)), self.no)
        h_hat, err_var = self.estimator(y, self.no)
        x_hat, no_eff = self.equalizer(y, h_hat, err_var, self.no)
        llr = self.demapper(x_hat, no_eff).reshape(frames, 1, 1, self.codewords_per_frame, N)
        return b, self.decoder(llr)


def _time(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def profile_blocks(link, passes: int) -> dict[str, float]:
    """Share of the link's time per block, from forward hooks."""
    blocks = {"ldpc_encoder": link.encoder, "mapper": link.mapper, "grid_mapper": link.transport.grid_mapper,
              "channel": link.transport.channel, "ls_estimator": link.transport.estimator,
              "lmmse_equalizer": link.transport.equalizer, "demapper": link.demapper,
              "ldpc_decoder": link.decoder}
    spent = dict.fromkeys(blocks, 0.0)
    starts: dict[str, float] = {}
    handles = []
    for name, block in blocks.items():
        handles.append(block.register_forward_pre_hook(lambda *_, n=name: starts.__setitem__(n, time.perf_counter())))
        handles.append(block.register_forward_hook(
            lambda *_, n=name: spent.__setitem__(n, spent[n] + time.perf_counter() - starts[n])))
    total = 0.0
    for _ in range(passes):
        total += _time(lambda: link(link.codewords_per_batch))[0]
    for h in handles:
        h.remove()
    shares = {name: round(t / total, 4) for name, t in spent.items()}
    shares["other"] = round(1 - sum(shares.values()), 4)
    return shares


def run(quick: bool = False) -> dict:
    from link_models import DigitalLink, LinkConfig
    from meg_common.rng import preserved_global_rng

    reps = 3 if quick else 6
    cfg = LinkConfig(modulation="16qam", code="ldpc", k=K, n=N, channel="awgn", estimator="ls", ebno_db=EBNO_DB,
                     batch=FRAMES, device="cpu")
    ours = DigitalLink(cfg, seed=0)
    with preserved_global_rng():
        bare = BareSionnaChain("cpu")
    codewords = ours.codewords_per_batch
    assert codewords == bare.codewords_per_frame * FRAMES, "both chains must carry the same codewords per pass"
    ours(codewords), bare(FRAMES)  # warm up (builds blocks)
    t_ours, t_bare = [], []
    with preserved_global_rng():
        for _ in range(reps):
            t_ours.append(_time(lambda: ours(codewords)))
            t_bare.append(_time(lambda: bare(FRAMES)))
    bits = codewords * K
    cpu_ours, cpu_bare = sum(t[1] for t in t_ours), sum(t[1] for t in t_bare)
    ratio = cpu_bare / cpu_ours  # CPU time: what other jobs on a shared machine do not change
    wall_ratios = [b[0] / o[0] for o, b in zip(t_ours, t_bare, strict=True)]
    b, b_hat = ours(codewords)
    return {
        "config": {**cfg.to_dict(), "codewords_per_pass": codewords, "repetitions": reps,
                   "threads": torch.get_num_threads()},
        "ours_info_bits_per_cpu_s": round(bits * reps / cpu_ours, 1),
        "bare_sionna_info_bits_per_cpu_s": round(bits * reps / cpu_bare, 1),
        "ours_info_bits_per_s": round(bits / min(t[0] for t in t_ours), 1),
        "bare_sionna_info_bits_per_s": round(bits / min(t[0] for t in t_bare), 1),
        "ratio": round(ratio, 3),
        "wall_ratio_median_of_pairs": round(statistics.median(wall_ratios), 3),
        "wall_ratios": [round(r, 3) for r in wall_ratios],
        "time_share": profile_blocks(ours, 2 if quick else 4),
        "ber_at_operating_point": float((b != b_hat).float().mean()),
        "target": f"ours >= {TARGET}x bare Sionna chain in information bits per CPU second ({reps} alternating passes)",
        "passed": ratio >= TARGET,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=2))
