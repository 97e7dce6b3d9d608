"""What every model module shares: knob checking and building from the dataset's facts.

A model builder is `builder(*, info, **model_kwargs)`. The user's model_kwargs must be
keyword-only parameters of the model class (minus those filled from `info`); anything else
is one UserInputError that lists the accepted knobs.
"""

from __future__ import annotations

import inspect
from typing import Iterable, Mapping

from nbhelpers.errors import UserInputError


def require(condition: bool, message: str) -> None:
    """Raise a UserInputError with `message` unless `condition` holds (knob validation)."""
    if not condition:
        raise UserInputError(message)


def knob_names(model_class: type, exclude: Iterable[str] = ()) -> list[str]:
    """The keyword-only parameters of `model_class.__init__` a user may set."""
    exclude = set(exclude)
    return [p.name for p in inspect.signature(model_class.__init__).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in exclude]


def check_knobs(name: str, model_class: type, model_kwargs: Mapping, exclude: Iterable[str] = ()) -> list[str]:
    """Unknown knobs are a UserInputError listing the accepted ones; returns the accepted names."""
    knobs = knob_names(model_class, exclude)
    unknown = sorted(set(model_kwargs) - set(knobs))
    if unknown:
        raise UserInputError(f"model {name!r} does not accept {', '.join(map(repr, unknown))}; "
                             f"accepted model_kwargs: {', '.join(knobs) or 'none'}")
    return knobs


def facts_from_info(name: str, info: Mapping, keys: Mapping[str, str], *, needs: str) -> dict[str, int]:
    """{argument: int(info[key])} for the model's data facts; a missing one names the dataset kind needed."""
    missing = [key for key in keys.values() if key not in info]
    if missing:
        raise UserInputError(f"model {name!r} needs {needs}, but the dataset's info lacks {', '.join(missing)}")
    return {argument: int(info[key]) for argument, key in keys.items()}
