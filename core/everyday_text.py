"""Seeded generator of everyday English sentences (the corpus text ``everyday``).

Sentences are built from part-of-speech aware templates over the word list of
:mod:`core.everyday_words` (about 10,600 common words, with names and places written
here): statements in nine tenses, two-clause sentences, reported speech, conditionals,
questions (yes/no, wh-, how much / how many), exclamations, requests, descriptions,
short replies and greetings, and sentences with counts, money, clock times, dates,
years, ordinals, percentages and measures (:mod:`core.everyday_numbers`).  A verb's
object comes from the noun classes that fit its WordNet class (one eats food, reads a
message), so most sentences make some sense; none claims to be true.

:func:`written_sentence` gives the sentence as typed, with digits and symbols;
:func:`spoken_sentence` is :func:`core.normalize.normalize_text` of it, what flite speaks
and the corpus stores.  Nouns, verbs, adjectives and adverbs are drawn half the time
from the most common third of their list and half the time from the whole list, so the
common words come often and the rest of the list still gets heard.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Sequence

from . import everyday_numbers as num
from .everyday_words import (CITIES, COUNTRIES, DAYS, EVERYDAY_PLACES, FIRST_NAMES, GREETINGS, HOLIDAYS,
                             INTERJECTIONS, LANGUAGES, MEALS, MONTHS, RELATIVES, REPLIES, SPORTS, SURNAMES,
                             Lexicon, Noun, Verb, load_lexicon)
from .normalize import normalize_text

__all__ = ["EVERYDAY_VERSION", "MIN_WORDS", "MAX_WORDS", "KIND_WEIGHTS", "written_sentence", "spoken_sentence"]

EVERYDAY_VERSION = 1  # bump when the templates or the word list change (a corpus records it)
MIN_WORDS, MAX_WORDS = 2, 32  # spoken words

CONCRETE = ("thing", "food", "plant", "substance", "nature", "animal", "body")
ABSTRACT = ("idea", "message", "group")
OBJECT_KINDS = {  # WordNet verb class -> noun kinds that can be its object
    "consumption": ("food",), "body": ("thing", "body", "food"), "weather": ("thing",),
    "cognition": ABSTRACT, "communication": ("message", "idea"), "emotion": ABSTRACT + ("animal", "food"),
    "social": ABSTRACT, "stative": ABSTRACT + ("thing",), "perception": CONCRETE + ABSTRACT,
    "possession": ("thing", "food", "animal", "plant", "message"), "creation": ("thing", "food", "message"),
    "contact": CONCRETE, "motion": ("thing", "animal"), "change": CONCRETE + ("idea",),
    "competition": ("thing", "group", "idea")}
PLACE_KINDS = ("place", "nature")
SUBJECTS = (("I", "am", "was", False), ("you", "are", "were", False), ("he", "is", "was", True),
            ("she", "is", "was", True), ("we", "are", "were", False), ("they", "are", "were", False))
OBJECT_PRONOUNS = ("me", "you", "him", "her", "us", "them")
FREQUENCY = ("usually", "often", "always", "sometimes", "never", "rarely")
MODALS = ("can", "should", "might", "must", "could", "would")
WANTS = ("want", "need", "hope", "plan", "try", "like", "forget", "decide", "promise", "refuse")
CONNECTORS = ("because", "although", "while", "when", "before", "after", "since", "until", "so")
TENSES = ("past", "past", "present", "future", "progressive", "perfect", "modal", "going", "was", "want")
PAST_TIMES = ("yesterday", "last night", "last week", "last month", "last year", "last summer", "this morning",
              "earlier today", "over the weekend", "a while ago")
FUTURE_TIMES = ("tomorrow", "next week", "next month", "next year", "tonight", "this afternoon", "this weekend",
                "soon", "later today", "next summer")
HABIT_TIMES = ("every day", "every morning", "every week", "in the evening", "twice a week", "once a month",
               "on weekends", "every summer")
NOW_TIMES = ("right now", "at the moment", "today", "this week", "these days")
COLORS = ("blue", "green", "red", "yellow", "purple", "orange", "black", "white", "pink", "gray")
SEASONS = ("spring", "summer", "autumn", "winter")


@dataclass(frozen=True)
class Subject:
    text: str
    be: str  # am / is / are
    was: str  # was / were
    third: bool  # third person singular: "she walks", "does she walk"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


@functools.lru_cache(maxsize=64)
def _noun_pool(lex: Lexicon, kinds: tuple[str, ...], countable: bool) -> tuple[Noun, ...]:
    """The nouns of ``kinds`` (with a plural when ``countable``), most common first."""
    nouns = (n for k in kinds for n in lex.nouns.get(k, ()) if n.plural or not countable)
    return tuple(sorted(nouns, key=lambda n: n.rank))


@functools.lru_cache(maxsize=4)
def _adjective_articles(lex: Lexicon) -> dict[str, str]:
    return {a.word: a.article for a in lex.adjectives}


class _Everyday:
    """One written sentence per call of :meth:`sentence`, every choice from ``rng``."""

    def __init__(self, rng: random.Random, lex: Lexicon):
        self.r, self.lex = rng, lex

    # ------------------------------------------------------------------ words

    def pick(self, seq: Sequence):
        return seq[self.r.randrange(len(seq))]

    def maybe(self, p: float) -> bool:
        return self.r.random() < p

    def common(self, seq: Sequence):
        """Half the time from the most common third of ``seq``, else from all of it."""
        return seq[self.r.randrange(max(1, len(seq) // 3) if self.maybe(0.5) else len(seq))]

    def pool(self, kinds: Sequence[str], countable: bool = False) -> tuple[Noun, ...]:
        return _noun_pool(self.lex, tuple(kinds), countable)

    def noun(self, kinds: Sequence[str], countable: bool = False) -> Noun:
        return self.common(self.pool(kinds, countable))

    def adj(self) -> str:
        return self.common(self.lex.adjectives).word

    def adv(self) -> str:
        return self.common(self.lex.adverbs)

    def name(self) -> str:
        x = self.r.random()
        if x < 0.75:
            return self.pick(FIRST_NAMES)
        if x < 0.9:
            return f"{self.pick(FIRST_NAMES)} {self.pick(SURNAMES)}"
        return f"{self.pick(('Mr.', 'Dr.', 'Professor'))} {self.pick(SURNAMES)}"

    def city(self) -> str:
        return self.pick(CITIES) if self.maybe(0.7) else self.pick(COUNTRIES)

    # ------------------------------------------------------------------ phrases

    def np(self, kinds: Sequence[str], plural: bool = False, adj: float = 0.35, det: str | None = None,
           post: float = 0.12) -> str:
        """A noun phrase: "the old bridge", "an apple", "my new shoes", "some rice", now and
        then with a phrase after it ("the box that Anna bought", "a teacher from Chicago")."""
        noun = self.noun(kinds, countable=plural or det == "a")
        head = noun.plural if plural else noun.word
        words = [self.adj(), head] if self.maybe(adj) else [head]
        if det is None:
            dets = ("the", "the", "my", "your", "our", "his", "her", "their", "these" if plural else "this")
            det = self.pick(dets + (("some",) if plural else ("a", "a") if noun.plural else ("some",)))
        if det == "a":
            det = noun.article if words[0] == head else self._article(words[0])
        if self.maybe(post):
            words.append(self.post_modifier(noun))
        return f"{det} {' '.join(words)}"

    def post_modifier(self, noun: Noun) -> str:
        x = self.r.random()
        if x < 0.35 and noun.kind != "person":
            v = self.verb(transitive=True)
            return f"that {self.pick(FIRST_NAMES) if self.maybe(0.5) else self.pick(SUBJECTS)[0]} {v.past}"
        if x < 0.55:
            return f"from {self.city()}"
        if x < 0.8:
            return f"with {self.np(CONCRETE, adj=0.5, post=0)}"
        return f"{self.pick(('in', 'near', 'behind', 'next to'))} the {self.pick(EVERYDAY_PLACES)}"

    def _article(self, adjective: str) -> str:
        return _adjective_articles(self.lex).get(adjective) or ("an" if adjective[0] in "aeiou" else "a")

    def person(self) -> str:
        x = self.r.random()
        if x < 0.4:
            return self.name()
        if x < 0.6:
            return f"{self.pick(('my', 'your', 'our', 'his', 'her', 'their'))} {self.pick(RELATIVES)}"
        return self.np(("person",), adj=0.3, det=self.pick(("the", "the", "a", "my", "our", "that")))

    def subject(self) -> Subject:
        x = self.r.random()
        if x < 0.35:
            text, be, was, third = self.pick(SUBJECTS)
            return Subject(text, be, was, third)
        if x < 0.85:
            return Subject(self.person(), "is", "was", True)
        if x < 0.95:
            if self.maybe(0.3):
                return Subject(f"{self.pick(FIRST_NAMES)} and {self.pick(FIRST_NAMES)}", "are", "were", False)
            return Subject(self.np(("person",), plural=True, adj=0.3), "are", "were", False)
        return Subject(self.np(("animal",), adj=0.3, det=self.pick(("the", "our", "a"))), "is", "was", True)

    def object(self, verb: Verb) -> str:
        """The verb's object, or "" for an intransitive use."""
        frames = verb.frames.replace("i", "") if not (verb.frames == "i" or self.maybe(0.15)) else ""
        if not frames:
            return ""
        if self.pick(frames) == "p":
            return self.pick(OBJECT_PRONOUNS) if self.maybe(0.3) else self.person()
        return self.np(OBJECT_KINDS[verb.kind], plural=self.maybe(0.25))

    def place(self) -> str:
        x = self.r.random()
        if x < 0.3:
            return f"in {self.city()}"
        where = self.pick(EVERYDAY_PLACES) if self.maybe(0.5) else self.noun(PLACE_KINDS).word
        prep = self.pick(("at the", "in the", "near the", "behind the", "outside the", "next to the", "across the"))
        return f"{prep} {where}"

    def time(self, tense: str) -> str:
        x = self.r.random()
        if tense in ("past", "was"):
            if x < 0.5:
                return self.pick(PAST_TIMES)
            if x < 0.65:
                return f"on {self.pick(DAYS)}"
            if x < 0.75:
                return f"{num.count(self.r) if self.maybe(0.5) else self.pick(('two', 'three', 'a few'))} "\
                       f"{self.pick(('days', 'weeks', 'years', 'months'))} ago"
            if x < 0.85:
                return f"in {num.year(self.r, latest=2024)}"
            return f"on {num.date(self.r)}" if self.maybe(0.5) else f"at {num.clock(self.r)}"
        if tense in ("future", "going", "modal", "want"):
            if x < 0.5:
                return self.pick(FUTURE_TIMES)
            if x < 0.65:
                return f"on {self.pick(DAYS)}"
            if x < 0.75:
                return f"after {self.pick(MEALS)}" if self.maybe(0.5) else f"in {self.pick(MONTHS)}"
            if x < 0.85:
                return f"on {self.pick(HOLIDAYS)}"
            return f"on {num.date(self.r, with_year=0)}" if self.maybe(0.5) else f"at {num.clock(self.r)}"
        if tense == "present":
            return self.pick(HABIT_TIMES) if x < 0.7 else f"on {self.pick(DAYS)}s" if x < 0.85 else \
                f"at {num.clock(self.r)}"
        if tense == "perfect":
            return self.pick(("since Monday", "this year", "recently", "for years", "all week")) if x < 0.6 else \
                f"since {num.year(self.r, latest=2024)}"
        return self.pick(NOW_TIMES)

    # ------------------------------------------------------------------ clauses

    def verb(self, transitive: bool | None = None) -> Verb:
        while True:
            v = self.common(self.lex.verbs)
            if transitive is None or transitive == bool(v.frames.replace("i", "")):
                return v

    def predicate(self, s: Subject, tense: str, v: Verb, adverb: bool = False) -> str:
        """The verb group for ``s`` in ``tense``, e.g. "has already opened", "will carefully open"."""
        adv = f"{self.adv()} " if adverb else ""
        if tense == "past":
            return f"{adv}{v.past}"
        if tense == "present":
            adv = adv or (f"{self.pick(FREQUENCY)} " if self.maybe(0.6) else "")
            return f"{adv}{v.third if s.third else v.base}"
        if tense == "future":
            return f"will {adv}{v.base}"
        if tense == "progressive":
            return f"{s.be} {adv}{v.ing}"
        if tense == "was":
            return f"{s.was} {adv}{v.ing}"
        if tense == "perfect":
            adv = adv or self.pick(("already ", "just ", "never ", ""))
            return f"{'has' if s.third else 'have'} {adv}{v.participle}"
        if tense == "modal":
            return f"{self.pick(MODALS)} {adv}{v.base}"
        if tense == "going":
            return f"{s.be} going to {adv}{v.base}"
        want = self.pick(WANTS)
        return f"{want + 's' if s.third else want} to {adv}{v.base}"

    def clause(self, tense: str | None = None, s: Subject | None = None, extras: float = 0.6) -> str:
        tense = tense or self.pick(TENSES)
        s = s or self.subject()
        v = self.verb()
        obj = self.object(v)
        words = [s.text, self.predicate(s, tense, v, adverb=self.maybe(0.15)), obj]
        extras = extras if obj else min(1.0, 1.5 * extras)
        if self.maybe(extras * 0.7):
            words.append(self.place())
        if self.maybe(extras * 0.6):
            words.append(self.time(tense))
        return " ".join(w for w in words if w)

    # ------------------------------------------------------------------ sentence kinds

    def statement(self) -> str:
        x = self.r.random()
        if x < 0.12:
            return f"{self.pick(INTERJECTIONS)}, {self.clause()}."
        if x < 0.22:
            tense = self.pick(("past", "future"))
            return f"{_cap(self.time(tense))}, {self.clause(tense, extras=0.3)}."
        return _cap(self.clause()) + "."

    def long(self) -> str:
        tense = self.pick(("past", "past", "future", "present", "modal"))
        a, b = self.clause(tense), self.clause(tense if tense != "modal" else "future", extras=0.3)
        x = self.r.random()
        if x < 0.35:
            return _cap(f"{a}, {self.pick(('and', 'but', 'so'))} {b}") + "."
        if x < 0.7:
            return _cap(f"{a} {self.pick(CONNECTORS)} {b}") + "."
        if x < 0.8:
            return f"If {self.clause('present', extras=0.3)}, {self.clause('future', extras=0.6)}."
        return _cap(f"{a}, {self.pick(('and then', 'but then', 'and after that'))} {b}, "
                    f"{self.pick(CONNECTORS)} {self.clause(tense, extras=0.3)}") + "."

    def reported(self) -> str:
        x = self.r.random()
        if x < 0.4:
            return f"{_cap(self.person())} {self.pick(('said', 'told me', 'thinks', 'knows', 'heard'))} that "\
                   f"{self.clause('past')}."
        if x < 0.7:
            return f"I {self.pick(('think', 'hope', 'guess', 'believe', 'doubt'))} {self.clause('future')}."
        return f"{self.pick(('Did you know', 'Did you hear', 'Do you think'))} that {self.clause('past')}?"

    def question(self) -> str:
        s, v = self.subject(), self.verb()
        obj = self.object(v)
        tail = f" {obj}" if obj else ""
        tail += f" {self.place()}" if self.maybe(0.3) else ""
        k = self.r.randrange(12)
        if k == 0:
            return f"Did {s.text} {v.base}{tail}{' ' + self.time('past') if self.maybe(0.4) else ''}?"
        if k == 1:
            return f"{'Does' if s.third else 'Do'} {s.text} {self.pick(('often ', 'really ', ''))}{v.base}{tail}?"
        if k == 2:
            return f"{self.pick(('Will', 'Can', 'Should', 'Could', 'Would'))} {s.text} {v.base}{tail}?"
        if k == 3:
            return f"{'Has' if s.third else 'Have'} {s.text} ever {v.participle}{tail}?"
        if k == 4:
            return f"{_cap(s.be)} {s.text} {v.ing}{tail}{' ' + self.time('progressive') if self.maybe(0.4) else ''}?"
        if k == 5:
            wh = self.pick(("Where", "When", "Why", "How"))
            return f"{wh} {self.pick(('did', 'will', 'can', 'should'))} {s.text} {v.base}{tail}?"
        if k == 6:
            v = self.verb(transitive=True)
            return f"Who {v.past} {self.object(v) or 'it'}?"
        if k == 7:
            n = self.noun(OBJECT_KINDS[v.kind], countable=True)
            return f"How many {n.plural} {self.pick(('did', 'will', 'can'))} {s.text} {v.base}?"
        if k == 8:
            thing = self.np(("thing", "food"), det=self.pick(("the", "this", "that", "a")))
            return f"How much {self.pick(('does', 'did'))} {thing} cost?"
        if k == 9:
            return self.pick((
                f"Have you ever been to {self.city()}?", f"Do you speak {self.pick(LANGUAGES)}?",
                f"What time does the {self.pick(EVERYDAY_PLACES)} open on {self.pick(DAYS)}?",
                f"How long does it take to get to {self.city()}?", f"Is it {self.adj()} in {self.city()} today?",
                f"Would you like some {self.noun(('food',)).word}?", f"Where is the {self.pick(EVERYDAY_PLACES)}?",
                f"Do you play {self.pick(SPORTS)}?", f"Can I borrow your {self.noun(('thing',)).word}?"))
        if k == 10:
            n = self.noun(CONCRETE + ABSTRACT)
            if n.plural and self.maybe(0.4):
                return f"Are the {n.plural} {self.adj()}?"
            return f"Is the {n.word} {self.adj()}?"
        return f"What do you think about {self.np(ABSTRACT + ('thing',), det='the')}?"

    def exclamation(self) -> str:
        k = self.r.randrange(7)
        if k == 0:
            n = self.noun(CONCRETE + ("person", "place"), countable=True)
            adj = self.adj()
            return f"What {self._article(adj)} {adj} {n.word}!"
        if k == 1:
            return f"{self.pick(INTERJECTIONS)}, {self.clause('past', extras=0.2)}!"
        if k == 2:
            return f"That {self.pick(('was', 'is', 'sounds'))} {self.pick(('so', 'really', 'very'))} {self.adj()}!"
        if k == 3:
            return f"I can't believe {self.clause('past', extras=0.3)}!"
        if k == 4:
            return f"Watch out for the {self.noun(CONCRETE).word}!"
        if k == 5:
            return f"{self.pick(GREETINGS)}, {self.pick(FIRST_NAMES)}!"
        very = self.pick(("so", "really", "absolutely"))
        return f"This {self.noun(CONCRETE + ABSTRACT).word} is {very} {self.adj()}!"

    def request(self) -> str:
        v = self.verb(transitive=True)
        obj = self.object(v) or "it"
        x = self.r.random()
        if x < 0.3:
            s = f"please {v.base} {obj}{' ' + self.place() if self.maybe(0.4) else ''}"
            return (f"{self.pick(FIRST_NAMES)}, {s}." if self.maybe(0.3) else _cap(s) + ".")
        if x < 0.5:
            return f"Could you {v.base} {obj} {self.time('future')}?"
        if x < 0.65:
            return f"Don't forget to {v.base} {obj}."
        if x < 0.8:
            return f"Let's {v.base} {obj} {self.time('future')}."
        return f"{self.pick(('Remember to', 'Try to', 'Go and', 'Please help me'))} {v.base} {obj}."

    def description(self) -> str:
        k = self.r.randrange(8)
        if k == 0:
            verb = self.pick(("is", "was", "looks", "seems"))
            return f"The {self.noun(CONCRETE + ABSTRACT).word} {verb} {self.adj()}."
        if k == 1:
            adj = self.adj()
            return f"{self.name()} is {self._article(adj)} {adj} {self.noun(('person',)).word}."
        if k == 2:
            verb = self.pick(("lives in", "comes from", "moved to", "works in"))
            return f"{_cap(self.person())} {verb} {self.city()}."
        if k == 3:
            n = self.noun(CONCRETE, countable=True)
            return f"There is {n.article} {n.word} {self.place()}."
        if k == 4:
            return f"The weather in {self.city()} is {self.adj()} {self.pick(('today', 'this week', 'in the spring'))}."
        if k == 5:
            return f"It was {self.adj()} and {self.adj()} {self.pick(PAST_TIMES)}."
        if k == 6:
            return f"{self.name()} speaks {self.pick(LANGUAGES)} and {self.pick(LANGUAGES)}."
        what = self.pick(("food", "sport", "city", "color", "season", "day"))
        favorite = {"food": lambda: self.noun(("food",)).word, "sport": lambda: self.pick(SPORTS),
                    "city": lambda: self.pick(CITIES), "color": lambda: self.pick(COLORS),
                    "season": lambda: self.pick(SEASONS), "day": lambda: self.pick(DAYS)}[what]()
        return f"My favorite {what} is {favorite}."

    def short(self) -> str:
        k = self.r.randrange(6)
        if k == 0:
            return self.pick(REPLIES)
        if k == 1:
            return f"{self.pick(GREETINGS)}, {self.pick(FIRST_NAMES)}."
        if k == 2:
            return f"See you on {self.pick(DAYS)}."
        if k == 3:
            return f"Where is {self.pick(FIRST_NAMES)}?"
        if k == 4:
            return f"Not the {self.noun(CONCRETE).word}!"
        return f"{_cap(self.adj())} {self.noun(CONCRETE, countable=True).plural}!"

    def numbers(self) -> str:
        k = self.r.randrange(10)
        if k == 0:
            n = num.amount(num.count(self.r))
            return f"There are {n} {self.noun(CONCRETE + ('person',), countable=True).plural} {self.place()}."
        if k == 1:
            v = self.verb(transitive=True)
            kinds = tuple(x for x in OBJECT_KINDS[v.kind] if x != "idea") or ("thing",)
            return f"{_cap(self.person())} {v.past} {num.amount(num.count(self.r))} " \
                   f"{self.noun(kinds, countable=True).plural} {self.time('past')}."
        if k == 2:
            thing = self.np(("thing", "food"), det=self.pick(("the", "this", "a", "my")))
            return self.pick((f"{_cap(thing)} costs {num.money(self.r)}.",
                              f"{_cap(self.person())} paid {num.money(self.r)} for {thing}.",
                              f"A ticket to {self.city()} costs {num.money(self.r)}.",
                              f"Can you lend me {num.money(self.r)} until {self.pick(DAYS)}?",
                              f"The bill came to {num.money(self.r)}, including the {self.noun(('food',)).word}."))
        if k == 3:
            return self.pick((f"The train to {self.city()} leaves at {num.clock(self.r)}.",
                              f"Let's meet at {num.clock(self.r)} on {self.pick(DAYS)}.",
                              f"The {self.pick(EVERYDAY_PLACES)} opens at {num.clock(self.r)} and closes at "
                              f"{num.clock(self.r)}.",
                              f"I woke up at {num.clock(self.r)} this morning.",
                              f"Is the meeting at {num.clock(self.r)} or at {num.clock(self.r)}?"))
        if k == 4:
            return self.pick((f"{self.name()} was born on {num.date(self.r, with_year=0.6)}.",
                              f"My {self.pick(RELATIVES)}'s birthday is on {num.date(self.r, with_year=0)}.",
                              f"We are leaving for {self.city()} on {num.date(self.r, with_year=0)}.",
                              f"The {self.pick(EVERYDAY_PLACES)} is closed from {num.date(self.r, with_year=0)} "
                              f"to {num.date(self.r, with_year=0)}.",
                              f"Was the party on {num.date(self.r, with_year=0)}?"))
        if k == 5:
            n = self.r.randint(1, 40)
            return self.pick((f"{_cap(self.person())} lives on the {num.ordinal(n)} floor.",
                              f"This is my {num.ordinal(self.r.randint(2, 12))} visit to {self.city()}.",
                              f"{self.name()} finished {num.ordinal(n)} in the race.",
                              f"Today is our {num.ordinal(n)} anniversary!",
                              f"The {self.noun(('thing',)).word} was made in the "
                              f"{num.ordinal(self.r.randint(12, 21))} century."))
        if k == 6:
            return self.pick((f"{self.name()} is {self.r.randint(2, 99)} years old.",
                              f"My {self.pick(RELATIVES)} turned {self.r.randint(10, 95)} {self.pick(PAST_TIMES)}.",
                              f"The {self.noun(('thing', 'place'), countable=True).word} was built in "
                              f"{num.year(self.r, latest=2024)}.",
                              f"In {num.year(self.r, latest=2024)}, {self.clause('past', extras=0.3)}.",
                              f"Back in the {self.r.randint(192, 201)}0s, {self.clause('past', extras=0.2)}."))
        if k == 7:
            return self.pick((f"It was {num.temperature(self.r)} degrees in {self.city()} {self.pick(PAST_TIMES)}.",
                              f"{self.city()} is {num.amount(num.count(self.r))} "
                              f"{self.pick(('miles', 'kilometers'))} from {self.city()}.",
                              f"The {self.noun(('thing', 'food'), countable=True).word} weighs {num.decimal(self.r)} "
                              f"{self.pick(('pounds', 'kilograms', 'ounces'))}.",
                              f"We walked {num.decimal(self.r)} miles {self.pick(PAST_TIMES)}.",
                              f"It takes {self.r.randint(2, 90)} minutes to get to the {self.pick(EVERYDAY_PLACES)}."))
        if k == 8:
            return self.pick((f"About {num.percent(self.r)} of the {self.noun(('person',), countable=True).plural} "
                              f"{self.pick(('agreed', 'voted', 'stayed home', 'said yes'))}.",
                              f"Prices went up by {num.percent(self.r)} {self.pick(PAST_TIMES)}.",
                              f"The {self.noun(('thing', 'food')).word} is {num.percent(self.r)} cheaper on "
                              f"{self.pick(DAYS)}s."))
        return self.pick((f"The {self.pick(CITIES)} team won {self.r.randint(1, 9)} to {self.r.randint(0, 8)}.",
                          f"{self.name()} lives at {self.r.randint(1, 999)} {self.pick(SURNAMES)} Street.",
                          f"Turn to page {self.r.randint(2, 500)} and read the {self.noun(('message',)).word}.",
                          f"Take bus {self.r.randint(2, 99)} to the {self.pick(EVERYDAY_PLACES)}.",
                          f"We need {num.count(self.r)} {self.noun(('thing', 'food'), countable=True).plural} "
                          f"and {num.count(self.r)} {self.noun(('thing', 'food'), countable=True).plural}."))

    def sentence(self) -> str:
        x, acc = self.r.random(), 0.0
        for kind, weight in KIND_WEIGHTS.items():
            acc += weight
            if x < acc:
                return getattr(self, kind)()
        return self.statement()


# share of each kind of sentence; numbers, dates and names also occur inside the others
KIND_WEIGHTS: dict[str, float] = {"statement": 0.22, "long": 0.15, "reported": 0.05, "question": 0.18,
                                  "exclamation": 0.07, "request": 0.06, "description": 0.07, "short": 0.04,
                                  "numbers": 0.16}


def written_sentence(rng: random.Random) -> str:
    """One sentence as typed (digits, "$", ":" and all) of MIN_WORDS..MAX_WORDS spoken words."""
    grammar = _Everyday(rng, load_lexicon())
    while True:
        s = grammar.sentence()
        if MIN_WORDS <= len(normalize_text(s).split()) <= MAX_WORDS:
            return s


def spoken_sentence(rng: random.Random) -> str:
    """:func:`written_sentence` normalised: what flite speaks and the corpus stores."""
    return normalize_text(written_sentence(rng))

