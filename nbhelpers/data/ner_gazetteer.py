"""The generator behind `gazetteer_ner`: news-like sentences with PER/ORG/LOC/MISC entities.

Names are made up from syllables, so there are as many as we like and none is a real word.
Each entity type has its own *morphology*, the way real names do: surnames end in "-son",
"-ski", "-ez" ..., towns in "-burg", "-ville", "-stad" ..., companies in "-tex", "-corp" or
carry a designator word ("Bank", "Motors"), nationalities end in "-ian", "-ese" ..., events
carry "Cup", "Open", "Games". A sentence comes from a template whose slots ask for a type:

* typed templates give a context cue ("shares of ORG rose", "the mayor of LOC", "coach PER"),
* neutral templates give none ("ANY was in the news again"): the type then shows only in the
  name itself, which is where character features earn their keep,
* *ambiguous* names (a bare stem, "Tervin", with no typed ending) are used as a person, a
  place and a company alike, and always in a typed template: only the context resolves them.

The name stems are drawn once and split three ways, so validation and test sentences use names
(stems, and therefore full names) that never occur in training: a model that memorised the
training names sees only unknown words there and must read characters or context.
Everything is seeded; `generate_split` gives the same sentences for the same arguments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
SPLITS = ("train", "validation", "test")
GAZETTEER_SEED = 20_240_701
# Share of the stem pool per split (train, validation, test).
POOL_SHARES = (0.7, 0.15, 0.15)

_ONSETS = ("b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "pr",
           "r", "s", "st", "t", "tr", "v", "w", "z", "sh", "th")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ei", "ou", "ea")
_CODAS = ("", "", "l", "n", "r", "s", "m", "nd", "rt", "v", "k")

# Type morphology: an ending glued to a stem ("Kalmor" + "son").
_ENDINGS = {
    "first": ("a", "ina", "us", "o", "elle", "ek"),
    "surname": ("son", "sen", "ski", "ez", "ova", "enko", "ich", "ard"),
    "town": ("burg", "ville", "ton", "stad", "mouth", "ford", "ia", "grad"),
    "company": ("tex", "corp", "tron", "soft", "ix", "nova"),
    "nationality": ("ian", "ese", "ish", "ic"),
}
# Designator words that make a multi-token name of a type (known words in every split).
_LOC_PREFIXES = ("New", "Port", "Lake", "San", "North", "East")
_ORG_SUFFIXES = ("Bank", "Group", "Motors", "Airlines", "Holdings", "Telecom", "Energy", "United")
_EVENT_SUFFIXES = ("Open", "Cup", "Games", "Festival", "Prize")

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_NUMBERS = ("two", "three", "five", "12", "40", "1.5", "7", "250", "18", "ten")

# Templates: tokens, with slots in braces. PER: a full name or "Mr./Ms. Surname"; SUR: a
# surname alone; LOC, ORG: a place, an organisation; NAT: a nationality (MISC); EVENT: an
# event (MISC); ANY: any of PER, LOC, ORG, EVENT without a context cue; AMB_<TYPE>: an
# ambiguous bare stem used as that type; DAY, NUM: fillers.
TYPED_TEMPLATES = (
    "{PER} said on {DAY} that the deal was close .",
    "coach {PER} praised the team after the match .",
    "{PER} , who scored twice , was named player of the season .",
    "according to spokesman {PER} , talks will resume next week .",
    "striker {PER} signed a new contract with {ORG} .",
    "{SUR} told reporters that he would not resign .",
    "the minister , {PER} , arrived late .",
    "heavy rain fell in {LOC} on {DAY} .",
    "the mayor of {LOC} opened the new bridge .",
    "flights from {LOC} to {LOC} were cancelled .",
    "{PER} returned to {LOC} after the talks .",
    "police in {LOC} said {NUM} people were injured .",
    "shares of {ORG} rose {NUM} percent on {DAY} .",
    "{ORG} reported a quarterly profit of {NUM} million .",
    "{ORG} said it would cut {NUM} jobs this year .",
    "analysts at {ORG} expect rates to fall .",
    "{ORG} will open a plant in {LOC} .",
    "the {NAT} government rejected the proposal .",
    "{PER} won the {EVENT} for the second time .",
    "{NAT} officials met in {LOC} on {DAY} .",
    "tickets for the {EVENT} sold out in {NUM} hours .",
    "the {NAT} champion beat {PER} in the final .",
    "Mr. {AMB_PER} said the season was over .",
    "coach {AMB_PER} resigned on {DAY} .",
    "the mayor of {AMB_LOC} met {PER} .",
    "heavy snow fell in {AMB_LOC} overnight .",
    "shares of {AMB_ORG} fell {NUM} percent .",
    "{AMB_ORG} reported a loss of {NUM} million .",
)
NEUTRAL_TEMPLATES = (
    "{ANY} was in the news again on {DAY} .",
    "reports about {ANY} continued .",
    "the list included {ANY} , {ANY} and {ANY} .",
    "{ANY} {NUM} {ANY} {NUM}",
    "many people talked about {ANY} this week .",
    "nothing new was heard from {ANY} .",
)
NEUTRAL_SHARE = 0.3   # of sentences that come from a neutral template
_ANY_TYPES = ("PER", "SUR", "LOC", "ORG", "EVENT")


@dataclass(frozen=True)
class NamePool:
    """The name stems one split may use (disjoint from the other splits' stems)."""

    first: tuple[str, ...]       # stems for first names
    surname: tuple[str, ...]
    town: tuple[str, ...]
    company: tuple[str, ...]
    nationality: tuple[str, ...]
    ambiguous: tuple[str, ...]   # bare stems used as PER, LOC and ORG


def _stem(rng: random.Random) -> str:
    syllables = rng.choice((1, 2, 2, 2))
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables))
    return word.capitalize()


@lru_cache(maxsize=4)
def name_pools(stems_per_kind: int = 260, seed: int = GAZETTEER_SEED) -> dict[str, NamePool]:
    """Disjoint stem pools for train/validation/test (70/15/15 % of each kind's stems)."""
    rng = random.Random(seed)
    kinds = ("first", "surname", "town", "company", "nationality", "ambiguous")
    seen: set[str] = set()
    drawn: dict[str, list[str]] = {kind: [] for kind in kinds}
    for kind in kinds:
        while len(drawn[kind]) < stems_per_kind:
            stem = _stem(rng)
            # A stem may serve one kind and one split only, and must not collide with a
            # designator, a day, or a template word once capitalised.
            if stem in seen or len(stem) < 3:
                continue
            seen.add(stem)
            drawn[kind].append(stem)
    pools = {}
    for index, split in enumerate(SPLITS):
        parts = {}
        for kind in kinds:
            n = len(drawn[kind])
            start = int(round(sum(POOL_SHARES[:index]) * n))
            stop = int(round(sum(POOL_SHARES[:index + 1]) * n))
            parts[kind] = tuple(drawn[kind][start:stop])
        pools[split] = NamePool(**parts)
    return pools


class _SentenceMaker:
    """Fills templates with names from one split's pool."""

    def __init__(self, pool: NamePool, rng: random.Random):
        self.pool, self.rng = pool, rng

    def _with_ending(self, stems: tuple[str, ...], kind: str) -> str:
        return self.rng.choice(stems) + self.rng.choice(_ENDINGS[kind])

    def entity(self, slot: str) -> tuple[list[str], str]:
        """The tokens of one entity for a slot, and its type."""
        rng, pool = self.rng, self.pool
        if slot == "PER":
            surname = self._with_ending(pool.surname, "surname")
            if rng.random() < 0.25:
                return [rng.choice(("Mr.", "Ms.")), surname], "PER_TITLED"
            return [self._with_ending(pool.first, "first"), surname], "PER"
        if slot == "SUR":
            return [self._with_ending(pool.surname, "surname")], "PER"
        if slot == "LOC":
            town = self._with_ending(pool.town, "town")
            if rng.random() < 0.3:
                return [rng.choice(_LOC_PREFIXES), rng.choice(pool.town)], "LOC"
            return [town], "LOC"
        if slot == "ORG":
            if rng.random() < 0.45:
                return [rng.choice(pool.company), rng.choice(_ORG_SUFFIXES)], "ORG"
            return [self._with_ending(pool.company, "company")], "ORG"
        if slot == "NAT":
            return [self._with_ending(pool.nationality, "nationality")], "MISC"
        if slot == "EVENT":
            return [rng.choice(pool.town + pool.company), rng.choice(_EVENT_SUFFIXES)], "MISC"
        if slot.startswith("AMB_"):
            return [rng.choice(pool.ambiguous)], slot[4:]
        raise ValueError(f"unknown slot {slot!r}")

    def sentence(self) -> tuple[list[str], list[str]]:
        """One sentence: tokens and IOB2 tags."""
        rng = self.rng
        neutral = rng.random() < NEUTRAL_SHARE
        template = rng.choice(NEUTRAL_TEMPLATES if neutral else TYPED_TEMPLATES)
        tokens: list[str] = []
        tags: list[str] = []
        for piece in template.split():
            if not (piece.startswith("{") and piece.endswith("}")):
                tokens.append(piece)
                tags.append("O")
                continue
            slot = piece[1:-1]
            if slot == "DAY":
                tokens.append(rng.choice(_DAYS)), tags.append("O")
                continue
            if slot == "NUM":
                tokens.append(rng.choice(_NUMBERS)), tags.append("O")
                continue
            if slot == "ANY":
                slot = rng.choice(_ANY_TYPES)
            words, kind = self.entity(slot)
            if kind == "PER_TITLED":  # the title is context, not part of the name (as in CoNLL)
                tokens.append(words[0]), tags.append("O")
                words, kind = words[1:], "PER"
            tokens.extend(words)
            tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1))
        tokens[0] = tokens[0][:1].upper() + tokens[0][1:]  # sentence case, as in news text
        return tokens, tags


SPLIT_SEEDS = {"train": 1, "validation": 2, "test": 3}


def generate_split(split: str, n: int, seed: int = GAZETTEER_SEED) -> tuple[list[list[str]], list[list[str]]]:
    """`n` sentences (tokens, IOB2 tags) of one split, using only that split's name stems."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    maker = _SentenceMaker(name_pools(seed=seed)[split], random.Random(seed * 10 + SPLIT_SEEDS[split]))
    sentences = [maker.sentence() for _ in range(n)]
    return [s[0] for s in sentences], [s[1] for s in sentences]


__all__ = ["NEUTRAL_TEMPLATES", "TAGS", "TYPED_TEMPLATES", "generate_split", "name_pools"]
