"""Check the user's keyword arguments against the signature of what will receive them.

model_kwargs go to a model class, optimizer_kwargs to an optimizer class, scheduler_kwargs
to a schedule. A typo or a wrong type would otherwise surface in the middle of a run (or,
for schedules, be ignored); checked here, it is one sentence before anything is written.

    check_kwargs("model 'cnn_scratch'", CNNScratch, {"dropout": "abc"})
    -> UserInputError: model 'cnn_scratch': dropout must be a number, got 'abc'

Types come from the annotations (`float`, `int | None`, `tuple[float, float]`, ...); a
parameter without one is judged by its default's type. What cannot be judged that way
(a tensor, a callable) is left to the constructor.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping

from nbhelpers.errors import UserInputError

_UNION_TYPES = (typing.Union, types.UnionType)


def accepted_parameters(target: Callable | type, *, skip: Iterable[str] = ()) -> dict[str, Any]:
    """name -> type hint (or None) of the keyword-capable parameters of `target` (a class: its __init__)."""
    return dict(_parameters(target, tuple(skip)))


@lru_cache(maxsize=None)
def _parameters(target: Callable | type, skip: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    function = target.__init__ if isinstance(target, type) else target
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation that does not resolve: judge by defaults only
        hints = {}
    result = []
    for index, param in enumerate(inspect.signature(function).parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.name in skip:
            continue
        if index == 0 and param.name in ("self", "cls"):
            continue
        hint = hints.get(param.name)
        if hint is None and param.default is not inspect.Parameter.empty:
            hint = _hint_from_default(param.default)
        result.append((param.name, hint))
    return tuple(result)


def _hint_from_default(default: Any) -> Any:
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return float
    if isinstance(default, str):
        return str
    return None


def check_kwargs(what: str, target: Callable | type | None, given: Mapping[str, Any], *,
                 skip: Iterable[str] = (), extra: Mapping[str, Any] | None = None) -> None:
    """Raise UserInputError if `given` has a name `target` does not take, or a value of the wrong type.

    `skip`: parameters the caller fills itself (they are not the user's to set); `extra`:
    further accepted names and their types (options the caller consumes). A None target
    accepts only `extra`.
    """
    accepted = accepted_parameters(target, skip=skip) if target is not None else {}
    accepted.update(extra or {})
    if not isinstance(given, Mapping):
        raise UserInputError(f"{what}: the options must be a mapping of names to values, got {given!r}")
    unknown = sorted(str(k) for k in given if k not in accepted)
    if unknown:
        names = ", ".join(sorted(accepted)) or "none"
        raise UserInputError(f"{what} does not accept {', '.join(map(repr, unknown))} (accepted: {names})")
    for key, value in given.items():
        hint = accepted[key]
        if hint is not None and not fits(value, hint):
            raise UserInputError(f"{what}: {key} must be {describe(hint)}, got {value!r}")


def fits(value: Any, hint: Any) -> bool:
    """Whether `value` (from YAML or the command line) can be passed where `hint` is annotated."""
    if hint is Any or hint is None:
        return True
    origin = typing.get_origin(hint)
    if origin in _UNION_TYPES:
        return any(fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    container = origin or hint
    if container in (tuple, list, collections.abc.Sequence, typing.Sequence):
        return isinstance(value, (list, tuple))
    if container in (dict, collections.abc.Mapping, typing.Mapping):
        return isinstance(value, Mapping)
    return True  # a tensor, a callable, a class: the constructor judges those


def describe(hint: Any) -> str:
    """A person's words for a type hint: 'a number', 'true or false', 'a whole number or null'."""
    origin = typing.get_origin(hint)
    if origin in _UNION_TYPES:
        words = [describe(arg) for arg in typing.get_args(hint) if _describable(arg)]
        return " or ".join(dict.fromkeys(words)) or "a valid value"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(hint))
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
             type(None): "null"}
    if hint in names:
        return names[hint]
    container = origin or hint
    if container in (tuple, list, collections.abc.Sequence, typing.Sequence):
        return "a list"
    if container in (dict, collections.abc.Mapping, typing.Mapping):
        return "a mapping"
    return "a valid value"


def _describable(hint: Any) -> bool:
    return hint in (bool, int, float, str, type(None)) or typing.get_origin(hint) is not None \
        or hint in (tuple, list, dict)
