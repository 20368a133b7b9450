"""meg_common.config: every config round-trips through to_dict/from_dict and through JSON and TOML files, values
are typed by the annotations (X | None, tuples, nested configs, paths, case-insensitive choices), and unknown
keys or wrong types are one-line InputErrors."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flowgraphs.config import LinkSpec, RunConfig, config_from_dict
from link_models.config import LinkConfig
from link_models.ota.config import FrameConfig
from meg_common.config import ConfigMixin, Lowercase
from meg_common.errors import InputError


@dataclass(frozen=True)
class Inner(ConfigMixin):
    name: Lowercase = "awgn"
    gain: float = 1.0


@dataclass(frozen=True)
class Outer(ConfigMixin):
    path: Path
    count: int = 3
    limit: float | None = None
    flag: bool = False
    pair: tuple[int, int] = (1, 2)
    many: tuple[float, ...] = ()
    inner: Inner = field(default_factory=Inner)
    tables: dict[str, dict[str, float]] = field(default_factory=dict)


def test_values_are_typed_by_the_annotations():
    cfg = Outer.from_dict({"path": "runs/x", "count": 4.0, "limit": 2, "pair": [3, 4], "many": [1, 2.5],
                           "inner": {"name": "TDL-A", "gain": 2}, "tables": {"a": {"x": 1}}})
    assert cfg == Outer(path=Path("runs/x"), count=4, limit=2.0, pair=(3, 4), many=(1.0, 2.5),
                        inner=Inner(name="tdl-a", gain=2.0), tables={"a": {"x": 1.0}})
    assert isinstance(cfg.limit, float) and isinstance(cfg.count, int) and isinstance(cfg.inner.gain, float)
    assert Outer.from_dict({"path": "p", "limit": None}).limit is None


@pytest.mark.parametrize("data, fragment", [
    ({"path": "p", "colour": 1}, "unknown key 'colour'; known: count, flag, inner, limit, many, pair, path, tables"),
    ({"path": "p", "count": 1.5}, "count = 1.5: expected a whole number"),
    ({"path": "p", "count": True}, "count = True: expected a whole number"),
    ({"path": "p", "limit": "high"}, "limit = 'high': expected a number"),
    ({"path": "p", "flag": 1}, "flag = 1: expected true or false"),
    ({"path": "p", "pair": [1]}, "expected 2 values"),
    ({"path": "p", "many": 3}, "expected a list"),
    ({"path": "p", "inner": {"nam": "x"}}, "Outer [inner]: unknown key 'nam'"),
    ({"path": "p", "count": None}, "count needs a value"),
    ({}, "path is missing"),
])
def test_bad_values_are_one_line_input_errors(data, fragment):
    with pytest.raises(InputError) as err:
        Outer.from_dict(data)
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_every_config_round_trips_through_a_file(tmp_path, suffix):
    configs = [
        LinkConfig(modulation="16qam", channel="tdl-b", snr_db=3.5, pilot_symbols=(2, 7, 11), device="cpu"),
        FrameConfig(fft_size=128, cp_length=32, guard_carriers=(7, 6), max_cfo_hz=1e4),
        LinkSpec(scheme="digital", snr_db=-4.0),
        config_from_dict({"uplink": {"snr_db": -5, "scheme": "DIGITAL"}, "hops": {"ES2-UE-seed": {"snr_db": 3}}},
                         protocol="diug", n_es=3, prompt="a small blue square at the left on a black background"),
        Outer(path=Path("a/b"), many=(0.5,), inner=Inner("rayleigh", 0.25), tables={"t": {"k": -1.0}}),
    ]
    for i, cfg in enumerate(configs):
        path = cfg.save(tmp_path / f"c{i}{suffix}")
        loaded = type(cfg).load(path)
        assert loaded == cfg, type(cfg).__name__
        assert loaded.to_dict() == cfg.to_dict()


def test_to_dict_is_plain_json_and_unchanged_for_the_link_configs(tmp_path):
    link = LinkConfig(snr_db=2.0)
    d = link.to_dict()
    assert d["pilot_symbols"] == [2, 11] and json.loads(json.dumps(d)) == d
    assert LinkConfig.from_dict(d) == link and link.with_snr(snr_db=5.0).snr_db == 5.0
    assert FrameConfig().to_dict()["guard_carriers"] == [6, 5]
    ideal = LinkSpec(channel="ideal").link_config()
    assert ideal.snr_db is None and ideal.noise_variance == 0.0 and all(
        LinkConfig.load(ideal.save(tmp_path / f"ideal{suffix}")) == ideal for suffix in (".json", ".toml"))


def test_run_config_is_frozen_and_derived_configs_are_new_objects():
    cfg = RunConfig(protocol="eiug", n_es=3)
    checked = cfg.validate()
    assert cfg.protocol == "eiug" and checked.protocol == "EIUG" and checked is not cfg
    resolved = checked.resolved()
    assert (resolved.protocol, resolved.n_es, checked.n_es) == ("EIUG", 1, 3)  # single-ES protocol
    with pytest.raises(AttributeError):
        cfg.n_es = 2  # type: ignore[misc]
    # the config of a result.json (directions as a table) reads back as the same configuration
    again = RunConfig.from_dict(json.loads(json.dumps(checked.to_dict())))
    assert again == checked


def test_train_config_has_the_mixin(tmp_path):
    from meg_phy.training.trainer import TrainConfig

    cfg = TrainConfig(out=tmp_path / "t", stages=("vae",), device="cpu", target_accuracy=None)
    assert TrainConfig.load(cfg.save(tmp_path / "train.json")) == cfg
    with pytest.raises(InputError, match="unknown key 'epochs'"):
        TrainConfig.from_dict({"out": "x", "epochs": 3})
