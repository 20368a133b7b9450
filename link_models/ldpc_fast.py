"""A fast CPU decoder for 5G NR LDPC: layered offset-normalised min-sum with early termination, compiled by numba.

`LDPC5GFastDecoder(encoder)` is a drop-in for Sionna's `LDPC5GDecoder(encoder, hard_out=True)`: built from
the same `LDPC5GEncoder`, it takes channel logits [..., n] (Sionna's convention: log p(1)/p(0), so LLR > 0
means bit 1) and returns the information bits [..., k] as a float tensor. Rate matching is undone as Sionna
does: the 5G output interleaver when the encoder has `num_bits_per_symbol`, the first 2Z punctured
systematic bits (LLR 0), the shortened filler bits (known zeros) and the untransmitted parity bits (LLR 0).

Why it is fast (docs/link-models.md, "Fast LDPC decoder"):
- layered schedule over the base-graph rows (one layer = Z check nodes that share no variable node), which
  converges in about half the iterations of Sionna's flooding schedule;
- offset-normalised min-sum check nodes (two minima, one sign) instead of boxplus-phi;
- each layer is processed as contiguous vectors of length Z (the lifted circulants are rotations), which
  LLVM vectorises; only the base-graph rows that carry transmitted bits are decoded;
- per-codeword early termination when all parity checks hold; the mean number of iterations used is
  `last_mean_iterations` after every call.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import scipy.sparse as sp
import torch
from numba import njit, prange
from torch import nn

FILLER_LLR = 1e4  # known-zero filler bits: never the minimum of a check node
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # no 'nnan'/'ninf': the minima start at +big
_BIG = np.float32(3.0e38)


_W = 32  # codewords decoded side by side: the vector dimension of every inner loop


@njit(cache=True, fastmath=_FASTMATH)
def _layered_sweep(app, r_msg, st, row_ptr, vidx, row_alpha, beta):
    """One iteration over all check rows, in order, for _W codewords at once.

    app [num_vn, _W] a-posteriori LLRs and r_msg [num_edges, _W] check-to-variable messages, updated in
    place; st [3, _W] scratch (smallest and second smallest |v2c|, sign product). A message to the edge whose
    |v2c| equals the minimum gets the second minimum (equal to the minimum when it occurs twice)."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for c in range(row_ptr.size - 1):
        p0, p1 = row_ptr[c], row_ptr[c + 1]
        alpha = row_alpha[c]
        v = vidx[p0]
        for w in range(_W):
            x = app[v, w] - r_msg[p0, w]
            st[0, w] = abs(x)
            st[1, w] = _BIG
            st[2, w] = math.copysign(one, x)
        for p in range(p0 + 1, p1):
            v = vidx[p]
            for w in range(_W):
                x = app[v, w] - r_msg[p, w]
                a = abs(x)
                m1 = st[0, w]
                st[1, w] = min(st[1, w], max(m1, a))
                st[0, w] = min(m1, a)
                st[2, w] = math.copysign(one, st[2, w] * x)
        for p in range(p0, p1):
            v = vidx[p]
            for w in range(_W):
                x = app[v, w] - r_msg[p, w]
                m1 = st[0, w]
                m = st[1, w] if abs(x) == m1 else m1
                m = max(alpha * m - beta, zero)
                r = math.copysign(m, st[2, w] * x)  # sign of the other edges' product
                r_msg[p, w] = r
                app[v, w] = x + r


@njit(cache=True, fastmath=_FASTMATH)
def _syndrome_fails(app, row_ptr, vidx, bad, par):
    """bad[w] = 1 where a check of lane w fails (hard bit 1 where LLR <= 0, as Sionna); stops once all fail."""
    two = np.float32(2.0)
    for c in range(row_ptr.size - 1):
        for w in range(_W):
            par[w] = 0.0
        for p in range(row_ptr[c], row_ptr[c + 1]):
            v = vidx[p]
            for w in range(_W):
                par[w] += np.float32(app[v, w] <= 0.0)
        nbad = 0
        for w in range(_W):
            bad[w] |= np.int32(par[w] - two * math.floor(par[w] / two) != 0.0)
            nbad += bad[w]
        if nbad == _W:
            return


@njit(cache=True, fastmath=_FASTMATH)
def _decode_stream(llr, out, iterations, first, last, row_ptr, vidx, row_alpha, beta, max_iter):
    """Decode codewords first..last-1 of llr [B, num_vn] (LLR > 0: bit 0) in _W lanes.

    A lane takes the next codeword as soon as its own syndrome holds (or max_iter is reached), so the
    vector operations work on live codewords; out [B, num_vn] gets the a-posteriori LLRs, iterations [B]
    the iterations each codeword used."""
    num_vn = llr.shape[1]
    app = np.zeros((num_vn, _W), np.float32)
    r_msg = np.zeros((vidx.size, _W), np.float32)
    st = np.empty((3, _W), np.float32)
    par = np.empty(_W, np.float32)
    bad = np.empty(_W, np.int32)
    lane_cw = np.full(_W, -1, np.int64)
    lane_it = np.zeros(_W, np.int32)
    nxt = first
    active = 0
    for w in range(_W):
        if nxt < last:
            for v in range(num_vn):
                app[v, w] = llr[nxt, v]
            lane_cw[w] = nxt
            nxt += 1
            active += 1
    while active > 0:
        _layered_sweep(app, r_msg, st, row_ptr, vidx, row_alpha, beta)
        for w in range(_W):
            bad[w] = np.int32(lane_cw[w] < 0)
        _syndrome_fails(app, row_ptr, vidx, bad, par)
        for w in range(_W):
            b = lane_cw[w]
            if b < 0:
                continue
            lane_it[w] += 1
            if bad[w] == 0 or lane_it[w] >= max_iter:
                for v in range(num_vn):
                    out[b, v] = app[v, w]
                iterations[b] = lane_it[w]
                lane_it[w] = 0
                for p in range(vidx.size):
                    r_msg[p, w] = 0.0
                if nxt < last:
                    for v in range(num_vn):
                        app[v, w] = llr[nxt, v]
                    lane_cw[w] = nxt
                    nxt += 1
                else:
                    lane_cw[w] = -1
                    for v in range(num_vn):
                        app[v, w] = 0.0
                    active -= 1


@njit(cache=True, parallel=True)
def _decode_parallel(llr, out, iterations, chunks, row_ptr, vidx, row_alpha, beta, max_iter):
    """chunks [T + 1]: codeword ranges, one streaming decoder per thread."""
    for t in prange(chunks.size - 1):
        _decode_stream(llr, out, iterations, chunks[t], chunks[t + 1], row_ptr, vidx, row_alpha, beta,
                       max_iter)


class LDPC5GFastDecoder(nn.Module):
    """Sionna's `LDPC5GDecoder` interface on a numba layered min-sum decoder (CPU).

    :param encoder: the `sionna.phy.fec.ldpc.LDPC5GEncoder` whose codewords are decoded (both base graphs,
        any lifting size and rate it builds; with `num_bits_per_symbol` its output interleaver is undone).
    :param num_iter: maximum iterations; a codeword stops as soon as its syndrome is zero.
    :param alpha: normalisation of the check-node minimum;
    :param beta: offset subtracted after it (in LLR units; 0 gives plain normalised min-sum). The defaults
        (0.85, 0.25) were tuned on BG1/BG2, QPSK/16-QAM at BLER about 1e-2 (docs/link-models.md).
    :param hard_out: hard bits (default) or soft logits (log p(1)/p(0), as Sionna).
    :param return_infobits: the k information bits (default) or all n transmitted bits.
    :param llr_max: channel logits are clipped to +-llr_max first, as Sionna does.
    :param parallel: spread codewords over numba's threads. Off by default: numba's OpenMP threading layer
        is not fork-safe (a process that forks after using it aborts in the child), and a link's batch
        (48-96 codewords) fills only a few sets of lanes.

    :input llr_ch: [..., n] channel logits (any float dtype/device; decoding runs on the CPU).
    :input num_iter: optional maximum iterations for this call.
    :output: [..., k] (or [..., n]) float32 on the input's device.
    """

    def __init__(self, encoder, num_iter: int = 20, alpha: float = 0.85, beta: float = 0.25,
                 hard_out: bool = True, return_infobits: bool = True, llr_max: float = 20.0,
                 parallel: bool = False):
        super().__init__()
        if int(num_iter) < 1:
            raise ValueError(f"num_iter={num_iter}: must be >= 1")
        self.encoder = encoder
        self.num_iter = int(num_iter)
        self.alpha, self.beta = float(alpha), float(beta)
        self.hard_out, self.return_infobits = bool(hard_out), bool(return_infobits)
        self.llr_max = float(llr_max)
        self.parallel = bool(parallel)
        self.last_mean_iterations = math.nan
        self.last_iterations: np.ndarray | None = None
        self._setup(encoder)

    def _setup(self, enc) -> None:
        """Rows of the lifted PCM to decode (layer by layer) and the transmitted positions, from the encoder."""
        z, k, n, k_ldpc, n_ldpc = enc.z, enc.k, enc.n, enc.k_ldpc, enc.n_ldpc
        if n > enc.n_cb_comp:
            raise ValueError(f"n={n} exceeds the circular buffer ({enc.n_cb_comp}); repetition is not supported")
        pcm = sp.csr_matrix(enc.pcm)
        self._z, self._k, self._n, self._k_ldpc = z, k, n, k_ldpc
        self._n_sys = k - 2 * z                      # systematic bits sent (after the 2Z punctured ones)
        self._end = k_ldpc + n - self._n_sys         # one past the last transmitted position of the mother code
        # A check whose degree-1 bit was not transmitted only ever sends zero messages (that bit's LLR is 0)
        # and holds for any value of it: such rows are left out of decoding and of the syndrome. The base
        # graph's row order is the layered schedule (the Z rows of a layer share no bit).
        degree = np.asarray(pcm.sum(axis=0)).ravel()
        leaf_unsent = ((degree == 1) & (np.arange(n_ldpc) >= self._end)).astype(np.int32)
        rows = np.flatnonzero((pcm @ leaf_unsent) == 0)
        row_ptr, vidx = [0], []
        for r in rows:
            vidx.extend(np.sort(pcm.indices[pcm.indptr[r]:pcm.indptr[r + 1]]))
            row_ptr.append(len(vidx))
        self._row_ptr = np.asarray(row_ptr, np.int32)
        self._vidx = np.asarray(vidx, np.int32)
        self._row_alpha = np.full(len(rows), self.alpha, np.float32)
        self._num_vn = max(int(self._vidx.max()) + 1, self._end)
        self._deinterleave = None
        self._interleave = None
        if enc.num_bits_per_symbol is not None:
            self._deinterleave = enc.out_int_inv.cpu().numpy().astype(np.int64)
            self._interleave = enc.out_int.cpu().numpy().astype(np.int64)
        # transmitted positions of the mother code in the order of the rate-matched stream
        self._tx_pos = np.concatenate([np.arange(2 * z, k), np.arange(k_ldpc, self._end)])

    @property
    def num_checks(self) -> int:
        """Check nodes decoded (the lifted rows whose degree-1 bit is transmitted, and the core rows)."""
        return self._row_ptr.size - 1

    def forward(self, llr_ch: torch.Tensor, num_iter: int | None = None) -> torch.Tensor:
        shape = list(llr_ch.shape)
        if not shape or shape[-1] != self._n:
            raise ValueError(f"Last dimension must be of length n={self._n}, got shape {shape}")
        llr = llr_ch.detach().to("cpu", torch.float32).reshape(-1, self._n).numpy()
        if self._deinterleave is not None:
            llr = llr[:, self._deinterleave]
        batch = llr.shape[0]
        app = np.zeros((batch, self._num_vn), np.float32)
        # internal LLR = log p(0)/p(1) = -logit, clipped as Sionna does
        sent = -np.clip(llr, -self.llr_max, self.llr_max)
        z, k = self._z, self._k
        app[:, 2 * z:k] = sent[:, :self._n_sys]
        app[:, k:self._k_ldpc] = FILLER_LLR
        app[:, self._k_ldpc:self._end] = sent[:, self._n_sys:]
        iterations = np.zeros(batch, np.int32)
        max_iter = self.num_iter if num_iter is None else int(num_iter)
        if max_iter < 1:
            raise ValueError(f"num_iter={max_iter}: must be >= 1")
        out = np.empty_like(app)
        threads = numba.get_num_threads() if self.parallel else 1
        threads = max(1, min(threads, batch // _W))  # a thread per full set of lanes at least
        if batch:
            args = (self._row_ptr, self._vidx, self._row_alpha, np.float32(self.beta), max_iter)
            if threads > 1:
                chunks = np.linspace(0, batch, threads + 1).astype(np.int64)
                _decode_parallel(app, out, iterations, chunks, *args)
            else:
                _decode_stream(app, out, iterations, 0, batch, *args)
        self.last_iterations = iterations
        self.last_mean_iterations = float(iterations.mean()) if batch else math.nan
        if self.return_infobits:
            out = out[:, :k]
            out_shape = shape[:-1] + [k]
        else:
            out = out[:, self._tx_pos]
            if self._interleave is not None:
                out = out[:, self._interleave]
            out_shape = shape
        out = (out <= 0).astype(np.float32) if self.hard_out else -out
        return torch.from_numpy(np.ascontiguousarray(out)).reshape(out_shape).to(llr_ch.device)
