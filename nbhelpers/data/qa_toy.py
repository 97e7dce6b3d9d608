"""toy_qa: generated passages of facts about people, with distractors, and questions on them.

A passage introduces two to five people and states two to four facts about each: where they
were born, where they live, the year they were born, their job, their employer, the instrument
they play, the name of their pet. The sentences of all people are shuffled together, and
distractor sentences mention more cities, pets and people (a city someone only visited, a
neighbour's pet, where two people met). Every value is drawn without replacement within a
passage, so each answer occurs exactly once and is unambiguous.

Questions ask for one fact, in words other than the passage's ("Where does Mara Okafor
live?" against "These days Mara Okafor calls Lisbon home."), or the other way round ("Who
was born in Lisbon?"). To answer, a model has to find the right person (several are in the
passage, sometimes named by first name only), the right relation (born in a city vs born in a
year; lives in vs was born in vs visited) and copy the value, one to three words long. Neither
the position of the answer nor the question's wording alone gives it away.

Everything is seeded per split (the run's seed never changes the data), and generating the
default 7,800 questions takes well under a second.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

FIRST_NAMES = (
    "Mara", "Jonas", "Priya", "Tomas", "Aiko", "Felix", "Nadia", "Oscar", "Leila", "Hugo", "Ines",
    "Rafael", "Sofia", "Mateo", "Yara", "Emil", "Zora", "Kofi", "Lena", "Arjun", "Clara", "Dmitri",
    "Esme", "Bruno", "Hana", "Idris", "Julia", "Kenji", "Lucia", "Milo", "Nora", "Omar", "Petra",
    "Quentin", "Rosa", "Samir", "Talia", "Umar", "Vera", "Wendell", "Ximena", "Yusuf", "Zelda",
    "Anya", "Bastian", "Celine", "Dario", "Elif")
SURNAMES = (
    "Okafor", "Lindqvist", "Moreau", "Castillo", "Tanaka", "Novak", "Haddad", "Brennan", "Kowalski",
    "Ferreira", "Osei", "Varga", "Nakamura", "Rossi", "Quinn", "Dubois", "Petrov", "Santos",
    "Holm", "Abara", "Keller", "Marsh", "Ivanova", "Delgado", "Fischer", "Oyelaran", "Lund",
    "Barros", "Weller", "Sato", "Mendez", "Kaur", "Adler", "Rahman", "Costa", "Becker", "Nilsen",
    "Achebe", "Moretti", "Larsen", "Ortiz", "Yilmaz", "Hughes", "Vidal", "Engel", "Mwangi",
    "Schultz", "Arnaud")
CITIES = (
    "Lisbon", "Oslo", "Nairobi", "Kyoto", "Porto", "Tbilisi", "Quito", "Hanoi", "Dublin", "Lagos",
    "Krakow", "Tallinn", "Valencia", "Bergen", "Marrakesh", "Cusco", "Adelaide", "Halifax",
    "Zagreb", "Accra", "Seville", "Riga", "Montevideo", "Hobart", "Lyon", "Turin", "Ghent",
    "Gdansk", "Malmo", "Cork", "Bilbao", "Salzburg", "Dakar", "Osaka", "Busan", "Perth", "Leeds",
    "Bruges", "Split", "Aarhus", "Tampere", "Lucerne", "Verona", "Nantes", "Brno", "Graz",
    "Kaunas", "Durban", "New Orleans", "Buenos Aires", "Cape Town", "San Diego", "Rio de Janeiro",
    "Las Palmas")
PROFESSIONS = (
    "baker", "nurse", "carpenter", "pilot", "chemist", "librarian", "plumber", "architect",
    "journalist", "dentist", "firefighter", "translator", "beekeeper", "tailor", "surveyor",
    "marine biologist", "tax lawyer", "software engineer", "civil engineer", "school teacher",
    "bus driver", "museum curator", "sound engineer", "wine merchant", "flight attendant",
    "night watchman", "piano tuner", "data analyst", "park ranger", "film editor")
COMPANIES = (
    "Northwind Bakery", "Blue Heron Press", "Copperfield Mills", "Redwood Logistics",
    "Silverline Rail", "Orchard Street Clinic", "Harbor Light Studios", "Greystone Bank",
    "Maple Leaf Insurance", "Sunrise Dairy", "Atlas Shipping", "Juniper Labs", "Kestrel Airways",
    "Lantern Books", "Meridian Hotels", "Nimbus Software", "Oakridge School", "Pinecrest Farms",
    "Quarry Hill Brewery", "Riverbend Hospital", "Starling Media", "Tidewater Energy",
    "Union Square Theatre", "Vantage Motors", "Willow Creek Winery", "Zenith Optics",
    "Bluebell Textiles", "Cobalt Robotics", "Driftwood Furniture", "Evergreen Nurseries")
INSTRUMENTS = (
    "cello", "violin", "trumpet", "oboe", "banjo", "harp", "accordion", "saxophone", "clarinet",
    "flute", "bagpipes", "ukulele", "double bass", "french horn", "bass guitar", "steel drums")
ANIMALS = ("cat", "dog", "parrot", "rabbit", "tortoise", "goldfish", "hamster", "pony")
PET_NAMES = (
    "Biscuit", "Pepper", "Waffles", "Jasper", "Pickle", "Mochi", "Nugget", "Clover", "Ziggy",
    "Marmalade", "Tofu", "Sprout", "Pumpkin", "Noodle", "Basil", "Gizmo", "Truffle", "Olive",
    "Pretzel", "Button", "Cinnamon", "Dumpling", "Pistachio", "Rocket", "Sherbet", "Tango",
    "Velvet", "Whiskers", "Yeti", "Zucchini")
YEARS = tuple(str(year) for year in range(1938, 2006))
# People per passage, facts per person and distractor sentences per passage (inclusive ranges).
PEOPLE, FACTS, DISTRACTORS = (2, 4), (2, 3), (1, 2)

# The seven relations: value pool, passage templates, question templates, and (for some)
# reverse questions that ask for the person. {p} is the person as named in the sentence,
# {v} the value, {a} the pet's kind. Templates read differently from the questions on purpose.
@dataclass(frozen=True)
class Relation:
    name: str
    pool: str                          # key of the value pool in _POOLS
    statements: tuple[str, ...]
    questions: tuple[str, ...]
    reverse: tuple[str, ...] = ()      # questions whose answer is the person ("Who ... {v}?")


RELATIONS = (
    Relation("birthplace", "city",
             ("{p} was born in {v}.", "{p} was born in the city of {v}.", "{v} is where {p} was born.",
              "Born in {v}, {p} still misses its markets."),
             ("Where was {q} born?", "In which city was {q} born?", "What is the birthplace of {q}?"),
             ("Who was born in {v}?",)),
    Relation("residence", "city",
             ("{p} lives in {v}.", "{p} now lives in {v}.", "These days {p} calls {v} home.",
              "{p} moved to {v} a few years ago and still lives there."),
             ("Where does {q} live?", "In which city does {q} live now?", "Where is {q}'s home today?"),
             ("Who lives in {v}?",)),
    Relation("birth_year", "year",
             ("{p} was born in {v}.", "{p} was born in the spring of {v}.", "{p}, born in {v}, is the eldest of three."),
             ("When was {q} born?", "In what year was {q} born?", "What year was {q} born in?")),
    Relation("job", "profession",
             ("{p} works as a {v}.", "{p} is a {v} by trade.", "{p} has been a {v} for ten years."),
             ("What does {q} do for a living?", "What is {q}'s job?", "What is the profession of {q}?"),
             ("Who works as a {v}?",)),
    Relation("employer", "company",
             ("{p} works for {v}.", "{p} is employed by {v}.", "{p} has a job at {v}."),
             ("Who employs {q}?", "Which company does {q} work for?", "Where does {q} work?"),
             ("Who works for {v}?",)),
    Relation("instrument", "instrument",
             ("{p} plays the {v}.", "{p} has played the {v} since childhood.", "On weekends {p} plays the {v} in a band."),
             ("Which instrument does {q} play?", "What does {q} play in the band?", "What instrument can {q} play?"),
             ("Who plays the {v}?",)),
    Relation("pet", "pet_name",
             ("{p} has a {a} called {v}.", "{p} owns a {a} named {v}.", "{v} is the name of {p}'s {a}."),
             ("What is the name of {q}'s {a}?", "What is {q}'s {a} called?", "What did {q} name the {a}?")),
)
_POOLS = {"city": CITIES, "year": YEARS, "profession": PROFESSIONS, "company": COMPANIES,
          "instrument": INSTRUMENTS, "pet_name": PET_NAMES}

@dataclass
class _Person:
    first: str
    last: str

    @property
    def full(self) -> str:
        return f"{self.first} {self.last}"


@dataclass(frozen=True)
class ToyQuestion:
    """One generated question, its answer and where the answer stands in the passage."""

    question: str
    answer: str
    answer_start: int            # character offset of the answer in the passage
    relation: str
    reverse: bool


@dataclass(frozen=True)
class ToyPassage:
    context: str
    questions: tuple[ToyQuestion, ...]


class _Passage:
    """Builds one passage: draws people and values without replacement, writes sentences."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: dict[str, set[str]] = {key: set() for key in _POOLS}
        self.used["animal"] = set()

    def draw(self, pool: str) -> str:
        values = [v for v in _POOLS.get(pool, ANIMALS) if v not in self.used[pool]]
        value = self.rng.choice(values)
        self.used[pool].add(value)
        return value


def _name_in_sentence(rng: random.Random, person: _Person, full_only: bool) -> str:
    """Full name most of the time; the first name alone in about a quarter of the sentences."""
    return person.full if full_only or rng.random() < 0.75 else person.first


def generate_passage(rng: random.Random, *, questions_per_passage: int = 3) -> ToyPassage:
    """One passage and `questions_per_passage` questions on it (fewer if it has fewer facts)."""
    passage = _Passage(rng)
    n_people = rng.randint(*PEOPLE)
    first_names = rng.sample(FIRST_NAMES, n_people)
    last_names = rng.sample(SURNAMES, n_people)
    people = [_Person(f, l) for f, l in zip(first_names, last_names)]
    # (sentence, the facts it states: [(value, name as written, relation, person, reversible, animal)])
    sentences: list[tuple[str, list[tuple]]] = []
    for person in people:
        relations = rng.sample(RELATIONS, rng.randint(*FACTS))
        for relation in relations:
            value = passage.draw(relation.pool)
            animal = passage.draw("animal") if relation.name == "pet" else ""
            # A reverse question needs the full name in the sentence (that is its answer).
            reversible = bool(relation.reverse) and rng.random() < 0.5
            name = _name_in_sentence(rng, person, full_only=reversible)
            template = rng.choice(relation.statements)
            text = template.format(p=name, v=value, a=animal)
            text = text[0].upper() + text[1:]
            sentences.append((text, [(value, name, relation, person, reversible, animal)]))
    for _ in range(rng.randint(*DISTRACTORS)):
        sentences.append((_distractor(rng, passage, people), []))
    rng.shuffle(sentences)
    context, facts = "", []
    for text, found in sentences:
        offset = len(context) + (1 if context else 0)
        context = f"{context} {text}" if context else text
        for value, name, relation, person, reversible, animal in found:
            facts.append((offset, text, value, name, relation, person, reversible, animal))
    chosen = rng.sample(facts, min(questions_per_passage, len(facts)))
    questions = []
    for offset, text, value, name, relation, person, reversible, animal in chosen:
        if reversible and rng.random() < 0.5:
            question = rng.choice(relation.reverse).format(v=value)
            answer, start = name, offset + text.index(name)
        else:
            asked = person.full if rng.random() < 0.85 else person.first
            question = rng.choice(relation.questions).format(q=asked, a=animal)
            answer, start = value, offset + _value_index(text, value, name)
        assert context[start:start + len(answer)] == answer
        questions.append(ToyQuestion(question, answer, start, relation.name,
                                     reverse=answer == name))
    return ToyPassage(context, tuple(questions))


def _value_index(sentence: str, value: str, name: str) -> int:
    """Where the value stands in its sentence (not inside the person's name)."""
    index = sentence.find(value)
    while index != -1 and name.find(value) != -1 and sentence.find(name) <= index < sentence.find(name) + len(name):
        index = sentence.find(value, index + 1)
    return index


def _distractor(rng: random.Random, passage: _Passage, people: Sequence[_Person]) -> str:
    """A sentence with values of the answers' kinds that answers none of the questions."""
    person = rng.choice(people)
    kind = rng.randrange(4)
    if kind == 0:
        city = passage.draw("city")
        return f"{person.full} once spent a summer in {city} but never lived there."
    if kind == 1:
        animal, name = passage.draw("animal"), passage.draw("pet_name")
        return f"The neighbour of {person.full} has a {animal} called {name}."
    if kind == 2 and len(people) > 1:
        other = rng.choice([p for p in people if p is not person])
        city = passage.draw("city")
        return f"{person.full} and {other.full} first met on a train to {city}."
    company = passage.draw("company")
    return f"{person.full} turned down an offer from {company}."


def generate_toy_qa(n_passages: int, seed: int, questions_per_passage: int = 3) -> list[ToyPassage]:
    """`n_passages` passages with their questions; the same for the same arguments."""
    rng = random.Random(seed)
    return [generate_passage(rng, questions_per_passage=questions_per_passage) for _ in range(n_passages)]


__all__ = ["RELATIONS", "ToyPassage", "ToyQuestion", "generate_passage", "generate_toy_qa"]
