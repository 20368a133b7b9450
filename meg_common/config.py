"""Typed config serialisation: one mixin gives a dataclass `to_dict`, `from_dict`, `save` and `load`.

Values read from TOML, JSON or the command line are checked and converted by the field annotations
(`typing.get_type_hints`), not by their names: `int`, `float`, `bool`, `str`, `Path`, `X | None`,
`tuple[X, ...]`, `tuple[X, Y]`, `list[X]`, `dict[str, X]`, `Any` and nested dataclasses. `Lowercase` (an
annotated `str`) marks a case-insensitive choice, lower-cased on the way in. Range checks stay with each
config (its `__post_init__` or `validate`): this module only makes sure a value has the declared type.
An unknown key raises one InputError naming it and the known ones.

    @dataclass(frozen=True)
    class FrameConfig(ConfigMixin):
        fft_size: int = 64

    FrameConfig.from_dict({"fft_size": 128}).save("frame.toml")    # or .json; both written atomically
    FrameConfig.load("frame.toml") == FrameConfig(fft_size=128)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin, get_type_hints

from meg_common.errors import InputError
from meg_common.io import atomic_write_json, atomic_write_text, read_json

LOWERCASE = "lowercase"
Lowercase = Annotated[str, LOWERCASE]
"""A text setting compared case-insensitively (a choice such as a channel or a modulation name)."""

C = TypeVar("C", bound="ConfigMixin")


class ConfigMixin:
    """`to_dict` / `from_dict` / `save` / `load` for a dataclass whose fields are settings."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML values: nested configs as tables, tuples as lists, paths as text."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any], where: str | None = None) -> C:
        """The config from `to_dict()`-shaped data (TOML, JSON); values typed by the annotations."""
        return cls(**cls.coerce_fields(data, where))

    @classmethod
    def coerce_fields(cls, data: Mapping[str, Any], where: str | None = None, partial: bool = False) -> dict[str, Any]:
        """`data` checked against the fields and typed (constructor keywords); `partial`: missing keys are fine."""
        return coerce_fields(cls, data, where, partial)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.init)

    def save(self, path: str | Path) -> Path:
        """Write the config to `path` (.json or .toml, chosen by the suffix) atomically."""
        path = Path(path)
        if path.suffix == ".json":
            return atomic_write_json(path, self.to_dict())
        if path.suffix == ".toml":
            data = self.to_dict()
            for f in dataclasses.fields(self):
                if data.get(f.name, 0) is None and f.default is not None and f.default_factory is dataclasses.MISSING:
                    raise InputError(f"{path}: {f.name} = None cannot be written to TOML (it has no null); "
                                     "save as .json instead")
            return atomic_write_text(path, to_toml(data))
        raise InputError(f"{path}: save a config as .json or .toml")

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """The config saved at `path` (.json or .toml)."""
        return cls.from_dict(read_config_file(path), where=str(path))



@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The resolved field annotations of a config class (resolving them is slow; classes do not change)."""
    return get_type_hints(cls, include_extras=True)

def read_config_file(path: str | Path) -> dict[str, Any]:
    """The table in a .json or .toml file; InputError for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    if p.suffix == ".json":
        data = read_json(p)
    else:
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{p}: not valid TOML ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{p}: expected a table of settings, got {type(data).__name__}")
    return data


def coerce_fields(cls: type, data: Mapping[str, Any], where: str | None = None, partial: bool = False) -> dict[str, Any]:
    """Keyword arguments for dataclass `cls` from `data`, each value typed by its field's annotation."""
    where = where or cls.__name__
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: expected a table of settings, got {type(data).__name__}")
    hints = _hints(cls)
    settable = [f for f in dataclasses.fields(cls) if f.init]
    known = {f.name for f in settable}
    for key in data:
        if key not in known:
            raise InputError(f"{where}: unknown key {key!r}; known: {', '.join(sorted(known))}")
    if not partial:
        for f in settable:
            if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InputError(f"{where}: {f.name} is missing; give a value for it")
    return {key: coerce(value, hints[key], key, where) for key, value in data.items()}


def coerce(value: Any, kind: Any, key: str, where: str) -> Any:
    """`value` as annotation `kind` says, or InputError "{where}: {key} = {value!r}: expected ..."."""
    origin, args = get_origin(kind), get_args(kind)
    if origin is Annotated:
        value = coerce(value, args[0], key, where)
        return value.lower() if LOWERCASE in args[1:] and isinstance(value, str) else value
    if kind is Any:
        return value
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None:
            if len(options) < len(args):
                return None
            raise InputError(f"{where}: {key} needs a value")
        errors = []
        for option in options:
            try:
                return coerce(value, option, key, where)
            except InputError as exc:
                errors.append(exc)
        raise errors[0]
    if value is None:
        raise InputError(f"{where}: {key} needs a value")
    if kind is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where}: {key} = {value!r}: expected true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or float(value) != int(value):
            raise InputError(f"{where}: {key} = {value!r}: expected a whole number")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{where}: {key} = {value!r}: expected a number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise InputError(f"{where}: {key} = {value!r}: expected text")
        return value
    if isinstance(kind, type) and issubclass(kind, PurePath):
        if not isinstance(value, str | PurePath):
            raise InputError(f"{where}: {key} = {value!r}: expected a path")
        return kind(value)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise InputError(f"{where}: {key} = {value!r}: expected a list")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise InputError(f"{where}: {key} = {value!r}: expected {len(args)} values")
            items = [coerce(v, a, key, where) for v, a in zip(value, args, strict=True)]
        else:
            items = [coerce(v, args[0], key, where) for v in value] if args else list(value)
        return origin(items)
    if origin in (dict, Mapping) or kind is dict:
        if not isinstance(value, Mapping):
            raise InputError(f"{where}: {key}: expected a table, got {type(value).__name__}")
        inner = args[1] if len(args) == 2 else Any
        return {str(k): coerce(v, inner, f"{key}.{k}", where) for k, v in value.items()}
    if dataclasses.is_dataclass(kind):
        if isinstance(value, kind):
            return value
        if not isinstance(value, Mapping):
            raise InputError(f"{where}: {key}: expected a table, got {type(value).__name__}")
        nested = f"{where} [{key}]"
        if hasattr(kind, "from_dict"):
            return kind.from_dict(value, where=nested)
        return kind(**coerce_fields(kind, value, nested))
    return value


def plain(value: Any) -> Any:
    """A value as plain JSON/TOML data: dataclasses (their own `to_dict` when they have one) as tables,
    tuples as lists, paths as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_dict"):
            return value.to_dict()
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return value


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def to_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """A table as TOML text: scalars first, then sub-tables; None values are left out (TOML has no null)."""
    lines, tables = [], []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
        text += f"\n[{name}]\n" + to_toml(value, name)
    return text


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise InputError(f"cannot write {type(value).__name__} {value!r} to TOML")
