"""The vocabulary of the ``everyday`` corpus text (:mod:`core.everyday_text`).

Two parts:

* ``everyday_words.tsv`` (package data): about 10,600 common English nouns, verbs,
  adjectives and adverbs with their inflections, classes and verb frames, chosen from
  WordNet 3.0 by commonness in pocketsphinx's US English language model
  (``tools/make_everyday_words.py`` wrote it; the file's header holds both licences,
  Princeton's WordNet licence and CMU's BSD licence, which allow redistribution).
  :func:`load_lexicon` reads it into typed records.
* Names, places, days, months and the other closed lists below, written here.

Every word is spelt as the CMU pronouncing dictionary spells it (US spelling), so the
recogniser used for WER knows every word the corpus says.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Noun", "Verb", "Adjective", "Lexicon", "load_lexicon", "WORDS_FILE", "FIRST_NAMES", "SURNAMES",
           "CITIES", "COUNTRIES", "LANGUAGES", "RELATIVES", "DAYS", "MONTHS", "HOLIDAYS", "EVERYDAY_PLACES",
           "MEALS", "SPORTS", "UNITS", "INTERJECTIONS", "GREETINGS", "REPLIES"]

WORDS_FILE = Path(__file__).with_name("everyday_words.tsv")


@dataclass(frozen=True)
class Noun:
    """A common noun: ``plural`` is None for one used without a plural ("information");
    ``article`` is "a" or "an" by its first sound ("an hour")."""

    word: str
    plural: str | None
    article: str
    kind: str  # person, animal, food, thing, plant, body, place, nature, substance, time, group, message, idea
    rank: int = 0  # row of the word list: lower is more common


@dataclass(frozen=True)
class Verb:
    """A verb with its forms; ``frames`` holds "t" (takes a thing as object), "p" (a
    person) and/or "i" (no object)."""

    base: str
    third: str
    past: str
    participle: str
    ing: str
    kind: str  # the WordNet verb class: contact, motion, communication, ...
    frames: str


@dataclass(frozen=True)
class Adjective:
    word: str
    article: str


@dataclass(frozen=True, eq=False)
class Lexicon:
    """The word list by part of speech, each tuple most common word first (hashed by
    identity: one is loaded per process)."""

    nouns: dict[str, tuple[Noun, ...]]  # by kind
    verbs: tuple[Verb, ...]
    adjectives: tuple[Adjective, ...]
    adverbs: tuple[str, ...]

    def words(self) -> set[str]:
        """Every word form in the list (lower case)."""
        out: set[str] = set(self.adverbs) | {a.word for a in self.adjectives}
        for nouns in self.nouns.values():
            out |= {n.word for n in nouns} | {n.plural for n in nouns if n.plural}
        for v in self.verbs:
            out |= {v.base, v.third, v.past, v.participle, v.ing}
        return out


def _parse(text: str) -> Lexicon:
    nouns: dict[str, list[Noun]] = {}
    verbs, adjectives, adverbs = [], [], []
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        try:
            if f[0] == "n" and len(f) == 5:
                nouns.setdefault(f[1], []).append(Noun(f[3], None if f[4] == "-" else f[4], f[2], f[1], k))
            elif f[0] == "v" and len(f) == 8:
                verbs.append(Verb(f[3], f[4], f[5], f[6], f[7], f[1], f[2]))
            elif f[0] == "a" and len(f) == 3:
                adjectives.append(Adjective(f[2], f[1]))
            elif f[0] == "r" and len(f) == 2:
                adverbs.append(f[1])
            else:
                raise ValueError(line)
        except ValueError:
            raise ValueError(f"{WORDS_FILE.name} line {k} is not a word row: {line[:80]!r}") from None
    return Lexicon({k: tuple(v) for k, v in sorted(nouns.items())}, tuple(verbs), tuple(adjectives),
                   tuple(adverbs))


@functools.lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    """The word list of ``everyday_words.tsv`` (read once per process)."""
    return _parse(WORDS_FILE.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- closed lists, written here

_W = str.split
FIRST_NAMES = _W("""James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara
Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Betty Mark
Helen Donald Sandra Steven Ashley Paul Kimberly Andrew Emily Joshua Donna Kenneth Michelle Kevin Carol
Brian Amanda George Melissa Edward Deborah Ronald Stephanie Timothy Rebecca Jason Laura Jeffrey Sharon
Ryan Cynthia Jacob Kathleen Gary Amy Nicholas Shirley Eric Angela Jonathan Anna Stephen Ruth Larry
Brenda Justin Pamela Scott Nicole Brandon Katherine Benjamin Samantha Samuel Christine Gregory Emma
Frank Catherine Alexander Rachel Patrick Carolyn Jack Janet Dennis Maria Jerry Heather Tyler Diane
Aaron Julie Henry Victoria Adam Kelly Douglas Christina Nathan Lauren Peter Joan Zachary Evelyn Kyle
Olivia Walter Judith Harold Megan Jeremy Ethan Martha Carl Andrea Keith Frances Roger Hannah Gerald
Ann Terry Gloria Sean Jean Arthur Alice Noah Teresa Lawrence Sara Jesse Doris Bryan Madison Julia
Jordan Grace Albert Judy Dylan Abigail Bruce Marie Gabriel Alan Amber Juan Logan Wayne Danielle Ralph
Diana Roy Natalie Vincent Rose Russell Isabella Louis Philip Charlotte Oliver Lucy Leo Nora Oscar Rosa
Sam Tina Victor Zoe Simon Martin Clara Iris Kate Ben Max Ella Hugo Raj Ahmed Fatima Omar Carlos
Sofia Ivan Olga Pierre Sophie Hans Greta Marco Diego Lucia Ingrid Lars Sven Astrid Elena Luis Ana
Pedro Jorge Paolo Nadia Leila Hassan Ravi Chloe Liam Ava Mason Lily Ruby Jasmine Maya Felix Finn
Tom Tim Bob Bill Mike Dave Steve Jim Joe Ted Ned Fred Ray Kim Pat Sue Jane Meg Beth Jill Liz Nick""")
SURNAMES = _W("""Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez
Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams
Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Phillips Evans Turner Parker Collins Edwards
Stewart Morris Murphy Cook Rogers Morgan Peterson Cooper Reed Bailey Bell Kelly Howard Ward Cox
Richardson Wood Watson Brooks Bennett Gray Reyes Hughes Price Myers Long Foster Sanders Ross Morales
Powell Sullivan Russell Ortiz Jenkins Perry Butler Barnes Fisher Henderson Coleman Patterson Graham
Reynolds Hamilton Ford Gibson Wallace Kim Chen Wang Singh Patel Khan Schmidt Novak Rossi Silva Santos
Tanaka Suzuki Sato Ivanov Kowalski Larsen Hansen Jensen Olsen Murray Fraser MacDonald Fischer Weber""")
CITIES = _W("""Chicago Houston Phoenix Philadelphia Dallas Boston Seattle Denver Atlanta Miami Detroit
Portland Nashville Austin Baltimore Memphis Pittsburgh Cleveland Minneapolis Orlando Sacramento
Honolulu Anchorage Toronto Montreal Vancouver Ottawa London Paris Berlin Madrid Rome Lisbon Dublin
Edinburgh Manchester Liverpool Glasgow Amsterdam Brussels Vienna Prague Warsaw Budapest Athens
Istanbul Moscow Stockholm Oslo Copenhagen Helsinki Zurich Geneva Munich Hamburg Milan Venice Florence
Naples Barcelona Cairo Nairobi Lagos Johannesburg Casablanca Dubai Mumbai Delhi Bangalore Beijing
Shanghai Tokyo Osaka Kyoto Seoul Bangkok Singapore Jakarta Manila Sydney Melbourne Auckland Lima
Santiago Havana Oxford Cambridge Brighton Bristol Tucson Boise Omaha Richmond Savannah""")
CITIES += ["New York", "Los Angeles", "San Francisco", "San Diego", "Las Vegas", "New Orleans", "Hong Kong",
           "Mexico City", "Cape Town", "Buenos Aires", "Salt Lake City", "Kansas City"]
COUNTRIES = _W("""Canada Mexico Brazil Argentina Chile Peru Colombia England Scotland Ireland Wales France
Germany Spain Portugal Italy Greece Norway Sweden Finland Denmark Poland Austria Switzerland Belgium
Holland Russia Ukraine Turkey Egypt Morocco Kenya Nigeria Ghana Ethiopia India Pakistan China Japan
Korea Vietnam Thailand Indonesia Australia Iceland Jamaica Cuba Israel Texas California Florida Ohio
Oregon Maine Alaska Colorado Arizona Georgia Virginia Michigan Vermont Montana Nevada Kentucky""")
LANGUAGES = _W("""French Spanish German Italian Chinese Japanese English Russian Arabic Portuguese Greek
Dutch Korean Hindi Polish Swedish Turkish""")
RELATIVES = _W("""mother father mom dad sister brother aunt uncle cousin grandmother grandfather grandma
grandpa son daughter wife husband nephew niece friend neighbor boss roommate partner""")
DAYS = _W("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
MONTHS = _W("January February March April May June July August September October November December")
HOLIDAYS = ["Christmas", "Easter", "Thanksgiving", "Halloween", "New Year's Eve", "New Year's Day"]
EVERYDAY_PLACES = _W("""store supermarket bank library airport station hospital school office park beach gym
museum restaurant cafe bakery pharmacy hotel zoo stadium church market mall garage kitchen garden
bathroom bedroom basement attic clinic theater university factory farm harbor bridge square corner""")
MEALS = _W("breakfast lunch dinner supper")
SPORTS = _W("soccer football tennis basketball baseball golf hockey chess volleyball cricket")
UNITS = _W("miles kilometers meters feet inches pounds kilograms gallons liters minutes hours days weeks")
INTERJECTIONS = ["Oh", "Wow", "Oh no", "Well", "Hey", "Look", "Oops", "Hooray", "Great", "Listen"]
GREETINGS = ["Good morning", "Good afternoon", "Good evening", "Good night", "Hello", "Hi", "Welcome back",
             "Happy birthday", "Congratulations", "Thank you", "Thanks a lot", "Excuse me", "Sorry",
             "Nice to meet you", "See you soon", "Take care"]
REPLIES = ["Yes, of course.", "No, thank you.", "Not at all.", "I think so.", "I don't think so.",
           "Maybe later.", "Sounds good to me.", "Why not?", "Of course not!", "Me too.", "Not yet.",
           "That's fine.", "All right.", "Right away.", "No problem.", "I'm not sure.", "Good idea!",
           "Just a moment, please.", "What happened?", "Who knows?", "See you tomorrow.", "Never mind.",
           "Let me think.", "Fair enough.", "Well done!", "Be careful!", "Hold on.", "I agree."]
