"""One small Registry class: name -> factory, with descriptions and "did you mean".

Every user-facing name (task, dataset, model, optimizer) lives in one registry, so
`python -m nbhelpers list ...`, config validation and the builders read the same facts.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from nbhelpers.errors import UserInputError


@dataclass(frozen=True)
class Entry:
    """One registered name: what builds it, one line that describes it, and free-form facts."""

    name: str
    factory: Callable[..., Any]
    description: str
    aliases: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)


def tasks_of(entry: Entry) -> tuple[str, ...]:
    """The tasks a dataset or model serves: meta `tasks` (several) or `task` (one)."""
    if entry.meta.get("tasks"):
        return tuple(entry.meta["tasks"])
    return (entry.meta["task"],) if entry.meta.get("task") else ()


class UnknownNameError(UserInputError):
    """A name that is not registered; the message suggests the closest valid one."""


class Registry:
    """Maps names (and aliases) to entries, in registration order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}

    def _complete(self) -> "Registry":
        """Import the registering modules on the first lookup, so `MODELS.get(...)` works cold."""
        load_all()
        return self

    def add(self, name: str, factory: Callable[..., Any], *, description: str,
            aliases: tuple[str, ...] = (), **meta: Any) -> Entry:
        """Register `factory` under `name` (and its aliases); returns the entry."""
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
        entry = Entry(name, factory, description, tuple(aliases), dict(meta))
        self._entries[name] = entry
        for alias in aliases:
            self._aliases[alias] = name
        return entry

    def register(self, name: str, *, description: str, aliases: tuple[str, ...] = (),
                 **meta: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form of add()."""
        def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
            self.add(name, factory, description=description, aliases=aliases, **meta)
            return factory
        return decorate

    def canonical(self, name: str) -> str:
        """The registered name for `name` or one of its aliases; raises UnknownNameError."""
        self._complete()
        key = str(name).strip().lower()
        if key in self._entries:
            return key
        if key in self._aliases:
            return self._aliases[key]
        choices = list(self._entries) + list(self._aliases)
        close = difflib.get_close_matches(key, choices, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}{hint} (valid: {', '.join(self._entries)})")

    def get(self, name: str) -> Entry:
        """The entry for `name` or an alias of it."""
        return self._entries[self.canonical(name)]

    def names(self) -> list[str]:
        return list(self._complete()._entries)

    def __contains__(self, name: object) -> bool:
        self._complete()
        return isinstance(name, str) and (name.lower() in self._entries or name.lower() in self._aliases)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._complete()._entries.values()))

    def __len__(self) -> int:
        return len(self._complete()._entries)


TASKS = Registry("task")
DATASETS = Registry("dataset")
MODELS = Registry("model")
OPTIMIZERS = Registry("optimizer")


_LOAD_STATE = {"started": False}


def load_all() -> None:
    """Import every module that registers something, so the registries are complete.

    Called by every lookup; the imports run once. A lookup made while they run (a module
    that reads a registry at import time) sees what is registered so far.
    """
    if _LOAD_STATE["started"]:
        return
    _LOAD_STATE["started"] = True
    try:
        import nbhelpers.data  # noqa: F401  (registers datasets)
        import nbhelpers.models  # noqa: F401  (registers models)
        import nbhelpers.optim  # noqa: F401  (registers optimizers)
        import nbhelpers.tasks  # noqa: F401  (registers tasks)
    except BaseException:
        _LOAD_STATE["started"] = False  # a failed import is retried (and seen) at the next lookup
        raise
