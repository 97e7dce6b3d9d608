"""The lines `python -m nbhelpers list ...` prints: each name with a one-line description."""

from __future__ import annotations

from nbhelpers.registry import DATASETS, MODELS, OPTIMIZERS, TASKS, load_all, tasks_of


def listing_lines(what: str) -> list[str]:
    load_all()
    if what == "optimizers":
        lines = []
        for entry in OPTIMIZERS:
            spec = entry.meta["spec"]
            alias = f" (alias {', '.join(spec.aliases)})" if spec.aliases else ""
            lines.append(f"{spec.name:<13} lr {spec.default_lr:<7g} wd {spec.weight_decay:<7g} "
                         f"{spec.decay_style:<9} {spec.description}{alias}")
        return lines
    registry = {"tasks": TASKS, "datasets": DATASETS, "models": MODELS}[what]
    lines = []
    for entry in registry:
        facts = []
        if tasks_of(entry):
            facts.append(", ".join(tasks_of(entry)))
        if entry.meta.get("offline"):
            facts.append("offline")
        where = f" [{', '.join(facts)}]" if facts else ""
        lines.append(f"{entry.name:<22} {entry.description}{where}")
    return lines
