"""Phrases of the ``everyday`` corpus text: noun phrases, subjects, objects, places,
times and clauses (the sentences built from them: :mod:`core.everyday_text`).

:class:`Phrases` draws every choice from one ``random.Random``.  Nouns, verbs,
adjectives and adverbs come half the time from the most common third of their list
(:mod:`core.everyday_words`, most common first) and half the time from the whole list,
so the common words come often and the rest of the list still gets heard.  A verb's
object comes from the noun classes that fit its WordNet class (one eats food, reads a
message); a time phrase fits the tense ("yesterday" with the past, "tomorrow" with the
future); a clause can be negative ("didn't open") and a pronoun subject contracted
("I'm", "she'll").
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Sequence

from . import everyday_numbers as num
from .everyday_words import (CITIES, COUNTRIES, DAYS, EVERYDAY_PLACES, FIRST_NAMES, HOLIDAYS, MEALS, MONTHS,
                             RELATIVES, SURNAMES, Lexicon, Noun, Verb)

__all__ = ["Phrases", "Subject", "cap", "CONCRETE", "ABSTRACT", "OBJECT_KINDS", "SUBJECTS", "CONNECTORS",
           "PAST_TIMES"]

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
WANTS = {"want": "wants", "need": "needs", "hope": "hopes", "plan": "plans", "try": "tries", "like": "likes",
         "forget": "forgets", "decide": "decides", "promise": "promises", "refuse": "refuses"}
CONNECTORS = ("because", "although", "while", "when", "before", "after", "since", "until", "so")
TENSES = ("past", "past", "present", "future", "progressive", "perfect", "modal", "going", "was", "want")
PAST_TIMES = ("yesterday", "last night", "last week", "last month", "last year", "last summer", "this morning",
              "earlier today", "over the weekend", "a while ago")
FUTURE_TIMES = ("tomorrow", "next week", "next month", "next year", "tonight", "this afternoon", "this weekend",
                "soon", "later today", "next summer")
HABIT_TIMES = ("every day", "every morning", "every week", "in the evening", "twice a week", "once a month",
               "on weekends", "every summer")
NOW_TIMES = ("right now", "at the moment", "today", "this week", "these days")
NEGATIVES = {"did": "didn't", "does": "doesn't", "do": "don't", "will": "won't", "is": "isn't", "are": "aren't",
             "was": "wasn't", "were": "weren't", "has": "hasn't", "have": "haven't", "can": "can't",
             "should": "shouldn't", "could": "couldn't", "would": "wouldn't"}
CONTRACTIONS = {"I": {"am": "'m", "will": "'ll"}, "you": {"are": "'re", "will": "'ll"},
                "he": {"is": "'s", "will": "'ll"}, "she": {"is": "'s", "will": "'ll"},
                "we": {"are": "'re", "will": "'ll"}, "they": {"are": "'re", "will": "'ll"}}


@dataclass(frozen=True)
class Subject:
    text: str
    be: str  # am / is / are
    was: str  # was / were
    third: bool  # third person singular: "she walks", "does she walk"


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


@functools.lru_cache(maxsize=64)
def _noun_pool(lex: Lexicon, kinds: tuple[str, ...], countable: bool) -> tuple[Noun, ...]:
    """The nouns of ``kinds`` (with a plural when ``countable``), most common first."""
    nouns = (n for k in kinds for n in lex.nouns.get(k, ()) if n.plural or not countable)
    return tuple(sorted(nouns, key=lambda n: n.rank))


@functools.lru_cache(maxsize=4)
def _adjective_articles(lex: Lexicon) -> dict[str, str]:
    return {a.word: a.article for a in lex.adjectives}

class Phrases:
    """Words and phrases; every choice comes from ``rng``."""

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
        """The verb's object, or "" for an intransitive use (of a verb that has one)."""
        frames = verb.frames.replace("i", "")
        if not frames or ("i" in verb.frames and self.maybe(0.3)):
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

    def predicate(self, s: Subject, tense: str, v: Verb, adverb: bool = False, negative: bool = False) -> str:
        """The verb group for ``s`` in ``tense``, e.g. "has already opened", "will carefully
        open", or negative: "didn't open", "isn't opening", "can't open"."""
        adv = f"{self.adv()} " if adverb else ""
        if negative:
            return self._negative(s, tense, v, adv)
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
        want = self.pick(list(WANTS))
        return f"{WANTS[want] if s.third else want} to {adv}{v.base}"

    def _negative(self, s: Subject, tense: str, v: Verb, adv: str) -> str:
        short = self.maybe(0.7)  # "didn't" rather than "did not"

        def no(aux: str) -> str:
            return NEGATIVES[aux] if short and aux in NEGATIVES else f"{aux} not"

        do = "does" if s.third else "do"
        if tense == "past":
            return f"{no('did')} {adv}{v.base}"
        if tense == "present":
            return f"{no(do)} {adv}{v.base}"
        if tense == "future":
            return f"{no('will')} {adv}{v.base}"
        if tense in ("progressive", "going"):
            return f"{no(s.be)} {adv}{v.ing if tense == 'progressive' else 'going to ' + v.base}"
        if tense == "was":
            return f"{no(s.was)} {adv}{v.ing}"
        if tense == "perfect":
            return f"{no('has' if s.third else 'have')} {adv}{v.participle}"
        if tense == "modal":
            return f"{no(self.pick(MODALS))} {adv}{v.base}"
        return f"{no(do)} {self.pick(list(WANTS))} to {adv}{v.base}"

    def clause(self, tense: str | None = None, s: Subject | None = None, extras: float = 0.6,
               when: bool = True) -> str:
        """Subject, verb group, object, and now and then a place and (``when``) a time."""
        tense = tense or self.pick(TENSES)
        s = s or self.subject()
        v = self.verb()
        obj = self.object(v)
        negative = self.maybe(0.12)
        verb = self.predicate(s, tense, v, adverb=not negative and self.maybe(0.15), negative=negative)
        first, _, rest = verb.partition(" ")
        if (s.text in CONTRACTIONS and first in CONTRACTIONS[s.text] and rest and self.maybe(0.4)
                and not (first == "will" and rest.startswith("not"))):
            words = [f"{s.text}{CONTRACTIONS[s.text][first]} {rest}", obj]  # "I'm", "she'll", "we're not"
        else:
            words = [s.text, verb, obj]
        extras = extras if obj else min(1.0, 1.5 * extras)
        if self.maybe(extras * 0.7):
            words.append(self.place())
        if when and self.maybe(extras * 0.6):
            words.append(self.time(tense))
        return " ".join(w for w in words if w)

    # ------------------------------------------------------------------ sentence kinds
