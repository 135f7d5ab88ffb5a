"""Seeded generator of everyday English sentences (the corpus text ``everyday``).

Sentences are part-of-speech aware templates over the phrases of
:mod:`core.everyday_phrases` and the word list of :mod:`core.everyday_words` (about
10,600 common words, with names and places written here): statements in nine tenses,
affirmative and negative, two- and three-clause sentences, reported speech,
conditionals, questions (yes/no, wh-, how much / how many), exclamations, requests,
descriptions, short replies and greetings, and sentences with counts, money, clock
times, dates, years, ordinals, percentages and measures (:mod:`core.everyday_numbers`),
in the shares of :data:`KIND_WEIGHTS` and :data:`NUMBER_WEIGHTS`.  They are grammatical
and mostly make some sense; none claims to be true.

:func:`written_sentence` gives the sentence as typed, with digits and symbols;
:func:`spoken_sentence` is :func:`core.normalize.normalize_text` of it, what flite speaks
and the corpus stores.
"""

from __future__ import annotations

import random

from . import everyday_numbers as num
from .everyday_phrases import ABSTRACT, CONCRETE, CONNECTORS, OBJECT_KINDS, PAST_TIMES, Phrases, cap
from .everyday_words import (CITIES, DAYS, EVERYDAY_PLACES, FIRST_NAMES, GREETINGS, INTERJECTIONS, LANGUAGES,
                             RELATIVES, REPLIES, SPORTS, SURNAMES, load_lexicon)
from .normalize import normalize_text

__all__ = ["EVERYDAY_VERSION", "MIN_WORDS", "MAX_WORDS", "KIND_WEIGHTS", "NUMBER_WEIGHTS", "written_sentence",
           "spoken_sentence"]

EVERYDAY_VERSION = 1  # bump when the templates or the word list change (a corpus records it)
MIN_WORDS, MAX_WORDS = 2, 32  # spoken words
COLORS = ("blue", "green", "red", "yellow", "purple", "orange", "black", "white", "pink", "gray")
SEASONS = ("spring", "summer", "autumn", "winter")


class _Everyday(Phrases):
    """One written sentence per call of :meth:`sentence`; each other method is one kind."""

    def statement(self) -> str:
        x = self.r.random()
        if x < 0.12:
            return f"{self.pick(INTERJECTIONS)}, {self.clause()}."
        if x < 0.22:
            tense = self.pick(("past", "future"))
            return f"{cap(self.time(tense))}, {self.clause(tense, extras=0.3, when=False)}."
        return cap(self.clause()) + "."

    def long(self) -> str:
        tense = self.pick(("past", "past", "future", "present", "modal"))
        a, b = self.clause(tense), self.clause(tense if tense != "modal" else "future", extras=0.3)
        x = self.r.random()
        if x < 0.35:
            return cap(f"{a}, {self.pick(('and', 'but', 'so'))} {b}") + "."
        if x < 0.7:
            return cap(f"{a} {self.pick(CONNECTORS)} {b}") + "."
        if x < 0.8:
            return f"If {self.clause('present', extras=0.3)}, {self.clause('future', extras=0.6)}."
        return cap(f"{a}, {self.pick(('and then', 'but then', 'and after that'))} {b}, "
                    f"{self.pick(CONNECTORS)} {self.clause(tense, extras=0.3)}") + "."

    def reported(self) -> str:
        x = self.r.random()
        if x < 0.4:
            return f"{cap(self.person())} {self.pick(('said', 'told me', 'thinks', 'knows', 'heard'))} that "\
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
            return f"{cap(s.be)} {s.text} {v.ing}{tail}{' ' + self.time('progressive') if self.maybe(0.4) else ''}?"
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
            return (f"{self.pick(FIRST_NAMES)}, {s}." if self.maybe(0.3) else cap(s) + ".")
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
            return f"{cap(self.person())} {verb} {self.city()}."
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
        return f"{cap(self.adj())} {self.noun(CONCRETE, countable=True).plural}!"

    def numbers(self) -> str:
        """Counts, counted objects, money, clock times, dates, ordinals, ages and years,
        measures, percentages, and house, bus and page numbers, in NUMBER_WEIGHTS shares."""
        k = self.r.choices(range(len(NUMBER_WEIGHTS)), NUMBER_WEIGHTS)[0]
        if k == 0:
            n = num.amount(num.count(self.r))
            return f"There are {n} {self.noun(CONCRETE + ('person',), countable=True).plural} {self.place()}."
        if k == 1:
            v = self.verb(transitive=True)
            kinds = tuple(x for x in OBJECT_KINDS[v.kind] if x != "idea") or ("thing",)
            return f"{cap(self.person())} {v.past} {num.amount(num.count(self.r))} " \
                   f"{self.noun(kinds, countable=True).plural} {self.time('past')}."
        if k == 2:
            thing = self.np(("thing", "food"), det=self.pick(("the", "this", "a", "my")))
            return self.pick((f"{cap(thing)} costs {num.money(self.r)}.",
                              f"{cap(self.person())} paid {num.money(self.r)} for {thing}.",
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
                              f"The party for my {self.pick(RELATIVES)} is on {num.date(self.r, with_year=0)}.",
                              f"We are leaving for {self.city()} on {num.date(self.r, with_year=0)}.",
                              f"The {self.pick(EVERYDAY_PLACES)} is closed from {num.date(self.r, with_year=0)} "
                              f"to {num.date(self.r, with_year=0)}.",
                              f"Was the party on {num.date(self.r, with_year=0)}?"))
        if k == 5:
            n = self.r.randint(1, 40)
            return self.pick((f"{cap(self.person())} lives on the {num.ordinal(n)} floor.",
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
                              f"In {num.year(self.r, latest=2024)}, {self.clause('past', extras=0.3, when=False)}.",
                              f"Back in the {self.r.randint(192, 201)}0s, {self.clause('past', when=False)}."))
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
        """One written sentence of a kind drawn with KIND_WEIGHTS."""
        x, acc = self.r.random(), 0.0
        for kind, weight in KIND_WEIGHTS.items():
            acc += weight
            if x < acc:
                return getattr(self, kind)()
        return self.statement()


# share of each kind of sentence; numbers, dates and names also occur inside the others
KIND_WEIGHTS: dict[str, float] = {"statement": 0.21, "long": 0.15, "reported": 0.05, "question": 0.18,
                                  "exclamation": 0.07, "request": 0.06, "description": 0.06, "short": 0.04,
                                  "numbers": 0.18}
# within "numbers": counts, counted objects, money, clock, dates, ordinals, ages/years, measures, percent, other
NUMBER_WEIGHTS = (0.1, 0.08, 0.22, 0.12, 0.16, 0.08, 0.1, 0.07, 0.03, 0.04)


def written_sentence(rng: random.Random) -> str:
    """One sentence as typed (digits, "$", ":" and all) of MIN_WORDS..MAX_WORDS spoken words."""
    grammar = _Everyday(rng, load_lexicon())
    while True:
        s = grammar.sentence()
        if MIN_WORDS <= len(normalize_text(s).split()) <= MAX_WORDS:
            return s


def spoken_sentence(rng: random.Random) -> str:
    """:func:`written_sentence` normalised (and capitalised: "2 days ago, ..." -> "Two days
    ago, ..."): what flite speaks and the corpus stores."""
    return cap(normalize_text(written_sentence(rng)))

