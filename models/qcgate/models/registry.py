"""Every trainable quality network by name, so tests, training and export loop over all of them.

A network module registers its class with :func:`register_model`; the class names its dataclass
config in a ``Config`` class attribute. :func:`create_model` builds a model from a config object, a
plain dict (as read back from a checkpoint or a JSON file) or nothing (the small CPU defaults)::

    model = create_model("msm", {"base_width": 8, "depth": 2})
    for name in list_models(): ...

The networks themselves live in :mod:`qcgate.models.nets`, imported on first use so that this module and
the nets can import each other without a cycle.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

ModelClass = TypeVar("ModelClass", bound=type[nn.Module])

_MODELS: dict[str, type[nn.Module]] = {}


def register_model(name: str) -> Callable[[ModelClass], ModelClass]:
    """Class decorator: make ``cls`` available as ``name``; ``cls.Config`` must be a dataclass."""

    def decorate(cls: ModelClass) -> ModelClass:
        config = getattr(cls, "Config", None)
        if config is None or not dataclasses.is_dataclass(config):
            raise TypeError(f'Model "{name}" must name its dataclass config in a "Config" class attribute.')
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f'Model name "{name}" is already registered by {_MODELS[name].__qualname__}.')
        _MODELS[name] = cls
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    return decorate


def list_models() -> list[str]:
    """Registered model names, sorted (a stable order for parametrised tests)."""
    _load_nets()
    return sorted(_MODELS)


def model_class(name: str) -> type[nn.Module]:
    """The class registered as ``name``; KeyError lists the known names."""
    _load_nets()
    try:
        return _MODELS[name]
    except KeyError:
        raise KeyError(f'Unknown model "{name}"; registered: {", ".join(sorted(_MODELS))}') from None


def config_class(name: str) -> type[Any]:
    """The dataclass that configures model ``name``."""
    config: type[Any] = getattr(model_class(name), "Config")  # noqa: B009 (set by register_model)
    return config


def model_name(model: nn.Module) -> str:
    """The registry name of a model instance (what checkpoints and manifests record)."""
    name = getattr(type(model), "registry_name", None)
    if name is None:
        raise TypeError(f"{type(model).__qualname__} is not a registered model")
    return str(name)


def create_model(name: str, config: Any = None) -> nn.Module:
    """Build model ``name`` from a config instance, a dict of config fields, or the defaults."""
    cls, config_type = model_class(name), config_class(name)
    if config is None:
        config = config_type()
    elif isinstance(config, Mapping):
        config = config_from_dict(config_type, config)
    elif not isinstance(config, config_type):
        raise TypeError(f'Argument "config" must be a {config_type.__name__}, a dict or None for "{name}".')
    return cls(config)


def config_from_dict(config_type: type[Any], data: Mapping[str, Any]) -> Any:
    """Rebuild a config dataclass from ``asdict`` output, turning JSON lists back into tuples.

    Unknown keys are an error (a typo must not silently fall back to a default); missing keys take
    the dataclass defaults, so a checkpoint written before a field was added still loads.
    """
    fields = {field.name: field for field in dataclasses.fields(config_type)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{config_type.__name__} has no field(s) {', '.join(unknown)}")
    hints = typing.get_type_hints(config_type)
    return config_type(**{key: _as_annotated(hints[key], value) for key, value in data.items()})


def _as_annotated(annotation: Any, value: Any) -> Any:
    """Tuples for tuple-annotated fields (JSON and YAML only know lists); other values as given."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return value if value is None else _as_annotated(typing.get_args(annotation)[0], value)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    return value


def _load_nets() -> None:
    importlib.import_module("qcgate.models.nets")
