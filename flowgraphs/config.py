"""Run configuration: the task, the protocol settings and one link configuration per hop.

A run is configured in three layers, each overriding the one before:
  1. `[link]`: the defaults for every hop;
  2. `[uplink]`, `[downlink]`, `[backhaul]`: overrides for every hop in that direction;
  3. `[hops.SRC-DST]` then `[hops.SRC-DST-PAYLOAD]`: overrides for one link or one hop (result.json lists
     the hop names),
so an asymmetric setup (strong downlink, weak uplink, one far ES) is a few lines of TOML:

    protocol = "EIUG"
    prompt = "a large red circle at the left on a white background"
    [link]
    scheme = "analog"
    snr_db = 10
    [uplink]
    snr_db = -5
    [hops.ES2-UE]            # every payload from ES2 to the UE (a far ES)
    channel = "tdl-a"
    [hops.UE-ES1-prompt]     # one hop: SRC-DST-PAYLOAD
    max_attempts = 8

Unknown keys and bad values raise InputError with one line naming the key and the allowed values. Values are
typed by the field annotations (meg_common.config). The `config` table of a result.json is a RunConfig too
(`directions` holds the [uplink]/[downlink]/[backhaul] tables), so `meg-phy run --config runs/x/result.json`
runs the same configuration again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from link_models.config import HopLink, LinkConfig
from meg_common import validate
from meg_common.config import ConfigMixin, Lowercase, read_config_file
from meg_common.errors import InputError
from meg_common.vocabulary import Channel, Scheme, carrier_of, image_codec_of, values

SCHEMES = values(Scheme)
"""meg_common.vocabulary.Scheme.
wired: error-free bits at `rate_bps` plus `latency_s` (link_models.wired), the default for backhaul hops.
capacity: digital payloads over the fewest channel uses the channel's capacity allows (link_models.capacity:
the bound no digital scheme can beat; awgn, rayleigh or ideal channels, simulated links only).
softcast: an analog hop whose images and sketches go as SoftCast (meg_phy.codecs.softcast: DCT chunks, power
allocation, LLSE decoding) in `softcast_uses` channel uses, the metadata digitally on the same hop and
counted there; other payloads go as on an analog hop."""
CHANNELS = values(Channel)
DIRECTIONS = ("uplink", "downlink", "backhaul")
SEED_FORMATS = ("float32", "float16", "int8", "int4")
IMAGE_FORMATS = ("webp", "jpeg", "png")
RESUME_MODES = ("channel-aware", "naive")
SIDE_INFO = ("session", "link", "free")
IMAGE_PLACES = ("ue", "es")
RADIOS = ("link", "sim", "pluto")
MAX_ES = 4
HOP_NAME = re.compile(r"(UE|ES[1-4])-(UE|ES[1-4])(-(seed|sketch|image|prompt|border|control))?")


@dataclass(frozen=True)
class LinkSpec(HopLink):
    """How one hop transmits: its link (`link_models.config.HopLink`: every link setting and its default, the
    code rate and length, a channel-use budget) and what the hop adds on top: its `scheme`, its tries, and a
    wired hop's rate and latency.

    `scheme` is the word a user writes; the code reads it as two things: `carrier`, the link that carries the
    hop's payloads (analog, digital, wired, capacity: what the transfer table keys on), and `image_codec`, how
    an image goes on it when not as the run's `image_format` (softcast: an analog carrier whose images go as
    SoftCast)."""

    scheme: Lowercase = "analog"
    """analog: values mapped straight onto symbols; digital: bytes through 5G LDPC + QAM; wired, capacity,
    softcast (SCHEMES). Prompts are always digital."""
    max_attempts: int = 4
    """Transmissions per digital payload: with `harq` the HARQ limit per codeword (chase combining); without,
    or on a link that cannot combine (a radio link), whole-payload retries after a failed CRC. Airtime
    counts every transmission."""
    harq: bool = True
    """Digital hops: HARQ with chase combining inside the link (a CRC24B per codeword); False: blind retries of
    the whole payload, each decoded on its own (the behaviour before link adaptation)."""
    arq_max: int = 0
    """Digital hops with HARQ: RLC acknowledged-mode retransmissions of a codeword after HARQ failed (0: off)."""
    rate_bps: float = 1e9
    """Wired links: bit rate (1 Gbit/s backhaul by default)."""
    latency_s: float = 1e-4
    """Wired links: fixed delay of every transfer."""

    RANGES: ClassVar[dict[str, tuple[Any, float, float]]] = {
        **HopLink.RANGES, "max_attempts": (validate.integer, 1, 16), "rate_bps": (validate.number, 1e3, 1e13),
        "latency_s": (validate.number, 0.0, 10.0)}

    def validate(self, where: str) -> LinkSpec:
        validate.choice("scheme", self.scheme, SCHEMES, where=where)
        return super().validate(where)

    @property
    def carrier(self) -> str:
        """The link that carries this hop's payloads: analog, digital, wired or capacity (a softcast hop is an
        analog carrier; meg_common.vocabulary.carrier_of)."""
        return carrier_of(self.scheme)

    @property
    def image_codec(self) -> str | None:
        """How images go on this hop when not as the run's `image_format` (bytes on a digital, wired or capacity
        carrier, pixels as values on an analog one): 'softcast' on a softcast hop, else None."""
        return image_codec_of(self.scheme)

    def link_config(self, bler_table: str | None = None) -> LinkConfig:
        """The link_models configuration of this hop (`HopLink.as_link_config`), for simulated links and
        radio links alike: a digital hop carries the MCS and, with `harq`, max_attempts transmissions and
        its ARQ."""
        digital = self.carrier == Scheme.DIGITAL
        return self.as_link_config(digital=digital, max_transmissions=self.max_attempts if self.harq else 1,
                                   arq_max=self.arq_max if self.harq else 0, bler_table=bler_table)


@dataclass(frozen=True)
class RunConfig(ConfigMixin):
    """Everything one protocol run depends on; `to_dict()` is what result.json records as `config`.

    Frozen: derived configurations are new objects (`validate`, `resolved`, `ideal`, `with_link`).
    """

    protocol: str = "EIUG"
    prompt: str | None = None
    """Text prompt; None: a default from the embedded vocabulary (see flowgraphs.task)."""
    image: str | None = None
    """Input image file; None: a scene rendered from meg_phy.scenes that differs from the prompt."""
    image_at: Lowercase = "ue"
    """Who holds the input image: 'ue' (the case study; protocols that need it at an ES upload it) or 'es'."""
    strength: float = 0.75
    steps: int = 20
    guidance: float | None = None
    """Classifier-free guidance; None: the model's own default (as `meg-phy generate`)."""
    seed: int = 0
    n_es: int = 2
    split: float = 0.5
    """Fraction of the denoising steps done before the seed changes hands (EIUG, DIUG, CIAG's first handoff)."""
    resume: Lowercase = "channel-aware"
    """How a receiver resumes from a noisy analog seed: 'channel-aware' or 'naive' (at the original step)."""
    seed_format: Lowercase = "int8"
    """Quantisation of digital seeds (meg_phy.codecs.seed)."""
    side_info: Lowercase = "link"
    """Analog payloads: 'link' (the default: nothing is free on air) sends the link's header (the values' power
    scale and count) and the codec's side information (shape, schedule, sizes) digitally on the same hop as a
    control message (flowgraphs.hops.CONTROL_MCS, HARQ), its cost added to the hop and the payload lost with
    it; 'session' agrees them in advance (optimistic: the link's 64 header bits are counted, nothing is sent;
    SoftCast's metadata still goes on air); 'free' is 'session' with SoftCast's metadata free too (the
    bandwidth sweep's optimistic SoftCast)."""
    image_format: Lowercase = "webp"
    image_quality: int = 75
    softcast_uses: int = 512
    """Channel uses of an image on a 'softcast' hop (a sketch gets 1/sketch_scale^2 of them)."""
    sketch_steps: int = 4
    """Denoising steps an ES spends on a sketch (fewer steps = rougher sketch)."""
    sketch_strength: float = 0.5
    """img2img strength the UE uses to complete a clean sketch (raised for a noisy one, see meg_phy.resume)."""
    sketch_scale: int = 2
    """Sketches are sent at 1/sketch_scale of the resolution per side (1 = full resolution)."""
    tile_overlap: int = 2
    """Overlap in latent pixels between the tiles of the parallel protocols."""
    tile_context: int | None = None
    """Latent pixels around its tile that an ES's denoiser sees (None: the whole latent, which the embedded
    model's composition needs; 0: the tile alone, MultiDiffusion-style). Work grows with the context."""
    exchange_every: int = 1
    """Parallel protocols: the ESs exchange their tiles over backhaul hops every this many denoising steps."""
    broadcast: bool = True
    """Multi-ES uploads: one uplink transmission reaches every ES (counted once on air); False: one per ES."""
    model: str | None = None
    radio: Lowercase = "link"
    """'link': link_models simulation; 'sim' / 'pluto': a radio link over a simulated or real radio."""
    uri: str | None = None
    link: LinkSpec = field(default_factory=LinkSpec)
    directions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Overrides per direction ([uplink], [downlink], [backhaul]): LinkSpec keys, typed."""
    hops: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Overrides per link (SRC-DST) or hop (SRC-DST-PAYLOAD): LinkSpec keys, typed."""

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config", options: dict[str, Any] | None = None,
                  check_files: bool = True) -> RunConfig:
        """A validated RunConfig from the layout of a run TOML (or the `config` of a result.json), with
        `options` (None = not given; link keys go to [link]) on top. `check_files=False` skips checking
        that the input image exists (for reading old results)."""
        data = _table(data, where)
        link_data = _table(data.pop("link", {}), "[link]")
        directions = {d: _table(t, f"[{d}]") for d, t in _table(data.pop("directions", {}), "directions").items()}
        directions.update({d: _table(data.pop(d), f"[{d}]") for d in DIRECTIONS if d in data})
        hops = {n: _table(t, f"[hops.{n}]") for n, t in _table(data.pop("hops", {}), "[hops]").items()}
        link_keys = set(LinkSpec.field_names())
        run_keys = set(cls.field_names()) - {"link", "directions", "hops"}
        for key in data:
            if key not in run_keys:
                raise InputError(f"{where}: unknown key {key!r}; known: {', '.join(sorted(run_keys | link_keys))}, "
                                 f"tables [link], [uplink], [downlink], [backhaul], [hops.NAME]")
        for key, value in (options or {}).items():
            if value is None:
                continue
            if key in link_keys:
                link_data[key] = value
            elif key in run_keys:
                data[key] = value
            else:
                raise InputError(f"option {key!r} is not a run setting")
        for name in hops:
            if not HOP_NAME.fullmatch(name):
                raise InputError(f"config [hops.{name}]: not a hop name; use SRC-DST or SRC-DST-PAYLOAD, "
                                 f"e.g. [hops.UE-ES1] or [hops.ES2-UE-seed] (payload: seed, sketch, image, prompt)")
        config = cls(link=LinkSpec.from_dict(link_data, where="config [link]"),
                     directions={d: _overrides(o, f"[{d}]") for d, o in directions.items()},
                     hops={n: _overrides(o, f"[hops.{n}]") for n, o in hops.items()},
                     **cls.coerce_fields(data, where, partial=True))
        return config.validate(check_files=check_files)

    def validate(self, check_files: bool = True) -> RunConfig:
        """This configuration checked, with the protocol name in its canonical form (a new object)."""
        from flowgraphs.protocol_table import canonical_name

        validate.choice("image_at", self.image_at, IMAGE_PLACES, where="run")
        validate.choice("resume", self.resume, RESUME_MODES, where="run")
        validate.choice("seed_format", self.seed_format, SEED_FORMATS, where="run")
        validate.choice("side_info", self.side_info, SIDE_INFO, where="run")
        validate.choice("image_format", self.image_format, IMAGE_FORMATS, where="run")
        validate.integer("softcast_uses", self.softcast_uses, 8, 1 << 20, where="run")
        validate.choice("radio", self.radio, RADIOS, where="run")
        validate.number("strength", self.strength, 0.05, 1.0, where="run")
        validate.integer("steps", self.steps, 2, 1000, where="run")
        if self.guidance is not None:
            validate.number("guidance", self.guidance, 0.0, 50.0, where="run")
        validate.integer("seed", self.seed, 0, 2**63 - 1, where="run")
        validate.integer("n_es", self.n_es, 1, MAX_ES, where="run")
        validate.number("split", self.split, 0.0, 1.0, where="run")
        validate.integer("image_quality", self.image_quality, 1, 100, where="run")
        validate.integer("sketch_steps", self.sketch_steps, 1, 1000, where="run")
        validate.integer("sketch_scale", self.sketch_scale, 1, 8, where="run")
        validate.number("sketch_strength", self.sketch_strength, 0.05, 1.0, where="run")
        validate.integer("tile_overlap", self.tile_overlap, 0, 16, where="run")
        if self.tile_context is not None:
            validate.integer("tile_context", self.tile_context, 0, 1024, where="run")
        validate.integer("exchange_every", self.exchange_every, 1, 1000, where="run")
        if check_files and self.image is not None and not Path(self.image).is_file():
            raise InputError(f"image {self.image!r}: no such file; give a PNG/JPEG path or leave it out for a rendered scene")
        if self.radio == "pluto" and not self.uri:
            raise InputError("radio 'pluto' needs a uri (e.g. --uri ip:192.168.2.1)")
        self.link.validate("[link]")
        for direction, over in self.directions.items():
            validate.choice("direction", direction, DIRECTIONS, where="run")
            _apply(self.link, over, f"[{direction}]")
        for where, scheme in [("[link]", self.link.scheme)] + [(f"[{d}]", self.directions.get(d, {}).get("scheme"))
                                                               for d in ("uplink", "downlink")]:
            if scheme == "wired":
                raise InputError(f"config {where}: scheme 'wired' is for backhaul hops only ([backhaul] or "
                                 f"[hops.ESi-ESj]); the air interface is 'analog' or 'digital'")
        for name, over in self.hops.items():
            _apply(self.link, over, f"[hops.{name}]")
        return replace(self, protocol=canonical_name(self.protocol))

    def resolved(self) -> RunConfig:
        """The configuration a run actually uses: canonical protocol name; single-ES protocols use ES1 only,
        whatever n_es says. This is what result.json records."""
        from flowgraphs.protocol_table import SINGLE_ES, canonical_name

        protocol = canonical_name(self.protocol)
        return replace(self, protocol=protocol, n_es=1 if protocol in SINGLE_ES else self.n_es)

    def hop_spec(self, name: str, direction: str) -> LinkSpec:
        """The link configuration of hop SRC-DST-PAYLOAD: [link] < [direction] < [hops.SRC-DST] < [hops.NAME].

        Backhaul hops are wired unless [backhaul] or a [hops.*] table of theirs sets a scheme; the air
        interface (uplink, downlink) cannot be wired."""
        base = self.link
        if direction == "backhaul":
            base = replace(base, scheme="wired")
        spec = _apply(base, self.directions.get(direction, {}), f"[{direction}]")
        link_name = name.rsplit("-", 1)[0]
        spec = _apply(spec, self.hops.get(link_name, {}), f"[hops.{link_name}]")
        spec = _apply(spec, self.hops.get(name, {}), f"[hops.{name}]")
        if spec.scheme == "wired" and direction != "backhaul":
            raise InputError(f"hop {name}: scheme 'wired' is for backhaul hops (ES to ES); the {direction} is "
                             f"on air: use 'analog' or 'digital'")
        return spec

    def with_link(self, **changes: Any) -> RunConfig:
        """A copy with the [link] defaults changed and every override kept."""
        return replace(self, link=_apply(self.link, changes, "[link]"))

    def ideal(self) -> RunConfig:
        """The reference configuration: same task, every hop noiseless (overrides of channel dropped)."""
        strip = {"channel", "estimator", "snr_db"}
        return replace(self, link=self.link.ideal(), radio="link",
                       directions={d: {k: v for k, v in o.items() if k not in strip} for d, o in self.directions.items()},
                       hops={h: {k: v for k, v in o.items() if k not in strip} for h, o in self.hops.items()})


def load_config(path: str | Path | None = None, **options: Any) -> RunConfig:
    """RunConfig from an optional file, then CLI `options` (None = not given) on top; validated.

    The file is a run TOML, a RunConfig saved as JSON, or a result.json (its `config` is replayed).
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"--config {p}: no such file")
        try:
            data = read_config_file(p)
        except InputError as exc:
            raise InputError(f"--config {exc}") from None
        if isinstance(data.get("config"), dict) and "protocol" in data:  # a result.json: run its configuration
            data = data["config"]
    return config_from_dict(data, **options)


def config_from_dict(data: dict[str, Any], **options: Any) -> RunConfig:
    """Build a validated RunConfig from TOML-like data plus option overrides (link keys go to [link])."""
    return RunConfig.from_dict(data, options=options)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"config {where}: expected a table of settings, got {type(value).__name__}")
    return dict(value)


def _overrides(overrides: dict[str, Any], where: str) -> dict[str, Any]:
    """Link overrides of one table, typed by LinkSpec's annotations (only the keys given)."""
    return LinkSpec.coerce_fields(overrides, f"config {where}", partial=True)


def _apply(spec: LinkSpec, overrides: dict[str, Any], where: str) -> LinkSpec:
    return replace(spec, **_overrides(overrides, where)).validate(where)
