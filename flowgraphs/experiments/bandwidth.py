"""Quality against bandwidth (issue 11, item 6): every downlink scheme at a budget of N channel uses per image.

A budget is N complex channel uses per task: resource elements that carry the payload (coded bits or analog
values). Pilots, cyclic prefix and the empty tail of the last frame are overhead of every scheme alike; they
are reported (`air_symbols`) but not charged. At fixed SNRs (Es/N0 per channel use, `snr_db` of the links)
and N on a grid, each series delivers what it can in N uses over the protocol hops' own links
(`flowgraphs.config.LinkSpec` defaults: one resource block, LMMSE estimation, link adaptation, HARQ):

- `seed-analog`: EIUG's seed (the latent at the split step, V values = ceil(V/2) uses) on the analog link.
  When N > V/2 the values are repeated cyclically to exactly 2N values (some once more than others) and the
  copies combined by maximum-ratio weights 1/variance (what the link reports per value), then the UE resumes
  channel-aware from the combined variance. N < V/2: no point (the seed does not fit; nothing is faked).
- `softcast`: SoftCast of the reference image (meg_phy.codecs.softcast). Its metadata goes first on the
  digital link (link-adapted, HARQ) and is charged to the budget; the values take every use left, exactly
  N in all (chunks chosen so the metadata's expected cost fits, values repeated and combined beyond the
  image's last chunk). A lost metadata block loses the image.
- `softcast-meta-free`: the same with its metadata as free, intact side information (an optimistic SoftCast:
  the values take all N uses); the gap to `softcast` is what the metadata costs.
- `image-digital`: the CENTRALIZED image as WebP (RunConfig.image_format) at the best quality that fits.
- `seed-digital`: the seed as the digital seed path encodes it (meg_phy.codecs.encode_seed), at the finest of
  float32, float16, int8, int4 that fits.
- `image-capacity`, `seed-capacity`: the bound: the best quality (format) whose payload B bits satisfies
  B <= N log2(1 + SNR) (link_models.capacity; ergodic capacity on rayleigh; the AWGN capacity at the
  average SNR, an upper bound without transmitter CSI, on the other fading channels), delivered intact.
- `prompt-only`: the zero-transmission baseline (flowgraphs.protocols.baselines), one flat line per kind.

Digital fit rule (link-adapted series): the link picks its MCS for the SNR (LinkConfig mcs 'auto'); a payload
of B bits needs C = ceil(B / k') codewords (k' payload bits per codeword after the CRC24B), n/m uses each;
it fits in N if its first transmission does (C n/m <= N) and it is delivered within N with probability at
least 1 - bler_target (90 %): every codeword passes within 4 transmissions and the retransmissions take at
most the floor((N - C n/m) / (n/m)) spare codeword slots, each try failing independently with p = the larger
of the link adaptation's BLER target (10 %) and the hop link's own first-try BLER at that SNR, measured once
per worker on 256 codewords (the BLER table behind the adaptation is the hop's own: LMMSE on one resource
block, 1008-bit codewords; the probe stays as a check). It is then sent
with HARQ (chase combining) until every codeword passes its CRC, a retransmission round going out only if
all pending codewords fit in the budget left, so a digital series never spends more than N. DigitalLink
scrambles its coded bits as 5G does (TS 38.211 7.3.1.1), so structured payloads fare like random ones. A payload still corrupt (or one that never fit) scores as the harness's
failure value: a mid-grey image, or, for a seed, fresh noise at the split step that the UE denoises on
(flowgraphs.stages).

Every point is scored against the case study's one reference per task (case_study.reference_image), with
case_study.Harness's world, tasks and evaluator. Units are (kind, series, channel, SNR, budget) x a chunk of
tasks, run by meg_common.executors (local or Ray) and stored by JsonUnitStore, so an interrupted sweep
resumes. Two grids share the units: quality against N at `snrs`, and quality against SNR at `fixed_uses`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

from meg_common import stats

KINDS = ("text-to-image", "img2img-es")
"""Task kinds where the ES holds everything, so the downlink payload is the whole transmission."""
USES = (64, 128, 256, 512, 1024, 2048, 4096)
SNRS = (-5.0, 0.0, 10.0)
SNR_SWEEP = (-10.0, -5.0, 0.0, 5.0, 10.0, 20.0)
SEED_FORMATS = ("float32", "float16", "int8", "int4")
"""Digital seed formats, finest first (meg_phy.codecs.seed)."""
MAX_QUALITY = 100
PROBE_CODEWORDS = 256
PROBE_SEED = 7
"""The first-try BLER the digital fit rule plans with is measured on this many codewords (fixed seed)."""
BASELINE = "prompt-only"
NO_CHANNEL = "none"


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    payload: str
    """seed | image | none."""
    scheme: str
    """analog | softcast | digital | capacity | none."""


SERIES = {s.key: s for s in (
    Series("seed-analog", "seed, analog, repetition + MRC (EIUG)", "seed", "analog"),
    Series("softcast", "image, SoftCast (CENTRALIZED)", "image", "softcast"),
    Series("softcast-meta-free", "image, SoftCast, metadata not charged (optimistic)", "image", "softcast"),
    Series("image-digital", "image, WebP, link-adapted (CENTRALIZED)", "image", "digital"),
    Series("seed-digital", "seed, digital, link-adapted (EIUG)", "seed", "digital"),
    Series("image-capacity", "image, WebP at capacity (bound)", "image", "capacity"),
    Series("seed-capacity", "seed, digital at capacity (bound)", "seed", "capacity"),
    Series(BASELINE, "prompt-only: UE generates from its prompt (0 uses)", "none", "none"),
)}
SWEPT = tuple(k for k in SERIES if k != BASELINE)


@dataclass(frozen=True)
class Plan:
    """What a bandwidth sweep runs (`fixed_uses` None: the seed's own channel uses, resolved by `resolve`)."""

    n_tasks: int = 100
    chunk: int = 25
    kinds: tuple[str, ...] = ("text-to-image",)
    series: tuple[str, ...] = SWEPT
    channels: tuple[str, ...] = ("awgn",)
    snrs: tuple[float, ...] = SNRS
    uses: tuple[int, ...] = USES
    snr_sweep: tuple[float, ...] = SNR_SWEEP
    fixed_uses: int | None = None
    steps: int = 20
    strength: float = 0.7
    guidance: float | None = 3.0
    model: str | None = None
    evaluator: str | None = None

    @classmethod
    def quick(cls, model: str | None = None) -> Plan:
        return cls(n_tasks=16, chunk=16, model=model)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def harness_plan(self):
        """The case study's Plan with this sweep's task settings (for case_study.Harness)."""
        from flowgraphs.experiments import case_study as cs

        return cs.Plan(grids=(), n_tasks=self.n_tasks, chunk=self.chunk, steps=self.steps, strength=self.strength,
                       guidance=self.guidance, model=self.model, evaluator=self.evaluator)


@dataclass(frozen=True)
class Point:
    kind: str
    series: str
    channel: str
    snr_db: float | None
    uses: int

    @property
    def key(self) -> str:
        snr = "none" if self.snr_db is None else f"{self.snr_db:+.1f}dB"
        return f"bw|{self.kind}|{self.series}|{self.channel}|{snr}|{self.uses}"


def seed_uses(ldm) -> int:
    """Channel uses of one seed on the analog link: two latent values per complex use."""
    return math.ceil(ldm.latent_channels * ldm.latent_size[0] * ldm.latent_size[1] / 2)


def resolve(plan: Plan, session=None) -> Plan:
    """The plan with `fixed_uses` set (None: the seed's channel uses of the plan's model)."""
    if plan.fixed_uses is not None:
        return plan
    from flowgraphs.session import Session

    return replace(plan, fixed_uses=seed_uses((session or Session()).model(plan.model)))


def points(plan: Plan) -> list[Point]:
    """Baselines first (one per kind), then every (kind, series, channel, SNR, budget) of both grids."""
    if plan.fixed_uses is None:
        raise ValueError("resolve the plan first (fixed_uses)")
    out = [Point(kind, BASELINE, NO_CHANNEL, None, 0) for kind in plan.kinds]
    for kind in plan.kinds:
        for series in plan.series:
            if series == BASELINE:
                continue
            for channel in plan.channels:
                grid = [(s, n) for s in plan.snrs for n in plan.uses]
                grid += [(s, plan.fixed_uses) for s in plan.snr_sweep]
                out += [Point(kind, series, channel, float(s), int(n)) for s, n in grid]
    return list(dict.fromkeys(out))


def chunks(plan: Plan) -> list[list[int]]:
    return [list(range(i, min(i + plan.chunk, plan.n_tasks))) for i in range(0, plan.n_tasks, plan.chunk)]


def campaign(plan: Plan) -> list[Any]:
    from meg_common.executors import Unit

    return [Unit(f"{p.key}|chunk{part}", run_unit, (asdict(p), idx))
            for p in points(plan) for part, idx in enumerate(chunks(plan))]


# ---- transmission pieces (link-level; no model) ------------------------------------------------------
def send_filled(link, values, uses: int):
    """`values` (V,) over an analog link in exactly `uses` channel uses: repeated cyclically to 2 uses values,
    the copies combined by maximum-ratio weights (1 / reported variance). Returns (estimates (V,), per-value
    variance (V,), copies per value (V,), link stats). ValueError when 2 uses < V (the values do not fit)."""
    import torch

    flat = values.detach().reshape(-1).float()
    num = flat.numel()
    if 2 * uses < num:
        raise ValueError(f"{num} values need {math.ceil(num / 2)} channel uses, the budget is {uses}")
    index = torch.arange(2 * uses) % num
    est, var, link_stats = link.send_values(flat[index])
    weights = 1.0 / var.double().clamp(min=1e-12)
    den = torch.zeros(num, dtype=torch.float64).index_add_(0, index, weights)
    num_ = torch.zeros(num, dtype=torch.float64).index_add_(0, index, weights * est.double())
    copies = torch.bincount(index, minlength=num)
    return (num_ / den).float().reshape(values.shape), (1.0 / den).float(), copies, link_stats


def delivery_probability(codewords: int, spare: int, p: float, transmissions: int) -> float:
    """P(every codeword passes within `transmissions` tries and the retransmissions number at most `spare`),
    each try failing independently with probability p (chase combining only helps: a lower bound)."""
    import numpy as np

    if spare < 0:
        return 0.0
    one = np.array([p ** j * (1 - p) for j in range(transmissions)])  # extra tries j of one codeword
    total = np.zeros(spare + 1)
    total[0] = 1.0
    for _ in range(codewords):
        total = np.convolve(total, one)[:spare + 1]
    return float(min(1.0, total.sum()))


@dataclass
class DigitalPlan:
    """What a payload costs on a link-adapted digital link (see the module doc for the rule)."""

    payload_bits_per_codeword: int
    uses_per_codeword: int
    bler: float
    """The BLER table's value for the link's MCS at its SNR (0 without an MCS)."""
    transmissions: int
    target: float
    mcs_index: int | None
    modulation: str
    code_rate: float

    def codewords(self, bits: int) -> int:
        return math.ceil(bits / self.payload_bits_per_codeword)

    def first_uses(self, bits: int) -> int:
        return self.codewords(bits) * self.uses_per_codeword

    def delivery(self, bits: int, budget: int) -> float:
        """Probability that `bits` arrive within `budget` channel uses (HARQ rounds in the spare uses)."""
        count = self.codewords(bits)
        spare = (budget - count * self.uses_per_codeword) // self.uses_per_codeword
        return delivery_probability(count, spare, self.bler, self.transmissions)

    def fits(self, bits: int, budget: int) -> bool:
        return self.first_uses(bits) <= budget and self.delivery(bits, budget) >= 1 - self.target

    def needs(self, bits: int) -> int:
        """The fewest channel uses in which `bits` fit (whole codewords)."""
        uses = self.first_uses(bits)
        while not self.fits(bits, uses):
            uses += self.uses_per_codeword
        return uses


def first_try_bler(link, codewords: int = PROBE_CODEWORDS, seed: int = PROBE_SEED) -> float:
    """Block error rate of one transmission on `link` at its operating point, from `codewords` random codewords
    (the link is reseeded with `seed` first, so the probe is the same on every worker)."""
    link.reseed(seed)
    bits, bits_hat = link(codewords)
    return float((bits != bits_hat).any(dim=1).float().mean())


def digital_plan(link, bler: float | None = None) -> DigitalPlan:
    """The fit rule of a HARQ DigitalLink at its operating point (see the module doc): tries fail with
    probability max(the link adaptation's BLER target, `bler`), `bler` being the link's measured first-try
    BLER (None: the target alone)."""
    cfg = link.cfg
    p = max(cfg.bler_target, bler or 0.0)
    return DigitalPlan(link.payload_bits_per_codeword, cfg.n // cfg.bits_per_symbol, p, cfg.max_transmissions,
                       cfg.bler_target, cfg.mcs_index, cfg.modulation, cfg.code_rate)


def send_budgeted(link, payload: bytes, budget: int) -> tuple[bytes | None, dict[str, Any]]:
    """`payload` over a HARQ DigitalLink (link_models.digital) in at most `budget` channel uses.

    The first transmission sends every codeword; a round of retransmissions (chase combining, up to the
    link's max_transmissions per codeword) goes out only while every codeword still pending fits in the
    budget left. Returns (received bytes, or None when some codeword never passed its CRC or the first
    transmission alone does not fit; info: uses, air_symbols, transmissions, codewords)."""
    import numpy as np
    import torch

    if not link.harq:
        raise ValueError("send_budgeted needs a HARQ link (max_transmissions > 1: a CRC per codeword)")
    cfg = link.cfg
    bits = torch.from_numpy(np.unpackbits(np.frombuffer(bytes(payload), np.uint8)).astype(np.float32))
    k = link.payload_bits_per_codeword
    per_cw = cfg.n // cfg.bits_per_symbol
    count = math.ceil(bits.numel() / k)
    info = {"uses": 0, "air_symbols": 0, "transmissions": 0, "codewords": count, "mcs_index": cfg.mcs_index,
            "modulation": cfg.modulation, "code_rate": cfg.code_rate, "payload_bits": int(bits.numel())}
    if count * per_cw > budget:
        return None, info
    blocks = torch.nn.functional.pad(bits, (0, count * k - bits.numel())).reshape(count, k).to(link.device)
    words = link.crc_encoder(blocks)
    words_hat = torch.zeros_like(words)
    llr = None
    pending = torch.arange(count, device=link.device)
    step = link.codewords_per_batch
    frame = link.transport.samples_per_frame
    while pending.numel() and info["transmissions"] < cfg.max_transmissions:
        if pending.numel() * per_cw > budget - info["uses"]:
            break
        info["transmissions"] += 1
        for i in range(0, pending.numel(), step):
            idx = pending[i:i + step]
            p = link.transmit(words[idx], None if llr is None else llr[idx])
            if llr is None:
                llr = torch.zeros(count, p.llr.shape[1], dtype=p.llr.dtype, device=link.device)
            llr[idx] = p.llr
            words_hat[idx] = p.bits_hat
            info["uses"] += idx.numel() * per_cw
            info["air_symbols"] += p.frames * frame
        ok = link.crc_decoder(words_hat[pending])[1].reshape(-1)
        pending = pending[~ok]
    if pending.numel():
        return None, info
    received = words_hat[:, :k].reshape(-1)[:bits.numel()].to("cpu", torch.uint8).numpy()
    return np.packbits(received).tobytes(), info


def image_candidates(image, fmt: str = "webp") -> list[tuple[int, bytes]]:
    """(quality, payload) for every quality 100..1, best first (sizes are not monotone in the quality, so
    the fit takes the first that fits rather than searching)."""
    from meg_phy.codecs import encode_image

    return [(q, encode_image(image, fmt=fmt, quality=q)) for q in range(MAX_QUALITY, 0, -1)]


def seed_candidates(seed) -> list[tuple[str, bytes]]:
    """(format, payload) of the digital seed path, finest format first."""
    from meg_phy.codecs import encode_seed

    return [(fmt, encode_seed(seed, fmt)) for fmt in SEED_FORMATS]


def best_payload(candidates, fits) -> tuple[bytes | None, Any]:
    """The first (best) candidate whose bits satisfy fits(bits): (payload, setting), or (None, None)."""
    for setting, data in candidates:
        if fits(8 * len(data)):
            return data, setting
    return None, None


def capacity_bits(uses: int, snr_db: float, channel: str) -> float:
    """N C: the bits N channel uses carry at capacity (see the module doc for the channel rule)."""
    from link_models.capacity import max_bits

    return max_bits(uses, snr_db, channel="rayleigh" if channel == "rayleigh" else "awgn")


# ---- one worker's state ------------------------------------------------------------------------------
class Worker:
    """The case study's Harness (session, world, tasks, references, baselines) plus the ES seeds at the split
    step, which depend only on the task (computed once per worker)."""

    def __init__(self, plan: Plan):
        from flowgraphs.experiments import case_study as cs

        self.plan = plan
        self.harness = cs.Harness(plan.harness_plan())
        self._seeds: dict[tuple[str, int], Any] = {}
        self._candidates: dict[tuple[str, str, int], list] = {}
        self._bler: dict[tuple[str, float], float] = {}

    @property
    def session(self):
        return self.harness.session

    def stages(self, kind: str, i: int):
        """Stages of EIUG for task i (the protocol's own split, start, resume and decode)."""
        from flowgraphs.experiments import case_study as cs
        from flowgraphs.graph import Flowgraph
        from flowgraphs.stages import Stages

        config = self.harness.config(cs.Point(kind, cs.SEED_SERIES, "awgn", 0.0, 1), i, "es")
        return Stages(Flowgraph(config, self.session.link), self.harness.task(kind, i))

    def seed(self, kind: str, i: int):
        """EIUG's seed at the ES: the task's latent denoised to the split step."""
        if (kind, i) not in self._seeds:
            st = self.stages(kind, i)
            cond = st.encode_prompt("ES1", st.task.prompt)
            self._seeds[(kind, i)] = st.denoise("ES1", st.start("ES1", st.task.image), cond, to=st.split_step())
        return self._seeds[(kind, i)]

    def finish(self, kind: str, i: int, seed, noise_var: float):
        """The UE's image from a received seed: channel-aware resume, the remaining steps, decoding."""
        st = self.stages(kind, i)
        received = st.resume("UE", seed, noise_var)
        return st.decode("UE", st.denoise("UE", received, st.encode_prompt("UE", st.task.prompt)))

    def lost_seed(self, kind: str, i: int, seed):
        """What the UE resumes from when no seed arrived (flowgraphs.stages: fresh noise at the split step)."""
        import torch

        task = self.harness.task(kind, i)
        noise = torch.randn(seed.latents.shape, generator=torch.Generator().manual_seed(task.seed + 1))
        return seed.replace(latents=noise.to(seed.latents))

    def candidates(self, payload: str, kind: str, i: int) -> list:
        """The digital payloads of task i, best first (image: WebP qualities; seed: formats), built once."""
        key = (payload, kind, i)
        if key not in self._candidates:
            self._candidates[key] = image_candidates(self.harness.reference(kind, i)[0]) if payload == "image" \
                else seed_candidates(self.seed(kind, i))
        return self._candidates[key]

    def rule(self, point: Point, link) -> DigitalPlan:
        """The digital fit rule at this point, planning with the hop link's measured first-try BLER (measured
        once per worker, channel and SNR) when it exceeds the target."""
        key = (point.channel, point.snr_db)
        if key not in self._bler:
            self._bler[key] = first_try_bler(self.link("digital", point, 0))
        return digital_plan(link, self._bler[key])

    def link(self, scheme: str, point: Point, i: int):
        from flowgraphs.config import LinkSpec
        from meg_common.executors import unit_seed

        spec = LinkSpec(scheme=scheme, channel=point.channel, snr_db=point.snr_db).validate("bandwidth sweep")
        return self.session.link(spec, unit_seed(1000 + i, f"{point.key}|{scheme}"))

    # -- one task at one point: (image, numbers) ---------------------------------------------------------
    def outcome(self, point: Point, i: int):
        import torch

        try:
            return getattr(self, "_" + point.series.replace("-", "_"))(point, i)
        finally:
            if torch.get_num_threads() != self.harness.threads:
                torch.set_num_threads(self.harness.threads)

    def _prompt_only(self, point: Point, i: int):
        from flowgraphs.experiments import case_study as cs

        image, _ = self.harness.outcome(cs.Point(point.kind, BASELINE, cs.NO_CHANNEL, None, 0), i)
        return image, {"uses": 0, "air_symbols": 0, "delivered": True, "fits": True, "setting": None}

    def _reference(self, point: Point, i: int):
        return self.harness.reference(point.kind, i)[0]

    def _seed_analog(self, point: Point, i: int):
        seed = self.seed(point.kind, i)
        link = self.link("analog", point, i)
        est, var, copies, s = send_filled(link, seed.latents, point.uses)
        image = self.finish(point.kind, i, seed.replace(latents=est.to(seed.latents)), float(var.mean()))
        return image, {"uses": point.uses, "air_symbols": s.total_symbols, "delivered": True, "fits": True,
                       "setting": round(float(copies.double().mean()), 4), "noise_var": float(var.mean()),
                       "payload_values": int(seed.latents.numel())}

    def _softcast_meta_free(self, point: Point, i: int):
        from meg_phy.codecs.softcast import SoftCastDecoder, SoftCastEncoder

        ref = self._reference(point, i)
        plan = SoftCastEncoder().plan(ref.detach().cpu().float(), channel_uses=point.uses)
        est, var, copies, s = send_filled(self.link("analog", point, i), plan.values, point.uses)
        image = SoftCastDecoder()(est, var, plan.meta).to(ref)
        return image, {"uses": point.uses, "air_symbols": s.total_symbols, "delivered": True, "fits": True,
                       "setting": int(plan.info.kept.sum()), "side_bits": 8 * len(plan.meta),
                       "noise_var": float(var.mean()), "payload_values": int(plan.values.numel())}

    def _softcast(self, point: Point, i: int):
        import torch

        from meg_phy.codecs.softcast import HEADER_BYTES, SoftCastDecoder, SoftCastEncoder, unpack_meta

        ref = self._reference(point, i)
        rule = self.rule(point, self.link("digital", point, i))
        link = self.link("digital", point, i)
        encoder = SoftCastEncoder()
        chunk_len = encoder.chunk[0] * encoder.chunk[1]
        height, width = ref.shape[-2:]
        chunks = 3 * (height // encoder.chunk[0]) * (width // encoder.chunk[1])

        def meta_bits(count: int) -> int:
            return 8 * (HEADER_BYTES + math.ceil((chunks + encoder.variance_bits * count) / 8))

        count = min(chunks, 2 * point.uses // chunk_len)
        while count > 0 and not rule.fits(meta_bits(count), point.uses - math.ceil(count * chunk_len / 2)):
            count -= 1
        numbers = {"uses": 0, "air_symbols": 0, "delivered": False, "fits": count > 0, "setting": count,
                   "side_bits": meta_bits(max(count, 1)), "mcs_index": rule.mcs_index,
                   "planning_bler": rule.bler}
        lost = torch.full_like(ref, 0.5)
        if count == 0:
            return lost, numbers
        plan = encoder.plan(ref.detach().cpu().float(), channel_uses=math.ceil(count * chunk_len / 2))
        got, info = send_budgeted(link, plan.meta, point.uses - plan.channel_uses)
        numbers.update(uses=info["uses"], air_symbols=info["air_symbols"], side_bits=8 * len(plan.meta),
                       transmissions=info["transmissions"])
        if _decoded(got, unpack_meta) is None:
            return lost, numbers
        analog = self.link("analog", point, i)
        left = point.uses - info["uses"]
        est, var, copies, s = send_filled(analog, plan.values, left)
        image = SoftCastDecoder()(est, var, got).to(ref)
        numbers.update(uses=info["uses"] + left, air_symbols=info["air_symbols"] + s.total_symbols, delivered=True,
                       noise_var=float(var.mean()), payload_values=int(plan.values.numel()))
        return image, numbers

    def _send_digital(self, payload: str, point: Point, i: int, decode):
        """The best `payload` ("image" or "seed") candidate that the fit rule lets into the budget, sent over
        the link-adapted digital link: (what arrived decoded, or None when nothing fitted or it was lost,
        numbers). The rule measures on the hop's link first; the link is then reseeded for the send."""
        rule = self.rule(point, self.link("digital", point, i))
        link = self.link("digital", point, i)
        data, setting = best_payload(self.candidates(payload, point.kind, i), lambda b: rule.fits(b, point.uses))
        numbers = {"uses": 0, "air_symbols": 0, "delivered": False, "fits": data is not None, "setting": setting,
                   "mcs_index": rule.mcs_index, "planning_bler": rule.bler,
                   "payload_bits": None if data is None else 8 * len(data)}
        if data is None:
            return None, numbers
        got, info = send_budgeted(link, data, point.uses)
        numbers.update(uses=info["uses"], air_symbols=info["air_symbols"], transmissions=info["transmissions"])
        received = _decoded(got, decode)
        numbers["delivered"] = received is not None
        return received, numbers

    def _image_digital(self, point: Point, i: int):
        import torch

        from meg_phy.codecs import decode_image

        ref = self._reference(point, i)
        image, numbers = self._send_digital("image", point, i, decode_image)
        if image is None:
            return torch.full_like(ref, 0.5), numbers
        return image.to(ref), numbers

    def _seed_digital(self, point: Point, i: int):
        from meg_phy.codecs import decode_seed

        seed = self.seed(point.kind, i)
        received, numbers = self._send_digital("seed", point, i, decode_seed)
        if received is None:
            received = self.lost_seed(point.kind, i, seed)
        return self.finish(point.kind, i, received.replace(latents=received.latents.to(seed.latents)), 0.0), numbers

    def _image_capacity(self, point: Point, i: int):
        import torch

        from meg_phy.codecs import decode_image

        ref = self._reference(point, i)
        limit = capacity_bits(point.uses, point.snr_db, point.channel)
        data, quality = best_payload(self.candidates("image", point.kind, i), lambda b: b <= limit)
        numbers = {"uses": point.uses if data else 0, "air_symbols": 0, "delivered": data is not None,
                   "fits": data is not None, "setting": quality, "capacity_bits": limit,
                   "payload_bits": None if data is None else 8 * len(data)}
        return (torch.full_like(ref, 0.5) if data is None else decode_image(data).to(ref)), numbers

    def _seed_capacity(self, point: Point, i: int):
        from meg_phy.codecs import decode_seed

        seed = self.seed(point.kind, i)
        limit = capacity_bits(point.uses, point.snr_db, point.channel)
        data, fmt = best_payload(self.candidates("seed", point.kind, i), lambda b: b <= limit)
        numbers = {"uses": point.uses if data else 0, "air_symbols": 0, "delivered": data is not None,
                   "fits": data is not None, "setting": fmt, "capacity_bits": limit,
                   "payload_bits": None if data is None else 8 * len(data)}
        received = self.lost_seed(point.kind, i, seed) if data is None else decode_seed(data)
        return self.finish(point.kind, i, received.replace(latents=received.latents.to(seed.latents)), 0.0), numbers


def _decoded(data: bytes | None, decode):
    """decode(data), or None when nothing arrived or the payload's CRC / format check fails."""
    import zlib

    from meg_common.errors import InputError

    if data is None:
        return None
    try:
        return decode(data)
    except (InputError, ValueError, OSError, zlib.error):
        return None


def setup(plan_data: dict[str, Any]) -> Worker:
    return Worker(Plan.from_dict(plan_data))


def make_setup(plan: Plan):
    return partial(setup, plan.to_dict())


def run_unit(worker: Worker, point_data: dict[str, Any], indices: list[int]) -> dict[str, Any]:
    """One chunk of one point: per-task records, or why the point has no value (the seed does not fit)."""
    from flowgraphs.experiments import case_study

    point = Point(**point_data)
    if point.series == "seed-analog":
        need = seed_uses(worker.harness.ldm)
        if point.uses < need:
            return {"point": point_data, "skipped": f"the seed takes {need} channel uses on the analog link, the "
                                                    f"budget is {point.uses}: no analog-seed point below it"}
    outs = [worker.outcome(point, i) for i in indices]
    return {"point": point_data, "records": case_study.score(worker.harness, point.kind, indices, outs)}


# ---- pooling -----------------------------------------------------------------------------------------
def collect(results: dict[str, Any]) -> tuple[dict[Point, list[dict[str, Any]]], list[dict[str, Any]]]:
    merged: dict[Point, list[dict[str, Any]]] = {}
    skipped: dict[Point, dict[str, Any]] = {}
    for result in results.values():
        point = Point(**result["point"])
        if "skipped" in result:
            skipped[point] = {**result["point"], "why": result["skipped"]}
            continue
        merged.setdefault(point, []).extend(result["records"])
    for records in merged.values():
        records.sort(key=lambda r: r["task"])
    return merged, list(skipped.values())


def row(point: Point, records: list[dict[str, Any]], baseline: list[dict[str, Any]] | None) -> dict[str, Any]:
    """One point pooled over its tasks: every figure with its 95 % interval (meg_common.stats)."""
    series = SERIES[point.series]
    matches = [bool(r["prompt_match"]) for r in records]
    out: dict[str, Any] = {
        "series": point.series, "label": series.label, "payload": series.payload, "scheme": series.scheme,
        "task_kind": point.kind, "channel": None if point.channel == NO_CHANNEL else point.channel,
        "snr_db": point.snr_db, "uses": point.uses, "n": len(records),
        "fidelity": stats.mean([r["fidelity"] for r in records]),
        "prompt_accuracy": stats.rate(sum(matches), len(matches)),
        "psnr_db": stats.pooled_psnr([r["mse"] for r in records]),
        "ssim": stats.mean([r["ssim"] for r in records]),
        "feature_distance": stats.mean([r["feature_distance"] for r in records])
        if any(r.get("feature_distance") is not None for r in records) else None,
        "uses_spent": stats.mean([r["uses"] for r in records]),
        "max_uses_spent": max(r["uses"] for r in records),
        "air_symbols": stats.mean([r["air_symbols"] for r in records]),
        "delivered": stats.rate(sum(bool(r["delivered"]) for r in records), len(records)),
        "fits": stats.rate(sum(bool(r["fits"]) for r in records), len(records)),
        "settings": sorted({str(r["setting"]) for r in records}),
    }
    for key in ("mcs_index", "planning_bler"):  # the same for every task of a point
        out[key] = records[0].get(key)
    bits = [r["payload_bits"] for r in records if r.get("payload_bits") is not None]
    out["payload_bits"] = stats.mean(bits) if bits else None
    if baseline is not None and point.series != BASELINE:
        base = {r["task"]: r for r in baseline}
        mine = [r for r in records if r["task"] in base]
        out["paired"] = {"prompt-only": {"fidelity": stats.paired_difference(
            [r["fidelity"] for r in mine], [base[r["task"]]["fidelity"] for r in mine])}}
    return out


def rows(merged: dict[Point, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [row(p, r, merged.get(Point(p.kind, BASELINE, NO_CHANNEL, None, 0))) for p, r in merged.items()]


def plan_matches(out, plan: Plan) -> None:
    """Refuse to resume a folder made with another plan."""
    from meg_common.errors import InputError
    from meg_common.io import atomic_write_json

    path = out / "plan.json"
    if path.exists():
        if json.loads(path.read_text()) != plan.to_dict():
            raise InputError(f"{out} holds a bandwidth sweep with another configuration ({path}); use a new --out, "
                             "or delete it to start over")
    else:
        atomic_write_json(path, plan.to_dict())


# ---- figure and report -------------------------------------------------------------------------------
STYLE = {
    "seed-analog": ("tab:blue", "-", "o"),
    "softcast": ("tab:purple", "-", "*"),
    "softcast-meta-free": ("tab:purple", ":", "*"),
    "image-digital": ("tab:red", "--", "D"),
    "seed-digital": ("tab:cyan", "--", "s"),
    "image-capacity": ("k", ":", "_"),
    "seed-capacity": ("tab:gray", ":", "|"),
    BASELINE: ("tab:gray", "-", None),
}
FIGURE_METRICS = (("fidelity", "fidelity to the reference"), ("psnr_db", "PSNR vs reference (dB)"))


def figure(rows_: list[dict[str, Any]], path, kind: str, channel: str, plan: Plan):
    """Per metric (rows): quality against channel uses at each SNR, and against SNR at `fixed_uses`; error
    bars are 95 % intervals, prompt-only a line and band (figures.py style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flowgraphs.experiments.figures import _save, _value

    mine = [r for r in rows_ if r["task_kind"] == kind and r["channel"] in (channel, None)]
    base = [r for r in mine if r["series"] == BASELINE]
    panels = [("uses", s) for s in plan.snrs] + [("snr", plan.fixed_uses)]
    fig, axes = plt.subplots(len(FIGURE_METRICS), len(panels), figsize=(4.3 * len(panels), 3.8 * len(FIGURE_METRICS)),
                             squeeze=False)
    for mi, (metric, label) in enumerate(FIGURE_METRICS):
        for pi, (axis, fixed) in enumerate(panels):
            ax = axes[mi][pi]
            for series in plan.series:
                if series == BASELINE:
                    continue
                pts = [r for r in mine if r["series"] == series and
                       (r["snr_db"] == fixed if axis == "uses" else r["uses"] == fixed)]
                x_of = (lambda r: r["uses"]) if axis == "uses" else (lambda r: r["snr_db"])
                vals = sorted(((x_of(r), _value(r, metric)) for r in pts), key=lambda xv: xv[0])
                vals = [(x, v) for x, v in vals if v is not None]
                if not vals:
                    continue
                colour, line, marker = STYLE.get(series, (None, "-", "."))
                ax.errorbar([x for x, _ in vals], [v[0] for _, v in vals],
                            yerr=[[v[1] for _, v in vals], [v[2] for _, v in vals]], color=colour, linestyle=line,
                            marker=marker or ".", markersize=4, capsize=2, label=SERIES[series].label)
            for r in base:
                v = _value(r, metric)
                if v is not None:
                    colour, line, _ = STYLE[BASELINE]
                    ax.axhline(v[0], color=colour, linestyle=line, linewidth=1.2, label=r["label"])
                    ax.axhspan(v[0] - v[1], v[0] + v[2], color=colour, alpha=0.15)
            if axis == "uses":
                ax.set_xscale("log", base=2)
                ax.set_xlabel(f"channel uses per image, {channel} {fixed:g} dB")
            else:
                ax.set_xlabel(f"SNR (dB), {channel}, {fixed} channel uses")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if metric == "fidelity":
                ax.set_ylim(-0.03, 1.03)
    axes[0][0].legend(fontsize=6, loc="best")
    fig.suptitle(f"Quality against bandwidth, {kind}, {channel}: {plan.n_tasks} tasks per point, 95 % intervals",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def report(rows_: list[dict[str, Any]], plan: Plan, skipped: list[dict[str, Any]], model: dict[str, Any],
           versions: dict[str, Any], seconds: float) -> str:
    """The markdown section of the report: setup, rules, one table per (kind, channel, SNR) and the SNR sweep."""
    from flowgraphs.experiments.paper import ci

    def cell(r: dict[str, Any] | None) -> str:
        if r is None:
            return "—"
        text = ci(r["fidelity"])
        if r["delivered"]["value"] is not None and r["delivered"]["value"] < 1:
            text += f" ({r['delivered']['k']}/{r['n']} delivered)"
        return text

    lines = [
        "## Quality against bandwidth",
        "",
        f"*Measured by `meg-phy reproduce --bandwidth` ({seconds / 60:.1f} min wall), commit "
        f"`{versions.get('commit')}`; model latent {model.get('latent_shape')}, images {model.get('resolution')}; "
        f"{plan.n_tasks} tasks per point.*",
        "",
        "Fidelity to the reference (mean [95 % interval]) of each series at a budget of N channel uses per image "
        "(payload-carrying resource elements; pilots and cyclic prefix not charged). Series: "
        + "; ".join(f"`{k}` {s.label}" for k, s in SERIES.items()) + ". Rules: docs/reproduce.md, "
        "\"Quality against bandwidth\". — : no point (the analog seed does not fit below its own size). "
        "A payload that does not fit or is not delivered scores as the harness's failure value (grey image, or "
        "fresh noise at the split step for a seed).",
        "",
    ]
    by = {(r["task_kind"], r["series"], r["channel"], r["snr_db"], r["uses"]): r for r in rows_}
    series = [s for s in plan.series if s != BASELINE]
    for kind in plan.kinds:
        base = by.get((kind, BASELINE, None, None, 0))
        if base is not None:
            lines += [f"Prompt-only ({kind}): fidelity {ci(base['fidelity'])}, prompt accuracy "
                      f"{ci(base['prompt_accuracy'])}.", ""]
        for channel in plan.channels:
            for snr in plan.snrs:
                lines += [f"### {kind}, {channel}, {snr:g} dB: fidelity against channel uses", "",
                          "| series | " + " | ".join(str(n) for n in plan.uses) + " |",
                          "| --- |" + " --- |" * len(plan.uses)]
                lines += [f"| {s} | " + " | ".join(cell(by.get((kind, s, channel, snr, n))) for n in plan.uses) + " |"
                          for s in series]
                lines.append("")
            lines += [f"### {kind}, {channel}: fidelity against SNR at {plan.fixed_uses} channel uses", "",
                      "| series | " + " | ".join(f"{s:g} dB" for s in plan.snr_sweep) + " |",
                      "| --- |" + " --- |" * len(plan.snr_sweep)]
            lines += [f"| {s} | " + " | ".join(cell(by.get((kind, s, channel, snr, plan.fixed_uses)))
                                                for snr in plan.snr_sweep) + " |" for s in series]
            lines.append("")
    if skipped:
        lines += [f"No point ({len(skipped)}): " + "; ".join(sorted({s["why"] for s in skipped})) + ".", ""]
    return "\n".join(lines)


__all__ = ["Plan", "Point", "SERIES", "Worker", "campaign", "collect", "digital_plan", "figure", "make_setup",
           "points", "report", "resolve", "row", "rows", "run_unit", "send_budgeted", "send_filled", "setup"]
