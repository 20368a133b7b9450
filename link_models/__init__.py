"""Link-level simulation on Sionna 2: 5G LDPC / QAM / OFDM digital links and analog (value) links.

    from link_models import LinkConfig, DigitalLink, AnalogLink, LinkStats, Link
    link = DigitalLink(LinkConfig(modulation="qpsk", k=1024, n=2048, channel="awgn", snr_db=5.0), seed=0)
    received, stats = link.send_bytes(b"hello")
    link.reseed(7)                          # every link (link_models.link.Link): send_bytes, send_values, reseed

Building blocks for other links (e.g. the over-the-air frame): `link_models.coding.build_code`,
`link_models.modulation.build_modem`, `link_models.ofdm.build_resource_grid` / `OFDMTransport`,
`link_models.channels.build_channel`, `meg_common.rng.sionna_rng`. See docs/link-models.md.

The heavy classes load lazily, so `import link_models` (and `meg-phy --help`) does not import Sionna.
"""

from link_models.config import LinkConfig, ResolvedLink, resolve
from link_models.link import Link
from link_models.stats import LinkStats

__all__ = ["LinkConfig", "ResolvedLink", "resolve", "LinkStats", "Link", "DigitalLink", "AnalogLink"]


def __getattr__(name: str):
    if name == "DigitalLink":
        from link_models.digital import DigitalLink

        return DigitalLink
    if name == "AnalogLink":
        from link_models.analog import AnalogLink

        return AnalogLink
    raise AttributeError(f"module 'link_models' has no attribute {name!r}")
