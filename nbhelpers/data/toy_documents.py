"""Generated news-like documents whose summary is fixed by the document: toy_summaries' generator.

A document is a few sentences about people ("On Monday, Maria repaired a red bicycle near the
harbour, witnesses said."), plus an occasional sentence about no one. One person, the main
entity, has more sentences than anyone else. The reference summary is every sentence about
the main entity, in document order, each shortened to its core: the time opener and the
trailing attribution are dropped ("Maria repaired a red bicycle near the harbour."). Summary
sentences are separated by newlines, as CNN/DailyMail's highlights are. `oracle_summary`
computes the summary from the document alone, so ROUGE 100 is attainable.

Difficulty (1-3) sets the number of people and sentences; at difficulty 1 and 2 the first
sentence is about the main entity (news puts the lead first); at 3 it need not be, so a model
must count who is mentioned most.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass

DIFFICULTIES = (1, 2, 3)
DOCUMENT_SEED = 20_240_718

NAMES = ("Maria", "Jonas", "Amira", "Pedro", "Lena", "Tomas", "Sofia", "Omar", "Clara", "Yuki", "Ivan",
         "Nadia", "Felix", "Ana", "Marek", "Leila", "Hugo", "Ines", "Karim", "Elena", "Paulo", "Greta",
         "Samir", "Julia", "Anton", "Rosa", "Emil", "Dara", "Victor", "Lucia", "Oskar", "Mina")
VERBS = ("visited", "repaired", "painted", "bought", "sold", "photographed", "cleaned", "opened",
         "inspected", "designed", "rented", "found", "restored", "delivered", "measured", "described")
OBJECTS = ("a red bicycle", "the old museum", "a small bakery", "the town hall", "a wooden boat",
           "the new library", "an empty warehouse", "the stone bridge", "a vintage car", "the school garden",
           "a blue tram", "the concert hall", "a tiny cottage", "the railway station", "a fishing net",
           "the city archive", "a broken clock", "the football stadium", "a glass tower", "the village church")
PLACES = ("in Lisbon", "near the harbour", "in the city centre", "outside Berlin", "by the river",
          "in a quiet suburb", "on the north coast", "near the university", "in the old town",
          "at the market square", "in Oslo", "beside the park")
TIMES = ("On Monday", "On Tuesday", "On Friday", "Last week", "Early this morning", "In March",
         "Late on Sunday", "Two days ago", "In the spring", "Yesterday", "Last year", "On Saturday")
TAILS = (", witnesses said", ", according to local reports", ", a spokesperson confirmed",
         ", the newspaper reported", ", officials said")
FILLERS = ("The weather stayed mild all day.", "Traffic was heavy in the afternoon.",
           "Prices at the market rose slightly.", "A light rain fell in the evening.",
           "The local team lost its match.", "Schools were closed for the holiday.")


@dataclass(frozen=True)
class Settings:
    main_sentences: tuple[int, ...]     # how many sentences the main entity gets (drawn uniformly)
    others: tuple[int, ...]             # how many other people appear
    fillers: tuple[int, ...]            # how many sentences about no one
    lead_is_main: bool                  # the first sentence is about the main entity


SETTINGS = {
    1: Settings(main_sentences=(2, 3), others=(1,), fillers=(0,), lead_is_main=True),
    2: Settings(main_sentences=(2, 3), others=(2,), fillers=(0, 1), lead_is_main=True),
    3: Settings(main_sentences=(3, 4), others=(2, 3), fillers=(1, 2), lead_is_main=False),
}


def _event(rng: random.Random, name: str) -> tuple[str, str]:
    """(document sentence, summary sentence) of one thing `name` did."""
    core = f"{name} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(PLACES)}"
    tail = rng.choice(TAILS) if rng.random() < 0.5 else ""
    return f"{rng.choice(TIMES)}, {core}{tail}.", f"{core}."


def toy_document(rng: random.Random, difficulty: int = 2) -> tuple[str, str]:
    """One (document, reference summary) pair."""
    s = SETTINGS[difficulty]
    n_main = rng.choice(s.main_sentences)
    people = rng.sample(NAMES, 1 + rng.choice(s.others))
    main, others = people[0], people[1:]
    # Everyone else has fewer sentences than the main entity, so "most mentioned" is unique.
    owners = [main] * n_main + [o for o in others for _ in range(rng.randint(1, n_main - 1))]
    rng.shuffle(owners)
    if s.lead_is_main and owners[0] != main:
        owners.remove(main)
        owners.insert(0, main)
    events = [(owner, *_event(rng, owner)) for owner in owners]
    for _ in range(rng.choice(s.fillers)):
        events.insert(rng.randint(1, len(events)), (None, rng.choice(FILLERS), ""))
    document = " ".join(sentence for _, sentence, _ in events)
    summary = "\n".join(short for owner, _, short in events if owner == main)
    return document, summary


def toy_documents(n: int, difficulty: int = 2, seed: int = DOCUMENT_SEED) -> tuple[list[str], list[str]]:
    """`n` distinct documents and their summaries; the same for the same arguments."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    rng = random.Random(seed + difficulty)
    pairs: dict[str, str] = {}
    while len(pairs) < n:
        document, summary = toy_document(rng, difficulty)
        pairs.setdefault(document, summary)
    return list(pairs), list(pairs.values())


_SENTENCE_END = re.compile(r"(?<=\.) ")


def oracle_summary(document: str) -> str:
    """The reference summary of a toy_summaries document, read off the document alone."""
    about: list[tuple[str, str]] = []
    for sentence in _SENTENCE_END.split(document.strip()):
        opener, _, rest = sentence.partition(", ")
        words = rest.split()
        if opener in TIMES and words and words[0] in NAMES:
            core = rest.rstrip(".")
            for tail in TAILS:
                if core.endswith(tail):
                    core = core[:-len(tail)]
            about.append((words[0], core + "."))
    if not about:
        return ""
    main = Counter(name for name, _ in about).most_common(1)[0][0]
    return "\n".join(core for name, core in about if name == main)
