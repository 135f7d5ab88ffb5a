"""Seeded English sentences for the flite demo corpus: the text sources and the two sets.

Two text sources (``python -m core corpus --text NAME``; :data:`TEXT_SOURCES`):

* ``grammar`` (the default, what the bundled demo voice learnt): the small grammar in
  this module over the word lists below, written for this project (no outside text, so
  no licence question), 575 words.  Kinds: statements (with adjectives, adverbs,
  prepositional and time phrases), counts with numbers spelt out as words, compound
  sentences, questions, exclamations and requests; 4 to 16 words each.
* ``everyday`` (:mod:`core.everyday_text`): templates over about 10,600 common English
  words, with names, places, numbers, money, clock times, dates and ordinals, 2 to 32
  words; a sentence is written with digits and symbols and stored normalised
  (:func:`core.normalize.normalize_text`), as flite speaks it.

Training and held-out sentences come from two random streams, and a fixed hash of the
sentence string decides which set a sentence may belong to (about 1 in
``HELDOUT_BUCKETS``), so the two sets never share a sentence, and each is a stable
prefix: asking for more training sentences never changes the first ones or the held-out
set, and vice versa.  The same seed and source give the same sentences on every machine.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Callable

from . import everyday_text

__all__ = ["GRAMMAR_VERSION", "MIN_WORDS", "MAX_WORDS", "HELDOUT_BUCKETS", "SentenceSets", "TextSource",
           "TEXT_SOURCES", "DEFAULT_TEXT", "text_source", "corpus_sentences", "random_sentence",
           "is_heldout_text", "number_words", "word_count"]

GRAMMAR_VERSION = 1  # bump when the grammar or word lists change (a corpus records it)
MIN_WORDS, MAX_WORDS = 4, 16
HELDOUT_BUCKETS = 16

# --------------------------------------------------------------------------- word lists

_W = str.split
NAMES = _W("Anna Ben Clara David Emma Frank Grace Henry Iris Jack Kate Leo Maria Nora Oscar Paul Rosa "
           "Sam Tina Victor Walter Zoe Peter Laura Simon Helen Martin Julia Thomas Alice")
PEOPLE = _W("teacher doctor farmer baker driver painter sailor student captain child neighbor pilot "
            "gardener singer writer nurse builder fisherman carpenter musician judge waiter tailor "
            "soldier clerk poet dancer miner hunter traveler")
ANIMALS = _W("dog cat horse rabbit fox owl goat sheep mouse bear duck goose frog deer wolf pig cow "
             "squirrel swan crow eagle turtle donkey lamb kitten puppy parrot hen")
THINGS = _W("book table window lamp letter basket bottle hat coat chair clock map key ladder box "
            "candle bell bicycle boat kettle blanket picture wagon cup plate spoon rope bucket "
            "umbrella radio pencil mirror drum flute ribbon shovel stone apple loaf cake coin ring")
PLACES = _W("garden kitchen market village river forest station harbor library bridge field hill "
            "valley meadow orchard barn cottage castle beach island tower square church school "
            "hospital museum mill farm lake road")
ADJECTIVES = _W("small large old young quiet loud bright dark warm cold heavy light gentle clever "
                "happy sad tired busy careful brave green red blue yellow white black brown golden "
                "silver wooden empty narrow wide tall short strong soft sharp round clean dusty "
                "shiny ancient modern lonely friendly curious patient noisy sleepy hungry")
ADVERBS = _W("slowly quickly quietly carefully gently suddenly happily proudly softly loudly "
             "calmly eagerly bravely politely finally nearly always rarely often seldom")
PLACE_PREPS = ("near the", "behind the", "inside the", "beside the", "across the", "under the",
               "above the", "outside the", "around the", "past the", "through the", "towards the")
TIMES = ("this morning", "last night", "yesterday", "at noon", "in the evening", "every day",
         "on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday", "on Saturday",
         "on Sunday", "in the spring", "in the summer", "in the autumn", "in the winter",
         "after dinner", "before breakfast", "at midnight", "last week", "next year")
# (base, past, third person) for verbs that take an object
VERBS_T = [tuple(v.split("/")) for v in _W(
    "carry/carried/carries find/found/finds paint/painted/paints open/opened/opens hold/held/holds "
    "clean/cleaned/cleans move/moved/moves fix/fixed/fixes bring/brought/brings watch/watched/watches "
    "follow/followed/follows lift/lifted/lifts hide/hid/hides sell/sold/sells buy/bought/buys "
    "drop/dropped/drops push/pushed/pushes pull/pulled/pulls borrow/borrowed/borrows "
    "count/counted/counts wash/washed/washes draw/drew/draws catch/caught/catches "
    "visit/visited/visits greet/greeted/greets help/helped/helps take/took/takes "
    "build/built/builds wrap/wrapped/wraps")]
# (base, past, third person) for verbs without an object
VERBS_I = [tuple(v.split("/")) for v in _W(
    "sleep/slept/sleeps wait/waited/waits sing/sang/sings run/ran/runs walk/walked/walks "
    "laugh/laughed/laughs dance/danced/dances rest/rested/rests listen/listened/listens "
    "work/worked/works swim/swam/swims shout/shouted/shouts smile/smiled/smiles "
    "travel/traveled/travels wander/wandered/wanders whisper/whispered/whispers")]
FEELINGS = _W("glad sure afraid surprised certain proud sorry pleased")
CONNECTORS = ("and", "but", "so", "because", "while", "although", "until", "when")
PLURAL = {"mouse": "mice", "sheep": "sheep", "deer": "deer", "goose": "geese", "child": "children",
          "wolf": "wolves", "loaf": "loaves", "fisherman": "fishermen", "box": "boxes",
          "church": "churches", "puppy": "puppies", "ferry": "ferries", "library": "libraries",
          "valley": "valleys", "key": "keys", "monkey": "monkeys"}

_ONES = _W("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
           "fifteen sixteen seventeen eighteen nineteen")
_TENS = _W("_ _ twenty thirty forty fifty sixty seventy eighty ninety")


def number_words(n: int) -> str:
    """English words for ``0 <= n < 1000`` the way speech is written here: ``42 -> "forty two"``,
    ``305 -> "three hundred and five"`` (no hyphens, so flite, pocketsphinx and the WER
    normalisation all see the same words)."""
    if not 0 <= n < 1000:
        raise ValueError(f"number_words covers 0..999, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    rest = n % 100
    return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))


def word_count(sentence: str) -> int:
    return len(sentence.split())


def _plural(noun: str) -> str:
    if noun in PLURAL:
        return PLURAL[noun]
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def _ing(verb: str) -> str:
    if verb in ("run", "swim", "drop", "wrap"):
        return verb + verb[-1] + "ing"
    return (verb[:-1] if verb.endswith("e") and not verb.endswith("ee") else verb) + "ing"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


# --------------------------------------------------------------------------- grammar


class _Grammar:
    """One sentence per call of :meth:`sentence`, all choices from ``rng``."""

    def __init__(self, rng: random.Random):
        self.r = rng

    def pick(self, seq):
        return self.r.choice(seq)

    def maybe(self, p: float) -> bool:
        return self.r.random() < p

    def noun(self) -> str:
        return self.pick((PEOPLE, ANIMALS, THINGS, ANIMALS, PEOPLE)[self.r.randrange(5)])

    def actor(self) -> str:
        return self.pick(PEOPLE if self.maybe(0.5) else ANIMALS)

    def noun_phrase(self, noun: str | None = None, adjectives: float = 0.5) -> str:
        noun = noun or self.noun()
        words = []
        if self.maybe(adjectives):
            words.append(self.pick(ADJECTIVES))
            if self.maybe(0.15):
                words.append(self.pick(ADJECTIVES))
        words.append(noun)
        det = self.pick(("the", "the", "the", "a", "my", "our", "his", "her", "that", "this"))
        if det == "a":
            det = _article(words[0])
        return det + " " + " ".join(words)

    def subject(self) -> tuple[str, bool]:
        """A subject and whether it is singular."""
        k = self.r.random()
        if k < 0.3:
            return self.pick(NAMES), True
        if k < 0.85:
            return self.noun_phrase(self.actor()), True
        count = self.r.choice((2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 30, 40, 100))
        adj = self.pick(ADJECTIVES) + " " if self.maybe(0.4) else ""
        return f"{number_words(count)} {adj}{_plural(self.actor())}", False

    def modifier(self) -> str:
        k = self.r.random()
        if k < 0.45:
            return f"{self.pick(PLACE_PREPS)} {self.pick(PLACES)}"
        if k < 0.75:
            return self.pick(TIMES)
        return f"with {self.noun_phrase(self.pick(THINGS))}"

    def clause(self, tense: str | None = None) -> str:
        subject, singular = self.subject()
        tense = tense or self.pick(("past", "past", "present", "future", "progressive"))
        transitive = self.maybe(0.65)
        base, past, third = self.pick(VERBS_T if transitive else VERBS_I)
        verb = {"past": past, "future": f"will {base}",
                "present": third if singular else base,
                "progressive": ("is " if singular else "are ") + _ing(base)}[tense]
        words = [subject]
        if self.maybe(0.25):
            if " " in verb:  # "will sing", "is singing": the adverb follows the auxiliary
                aux, rest = verb.split(" ", 1)
                verb = f"{aux} {self.pick(ADVERBS)} {rest}"
            else:
                words.append(self.pick(ADVERBS))
        words.append(verb)
        if transitive:
            words.append(self.noun_phrase(self.pick(THINGS + ANIMALS)))
        if self.maybe(0.6):
            words.append(self.modifier())
        return " ".join(words)

    def statement(self) -> str:
        s = self.clause()
        if self.maybe(0.2):
            s = f"{self.pick(TIMES)} {s}" if self.maybe(0.5) else f"{self.pick(NAMES)} said that {s}"
        return s[0].upper() + s[1:] + "."

    def compound(self) -> str:
        tense = self.pick(("past", "present", "future"))
        a, b = self.clause(tense), self.clause(tense)
        joiner = self.pick(CONNECTORS)
        s = f"{a}, {joiner} {b}" if joiner in ("and", "but", "so") else f"{a} {joiner} {b}"
        return s[0].upper() + s[1:] + "."

    def question(self) -> str:
        k = self.r.randrange(7)
        base = self.pick(VERBS_T)[0]
        if k == 0:
            s = f"did {self.noun_phrase(self.actor())} {base} {self.noun_phrase(self.pick(THINGS))}"
        elif k == 1:
            s = f"where is {self.noun_phrase(self.noun())}"
        elif k == 2:
            s = f"why did {self.pick(NAMES)} {base} {self.noun_phrase(self.pick(THINGS))} {self.pick(TIMES)}"
        elif k == 3:
            s = f"how many {_plural(self.noun())} are {self.pick(PLACE_PREPS)} {self.pick(PLACES)}"
        elif k == 4:
            s = f"can you {base} {self.noun_phrase(self.pick(THINGS))} {self.modifier()}"
        elif k == 5:
            s = f"who will {base} {self.noun_phrase(self.pick(THINGS + ANIMALS))} {self.pick(TIMES)}"
        else:
            s = f"is {self.noun_phrase(self.noun(), adjectives=0)} {self.pick(ADJECTIVES)} {self.pick(TIMES)}"
        return s[0].upper() + s[1:] + "?"

    def exclamation(self) -> str:
        k = self.r.randrange(4)
        if k == 0:
            adj = self.pick(ADJECTIVES)
            s = f"what {_article(adj)} {adj} {self.noun()} that is"
        elif k == 1:
            s = f"how {self.pick(ADJECTIVES)} the {self.pick(PLACES)} looks {self.pick(TIMES)}"
        elif k == 2:
            s = f"I am so {self.pick(FEELINGS)} that {self.clause('past')}"
        else:
            s = f"look at {self.noun_phrase(self.noun())} {self.pick(PLACE_PREPS)} {self.pick(PLACES)}"
        return s[0].upper() + s[1:] + "!"

    def request(self) -> str:
        base = self.pick(VERBS_T)[0]
        s = f"please {base} {self.noun_phrase(self.pick(THINGS))} {self.modifier()}"
        if self.maybe(0.3):
            s = f"{self.pick(NAMES)}, {s}"
        return s[0].upper() + s[1:] + "."

    def sentence(self) -> str:
        kinds: list[tuple[float, Callable[[], str]]] = [
            (0.42, self.statement), (0.2, self.compound), (0.2, self.question),
            (0.09, self.exclamation), (0.09, self.request)]
        x, acc = self.r.random(), 0.0
        for weight, make in kinds:
            acc += weight
            if x < acc:
                return make()
        return kinds[-1][1]()


def random_sentence(rng: random.Random) -> str:
    """One grammatical sentence of ``MIN_WORDS``..``MAX_WORDS`` words drawn with ``rng``."""
    grammar = _Grammar(rng)
    while True:
        s = grammar.sentence()
        if MIN_WORDS <= word_count(s) <= MAX_WORDS:
            return s


# --------------------------------------------------------------------------- the two sets


def is_heldout_text(sentence: str) -> bool:
    """Whether ``sentence`` belongs to the held-out side of the fixed hash split."""
    digest = hashlib.blake2b(sentence.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % HELDOUT_BUCKETS == 0


@dataclass(frozen=True)
class TextSource:
    """A named sentence generator: ``sentence(rng)`` gives one sentence as the corpus
    stores and flite speaks it; ``version`` changes whenever its output does (a corpus
    records both, and refuses to be resumed with another)."""

    name: str
    version: int
    sentence: Callable[[random.Random], str]
    summary: str

    def rng(self, stream: str, seed: int) -> random.Random:
        # the grammar keeps the seed string it always had, so its old corpora rebuild identically
        key = f"{stream}:{seed}:{self.version}"
        return random.Random(key if self.name == "grammar" else f"{self.name}:{key}")


TEXT_SOURCES = {s.name: s for s in (
    TextSource("grammar", GRAMMAR_VERSION, random_sentence, "a 575-word grammar, 4-16 words a sentence"),
    TextSource("everyday", everyday_text.EVERYDAY_VERSION, everyday_text.spoken_sentence,
               "everyday English over ~10,600 common words, names, numbers, dates, 2-32 words"))}
DEFAULT_TEXT = "grammar"


def text_source(name: str) -> TextSource:
    """The source called ``name``; an unknown name is a ``ValueError`` listing the valid ones."""
    if name not in TEXT_SOURCES:
        raise ValueError(f"unknown corpus text {name!r}; valid: {', '.join(TEXT_SOURCES)}")
    return TEXT_SOURCES[name]


def _stream(n: int, seed: int, stream: str, heldout: bool, source: TextSource) -> list[str]:
    if n < 0:
        raise ValueError(f"the number of {stream} sentences must be >= 0, got {n}")
    rng = source.rng(stream, seed)
    out: list[str] = []
    seen: set[str] = set()
    tries, limit = 0, 200 * n + 10_000
    while len(out) < n:
        tries += 1
        if tries > limit:
            raise ValueError(f"the {source.name} text gave only {len(out)} distinct {stream} sentences in "
                             f"{limit} tries; ask for fewer than {n}")
        s = source.sentence(rng)
        if s not in seen and is_heldout_text(s) == heldout:
            seen.add(s)
            out.append(s)
    return out


@dataclass
class SentenceSets:
    """Distinct training sentences and held-out sentences; no string is in both."""

    train: list[str]
    heldout: list[str]


def corpus_sentences(n_train: int, n_heldout: int, seed: int = 0, text: str = DEFAULT_TEXT) -> SentenceSets:
    """``n_train`` training and ``n_heldout`` held-out sentences of the source ``text``
    for ``seed``.

    Deterministic, and each list is a prefix of the list for a larger count with the
    same seed (the counts do not influence each other).
    """
    source = text_source(text)
    return SentenceSets(_stream(n_train, seed, "train", False, source),
                        _stream(n_heldout, seed, "heldout", True, source))
