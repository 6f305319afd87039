"""Name -> constructor registries, and strict construction from config specs.

A config section such as ``{"type": "gaussian", "dim": 20}`` names a registered
constructor and its keyword arguments. :func:`build` checks every key against
the constructor's signature and its type hints *before* anything is built, so
an unknown key, a wrong type or a value out of range fails with one line naming
the dotted key, the value and what is allowed::

    model.latent.dim: expected an integer >= 1, got int 0
    model.encoder.hidden[1]: expected an integer >= 1, got str 'b'
    model.encoder.activation: expected one of 'tanh', 'relu', ..., got str 'rleu'

Validation is pydantic's (a ``TypeAdapter`` per type hint), not hand-written: it
already knows ``Literal``, unions, nested lists and tuples and the bounds of
``annotated_types`` (``Annotated[int, Ge(1)]``), and reports where inside a value
each error is. The hand-written checker this module had missed the bounds and
``collections.abc.Sequence`` (``hidden: 128`` passed and failed later with
"'int' object is not iterable"). What is left here is wording: pydantic's error
locations become dotted keys, and the expected type is said in YAML's words
(:func:`describe`).

Config values are plain data (YAML or JSON), so they are validated as JSON, in
pydantic's strict mode: a list is taken where a signature says ``tuple``, an
integer where it says ``float``; nothing else is converted (``"3"``, ``3.0`` or
``true`` are not integers). The constructor receives the values as given.

A constructor's own ``ValueError`` (a rule between keys, such as ``dim`` a
multiple of ``n_categories``) is reported as a :class:`ConfigError` under the
section's path, with the section's values.
"""

from __future__ import annotations

import functools
import inspect
import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Callable, Generic, Literal, TypeVar

import annotated_types as at
from pydantic import ConfigDict, TypeAdapter, ValidationError

__all__ = ["ConfigError", "Registry", "build", "check_kwargs", "check_value", "describe", "PositiveInt",
           "NonNegativeInt", "PositiveFloat", "NonNegativeFloat", "Fraction"]

T = TypeVar("T")

#: Bounds for constructor signatures; :func:`build` enforces them and :func:`describe` words them.
PositiveInt = Annotated[int, at.Ge(1)]
NonNegativeInt = Annotated[int, at.Ge(0)]
PositiveFloat = Annotated[float, at.Gt(0)]
NonNegativeFloat = Annotated[float, at.Ge(0)]
Fraction = Annotated[float, at.Interval(ge=0, le=1)]


class ConfigError(ValueError):
    """A configuration value is unknown, missing, of the wrong type or out of range."""


class Registry(Generic[T]):
    """A dict of named constructors with a decorator to fill it.

    ``constraints`` maps a parameter name to ``annotated_types`` bounds that hold for every constructor
    of the registry taking that parameter (see :meth:`constrain`).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Callable[..., T]] = {}
        self.constraints: dict[str, tuple[Any, ...]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = fn
            return fn

        return deco

    def constrain(self, **bounds: Any) -> None:
        """Add bounds for a parameter of every constructor here, e.g. ``LATENTS.constrain(dim=Ge(1))``.

        For a rule that belongs to a whole family whose constructors each declare the parameter themselves.
        """
        for param, bound in bounds.items():
            self.constraints[param] = (*self.constraints.get(param, ()), bound)

    def get(self, name: str, path: str = "", key: str = "type") -> Callable[..., T]:
        """The constructor registered as ``name``.

        Raises:
            ConfigError: ``name`` is not registered; the message names ``path.key`` (``model.latent.type``,
                ``data.name``), the value and the registered names.
        """
        if not isinstance(name, str) or name not in self._items:
            where = f"{path}.{key}" if path else key
            raise ConfigError(f"{where}: unknown {self.kind} {name!r}; choose one of {sorted(self._items)}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items


# --------------------------------------------------------------------------------------------------
# one value against one type hint
# --------------------------------------------------------------------------------------------------

_STRICT_JSON = ConfigDict(strict=True, arbitrary_types_allowed=True)
_SIMPLE = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
           list: "a list", tuple: "a list", type(None): "null"}


def _is_union(origin: Any) -> bool:
    return origin is typing.Union or origin is types.UnionType


def _bound(meta: Any) -> str | None:
    """``Ge(1)`` -> ``">= 1"``; None for metadata that is not a bound."""
    parts = []
    for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        v = getattr(meta, attr, None)
        if v is not None:
            parts.append(f"{op} {v}")
    if isinstance(meta, at.MinLen):
        parts.append(f"with at least {meta.min_length} items")
    if isinstance(meta, at.MaxLen):
        parts.append(f"with at most {meta.max_length} items")
    return " and ".join(parts) or None


def describe(hint: Any) -> str:
    """What a type hint allows, in a YAML config's words: ``an integer >= 1``, ``a number or null``,
    ``one of 'tanh', 'relu'``, ``a list (each item an integer >= 1)``."""
    if hint is Any or hint is inspect.Parameter.empty:
        return "any value"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        bounds = [b for b in map(_bound, args[1:]) if b]
        return " ".join([describe(args[0]), *bounds])
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if _is_union(origin):
        words = [describe(a) for a in args if a is not type(None)]
        return " or ".join(words + (["null"] if type(None) in args else []))
    if origin is tuple and args and args[-1] is not Ellipsis:
        items = [describe(a) for a in args]
        if len(set(items)) == 1:
            return f"a list of {len(args)} items (each {items[0]})"
        return f"a list of {len(args)} items ({', '.join(items)})"
    if origin in (list, tuple, Sequence, typing.Sequence):
        return f"a list (each item {describe(args[0])})" if args else "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    if hint in _SIMPLE:
        return _SIMPLE[hint]
    return f"a {getattr(hint, '__name__', str(hint))}"


def _item_hint(hint: Any, index: int) -> Any | None:
    """The hint of item ``index`` of a value of type ``hint``; None where a union leaves it open."""
    while typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_union(origin):
        listy = [a for a in args if a is not type(None)]
        return _item_hint(listy[0], index) if len(listy) == 1 else None
    if origin is tuple and args:
        if args[-1] is Ellipsis:
            return args[0]
        return args[index] if index < len(args) else None
    if origin in (list, Sequence, typing.Sequence) and args:
        return args[0]
    return None


@functools.lru_cache(maxsize=None)
def _adapter(hint: Any) -> TypeAdapter:
    return TypeAdapter(hint, config=_STRICT_JSON)


def _got(value: Any) -> str:
    return "got null" if value is None else f"got {type(value).__name__} {value!r}"


def check_value(value: Any, hint: Any, key: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` (plain config data) fits the type hint ``hint``.

    Args:
        value: from YAML or JSON: None, bool, int, float, str, lists (tuples are taken as lists) and dicts.
        hint: a type hint, with ``annotated_types`` bounds where it has them.
        key: the dotted key, for the message.

    Raises:
        ConfigError: one line per problem, joined by ``"; "``: ``key[i]: expected <what is allowed>, got <type>
            <value>`` (``[i]`` where the problem is an item of a list); a value that is not plain data
            (a tensor, a numpy scalar, a path object) is refused the same way.
    """
    if hint is Any or hint is inspect.Parameter.empty:
        return
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected {describe(hint)} (plain data: null, true/false, numbers, strings, "
                          f"lists, mappings), {_got(value)}") from None
    try:
        adapter = _adapter(hint)
    except TypeError:  # an unhashable hint (a list among Annotated metadata): build it uncached
        adapter = TypeAdapter(hint, config=_STRICT_JSON)
    try:
        adapter.validate_json(text)
    except ValidationError as e:
        problems: dict[str, None] = {}  # ordered set: a union reports one error per member at the same place
        for err in e.errors(include_url=False):
            # loc holds list indices and, inside unions, the member's name; only the indices locate the value
            index = [p for p in err["loc"] if isinstance(p, int)]
            if err["type"] == "missing" and index:  # a tuple too short: the list is at fault, not a missing item
                index.pop()
            sub: Any | None = hint
            for i in index:
                sub = _item_hint(sub, i) if sub is not None else None
            expected = describe(sub) if sub is not None else err["msg"].removeprefix("Input should be ")
            where = key + "".join(f"[{i}]" for i in index)
            problems[f"{where}: expected {expected}, {_got(err['input'])}"] = None
        raise ConfigError("; ".join(problems)) from None


# --------------------------------------------------------------------------------------------------
# keyword arguments against a constructor
# --------------------------------------------------------------------------------------------------


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target = fn.__init__ if inspect.isclass(fn) else fn  # type: ignore[misc]
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as e:  # a developer's error (a name only imported under TYPE_CHECKING), not the user's
        raise TypeError(f"cannot resolve the type hints of {getattr(fn, '__qualname__', fn)}: {e}") from e


def check_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any], path: str, fixed: tuple[str, ...] = (),
                 constraints: Mapping[str, tuple[Any, ...]] | None = None) -> None:
    """Raise :class:`ConfigError` if ``kwargs`` do not fit ``fn``'s signature.

    Args:
        fn: a function or class; its keyword parameters and their (resolved) type hints are the schema.
        kwargs: the config section's keys and values.
        path: the section's dotted key (``model.latent``).
        fixed: arguments the caller supplies itself (such as the input width), which a config may not set.
        constraints: extra bounds per parameter name (:meth:`Registry.constrain`).

    Raises:
        ConfigError: ``path.key: unknown key; allowed keys are [...]``; ``path: missing required key(s) [...]``;
            or what :func:`check_value` raises for a value (``path.key: expected ..., got ...``).
        TypeError: ``fn``'s type hints cannot be resolved (a bug in the constructor, not in the config).
    """
    sig = inspect.signature(fn)
    params = {n: p for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    hints = _hints(fn)
    for key, value in kwargs.items():
        if key in fixed or key not in params:
            allowed = sorted(n for n in params if n not in fixed)
            raise ConfigError(f"{path}.{key}: unknown key; allowed keys are {allowed}")
        hint = hints.get(key, params[key].annotation)
        extra = (constraints or {}).get(key, ())
        check_value(value, Annotated[(hint, *extra)] if extra else hint, f"{path}.{key}")
    missing = [
        n for n, p in params.items()
        if p.default is inspect.Parameter.empty and n not in kwargs and n not in fixed
    ]
    if missing:
        raise ConfigError(f"{path}: missing required key(s) {missing}")


def build(registry: Registry[T], spec: dict[str, Any], path: str, **fixed: Any) -> T:
    """Construct ``registry[spec['type']](**fixed, **rest_of_spec)`` after checking every key.

    Raises:
        ConfigError: ``spec`` is not a mapping with a ``type``; an unknown type (``path.type``); what
            :func:`check_kwargs` raises; or the constructor's own ``ValueError``, under ``path`` and with the
            section's values (a rule between keys that no single key's type states).
    """
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(f"{path}: expected a mapping with a 'type' key, {_got(spec)}")
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    fn = registry.get(spec["type"], path)
    check_kwargs(fn, kwargs, path, tuple(fixed), registry.constraints)
    try:
        return fn(**fixed, **kwargs)
    except ConfigError:
        raise
    except ValueError as e:
        given = ", ".join(f"{k}: {json.dumps(v)}" for k, v in spec.items())
        raise ConfigError(f"{path}: {e} ({path} is {{{given}}})") from None
