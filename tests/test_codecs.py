"""Payload codecs: round trips (exact / within quantisation bounds), sizes, and malformed input -> PayloadError."""

import struct
import zlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meg_common.errors import InputError
from meg_phy.codecs import (
    FRAMING_BYTES,
    PayloadError,
    analog_to_image,
    analog_to_seed,
    decode_image,
    decode_seed,
    encode_image,
    encode_seed,
    encode_sketch,
    image_info,
    image_to_analog,
    payload_bits,
    payload_values,
    quantisation_noise_var,
    seed_to_analog,
    side_info,
    sketch_to_analog,
)
from meg_phy.ldm import Latent

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_seed(latents=None, step=3, steps=10, begin=2, timesteps=None, scheduler="ddim", region=None):
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) if latents is None else latents
    if timesteps is None:
        timesteps = torch.arange(steps - 1, -1, -1)[begin:] * 100 + 1
    return Latent(latents=latents, step=step, timesteps=timesteps, num_inference_steps=steps, begin_index=begin,
                strength=0.8, guidance=7.5, prompt="p", scheduler=scheduler, region=region,
                full_size=(8, 8) if region else None)


latent_arrays = st.builds(
    lambda shape, scale, seed: torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale,
    st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)),
    st.floats(1e-3, 1e3), st.integers(0, 2**31 - 1))


@FAST
@given(latent_arrays, st.integers(0, 5))
def test_float_round_trips(latents, step):
    seed = make_seed(latents, step=step)
    back = decode_seed(encode_seed(seed, "float32"))
    assert torch.equal(back.latents, latents)
    half = decode_seed(encode_seed(seed, "float16"))
    assert torch.equal(half.latents, latents.half().float())
    # float16 rounding: relative 2^-11 for normal numbers, absolute 2^-25 in the subnormal range (< 6.1e-5)
    assert torch.allclose(half.latents, latents, rtol=2**-11, atol=2**-25)
    assert back.step == step and back.num_inference_steps == 10 and back.begin_index == 2
    assert torch.equal(back.timesteps[step:], seed.timesteps[step:]) and bool((back.timesteps[:step] == -1).all())
    assert back.timestep == seed.timestep


@FAST
@given(latent_arrays, st.sampled_from(["int8", "int4"]))
def test_quantised_round_trips_within_half_a_step(latents, dtype):
    payload = encode_seed(make_seed(latents), dtype)
    back = decode_seed(payload).latents
    levels = 255 if dtype == "int8" else 15
    per_channel = latents.transpose(0, 1).reshape(latents.shape[1], -1)
    step = (per_channel.max(1).values - per_channel.min(1).values) / levels
    err = (back - latents).abs().transpose(0, 1).reshape(latents.shape[1], -1)
    assert bool((err <= step[:, None] / 2 * (1 + 1e-4) + 1e-6 * latents.abs().max()).all())
    # the reported quantisation noise is step^2/12 averaged over channels
    assert quantisation_noise_var(payload) == pytest.approx(float((step**2 / 12).mean()), rel=1e-4)


def test_sizes_for_the_embedded_latent():
    seed = make_seed()
    sizes = {d: len(encode_seed(seed, d)) for d in ("float32", "float16", "int8", "int4")}
    meta = FRAMING_BYTES + 4 + 2 * 4 + 18 + 2 + 2 * 5  # framing, fixed, shape, steps, count, 5 timesteps left
    assert sizes == {"float32": meta + 1024, "float16": meta + 512, "int8": meta + 32 + 256, "int4": meta + 32 + 128}
    assert payload_bits(encode_seed(seed, "int4")) == 8 * sizes["int4"]


def test_constant_channel_and_odd_count_int4():
    latents = torch.zeros(1, 3, 3, 3)
    latents[0, 1] = 2.5
    latents[0, 2] = torch.arange(9.0).reshape(3, 3)
    for dtype in ("int8", "int4"):
        back = decode_seed(encode_seed(make_seed(latents), dtype)).latents
        assert torch.equal(back[0, :2], latents[0, :2])
        assert (back - latents).abs().max() <= 8 / 15 / 2 + 1e-6


def test_tile_region_and_float_timesteps_travel():
    seed = make_seed(torch.randn(1, 4, 8, 6), region=(0, 2, 8, 6),
                     timesteps=torch.tensor([999.0, 500.5, 0.25]), step=1, steps=3, begin=0, scheduler="euler")
    back = decode_seed(encode_seed(seed))
    assert back.region == (0, 2, 8, 6) and back.full_size == (8, 8) and back.scheduler == "euler"
    assert back.timesteps.dtype == torch.float32 and back.timesteps[1:].tolist() == [500.5, 0.25]


@FAST
@given(latent_arrays, st.floats(0.0, 10.0))
def test_analog_seed_round_trip(latents, var):
    values, side = seed_to_analog(make_seed(latents))
    assert values.dim() == 1 and values.numel() == latents.numel()
    assert values.pow(2).mean().item() == pytest.approx(1.0, rel=1e-4)
    seed, var_latent = analog_to_seed(values, var, side)
    assert torch.allclose(seed.latents, latents, rtol=1e-5, atol=1e-6 * latents.abs().max())
    scale2 = latents.pow(2).mean().item()
    assert var_latent.item() == pytest.approx(var * scale2, rel=1e-4, abs=1e-12)
    per_value, var_vec = analog_to_seed(values, torch.full((values.numel(),), var), side)
    assert var_vec.shape == (values.numel(),)
    info = side_info(side)
    assert info.dtype == "analog" and info.shape == tuple(latents.shape) and info.step == 3


def test_analog_seed_rejects_wrong_counts():
    values, side = seed_to_analog(make_seed())
    with pytest.raises(PayloadError, match="values"):
        analog_to_seed(values[:-1], 0.1, side)
    with pytest.raises(InputError, match="noise variance"):
        analog_to_seed(values, torch.ones(3), side)
    with pytest.raises(PayloadError, match="analog"):
        decode_seed(side)
    with pytest.raises(PayloadError, match="not analog"):
        analog_to_seed(values, 0.1, encode_seed(make_seed()))


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_image_round_trips(fmt):
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    image = torch.nn.functional.avg_pool2d(image, 3, 1, 1)  # some smoothness, like a real image
    payload = encode_image(image, fmt=fmt, quality=90)
    back = decode_image(payload)
    assert back.shape == image.shape
    quantised = (image * 255).round() / 255
    if fmt == "png":
        assert torch.equal(back, quantised)
    else:
        assert (back - image).abs().mean() < 0.06
    info = image_info(payload)
    assert info["format"] == fmt and info["file_bytes"] == len(payload) - FRAMING_BYTES - 14


def test_quality_trades_size():
    image = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 32, 32), 3, 1, 1)
    sizes = [len(encode_image(image, "jpeg", q)) for q in (10, 50, 95)]
    assert sizes[0] < sizes[1] < sizes[2]
    errors = [(decode_image(encode_image(image, "jpeg", q)) - image).pow(2).mean() for q in (10, 95)]
    assert errors[1] < errors[0]


def test_sketch_is_small_and_decodes_to_full_size():
    image = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 32, 32), 5, 1, 2)
    sketch = encode_sketch(image, size=(16, 16))
    assert len(sketch) < len(encode_image(image, "png"))
    back = decode_image(sketch)
    assert back.shape == (1, 3, 32, 32)
    assert image_info(sketch)["kind"] == "sketch" and image_info(sketch)["sent_size"] == [16, 16]
    values, side = sketch_to_analog(image, size=(8, 8))
    assert values.numel() == 3 * 64


@FAST
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_analog_image_round_trip(seed, var):
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    values, side = image_to_analog(image)
    assert values.pow(2).mean().item() == pytest.approx(1.0, rel=1e-4)
    back, pixel_var = analog_to_image(values, var, side)
    assert torch.allclose(back, image, atol=1e-5)
    scale2 = (image * 2 - 1).pow(2).mean().item()
    assert pixel_var.item() == pytest.approx(var * scale2 / 4, rel=1e-4, abs=1e-12)


def test_corruption_truncation_and_wrong_kind_are_named():
    payload = bytearray(encode_seed(make_seed(), "int8"))
    with pytest.raises(PayloadError, match="truncated"):
        decode_seed(bytes(payload[:-1]))
    with pytest.raises(PayloadError, match="truncated"):
        decode_seed(bytes(payload[:5]))
    with pytest.raises(PayloadError, match="trailing"):
        decode_seed(bytes(payload) + b"\0")
    flipped = bytearray(payload)
    flipped[40] ^= 0x10
    with pytest.raises(PayloadError, match="CRC32"):
        decode_seed(bytes(flipped))
    with pytest.raises(PayloadError, match="magic"):
        decode_seed(b"XX" + bytes(payload[2:]))
    with pytest.raises(PayloadError, match="kind"):
        decode_image(bytes(payload))
    with pytest.raises(PayloadError, match="kind"):
        decode_seed(encode_image(torch.rand(1, 3, 8, 8)))
    with pytest.raises(PayloadError, match="bytes"):
        decode_seed("text")


def reframe(kind, meta, body):
    head = struct.pack("<2sBBHI", b"MG", kind, 1, len(meta), len(body))
    data = head + meta + body
    return data + struct.pack("<I", zlib.crc32(data))


def test_valid_crc_but_inconsistent_content():
    good = encode_seed(make_seed(), "float16")
    meta_len = struct.unpack_from("<H", good, 4)[0]
    meta, body = good[10:10 + meta_len], good[10 + meta_len:-4]
    with pytest.raises(PayloadError, match="body"):
        decode_seed(reframe(1, meta, body[:-2]))
    with pytest.raises(PayloadError, match="dtype code"):
        decode_seed(reframe(1, b"\x09" + meta[1:], body))
    with pytest.raises(PayloadError, match="metadata truncated"):
        decode_seed(reframe(1, meta[:6], body))
    nan = torch.full((1, 4, 8, 8), float("nan"), dtype=torch.float16).numpy().tobytes()
    with pytest.raises(PayloadError, match="NaN"):
        decode_seed(reframe(1, meta, nan))
    img = encode_image(torch.rand(1, 3, 8, 8))
    img_meta = img[10:10 + 14]
    with pytest.raises(PayloadError, match="does not decode"):
        decode_image(reframe(2, img_meta, b"\x89PNG\r\n\x1a\n" + b"\0" * 30))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash_decoders(data):
    for decoder in (decode_seed, decode_image, side_info, image_info):
        with pytest.raises(PayloadError):
            decoder(data)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["seed16", "seed4", "png", "jpeg", "side"]), st.integers(0, 10**6), st.binary(min_size=1, max_size=8))
def test_mutated_payloads_with_fixed_crc_never_crash(which, position, junk):
    """Mutate valid payloads (then fix the CRC, as if the corruption went undetected): only PayloadError or a value."""
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    payload = {"seed16": lambda: encode_seed(make_seed(), "float16"), "seed4": lambda: encode_seed(make_seed(), "int4"),
               "png": lambda: encode_image(image, "png"), "jpeg": lambda: encode_image(image, "jpeg"),
               "side": lambda: seed_to_analog(make_seed())[1]}[which]()
    body = bytearray(payload[:-4])
    pos = 6 + position % (len(body) - 6)  # keep magic/kind/version so the content parsers are reached
    body[pos:pos + len(junk)] = junk
    mutated = bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    decoder = {"seed16": decode_seed, "seed4": decode_seed, "png": decode_image, "jpeg": decode_image,
               "side": side_info}[which]
    try:
        result = decoder(mutated)
    except PayloadError:
        return
    if isinstance(result, torch.Tensor):
        assert bool(torch.isfinite(result).all())


def test_a_corrupted_target_size_is_refused_before_any_allocation():
    """The header's target size is 16-bit: 65535 x 65535 would be 51 GB of float pixels (a fuzz run of the test
    above once ran CI out of memory this way)."""
    from meg_phy.codecs import image as image_codec

    payload = encode_image(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)), "png")
    kind, meta, body = image_codec.unpack(payload, (image_codec.Kind.IMAGE,))
    fields = list(image_codec._META.unpack(meta))
    fields[4] = fields[5] = 65535
    forged = image_codec.pack(kind, image_codec._META.pack(*fields), body)
    with pytest.raises(PayloadError, match="larger than"):
        decode_image(forged)


def test_payload_counts():
    values, side = seed_to_analog(make_seed())
    assert payload_values(values) == 256 and payload_bits(values) == 0
    assert payload_bits(side) == 8 * len(side) and payload_values(side) == 0
