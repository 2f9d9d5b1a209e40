"""Typed mappings: a YAML/CLI mapping checked against a dataclass's fields and type hints.

Shared by the task specification (:class:`~transferguard.data.TaskSpec`) and the experiment
config, so that an unknown key or a value of the wrong kind stops with the key's path, the
value and the expected type, in one wording everywhere.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from .errors import ConfigError


def from_mapping(cls: type, data: Any, where: str = "",
                 special: dict[str, Any] | None = None) -> Any:
    """Build dataclass ``cls`` from ``data``; ``special`` maps a key to its own parser."""
    return _from_dict(cls, data, where, special or {})


def _from_dict(cls: type, data: Any, where: str, special: dict[str, Any] | None = None) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {data!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        place = f"in {where}" if where else "at the top level"
        raise ConfigError(f"unknown key(s) {unknown} {place}; valid keys: {sorted(fields)}.")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        path = f"{where}.{name}" if where else name
        hint = hints[name]
        if special and name in special:
            kwargs[name] = special[name](value, path)
        elif dataclasses.is_dataclass(hint):
            kwargs[name] = _from_dict(hint, value, path)
        else:
            kwargs[name] = check_value(value, hint, path)
    return cls(**kwargs)


def check_value(value: Any, hint: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return check_value(value, a, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{path}: bad value {value!r}.")
    if hint is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path} must be a list, got {value!r}.")
        if not args:
            return value
        return [check_value(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be a mapping, got {value!r}.")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {value!r}.")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, got {value!r}.")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} must be a number, got {value!r}.")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, got {value!r}.")
        return value
    return value
