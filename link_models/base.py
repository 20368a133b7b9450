"""What every OFDM link shares: its configuration, device, own random stream and operating point.

The link contract (`send_bytes`, `send_values`, `reseed`, `forward`) is `link_models.link.Link`. These
links also send many payloads in one call (`send_bytes_many`, `send_values_many`), each drawing from its
own seed's generator: payload i gets exactly (bit for bit) what `reseed(seeds[i])` and one send would give.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from link_models.config import LinkConfig, ResolvedLink, resolve
from link_models.link import check_seed, not_carried
from link_models.stats import LinkStats
from meg_common.errors import InputError
from meg_common.rng import make_generator, resolve_device, sionna_rng


class OFDMLink(nn.Module):
    """Base of the digital and analog links: subclasses build their Sionna blocks in `build()`.

    The blocks are built while the link's own generator is lent to Sionna, so building a link never
    disturbs anyone else's randomness (see meg_common.rng). A subclass carries bytes or values
    (`schemes`); the other call raises InputError.
    """

    schemes: tuple[str, ...] = ()

    def __init__(self, cfg: LinkConfig | ResolvedLink, seed: int | None = 0):
        super().__init__()
        if not isinstance(cfg, (LinkConfig, ResolvedLink)):
            raise InputError(f"{type(self).__name__} needs a LinkConfig; build one with LinkConfig(...)")
        cfg = resolve(cfg)
        self.cfg = cfg  # the ResolvedLink it transmits with (the MCS applied)
        self.device = resolve_device(cfg.device)
        self.generator = make_generator(seed, self.device)
        with sionna_rng(self.generator):
            self.build(cfg)
        self.no = torch.tensor(cfg.noise_variance, dtype=torch.float32, device=self.device)

    def build(self, cfg: ResolvedLink) -> None:
        raise NotImplementedError

    def reseed(self, seed: int) -> None:
        """Restart the link's random stream (noise, fading, random payloads) from `seed`.

        A reseeded link repeats exactly what it did after any earlier `reseed(seed)`, whatever it sent in
        between; the blocks drawn at construction (the random pilots) keep the construction seed."""
        self.generator.manual_seed(check_seed(seed))

    def generators(self, seeds: Sequence[int | torch.Generator], count: int) -> list[torch.Generator]:
        """One generator per payload of a batched send (`send_bytes_many`, `send_values_many`): an int seed
        gives a new generator seeded with it (what `reseed(seed)` gives the link's own); a generator is used
        as it is and advanced as the link's own would be, so a later call can go on from it."""
        seeds = list(seeds)
        if len(seeds) != count:
            raise InputError(f"{count} payloads for {len(seeds)} seeds; give one seed per payload")
        out = []
        for seed in seeds:
            if isinstance(seed, torch.Generator):
                if resolve_device(str(seed.device)) != self.device:
                    raise InputError(f"a generator on {seed.device} for a link on {self.device}; "
                                     f"make it with torch.Generator(device='{self.device}')")
                out.append(seed)
            else:
                out.append(make_generator(check_seed(seed), self.device))
        return out

    def send_bytes(self, payload: bytes) -> tuple[bytes, LinkStats]:
        raise not_carried(self, "bytes")

    def send_values(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, LinkStats]:
        raise not_carried(self, "values")

    def set_operating_point(self, snr_db: float | None = None, ebno_db: float | None = None) -> None:
        """Move to another SNR (exactly one of snr_db / ebno_db), keeping the built blocks."""
        self.cfg = self.cfg.with_snr(snr_db=snr_db, ebno_db=ebno_db)
        self.no = torch.tensor(self.cfg.noise_variance, dtype=torch.float32, device=self.device)
