"""A simulated radio pair (transmitter cabled to receiver) with the impairments of real hardware.

What `transmit` sends goes through, in physical order: the channel (AWGN only, or a 3GPP TDL multipath
drawn per capture), the carrier frequency offset between the two oscillators (`cfo_ppm` of the carrier),
the receiver's sample-clock offset (`sco_ppm`, band-limited resampling), thermal noise, IQ imbalance,
DC offset, an AGC-like gain that puts the capture at `rx_level_dbfs`, and a `adc_bits` ADC with clipping.
`receive(n)` returns n samples in which the transmitted bursts start at a random (fractional) time;
bursts queued by several `transmit` calls follow each other with random gaps; a cyclic transmission
fills the whole capture. Everything is drawn from one seeded generator: the same seed gives the same
samples.

SNR (`snr_db`) is Es/N0 per used subcarrier, the link models' convention: noise power per sample equals
the burst's mean power per active sample divided by `occupied_fraction` (52/64 for the default frame)
and by the SNR.
"""

from __future__ import annotations

import math

import numpy as np

from meg_common.errors import InputError
from meg_common.vocabulary import SIM_RADIO_CHANNELS, values
from sdr_drivers.base import Radio, Setting, check_count, check_samples
from sdr_drivers.impairments import awgn, frequency_shift, iq_imbalance, quantize, resample

CHANNELS = values(SIM_RADIO_CHANNELS)
REALISTIC = {"cfo_ppm": 20.0, "sco_ppm": 20.0, "dc_offset": 0.01 + 0.005j, "iq_gain_db": 0.5, "iq_phase_deg": 3.0}
"""The impairments of a typical low-cost SDR pair (`--radio sim`, the radio BLER table): 20 ppm oscillators,
a small DC offset, 0.5 dB / 3 degree IQ imbalance (with the default 12-bit ADC)."""


class SimRadio(Radio):
    """Loopback pair: one object transmits and receives. All settings are validated properties."""

    hardware = "meg-phy simulated radio pair"

    def __init__(self, sample_rate: float = 2e6, center_frequency: float = 2.4e9, snr_db: float = 20.0,
                 cfo_ppm: float = 0.0, sco_ppm: float = 0.0, dc_offset: complex = 0.0, iq_gain_db: float = 0.0,
                 iq_phase_deg: float = 0.0, adc_bits: int = 12, rx_level_dbfs: float = -15.0,
                 channel: str = "awgn", delay_spread_ns: float = 100.0, occupied_fraction: float = 52 / 64,
                 seed: int | None = 0):
        self._rng = np.random.default_rng(seed)
        self._seed = seed
        self._queue: list[np.ndarray] = []
        self._cyclic: np.ndarray | None = None
        self.last_bursts: list[tuple[float, int]] = []
        """Ground truth of the last capture: (start, length) of every burst in it, start as a (fractional)
        index into the captured samples (the sample clock offset included), length in transmitted samples."""
        self.configure(sample_rate=sample_rate, center_frequency=center_frequency, snr_db=snr_db,
                       cfo_ppm=cfo_ppm, sco_ppm=sco_ppm, dc_offset=dc_offset, iq_gain_db=iq_gain_db,
                       iq_phase_deg=iq_phase_deg, adc_bits=adc_bits, rx_level_dbfs=rx_level_dbfs,
                       channel=channel, delay_spread_ns=delay_spread_ns, occupied_fraction=occupied_fraction)

    # --- validated settings ----------------------------------------------------------------------------------
    sample_rate = Setting.number(1e3, 1e9, doc="Samples per second of both ends.")
    center_frequency = Setting.number(1e6, 100e9,
                                      doc="Carrier frequency in Hz (scales cfo_ppm to cfo_hz; the TDL model's carrier).")
    snr_db = Setting.number(-30, 200, doc="Es/N0 per used subcarrier in dB (see the module docstring).")
    cfo_ppm = Setting.number(-200, 200, doc="Carrier frequency offset between the oscillators, ppm of the carrier.")
    sco_ppm = Setting.number(-200, 200, doc="The receiver's sample-clock offset in ppm.")
    iq_gain_db = Setting.number(-6, 6, doc="IQ gain imbalance in dB.")
    iq_phase_deg = Setting.number(-30, 30, doc="IQ phase imbalance in degrees.")
    rx_level_dbfs = Setting.number(-80, 0, doc="Where the AGC puts the capture's mean power, dB full scale.")
    delay_spread_ns = Setting.number(0, 10000, doc="RMS delay spread of a TDL channel in ns.")
    occupied_fraction = Setting.number(0.01, 1, doc="Share of the subcarriers in use (52/64 for the default frame).")
    adc_bits = Setting.integer(4, 24, "an integer between 4 and 24 (Pluto: 12)", doc="ADC resolution in bits.")

    def _check_dc_offset(self, name: str, value) -> complex:
        try:
            value = complex(value)
        except (TypeError, ValueError):
            raise InputError(f"dc_offset={value!r}: must be a complex number (fraction of full scale)") from None
        if not (math.isfinite(value.real) and math.isfinite(value.imag)) or abs(value) > 0.5:
            raise InputError(f"dc_offset={value!r}: must be finite with |dc| <= 0.5 of full scale")
        return value

    def _check_channel(self, name: str, value) -> str:
        value = str(value).lower()
        if value not in CHANNELS:
            raise InputError(f"channel '{value}': choose one of {', '.join(CHANNELS)}")
        return value

    dc_offset = Setting(_check_dc_offset, "DC offset added to the capture, a complex fraction of full scale.")
    channel = Setting(_check_channel, f"The channel model: one of {', '.join(CHANNELS)}.")

    @property
    def cfo_hz(self) -> float:
        return self.cfo_ppm * 1e-6 * self.center_frequency

    def settings(self) -> dict:
        return {"radio": "sim", "sample_rate": self.sample_rate, "center_frequency": self.center_frequency,
                "snr_db": self.snr_db, "cfo_ppm": self.cfo_ppm, "cfo_hz": self.cfo_hz, "sco_ppm": self.sco_ppm,
                "dc_offset": [self.dc_offset.real, self.dc_offset.imag], "iq_gain_db": self.iq_gain_db,
                "iq_phase_deg": self.iq_phase_deg, "adc_bits": self.adc_bits, "rx_level_dbfs": self.rx_level_dbfs,
                "channel": self.channel, "delay_spread_ns": self.delay_spread_ns, "seed": self._seed}

    # --- radio interface -------------------------------------------------------------------------------------
    def reseed(self, seed: int) -> None:
        """Draw everything from `seed` again: the radio then behaves exactly like SimRadio(..., seed=seed)."""
        self._rng = np.random.default_rng(seed)
        self._seed = seed
        self.stop_transmit()

    def transmit(self, samples: np.ndarray, cyclic: bool = False) -> None:
        x = check_samples(samples).astype(np.complex128)
        if cyclic:
            self._queue.clear()
            self._cyclic = x
        else:
            self._cyclic = None
            self._queue.append(x)

    def stop_transmit(self) -> None:
        self._cyclic = None
        self._queue.clear()

    def receive(self, num_samples: int) -> np.ndarray:
        n = check_count(num_samples)
        rng = self._rng
        step = 1.0 / (1.0 + self.sco_ppm * 1e-6)
        air, power, placed = self._air(n, step)
        air = self._propagate(air)
        air = frequency_shift(air, self.cfo_hz, self.sample_rate, phase=rng.uniform(0, 2 * np.pi))
        start = rng.uniform(0, 1)
        # y[m] = air(start + m * step): a burst at air index p starts at capture index (p - start) / step
        self.last_bursts = [((p - start) / step, size) for p, size in placed if (p + size - start) / step > 0
                            and (p - start) / step < n]
        y = resample(air, step, start=start, num=n)
        noise_var = power / self.occupied_fraction * 10 ** (-self.snr_db / 10) if power > 0 else 1e-6
        y = y + awgn(n, noise_var, rng)
        y = iq_imbalance(y, self.iq_gain_db, self.iq_phase_deg)
        rms = math.sqrt(max(power + noise_var, 1e-30))
        y = y * (10 ** (self.rx_level_dbfs / 20) / rms) + self.dc_offset
        return quantize(y, self.adc_bits).astype(np.complex64)

    def _air(self, n: int, step: float) -> tuple[np.ndarray, float, list[tuple[int, int]]]:
        """The transmitted signal over the capture window (TX time), its mean active power, and where each
        burst was placed: (start index in the window, may be negative for a cyclic one, length)."""
        span = int(math.ceil(n * step)) + 64
        air = np.zeros(span, np.complex128)
        rng = self._rng
        if self._cyclic is not None:
            burst = self._cyclic
            reps = span // burst.size + 2
            offset = int(rng.integers(0, burst.size))
            air[:] = np.tile(burst, reps)[offset:offset + span]
            active = burst
            placed = [(j * burst.size - offset, burst.size) for j in range(reps)]
        elif self._queue:
            bursts, self._queue = self._queue, []
            total = sum(b.size for b in bursts)
            slack = max(0, span - total - 64)
            cuts = np.sort(rng.integers(0, slack + 1, len(bursts)))     # random start and random gaps
            pos, prev = 0, 0
            placed = []
            for burst, cut in zip(bursts, cuts, strict=True):
                pos += int(cut - prev)
                prev = cut
                placed.append((pos, burst.size))
                end = min(span, pos + burst.size)
                if pos < span:
                    air[pos:end] = burst[:end - pos]
                pos += burst.size
            active = np.concatenate(bursts)
        else:
            return air, 0.0, []
        nonzero = np.abs(active) > 0
        power = float(np.mean(np.abs(active[nonzero]) ** 2)) if nonzero.any() else 0.0
        return air, power, placed

    def _propagate(self, air: np.ndarray) -> np.ndarray:
        if self.channel in ("awgn", "ideal"):
            return air
        taps, l_min = self._tdl_taps()
        return np.convolve(air, taps)[-l_min:-l_min + air.size]

    def _tdl_taps(self) -> tuple[np.ndarray, int]:
        """One 3GPP TDL realisation as discrete taps at the sample rate (Sionna), unit energy; and l_min <= 0."""
        import torch

        from meg_common.rng import import_sionna, make_generator, sionna_rng

        sn = import_sionna()
        generator = make_generator(int(self._rng.integers(0, 2**31)), "cpu")
        with sionna_rng(generator):
            model = sn.channel.tr38901.TDL(self.channel[-1].upper(), delay_spread=self.delay_spread_ns * 1e-9,
                                           carrier_frequency=self.center_frequency, device="cpu")
            a, tau = model(1, 1, self.sample_rate)
            l_min, l_max = sn.channel.time_lag_discrete_time_channel(self.sample_rate)
            h = sn.channel.cir_to_time_channel(self.sample_rate, a, tau, l_min, l_max, normalize=True)
        taps = h.reshape(-1, h.shape[-1])[0].to(torch.complex128).numpy()
        return taps / math.sqrt(max(np.sum(np.abs(taps) ** 2), 1e-30)), int(l_min)
