"""Name -> constructor registries, and strict construction from config specs.

A config section such as ``{"type": "gaussian", "dim": 20}`` names a registered
constructor and its keyword arguments. :func:`build` checks every key against
the constructor's signature and its type hints *before* anything is built, so
an unknown key or a wrong type fails with a message naming the key (no
``elif`` chains, no ``exec``).
"""

from __future__ import annotations

import inspect
import typing
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is unknown, missing or of the wrong type."""


class Registry(Generic[T]):
    """A dict of named constructors with a decorator to fill it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = fn
            return fn

        return deco

    def get(self, name: str, path: str = "") -> Callable[..., T]:
        if name not in self._items:
            where = f"{path}.type" if path else "type"
            raise ConfigError(
                f"{where}: unknown {self.kind} {name!r}; choose one of {sorted(self._items)}"
            )
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items


def _type_ok(value: Any, hint: Any) -> bool:
    """Loose runtime check of a config value against a type hint."""
    if hint is inspect.Parameter.empty or hint is Any:
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        return any(_type_ok(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is bool:
        return isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if args and args[-1] is not Ellipsis:
            if origin is tuple and len(args) == len(value):
                return all(_type_ok(v, a) for v, a in zip(value, args))
            return all(_type_ok(v, args[0]) for v in value)
        if args:
            return all(_type_ok(v, args[0]) for v in value)
        return True
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if origin is typing.Literal:
        return value in args
    try:
        return isinstance(value, hint)
    except TypeError:
        return True


def check_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any], path: str, fixed: tuple[str, ...] = ()) -> None:
    """Raise :class:`ConfigError` if ``kwargs`` do not fit ``fn``'s signature.

    ``fixed`` names arguments the caller supplies itself (such as the input
    width), which a config may not set.
    """
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn.__init__ if inspect.isclass(fn) else fn)
    except Exception:  # unresolvable forward references: fall back to no type checks
        hints = {}
    params = {n: p for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for key, value in kwargs.items():
        if key in fixed or key not in params:
            allowed = sorted(n for n in params if n not in fixed)
            raise ConfigError(f"{path}.{key}: unknown key; allowed keys are {allowed}")
        hint = hints.get(key, params[key].annotation)
        if not _type_ok(value, hint):
            raise ConfigError(
                f"{path}.{key}: expected {getattr(hint, '__name__', hint)}, got {type(value).__name__} {value!r}"
            )
    missing = [
        n for n, p in params.items()
        if p.default is inspect.Parameter.empty and n not in kwargs and n not in fixed
    ]
    if missing:
        raise ConfigError(f"{path}: missing required key(s) {missing}")


def build(registry: Registry[T], spec: dict[str, Any], path: str, **fixed: Any) -> T:
    """Construct ``registry[spec['type']](**fixed, **rest_of_spec)`` after checking keys."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(f"{path}: expected a mapping with a 'type' key, got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    fn = registry.get(spec["type"], path)
    check_kwargs(fn, kwargs, path, tuple(fixed))
    return fn(**fixed, **kwargs)
