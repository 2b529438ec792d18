"""Strict YAML configs parsed into frozen dataclasses.

Unknown keys are errors that suggest the nearest valid key; types are checked.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from medseg.errors import ConfigError, InputNotFoundError

__all__ = ["from_dict", "to_dict", "load_yaml", "save_yaml", "config_hash"]

T = TypeVar("T")


def _check_scalar(value: Any, expected: type, where: str) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {expected.__name__}, got boolean {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(f"{where}: expected {expected.__name__}, got {type(value).__name__} {value!r}")
    return value


def _convert(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        converted = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_type, value_type = args if args else (Any, Any)
        return {
            _convert(k, key_type, f"{where} key"): _convert(v, value_type, f"{where}.{k}")
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, where=where)
    if isinstance(annotation, type):
        return _check_scalar(value, annotation, where)
    return value


def from_dict(cls: type[T], data: Any, *, where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys.

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class Opt:
    ...     epochs: int = 1
    >>> from_dict(Opt, {"epochs": 3})
    Opt(epochs=3)
    >>> from_dict(Opt, {"epoch": 3})
    Traceback (most recent call last):
    ...
    medseg.errors.ConfigError: config: unknown key 'epoch' (did you mean 'epochs'?); valid keys: epochs
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} options, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{where}: unknown key {key!r}{hint}; valid keys: {', '.join(fields)}"
            )
        kwargs[key] = _convert(value, hints[key], f"{where}.{key}")
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key(s): {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def to_dict(obj: Any) -> Any:
    """Plain YAML/JSON-safe form of a (nested) dataclass; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, str):  # str subclasses (torch.__version__) trip yaml.safe_dump
        return str(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return obj


def load_yaml(path: str | Path, cls: type[T] | None = None) -> Any:
    """Read a YAML file; with ``cls``, parse it strictly into that dataclass."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path}: config file not found; check the path")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax") from exc
    return data if cls is None else from_dict(cls, data, where=str(path))


def save_yaml(obj: Any, path: str | Path) -> Path:
    """Write a dataclass or mapping as YAML, atomically."""
    import yaml

    from medseg.atomic import atomic_write_text

    text = yaml.safe_dump(to_dict(obj), sort_keys=False)
    return atomic_write_text(Path(path), text)


def config_hash(obj: Any) -> str:
    """Stable SHA-256 (first 16 hex digits) of a config's canonical JSON form."""
    canonical = json.dumps(to_dict(obj), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
