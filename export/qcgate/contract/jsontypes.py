"""Decode parsed JSON into annotated, frozen dataclasses, strictly.

The manifest is read by the service on every worker start; a typo in it must fail there, naming the
field, rather than fall back to a default. :func:`decode` follows the dataclasses' type hints:
nested dataclasses, ``tuple[X, ...]`` (JSON lists), ``dict[str, X]``, ``Literal[...]``, ``X | None``,
``bool``, ``int``, ``float`` (integers accepted) and ``str``. Unknown and missing fields are errors;
the dataclasses' own ``__post_init__`` validation runs as they are built, and its errors pass through.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal


class DecodeError(ValueError):
    """A JSON value that does not fit its annotation; the message names the field's path."""


def decode(annotation: Any, value: Any, where: str) -> Any:
    """``value`` as an instance of ``annotation``; ``where`` is the field's path for error messages."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        return _decode_dataclass(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return decode(next(a for a in args if a is not type(None)), value, where)
    if origin is Literal:
        _expect(value in args, where, f"must be one of {args}")
        return value
    if origin is tuple:
        _expect(isinstance(value, list | tuple), where, "must be a list")
        return tuple(decode(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
    if origin is dict:
        _expect(isinstance(value, Mapping), where, "must be an object")
        return {str(k): decode(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if annotation is bool:
        _expect(isinstance(value, bool), where, "must be true or false")
        return value
    if annotation is int:
        _expect(isinstance(value, int) and not isinstance(value, bool), where, "must be an integer")
        return value
    if annotation is float:
        _expect(isinstance(value, int | float) and not isinstance(value, bool), where, "must be a number")
        return float(value)
    if annotation is str:
        _expect(isinstance(value, str), where, "must be a string")
        return value
    raise TypeError(f"decode() does not support {annotation!r} (field {where})")  # a bug, not bad input


def _decode_dataclass(annotation: Any, value: Any, where: str) -> Any:
    _expect(isinstance(value, Mapping), where, "must be an object")
    hints = typing.get_type_hints(annotation)
    fields = {f.name: f for f in dataclasses.fields(annotation)}
    unknown = sorted(set(value) - set(fields))
    _expect(not unknown, where, f"has unknown field(s) {', '.join(unknown)}")
    missing = [
        name
        for name, f in fields.items()
        if name not in value and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    _expect(not missing, where, f"lacks field(s) {', '.join(missing)}")
    return annotation(**{key: decode(hints[key], item, f"{where}.{key}") for key, item in value.items()})


def _expect(condition: bool, where: str, problem: str) -> None:
    if not condition:
        raise DecodeError(f'Argument "{where}" {problem}.')
