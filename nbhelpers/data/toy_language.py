"""A synthetic language pair with one right translation per sentence: toy_translation's generator.

The source language is English words in subject-object-verb order; the target is a made-up
language in subject-verb-object order with gender and number agreement. Every source
sentence has exactly one translation, so a perfect model scores BLEU 100. What a model must
learn (the `difficulty` knob, 1-3, adds to it):

* a lexicon: each English noun, verb, adjective and adverb has one target stem (generated
  from syllables with a fixed seed);
* reordering: SOV -> SVO; adjectives move after their noun, in mirror order
  ("the big red car" -> "lo autoro rossa granda" shape); adverbs and (difficulty 3)
  postpositional phrases ("the park in") move to the end ("dentro lo parko");
* agreement: every noun has a gender the target shows (-o/-i masculine singular/plural,
  -a/-e feminine); determiners and adjectives agree with their noun; the verb agrees with
  the subject's person and number in three tenses (the source marks tense with "did"/"will");
* many-to-one words: compound nouns ("ice cream"), "you all" (one plural pronoun) and a few
  "very" + adjective pairs ("very big") each become one target word; other "very"s become
  "molto".

`toy_pairs(n, difficulty, seed)` returns n distinct (source, target) sentence pairs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

DIFFICULTIES = (1, 2, 3)
LEXICON_SEED = 20_240_717  # fixed: the languages never change with a run's seed

# English nouns with their plural; none whose plural equals the singular ("fish"), which
# would make "the fish" ambiguous between singular and plural.
_NOUNS = (
    ("cat", "cats"), ("dog", "dogs"), ("bird", "birds"), ("horse", "horses"), ("apple", "apples"),
    ("book", "books"), ("letter", "letters"), ("car", "cars"), ("house", "houses"), ("boat", "boats"),
    ("child", "children"), ("teacher", "teachers"), ("chair", "chairs"), ("window", "windows"),
    ("flower", "flowers"), ("farmer", "farmers"), ("man", "men"), ("woman", "women"),
    ("mouse", "mice"), ("key", "keys"), ("lamp", "lamps"), ("song", "songs"), ("picture", "pictures"),
    ("shoe", "shoes"), ("hat", "hats"), ("coat", "coats"), ("ball", "balls"), ("box", "boxes"),
    ("bag", "bags"), ("cup", "cups"), ("plate", "plates"), ("knife", "knives"), ("doctor", "doctors"),
    ("baker", "bakers"), ("student", "students"), ("painter", "painters"), ("sailor", "sailors"),
    ("king", "kings"), ("queen", "queens"), ("girl", "girls"), ("boy", "boys"), ("friend", "friends"),
    ("neighbour", "neighbours"), ("soldier", "soldiers"), ("cook", "cooks"), ("pilot", "pilots"),
    ("singer", "singers"), ("lawyer", "lawyers"), ("nurse", "nurses"), ("monkey", "monkeys"),
    ("lion", "lions"), ("rabbit", "rabbits"), ("table", "tables"), ("door", "doors"), ("tree", "trees"),
    ("river", "rivers"), ("garden", "gardens"), ("cake", "cakes"), ("bottle", "bottles"),
    ("pencil", "pencils"), ("bicycle", "bicycles"), ("train", "trains"), ("ship", "ships"),
    ("road", "roads"), ("bridge", "bridges"), ("tower", "towers"), ("glass", "glasses"),
    ("wolf", "wolves"), ("story", "stories"), ("city", "cities"), ("baby", "babies"),
    ("brush", "brushes"), ("watch", "watches"), ("fox", "foxes"),
)
# Two English words, one target word.
_COMPOUNDS = (("ice cream", "ice creams"), ("post office", "post offices"), ("fire truck", "fire trucks"),
              ("sea lion", "sea lions"), ("tea pot", "tea pots"), ("bus stop", "bus stops"))
_VERBS = ("see", "like", "find", "carry", "paint", "buy", "sell", "wash", "open", "close", "build",
          "read", "write", "cook", "follow", "watch", "visit", "clean", "catch", "push", "pull", "hold",
          "draw", "call", "help", "love", "fix", "bring", "hide", "throw", "chase", "feed", "move",
          "lift", "drop", "keep", "lose", "want", "need", "greet")
_ADJECTIVES = ("big", "small", "good", "bad", "old", "new", "red", "blue", "green", "happy", "sad",
               "young", "tall", "heavy", "clean", "dirty", "quiet", "loud", "strong", "weak", "cold",
               "warm", "dark", "bright", "rich", "poor", "fast", "slow", "short", "light")
# "very <adjective>" that the target says in one word.
_VERY_FORMS = ("big", "small", "good", "bad", "old", "cold")
_ADVERBS = ("today", "often", "quickly", "slowly", "again", "carefully", "quietly", "happily",
            "early", "later", "together", "alone")
_PREPOSITIONS = {"in": "dentro", "on": "sopra", "near": "presso", "under": "sotto", "behind": "dietro",
                 "with": "con"}

# Target function words.
_DEFINITE = {("m", "sg"): "lo", ("f", "sg"): "la", ("m", "pl"): "li", ("f", "pl"): "le"}
_INDEFINITE = {("m", "sg"): "un", ("f", "sg"): "una", ("m", "pl"): "alcuni", ("f", "pl"): "alcune"}
_ENDING = {("m", "sg"): "o", ("f", "sg"): "a", ("m", "pl"): "i", ("f", "pl"): "e"}
_PRONOUNS = {  # source, person-number, target
    "i": ("1sg", "io"), "you": ("2sg", "tu"), "he": ("3sg", "lui"), "she": ("3sg", "lei"),
    "we": ("1pl", "noi"), "you all": ("2pl", "voi"), "they": ("3pl", "loro")}
_CONJUGATION = {
    "present": {"1sg": "i", "2sg": "is", "3sg": "it", "1pl": "imus", "2pl": "itis", "3pl": "unt"},
    "past": {"1sg": "avi", "2sg": "avisti", "3sg": "avit", "1pl": "avimus", "2pl": "avistis", "3pl": "averunt"},
    "future": {"1sg": "abo", "2sg": "abis", "3sg": "abit", "1pl": "abimus", "2pl": "abitis", "3pl": "abunt"},
}
_NEGATION, _VERY = "non", "molto"
_RESERVED = set(_DEFINITE.values()) | set(_INDEFINITE.values()) | {t for _, t in _PRONOUNS.values()} \
    | set(_PREPOSITIONS.values()) | {_NEGATION, _VERY}


@dataclass(frozen=True)
class Settings:
    """How much of the language a difficulty level uses."""

    nouns: int
    compounds: int
    verbs: int
    adjectives: int
    very_forms: int
    adverbs: int
    adjective_counts: tuple[float, ...]   # probabilities of 0, 1, 2, ... adjectives in a noun phrase
    adverb_rate: float
    negation_rate: float
    pp_rate: float                        # postpositional phrase (difficulty 3)


SETTINGS = {
    1: Settings(nouns=16, compounds=0, verbs=8, adjectives=0, very_forms=0, adverbs=0,
                adjective_counts=(1.0,), adverb_rate=0.0, negation_rate=0.0, pp_rate=0.0),
    2: Settings(nouns=36, compounds=4, verbs=24, adjectives=16, very_forms=4, adverbs=8,
                adjective_counts=(0.55, 0.35, 0.10), adverb_rate=0.4, negation_rate=0.2, pp_rate=0.0),
    3: Settings(nouns=len(_NOUNS), compounds=len(_COMPOUNDS), verbs=len(_VERBS), adjectives=len(_ADJECTIVES),
                very_forms=len(_VERY_FORMS), adverbs=len(_ADVERBS),
                adjective_counts=(0.4, 0.35, 0.18, 0.07), adverb_rate=0.4, negation_rate=0.2, pp_rate=0.5),
}


@dataclass(frozen=True)
class Lexicon:
    """Target stems and genders for every source word (the same for every difficulty)."""

    noun_stem: dict[str, str]         # singular source noun -> target stem
    noun_gender: dict[str, str]       # -> "m" or "f"
    verb_stem: dict[str, str]
    adjective_stem: dict[str, str]
    very_stem: dict[str, str]         # adjective -> stem of "very <adjective>"
    adverb: dict[str, str]


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The target vocabulary: pronounceable made-up stems, all distinct, from a fixed seed."""
    rng = random.Random(LEXICON_SEED)
    used = set(_RESERVED)

    def stem(syllables: int, closed: bool) -> str:
        while True:
            word = "".join(rng.choice("bcdfgklmnprstvz") + rng.choice("aeiou") for _ in range(syllables))
            word += rng.choice("lmnrst") if closed else ""
            if word not in used:
                used.add(word)
                return word

    nouns = [singular for singular, _ in _NOUNS + _COMPOUNDS]
    return Lexicon(
        # Stems end in a consonant so the agreement ending (-o, -a, -i, -e) is a clean suffix.
        noun_stem={noun: stem(2, True) for noun in nouns},
        noun_gender={noun: rng.choice("mf") for noun in nouns},
        verb_stem={verb: stem(2, True) for verb in _VERBS},
        adjective_stem={adjective: stem(2, True) for adjective in _ADJECTIVES},
        very_stem={adjective: stem(3, True) for adjective in _VERY_FORMS},
        adverb={adverb: stem(3, False) for adverb in _ADVERBS},
    )


def third_person(verb: str) -> str:
    """English present, third person singular: sees, washes, carries."""
    if verb.endswith(("s", "sh", "ch", "x", "z")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


class _Generator:
    def __init__(self, difficulty: int, rng: random.Random):
        self.s = SETTINGS[difficulty]
        self.rng = rng
        self.lex = lexicon()
        self.nouns = list(_NOUNS[:self.s.nouns]) + list(_COMPOUNDS[:self.s.compounds])
        self.verbs = _VERBS[:self.s.verbs]
        self.adjectives = _ADJECTIVES[:self.s.adjectives]
        self.very_forms = set(_VERY_FORMS[:self.s.very_forms])
        self.adverbs = _ADVERBS[:self.s.adverbs]

    def noun_phrase(self) -> tuple[list[str], list[str], str]:
        """(source words, target words, person-number) of a determiner + adjectives + noun."""
        rng, lex = self.rng, self.lex
        singular, plural = rng.choice(self.nouns)
        number = rng.choice(("sg", "pl"))
        gender = lex.noun_gender[singular]
        agree = (gender, number)
        n_adjectives = rng.choices(range(len(self.s.adjective_counts)), weights=self.s.adjective_counts)[0]
        adjectives = rng.sample(self.adjectives, n_adjectives)
        units_source, units_target = [], []
        for adjective in adjectives:
            very = rng.random() < 0.25
            if very and adjective in self.very_forms:  # many-to-one: "very big" is one word
                units_source.append(["very", adjective])
                units_target.append([lex.very_stem[adjective] + _ENDING[agree]])
            elif very:
                units_source.append(["very", adjective])
                units_target.append([_VERY, lex.adjective_stem[adjective] + _ENDING[agree]])
            else:
                units_source.append([adjective])
                units_target.append([lex.adjective_stem[adjective] + _ENDING[agree]])
        definite = rng.random() < 0.6
        noun_source = (singular if number == "sg" else plural).split()
        first = (units_source[0][0] if units_source else noun_source[0])
        if definite:
            determiner = "the"
        elif number == "pl":
            determiner = "some"
        else:
            determiner = "an" if first[0] in "aeiou" else "a"
        source = [determiner] + [w for unit in units_source for w in unit] + noun_source
        target_determiner = (_DEFINITE if definite else _INDEFINITE)[agree]
        # Adjectives follow the noun in mirror order.
        target = [target_determiner, lex.noun_stem[singular] + _ENDING[agree]] + \
            [w for unit in reversed(units_target) for w in unit]
        return source, target, "3" + number

    def subject(self) -> tuple[list[str], list[str], str]:
        if self.rng.random() < 0.3:
            pronoun = self.rng.choice(list(_PRONOUNS))
            person, target = _PRONOUNS[pronoun]
            return pronoun.split(), [target], person
        return self.noun_phrase()

    def sentence(self) -> tuple[str, str]:
        rng, lex, s = self.rng, self.lex, self.s
        subject_source, subject_target, person = self.subject()
        object_source, object_target, _ = self.noun_phrase()
        verb = rng.choice(self.verbs)
        tense = rng.choice(("present", "past", "future"))
        negated = rng.random() < s.negation_rate
        adverb = rng.choice(self.adverbs) if self.adverbs and rng.random() < s.adverb_rate else None
        pp_source, pp_target = [], []
        if rng.random() < s.pp_rate:
            preposition = rng.choice(list(_PREPOSITIONS))
            np_source, np_target, _ = self.noun_phrase()
            pp_source, pp_target = np_source + [preposition], [_PREPOSITIONS[preposition]] + np_target
        if tense == "present":
            verb_group = [third_person(verb) if person == "3sg" else verb]
        else:
            verb_group = ["did" if tense == "past" else "will", verb]
        if negated:
            verb_group.insert(len(verb_group) - 1, "not")
        source = subject_source + pp_source + object_source + ([adverb] if adverb else []) + verb_group
        target_verb = lex.verb_stem[verb] + _CONJUGATION[tense][person]
        target = subject_target + ([_NEGATION] if negated else []) + [target_verb] + object_target \
            + pp_target + ([lex.adverb[adverb]] if adverb else [])
        # No final period: a tokenized " ." would make sacrebleu warn about undetokenized text.
        return " ".join(source), " ".join(target)


def toy_pairs(n: int, difficulty: int = 2, seed: int = LEXICON_SEED) -> tuple[list[str], list[str]]:
    """`n` distinct source sentences and their translations; the same for the same arguments."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    generator = _Generator(difficulty, random.Random(seed + difficulty))
    pairs: dict[str, str] = {}
    attempts = 0
    while len(pairs) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"difficulty {difficulty} cannot make {n} distinct sentences")
        source, target = generator.sentence()
        pairs.setdefault(source, target)
    return list(pairs), list(pairs.values())


def lexicon_size(difficulty: int) -> dict[str, int]:
    """How many nouns, verbs, adjectives and adverbs a difficulty level uses."""
    s = SETTINGS[difficulty]
    return {"nouns": s.nouns + s.compounds, "verbs": s.verbs, "adjectives": s.adjectives, "adverbs": s.adverbs}
