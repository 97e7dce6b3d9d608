"""The generator behind `grammar_lm`: a toy English whose best possible perplexity is known.

Two parts:

* `FiniteStateSource`: a stationary random process over tokens whose hidden state is a
  function of the tokens already emitted (a *unifilar* source). Knowing the history means
  knowing the state, so the entropy rate is exactly sum_s pi(s) H(next token | s), with pi the
  stationary distribution of the state chain, found by a sparse linear solve, not by sampling.
* `toy_english()`: a second-order word process built from a small tag grammar. The state after
  words ... u, w is (tag of u, w), so the next word depends on the last two words only.
  Subjects and objects take different determiners; determiners agree in number with their
  noun across an adjective (`every big cat`, `many big cats`), verbs agree with their subject
  across an adverb (`they often sleep`), transitive verbs take objects and intransitive ones
  do not, and adjacent content words prefer the same semantic field (`the hungry fox`,
  `a farmer cooks`). `<eos>` ends every sentence. Within a word class the k-th word is
  drawn with weight 1/(k+1) (Zipf), so a few hundred words span a long tail of rare ones.

Nothing here is random except `FiniteStateSource.sample`, which takes a numpy Generator.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

EOS = "<eos>"
UNK = "<unk>"


# --------------------------------------------------------------------------------------------
# A unifilar finite-state source and its exact entropy rate
# --------------------------------------------------------------------------------------------

@dataclass
class FiniteStateSource:
    """A Markov source over token ids whose next state is determined by (state, token).

    For each state s: `tokens[s]` are the token ids it can emit, `probs[s]` their
    probabilities and `next_state[s]` the state each of them leads to. `last_token[s]` is the
    token that every path into s ends with, and `order` says how many trailing tokens fix the
    state (1 or 2): together they give the best loss of a model that sees little context.
    """

    tokens: list[np.ndarray]
    probs: list[np.ndarray]
    next_state: list[np.ndarray]
    last_token: np.ndarray
    start: int
    order: int = 2
    _cumulative: list[list[float]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        for s, p in enumerate(self.probs):
            if not (len(p) == len(self.tokens[s]) == len(self.next_state[s]) and len(p) > 0):
                raise ValueError(f"state {s}: tokens, probs and next_state must be equally long and non-empty")
            if abs(float(p.sum()) - 1.0) > 1e-9 or (p < 0).any():
                raise ValueError(f"state {s}: probabilities must be >= 0 and sum to 1")
        if self.order not in (1, 2):
            raise ValueError("order must be 1 or 2")

    @property
    def n_states(self) -> int:
        return len(self.probs)

    def transition_matrix(self):
        """The state chain as a scipy CSR matrix P[s, s'] (duplicate edges summed)."""
        from scipy import sparse

        rows = np.concatenate([np.full(len(p), s) for s, p in enumerate(self.probs)])
        cols = np.concatenate(self.next_state)
        vals = np.concatenate(self.probs)
        return sparse.csr_matrix((vals, (rows, cols)), shape=(self.n_states, self.n_states))

    def stationary(self) -> np.ndarray:
        """The stationary distribution pi = pi P, from one sparse linear solve.

        (P^T - I) pi = 0 has rank n-1 for an irreducible chain; replacing one equation by
        sum(pi) = 1 makes the system regular.
        """
        from scipy import sparse
        from scipy.sparse.linalg import spsolve

        n = self.n_states
        system = (self.transition_matrix().T - sparse.identity(n, format="csr")).tolil()
        system[n - 1, :] = np.ones(n)
        rhs = np.zeros(n)
        rhs[n - 1] = 1.0
        pi = spsolve(system.tocsc(), rhs)
        if (pi < -1e-12).any():
            raise ValueError("the state chain is not irreducible (negative stationary mass)")
        pi = np.clip(pi, 0.0, None)
        return pi / pi.sum()

    def state_entropies(self) -> np.ndarray:
        """H(next token | state) in nats, per state."""
        return np.array([-(p * np.log(p, where=p > 0, out=np.zeros_like(p))).sum() for p in self.probs])

    def entropy_rate(self, pi: np.ndarray | None = None) -> float:
        """The entropy rate in nats per token: sum_s pi(s) H(next | s), exactly."""
        pi = self.stationary() if pi is None else pi
        return float(pi @ self.state_entropies())

    def entropy_given_last_token(self, pi: np.ndarray | None = None) -> float:
        """H(X_t+1 | X_t) in nats: the best loss of a model that sees only the previous token.

        The next-token law given only the last token w is the stationary mixture over the
        states that end with w.
        """
        pi = self.stationary() if pi is None else pi
        vocab = 1 + max(int(t.max()) for t in self.tokens)
        mixtures: dict[int, np.ndarray] = {}
        for s, weight in enumerate(pi):
            if weight <= 0:
                continue
            mix = mixtures.setdefault(int(self.last_token[s]), np.zeros(vocab))
            np.add.at(mix, self.tokens[s], weight * self.probs[s])
        total = 0.0
        for mix in mixtures.values():
            mass = mix.sum()
            p = mix[mix > 0] / mass
            total += mass * float(-(p * np.log(p)).sum())
        return total

    def unigram_entropy(self, pi: np.ndarray | None = None) -> float:
        """H(X_t) in nats: the best loss of a model that ignores context."""
        pi = self.stationary() if pi is None else pi
        vocab = 1 + max(int(t.max()) for t in self.tokens)
        marginal = np.zeros(vocab)
        for s, weight in enumerate(pi):
            np.add.at(marginal, self.tokens[s], weight * self.probs[s])
        p = marginal[marginal > 0]
        return float(-(p * np.log(p)).sum())

    def chunked_entropy(self, bptt: int, pi: np.ndarray | None = None) -> float:
        """Best mean loss (nats/token) on contiguous chunks of `bptt` targets read from scratch.

        Target k of a chunk is predicted from the k+1 tokens before it inside the chunk. From
        `order` tokens on the state is known, so only the first order-1 targets pay more: the
        first target of a chunk is predicted from one token alone.
        """
        if bptt < 1:
            raise ValueError("bptt must be >= 1")
        rate = self.entropy_rate(pi)
        if self.order == 1:
            return rate
        first = self.entropy_given_last_token(pi)
        return (first + (bptt - 1) * rate) / bptt

    # -- sampling ---------------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator, state: int | None = None) -> np.ndarray:
        """`n` tokens drawn from the source, starting in `state` (default: the start state)."""
        if not self._cumulative:
            self._cumulative = [np.cumsum(p).tolist() for p in self.probs]
        state = self.start if state is None else state
        tokens = [t.tolist() for t in self.tokens]
        successors = [s.tolist() for s in self.next_state]
        draws = rng.random(n).tolist()
        out = []
        for u in draws:
            cumulative = self._cumulative[state]
            index = min(bisect.bisect_right(cumulative, u), len(cumulative) - 1)
            out.append(tokens[state][index])
            state = successors[state][index]
        return np.asarray(out, dtype=np.int64)

    def log_probs(self, sequence: np.ndarray, state: int | None = None) -> np.ndarray:
        """log P(x_t | x_<t) of each token of `sequence` under the source (nats)."""
        state = self.start if state is None else state
        lookup = [dict(zip(t.tolist(), range(len(t)))) for t in self.tokens]
        out = np.empty(len(sequence))
        for t, token in enumerate(np.asarray(sequence).tolist()):
            index = lookup[state].get(token)
            if index is None:
                raise ValueError(f"token {token} at position {t} cannot follow state {state}")
            out[t] = math.log(self.probs[state][index])
            state = int(self.next_state[state][index])
        return out


# --------------------------------------------------------------------------------------------
# The toy English
# --------------------------------------------------------------------------------------------

# Five semantic fields. Nouns, adjectives and verbs belong to one (or to none: -1); a content
# word prefers a next content word of its own field.
FIELDS = ("animals", "people", "food", "things", "places")

# Thirty nouns per field, most common first (the Zipf ranks follow this order).
NOUNS = {
    "animals": "cat dog bird horse fox rabbit mouse cow goat wolf bear duck frog lion tiger pig owl "
               "snake whale eagle bee crab monkey camel donkey zebra otter hawk swan lamb",
    "people": "teacher farmer child doctor student king baker sailor singer friend nurse pilot queen "
              "soldier painter writer driver dancer hunter miller tailor judge poet chef guard clerk "
              "merchant priest neighbor woman",
    "food": "apple pie cake egg lemon pear cookie sandwich potato orange banana carrot onion tomato "
            "peach plum cherry grape melon biscuit muffin pancake sausage pepper bean nut olive berry "
            "pickle noodle",
    "things": "book box lamp chair letter key clock hat cup ball bottle bell brush candle coin drum "
              "glass jar kite knife mirror needle pen pencil plate ring rope spoon table basket",
    "places": "house garden river market school village forest city road hill lake farm castle church "
              "bridge valley island harbor tower field street beach cave meadow palace station temple "
              "desert mountain park",
}
IRREGULAR_PLURALS = {"mouse": "mice", "wolf": "wolves", "child": "children", "woman": "women",
                     "knife": "knives", "potato": "potatoes", "tomato": "tomatoes"}

ADJECTIVES = {
    "animals": "hungry wild furry sleepy fast noisy fierce tame spotted striped shy playful",
    "people": "kind clever tired young proud brave honest polite lazy famous rich poor",
    "food": "sweet fresh warm ripe sour tasty salty juicy spicy crisp bitter stale",
    "things": "heavy broken shiny wooden empty round sharp rusty plastic golden dusty square",
    "places": "quiet distant green crowded wide sunny muddy peaceful foggy rocky snowy ancient",
    None: "big small red old new good little strange blue white dark pretty",
}

# Verbs as (third person singular, plural), grouped by the field of the subjects that prefer them.
TRANSITIVE_VERBS = {
    None: "sees/see likes/like finds/find wants/want takes/take holds/hold needs/need loves/love "
          "hates/hate remembers/remember notices/notice follows/follow",
    "animals": "chases/chase hunts/hunt bites/bite catches/catch scratches/scratch sniffs/sniff",
    "people": "reads/read cooks/cook teaches/teach visits/visit carries/carry paints/paint buys/buy "
              "sells/sell cleans/clean fixes/fix",
    "things": "covers/cover blocks/block",
    "places": "surrounds/surround shelters/shelter",
}
INTRANSITIVE_VERBS = {
    None: "waits/wait rests/rest stays/stay returns/return",
    "animals": "sleeps/sleep runs/run jumps/jump swims/swim barks/bark howls/howl",
    "people": "smiles/smile works/work sings/sing laughs/laugh dances/dance cries/cry",
    "food": "rots/rot cools/cool melts/melt",
    "things": "falls/fall rolls/roll shines/shine breaks/break glows/glow",
    "places": "grows/grow floods/flood burns/burn",
}


def plural(noun: str) -> str:
    """The plural of one of NOUNS (English spelling rules plus IRREGULAR_PLURALS)."""
    if noun in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


FUNCTION_WORDS = {
    # Subjects and objects take different determiners, so that two words of context tell a
    # subject noun (a verb follows) from an object noun (the clause ends).
    "SDET_S": ["a", "this", "that", "one"],
    "SDET_P": ["some", "these", "those"],
    "ODET": ["the", "my", "your", "our", "their", "his"],
    "ODET_S": ["every", "each", "another"],
    "ODET_P": ["many", "two", "few", "three", "several"],
    "PRON_S": ["he", "she", "it"],
    "PRON_P": ["they", "we", "you"],
    "PRON_O": ["me", "him", "us", "them"],
    "ADV": ["often", "never", "quickly", "slowly", "always", "quietly", "sometimes", "soon"],
    "PREP": ["in", "on", "near", "with", "under", "behind", "from", "into", "at", "past"],
    "CONJ": ["and", "but", "because", "while"],
}

# Next-tag laws. A key (t2, t1) overrides the first-order law of t1 where the tag two words
# back matters: number agreement across an adjective or an adverb, subjects versus objects.
_CLAUSE_START = {"SDET_S": 0.30, "SDET_P": 0.20, "PRON_S": 0.20, "PRON_P": 0.18, "NOUN_P": 0.12}
_AFTER_SUBJECT_S = {"VERB_TS": 0.50, "VERB_IS": 0.30, "ADV": 0.20}
_AFTER_SUBJECT_P = {"VERB_TP": 0.50, "VERB_IP": 0.30, "ADV": 0.20}
_AFTER_OBJECT = {"EOS": 0.50, "PREP": 0.30, "CONJ": 0.20}
_OBJECT = {"ODET": 0.35, "ODET_S": 0.15, "ODET_P": 0.15, "PRON_O": 0.20, "NOUN_P": 0.08, "ADJ": 0.07}
TAG_RULES: dict[object, dict[str, float]] = {
    "EOS": _CLAUSE_START,
    "CONJ": _CLAUSE_START,
    "SDET_S": {"NOUN_S": 1.0},
    "SDET_P": {"NOUN_P": 1.0},
    "ODET_S": {"ADJ": 0.35, "NOUN_S": 0.65},
    "ODET_P": {"ADJ": 0.35, "NOUN_P": 0.65},
    "ODET": {"ADJ": 0.30, "NOUN_S": 0.40, "NOUN_P": 0.30},
    "ADJ": {"NOUN_P": 1.0},  # a bare plural object: "chase hungry mice", "with old books"
    ("ODET_S", "ADJ"): {"NOUN_S": 1.0},
    ("ODET_P", "ADJ"): {"NOUN_P": 1.0},
    ("ODET", "ADJ"): {"NOUN_S": 0.55, "NOUN_P": 0.45},
    # A noun is an object (or ends a prepositional phrase) unless a subject determiner, or
    # the start of a clause for a bare plural, comes right before it.
    "NOUN_S": _AFTER_OBJECT,
    "NOUN_P": _AFTER_OBJECT,
    ("SDET_S", "NOUN_S"): _AFTER_SUBJECT_S,
    ("SDET_P", "NOUN_P"): _AFTER_SUBJECT_P,
    ("EOS", "NOUN_P"): _AFTER_SUBJECT_P,
    ("CONJ", "NOUN_P"): _AFTER_SUBJECT_P,
    "PRON_S": _AFTER_SUBJECT_S,
    "PRON_P": _AFTER_SUBJECT_P,
    "PRON_O": _AFTER_OBJECT,
    "VERB_TS": _OBJECT,
    "VERB_TP": _OBJECT,
    "VERB_IS": {"EOS": 0.35, "ADV": 0.30, "PREP": 0.25, "CONJ": 0.10},
    "VERB_IP": {"EOS": 0.35, "ADV": 0.30, "PREP": 0.25, "CONJ": 0.10},
    "ADV": _AFTER_OBJECT,  # after an intransitive verb
    # after "adverb verb" no second adverb: "often sleeps quickly" reads badly
    ("ADV", "VERB_IS"): {"EOS": 0.50, "PREP": 0.35, "CONJ": 0.15},
    ("ADV", "VERB_IP"): {"EOS": 0.50, "PREP": 0.35, "CONJ": 0.15},
    # an adverb between subject and verb: the verb agrees with the word before the adverb
    ("NOUN_S", "ADV"): {"VERB_TS": 0.55, "VERB_IS": 0.45},
    ("PRON_S", "ADV"): {"VERB_TS": 0.55, "VERB_IS": 0.45},
    ("NOUN_P", "ADV"): {"VERB_TP": 0.55, "VERB_IP": 0.45},
    ("PRON_P", "ADV"): {"VERB_TP": 0.55, "VERB_IP": 0.45},
    "PREP": {"ODET": 0.50, "ODET_S": 0.15, "ODET_P": 0.15, "NOUN_P": 0.10, "ADJ": 0.10},
}

ZIPF_EXPONENT = 1.0     # within a tag, the k-th word has weight 1 / (k + 1) ** ZIPF_EXPONENT
FIELD_AFFINITY = 6.0    # weight multiplier of a content word of the previous word's field


@dataclass(frozen=True)
class Lexicon:
    """Words with their tag, semantic field (-1: none) and within-tag weight."""

    words: tuple[str, ...]
    tags: tuple[str, ...]
    fields: tuple[int, ...]
    weights: tuple[float, ...]


def _lexicon() -> Lexicon:
    entries: list[tuple[str, str, int]] = []   # (word, tag, field)
    field_of = {name: i for i, name in enumerate(FIELDS)}
    # Interleave the fields so that Zipf ranks do not favour one field.
    nouns = {name: NOUNS[name].split() for name in FIELDS}
    for rank in range(max(map(len, nouns.values()))):
        for name in FIELDS:
            if rank < len(nouns[name]):
                noun = nouns[name][rank]
                entries += [(noun, "NOUN_S", field_of[name]), (plural(noun), "NOUN_P", field_of[name])]
    adjectives = {name: words.split() for name, words in ADJECTIVES.items()}
    for rank in range(max(map(len, adjectives.values()))):
        for name in (*FIELDS, None):
            if rank < len(adjectives[name]):
                entries.append((adjectives[name][rank], "ADJ", field_of.get(name, -1)))
    for verbs, (singular_tag, plural_tag) in ((TRANSITIVE_VERBS, ("VERB_TS", "VERB_TP")),
                                              (INTRANSITIVE_VERBS, ("VERB_IS", "VERB_IP"))):
        for name, pairs in verbs.items():
            for pair in pairs.split():
                singular, plural_form = pair.split("/")
                entries += [(singular, singular_tag, field_of.get(name, -1)),
                            (plural_form, plural_tag, field_of.get(name, -1))]
    for tag, words in FUNCTION_WORDS.items():
        entries += [(word, tag, -1) for word in words]
    entries.append((EOS, "EOS", -1))
    words = [w for w, _, _ in entries]
    if len(set(words)) != len(words):
        raise AssertionError("a word of the toy English belongs to two tags")
    rank_in_tag: dict[str, int] = {}
    weights = []
    for _, tag, _ in entries:
        rank = rank_in_tag.get(tag, 0)
        rank_in_tag[tag] = rank + 1
        weights.append(1.0 / (rank + 1) ** ZIPF_EXPONENT)
    return Lexicon(tuple(words), tuple(t for _, t, _ in entries), tuple(f for _, _, f in entries),
                   tuple(weights))


def _tag_law(t2: str, t1: str) -> dict[str, float]:
    return TAG_RULES.get((t2, t1)) or TAG_RULES[t1]


@dataclass(frozen=True)
class ToyEnglish:
    """The toy English as a FiniteStateSource over the ids of `vocabulary`."""

    vocabulary: tuple[str, ...]   # id -> word; 0 is <unk> (never emitted), 1 is <eos>
    source: FiniteStateSource
    lexicon: Lexicon


@lru_cache(maxsize=2)
def toy_english(specials: tuple[str, ...] = (UNK, EOS)) -> ToyEnglish:
    """Build the toy English: vocabulary `specials` + its words, and its state machine.

    A state is (tag of the word before last, last word); it starts at (EOS, <eos>), as after
    a finished sentence. Only states reachable from the start are kept.
    """
    lex = _lexicon()
    vocabulary = tuple(specials) + tuple(w for w in lex.words if w not in specials)
    word_id = {w: i for i, w in enumerate(vocabulary)}
    by_tag: dict[str, list[int]] = {}
    for index, tag in enumerate(lex.tags):
        by_tag.setdefault(tag, []).append(index)
    eos_index = lex.words.index(EOS)

    @lru_cache(maxsize=None)
    def emissions(t2: str, t1: str, previous_field: int) -> tuple[list[int], list[float]]:
        """Lexicon indices that may follow a state, and their probabilities.

        They depend on the state (t2, last word) only through the tag law of (t2, tag of the
        last word) and the last word's field, hence the cache.
        """
        indices, probs = [], []
        for tag, tag_p in _tag_law(t2, t1).items():
            members = by_tag[tag]
            weights = np.array([lex.weights[m] for m in members])
            if previous_field >= 0:
                same = np.array([lex.fields[m] == previous_field for m in members])
                weights = weights * np.where(same, FIELD_AFFINITY, 1.0)
            weights = weights / weights.sum()
            indices += members
            probs += list(tag_p * weights)
        return indices, probs

    states: dict[tuple[str, int], int] = {("EOS", eos_index): 0}
    queue = deque([("EOS", eos_index)])
    tokens, probs, successors, last_tokens = [], [], [], []
    while queue:
        t2, last = queue.popleft()
        indices, p = emissions(t2, lex.tags[last], lex.fields[last])
        nxt = []
        for index in indices:
            key = (lex.tags[last], index)
            if key not in states:
                states[key] = len(states)
                queue.append(key)
            nxt.append(states[key])
        tokens.append(np.array([word_id[lex.words[i]] for i in indices], dtype=np.int64))
        probs.append(np.array(p) / sum(p))
        successors.append(np.array(nxt, dtype=np.int64))
        last_tokens.append(word_id[lex.words[last]])
    source = FiniteStateSource(tokens, probs, successors, np.array(last_tokens), start=0, order=2)
    return ToyEnglish(vocabulary, source, lex)
