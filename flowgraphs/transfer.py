"""The transfer table: how each payload travels on each carrier, and what a receiver has when it is lost.

    transfer = transfer_for("latent", "analog")
    carried = transfer.encode(latent, config)          # what goes on air for one task: data, side, info
    value, noise_var = transfer.decode_values(est, noise_var, carried)     # a values carrier
    value = transfer.decode_bytes(received)            # a bytes carrier (raises on a corrupt payload)
    value, noise_var = transfer.lost(latent, context)  # what the receiver goes on with instead

One row per (payload, carrier, image codec): a payload kind (`latent`, `image`, `sketch`, `prompt`, `control`), the
link that carries it (a hop's `carrier`: `analog`, `digital`, `wired`, `capacity`) and, where a hop names one, the
image codec that replaces the run's `image_format` (`softcast` on an analog carrier; meg_common.vocabulary.
IMAGE_CODECS); a payload the codec does not concern travels as on its carrier. The codecs (meg_phy.codecs) pack
values; the link alone owns their power (the codecs are asked for their values as they are, `normalise=
False`). Noise variances come back in payload units: latent units for a latent (what channel-aware resume
needs), [0, 1] pixel units for an image. A digital, wired or capacity payload arrives exactly or not at all
(noise 0). The one place that says what a lost payload becomes: a latent is generated from scratch (fresh
noise at the start of the full schedule, the limit of channel-aware resume as the noise grows without
bound), an image or sketch is mid-grey, a prompt is None (the receiver encodes the empty prompt), a control
message is None.
"""

from __future__ import annotations

import functools
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from meg_common.errors import InputError
from meg_common.vocabulary import carrier_of, image_codec_of

CARRIERS_OF_VALUES = ("analog", "wired")
"""Carriers that carry a latent as real values (wired: float32 values, exactly)."""


class Carried(NamedTuple):
    """What one task's transfer puts on its hop: the data (bytes or a 1-D tensor; None: nothing fitted the
    hop's budget), the side information that goes digitally on the same hop (None: session state, nothing on
    air), what the receiver's decoder needs that it knows in advance (session state), and, on a hop with a
    budget, what the encoder chose to fit (`report`: HopRecord.budget's `fits`, `setting`, `side_bits`)."""

    data: bytes | torch.Tensor | None
    side: bytes | None
    info: Any
    report: dict[str, Any] | None = None


class Budget:
    """A hop's channel-use budget as an encoder sees it: the uses (`HopLink.channel_uses`) and the fit
    rule of the hop's link (`plan`: `Hop.budget_plan`, link_models.budget.DigitalPlan or CapacityPlan,
    measured when an encoder first asks whether something fits)."""

    def __init__(self, uses: int, hop: Any):
        self.uses, self._hop = uses, hop

    @functools.cached_property
    def plan(self) -> Any:
        return self._hop.budget_plan()

    def fits(self, bits: int, uses: int | None = None) -> bool:
        """Whether a digital payload of `bits` fits in `uses` (default: the whole budget)."""
        return self.plan.fits(bits, self.uses if uses is None else uses)

    def report(self, **numbers: Any) -> dict[str, Any]:
        """What HopRecord.budget says of the encoding (`numbers`) and, where it was asked, of the fit rule."""
        if "plan" not in self.__dict__:
            return numbers
        return {"mcs_index": self.plan.mcs_index, "planning_bler": self.plan.bler, **numbers}


def best_fit(candidates, budget: Budget | None) -> Carried:
    """What goes on a bytes hop: the first (best) of the (setting, payload) candidates whose payload fits the
    budget, with what the budget says of it (`report`: fits, setting, payload_bits), or no data when none
    fits; without a budget the first candidate as it is."""
    for setting, data in candidates:
        if budget is None:
            return Carried(data, None, None)
        if budget.fits(8 * len(data)):
            return Carried(data, None, None, budget.report(fits=True, setting=setting, payload_bits=8 * len(data)))
    return Carried(None, None, None, budget.report(fits=False, setting=None, payload_bits=None))


class LostContext(NamedTuple):
    """What a receiver has to make a stand-in from: the model and the task's noise seed."""

    ldm: Any
    seed: int


@dataclass(frozen=True)
class Transfer:
    """One row of the table: how one payload kind travels on one kind of carrier."""

    payload: str
    medium: str
    """'bytes' (digital: CRC, retries) or 'values' (real values, once)."""
    encode: Callable[..., Carried]
    """(the task's value, the run config, the hop's Budget or None) -> Carried: under a budget, the best
    setting whose payload fits it (the finest seed format, the highest image quality, the most SoftCast
    chunks whose metadata fits), or data None when none does."""
    decode: Callable[..., Any]
    """bytes: received bytes -> value (raises on a corrupt payload); values: (estimates, per-value noise
    variance, Carried) -> (value, noise variance in payload units)."""
    lost: Callable[[Any, LostContext], tuple[Any, float]]
    """(what was sent, context) -> (what the receiver goes on with, its noise variance)."""
    side_check: Callable[[Any], Callable[[bytes], Any]] | None = None
    """config -> the check of side information that arrived (raises when corrupt)."""

    def decode_bytes(self, received: bytes) -> Any:
        return self.decode(received)

    def decode_values(self, est: torch.Tensor, noise_var: torch.Tensor, carried: Carried) -> tuple[Any, float]:
        return self.decode(est, noise_var, carried)


# --- latents -----------------------------------------------------------------------------------------------
LINK_HEADER = struct.Struct("<eI")
"""What the analog link's receiver needs of its own: the values' power scale and their count. The scale goes
as float16: its rounding (at most 2^-11 relative, a 0.004 dB gain error) is far below any channel noise, and
batched and one-by-one runs, whose values differ in the float rounding of the model kernels, send the same
header bytes (and so draw the same retransmissions) but in the rare case of a scale on a rounding boundary."""


def on_air_side(values: torch.Tensor, side: bytes, config) -> bytes | None:
    """The side information of an analog payload as it goes on air with `side_info = "link"` (the default): the
    link's header (the scale it normalised the values' power by, and their count) followed by the codec's
    side information; None with `side_info = "session"` (agreed in advance, nothing on air: optimistic)."""
    if config.side_info != "link":
        return None
    from link_models.mapping import power_scale

    return LINK_HEADER.pack(float(power_scale(values.reshape(-1).float())), values.numel()) + side


def _side_check(decode: Callable[[bytes], Any]) -> Callable[[Any], Callable[[bytes], Any]]:
    """config -> the check of side information that arrived: the codec's own (`decode`), after the link
    header when `side_info = "link"` puts one in front."""
    def past_header(data: bytes) -> Any:
        if len(data) < LINK_HEADER.size:
            raise ValueError("side information shorter than the link header")
        return decode(data[LINK_HEADER.size:])

    return lambda config: past_header if config.side_info == "link" else decode


def _latent_values(latent, config, budget: Budget | None = None) -> Carried:
    from meg_phy.codecs import seed as codec

    values, side = codec.seed_to_analog(latent, normalise=False)
    return Carried(values, on_air_side(values, side, config), side, None if budget is None else budget.report())


def _latent_from_values(est, noise_var, carried: Carried):
    from meg_phy.codecs import seed as codec

    received, var = codec.analog_to_seed(est, noise_var, carried.info)
    return received, float(var.mean())


def _latent_bytes(latent, config, budget: Budget | None = None) -> Carried:
    """The latent quantised as `seed_format`; under a budget the finest format that fits (SEED_FORMATS)."""
    from flowgraphs.config import SEED_FORMATS
    from meg_phy.codecs import seed as codec

    formats = (config.seed_format,) if budget is None else SEED_FORMATS
    return best_fit(((f, codec.encode_seed(latent, f)) for f in formats), budget)


def _latent_from_bytes(received: bytes):
    from meg_phy.codecs import seed as codec

    return codec.decode_seed(received)


def _latent_side(data: bytes):
    from meg_phy.codecs import seed as codec

    return codec.side_info(data)


def latent_from_scratch(latent, context: LostContext) -> tuple[Any, float]:
    """What a receiver resumes from when a latent was lost (a digital payload that never passed its CRC, an
    analog one whose every frame went missing): fresh noise at the start of the full schedule, so it
    generates from scratch with all the schedule's steps (it keeps the latent's prompt and guidance)."""
    fresh = context.ldm.start(None, None, strength=1.0, steps=latent.num_inference_steps,
                              generator=torch.Generator().manual_seed(context.seed + 1))
    return fresh.replace(latents=fresh.latents.to(latent.latents), guidance=latent.guidance,
                         prompt=latent.prompt), 0.0


# --- images and sketches -----------------------------------------------------------------------------------
def _sent_size(payload: str, image: torch.Tensor, config) -> tuple[int, int] | None:
    """Sketches go at 1/`sketch_scale` of their resolution (and come back upsampled); images as they are."""
    if payload != "sketch":
        return None
    return tuple(max(1, d // config.sketch_scale) for d in image.shape[-2:])


def _image_values(payload: str):
    def encode(image, config, budget: Budget | None = None) -> Carried:
        from meg_phy import codecs

        to_analog = codecs.sketch_to_analog if payload == "sketch" else codecs.image_to_analog
        values, side = to_analog(image, size=_sent_size(payload, image, config), normalise=False)
        return Carried(values, on_air_side(values, side, config), side, None if budget is None else budget.report())
    return encode


def _image_from_values(est, noise_var, carried: Carried):
    from meg_phy import codecs

    received, var = codecs.analog_to_image(est, noise_var, carried.info)
    return received, float(var.mean())


def _image_side(data: bytes):
    from meg_phy import codecs

    return codecs.image_info(data)


def _image_softcast(payload: str):
    def encode(image, config, budget: Budget | None = None) -> Carried:
        from meg_phy.codecs.softcast import SoftCastEncoder
        from meg_phy.images import resize

        size = _sent_size(payload, image, config)
        small = (image if size is None else resize(image, size)).detach().cpu().float()
        encoder = SoftCastEncoder()
        chunks = None
        if budget is None:
            uses = max(8, config.softcast_uses // (config.sketch_scale ** 2 if size is not None else 1))
        elif config.side_info == "free":   # the metadata as free side information: the values take every use
            uses = budget.uses
        else:
            chunks = _softcast_chunks(encoder, small, budget, config)
            if chunks == 0:
                return Carried(None, None, None, budget.report(fits=False, setting=0,
                                                               side_bits=_softcast_meta_bits(encoder, small, 1, config)))
            uses = math.ceil(chunks * encoder.chunk[0] * encoder.chunk[1] / 2)
        plan = encoder.plan(small, channel_uses=uses)
        side = on_air_side(plan.values, plan.meta, config)  # the metadata goes on air unless side_info is free
        if side is None and config.side_info != "free":
            side = plan.meta
        report = None if budget is None else budget.report(
            setting=int(plan.info.kept.sum()) if chunks is None else chunks, side_bits=8 * len(plan.meta))
        return Carried(plan.values, side, (plan.meta, tuple(image.shape[-2:]), image.dtype), report)
    return encode


def _softcast_meta_bits(encoder, image: torch.Tensor, count: int, config) -> int:
    """Bits of the side information of SoftCast with `count` chunks of `image` (the metadata, after the
    link's header with side_info "link")."""
    from meg_phy.codecs.softcast import HEADER_BYTES

    chunks = 3 * (image.shape[-2] // encoder.chunk[0]) * (image.shape[-1] // encoder.chunk[1])
    header = LINK_HEADER.size if config.side_info == "link" else 0
    return 8 * (header + HEADER_BYTES + math.ceil((chunks + encoder.variance_bits * count) / 8))


def _softcast_chunks(encoder, image: torch.Tensor, budget: Budget, config) -> int:
    """The chunks SoftCast sends under a budget: the most whose metadata still fits the fit rule in the uses
    their values leave (0: not even one chunk's)."""
    chunk_len = encoder.chunk[0] * encoder.chunk[1]
    chunks = 3 * (image.shape[-2] // encoder.chunk[0]) * (image.shape[-1] // encoder.chunk[1])
    count = min(chunks, 2 * budget.uses // chunk_len)
    while count > 0 and not budget.fits(_softcast_meta_bits(encoder, image, count, config),
                                        budget.uses - math.ceil(count * chunk_len / 2)):
        count -= 1
    return count


def _image_from_softcast(est, noise_var, carried: Carried):
    """The LLSE image, and the error the receiver expects of it (from the reported noise variance)."""
    from meg_phy.codecs.softcast import SoftCastDecoder, unpack_meta
    from meg_phy.images import resize

    meta, full, dtype = carried.info
    received = SoftCastDecoder()(est, noise_var, meta).to(dtype)
    if tuple(received.shape[-2:]) != full:
        received = resize(received, full)
    return received, unpack_meta(meta).received_mse(noise_var)


def _softcast_side(data: bytes):
    from meg_phy.codecs.softcast import unpack_meta

    return unpack_meta(data)


IMAGE_QUALITIES = range(100, 0, -1)
"""The image qualities a budget chooses from, best first (sizes are not monotone in the quality, so the fit
takes the first that fits rather than searching)."""


def _image_bytes(payload: str):
    def encode(image, config, budget: Budget | None = None) -> Carried:
        """The image in `image_format` at `image_quality`; under a budget at the highest quality that fits."""
        from meg_phy import codecs

        encoder = codecs.encode_sketch if payload == "sketch" else codecs.encode_image
        size = _sent_size(payload, image, config)
        qualities = (config.image_quality,) if budget is None else IMAGE_QUALITIES
        return best_fit(((q, encoder(image, fmt=config.image_format, quality=q, size=size)) for q in qualities),
                        budget)
    return encode


def _image_from_bytes(received: bytes):
    from meg_phy import codecs

    return codecs.decode_image(received)


def grey(image: torch.Tensor, context: LostContext) -> tuple[torch.Tensor, float]:
    """A lost image or sketch: mid-grey (the hop says it was not delivered)."""
    return torch.full_like(image, 0.5), 0.0


# --- prompts -----------------------------------------------------------------------------------------------
def _prompt_bytes(text: str, config, budget: Budget | None = None) -> Carried:
    from flowgraphs.prompt_codec import encode_prompt

    return best_fit([(None, encode_prompt(text))], budget)


def _prompt_from_bytes(received: bytes) -> str:
    from flowgraphs.prompt_codec import decode_prompt

    return decode_prompt(received)


def no_prompt(text: str, context: LostContext) -> tuple[None, float]:
    """A lost prompt: None (the receiver encodes the empty prompt and generates without it)."""
    return None, 0.0


# --- control messages ----------------------------------------------------------------------------------------
def _control_bytes(message: bytes, config, budget: Budget | None = None) -> Carried:
    """A control message as it is, with a CRC32 of its own (the link's CRC protects codewords; this one the
    message as a whole)."""
    return best_fit([(None, bytes(message) + zlib.crc32(message).to_bytes(4, "little"))], budget)


def _control_from_bytes(received: bytes) -> bytes:
    body, crc = received[:-4], received[-4:]
    if len(received) < 5 or zlib.crc32(body).to_bytes(4, "little") != crc:
        raise ValueError("control message: CRC mismatch")
    return body


def no_message(message: bytes, context: LostContext) -> tuple[None, float]:
    """A lost control message: None (the receiver cannot do what it asked)."""
    return None, 0.0


def _table() -> dict[tuple[str, str, str | None], Transfer]:
    table: dict[tuple[str, str, str | None], Transfer] = {}
    for carrier in ("digital", "capacity"):
        table["latent", carrier, None] = Transfer("latent", "bytes", _latent_bytes, _latent_from_bytes,
                                                  latent_from_scratch)
    for carrier in CARRIERS_OF_VALUES:
        table["latent", carrier, None] = Transfer("latent", "values", _latent_values, _latent_from_values,
                                                  latent_from_scratch, _side_check(_latent_side))
    for payload in ("image", "sketch"):
        for carrier in ("digital", "capacity", "wired"):
            table[payload, carrier, None] = Transfer(payload, "bytes", _image_bytes(payload), _image_from_bytes, grey)
        table[payload, "analog", None] = Transfer(payload, "values", _image_values(payload), _image_from_values,
                                                  grey, _side_check(_image_side))
        table[payload, "analog", "softcast"] = Transfer(payload, "values", _image_softcast(payload),
                                                        _image_from_softcast, grey, _side_check(_softcast_side))
    for carrier in ("digital", "capacity", "wired"):   # text has no analog form: a hop sends prompts digitally
        table["prompt", carrier, None] = Transfer("prompt", "bytes", _prompt_bytes, _prompt_from_bytes, no_prompt)
    for carrier in ("digital", "capacity", "wired"):   # a hop sends control messages digitally (hops.control_spec)
        table["control", carrier, None] = Transfer("control", "bytes", _control_bytes, _control_from_bytes,
                                                   no_message)
    return table


TRANSFERS: dict[tuple[str, str, str | None], Transfer] = _table()
"""(payload, carrier, image codec or None) -> Transfer."""


def transfer_for(payload: str, carrier: str, image_codec: str | None = None) -> Transfer:
    """The row of `payload` on `carrier` with `image_codec` (a codec that has no row for this payload: the
    carrier's own row). A hop's scheme may stand for both (`transfer_for("image", "softcast")`: the analog
    carrier with the SoftCast codec). InputError naming the carriers the payload has otherwise."""
    if image_codec is None:
        carrier, image_codec = carrier_of(carrier), image_codec_of(carrier)
    row = TRANSFERS.get((payload, carrier, image_codec)) or TRANSFERS.get((payload, carrier, None))
    if row is None:
        known = sorted({c for p, c, _ in TRANSFERS if p == payload})
        raise InputError(f"a {payload} cannot travel on a {carrier} hop; its carriers: {', '.join(known)}")
    return row
