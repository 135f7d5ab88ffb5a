"""Write ``core/everyday_words.tsv``, the word list of the ``everyday`` corpus text.

Run once by hand when the list should change (the output is committed; nothing runs this
at corpus time)::

    sudo apt-get install wordnet-base          # WordNet 3.0 (Princeton WordNet licence)
    pip install pocketsphinx                   # CMU dictionary + US English model (BSD)
    python tools/make_everyday_words.py        # -> core/everyday_words.tsv

How words are chosen, all deterministic:

* Candidates are WordNet 3.0 lemmas of one lower-case word that the CMU pronouncing
  dictionary of pocketsphinx spells (so the ASR used for WER can spell every word too).
* Commonness: the unigram log-probability of pocketsphinx's US English language model
  (``en-us.lm.bin``); the ``--top`` most probable candidates are kept.
* Part of speech: the parts of speech that hold at least a quarter of the word's
  SemCor sense-tag count (``cntlist.rev``); a word with no count takes the part of
  speech with most senses.
* A noun's class and a verb's class are the WordNet lexicographer file of its most
  frequent sense (``noun.person`` -> ``person``, ``verb.contact`` -> ``contact``); a
  verb's argument frames (transitive with a thing, with a person, intransitive) are
  that sense's WordNet sentence frames.
* Inflections come from WordNet's exception lists, a table of irregular verbs written
  here, and spelling rules; every form must be in the CMU dictionary, and a noun counts
  as countable only when its plural is a common word in the language model.
* Words whose senses WordNet glosses as offensive, obscene or vulgar, and the few
  listed in ``BLOCKED``, are left out.
"""

from __future__ import annotations

import argparse
import os
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDNET = Path("/usr/share/wordnet")
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
SS_TYPE_POS = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}

NOUN_CLASSES = {  # WordNet lexicographer file -> the class the grammar uses
    "noun.person": "person", "noun.animal": "animal", "noun.food": "food", "noun.artifact": "thing",
    "noun.plant": "plant", "noun.body": "body", "noun.location": "place", "noun.object": "nature",
    "noun.substance": "substance", "noun.time": "time", "noun.group": "group",
    "noun.communication": "message", "noun.act": "idea", "noun.event": "idea", "noun.cognition": "idea",
    "noun.state": "idea", "noun.attribute": "idea", "noun.feeling": "idea", "noun.motive": "idea",
    "noun.phenomenon": "idea", "noun.process": "idea", "noun.possession": "idea", "noun.relation": "idea",
    "noun.shape": "idea", "noun.quantity": "idea"}
VERB_CLASSES = {f"verb.{c}": c for c in (
    "body", "change", "cognition", "communication", "competition", "consumption", "contact", "creation",
    "emotion", "motion", "perception", "possession", "social", "stative", "weather")}
ADJ_FILES = {"adj.all", "adj.ppl"}  # not adj.pert ("presidential"): odd after "is"

# verbs the templates build from fixed words, and words left out of a demo corpus
BLOCKED = set("""be have do get go say will would can could shall should may might must ought
kill murder rape shoot stab strangle torture slaughter assassinate execute abuse molest bomb
suicide corpse cocaine heroin nazi porn penis vagina sex sexual breast crap damn hell bastard
bitch whore slut fuck shit piss urinate defecate masturbate erection genital nude naked
terrorist terrorism gun rifle pistol bullet weapon ammunition victim hostage virgin tit boob sexy
retard rapist pimp prostitute kidnap slave dope gay lesbian homosexual queer bum butt fart meth sniper""".split())
# function words and number words: the templates place these themselves
FUNCTION_WORDS = set("""a an the this that these those some any no every each all both either neither
i me my mine you your yours he him his she her hers it its we us our ours they them their theirs
am is are was were been being has had having does did done doing going
and or but nor so yet for if then than because although though while when where why how what who
whom whose which whether until unless since as at by in into of off on onto out over to up down
with within without about above across after against along among around before behind below
beneath beside besides between beyond during except inside near outside past per through
throughout toward towards under underneath upon via not never also just only very too quite
here there now today tonight tomorrow yesterday yes oh ok okay hello goodbye please thanks hi hey
wow ah aha hmm oops ouch bye more most much many other another such same own said few little lot lots
less least enough several else ever
zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred
thousand million billion trillion first second third fourth fifth sixth seventh eighth ninth tenth
eleventh twelfth thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth
twentieth thirtieth fortieth fiftieth sixtieth seventieth eightieth ninetieth hundredth thousandth
half quarter dozen monday tuesday wednesday thursday friday saturday sunday january february march
april may june july august september october november december mr mrs ms dr""".split())
OFFENSIVE_GLOSS = re.compile(r"offensive|obscene|vulgar|\bslur\b|disparaging|derogatory")

# base past participle, for the irregular verbs the list may hold (written here)
IRREGULAR = """arise arose arisen|awake awoke awoken|bear bore borne|beat beat beaten|become became become
begin began begun|bend bent bent|bet bet bet|bind bound bound|bite bit bitten|bleed bled bled
blow blew blown|break broke broken|breed bred bred|bring brought brought|broadcast broadcast broadcast
build built built|burst burst burst|buy bought bought|cast cast cast|catch caught caught
choose chose chosen|cling clung clung|come came come|cost cost cost|creep crept crept|cut cut cut
deal dealt dealt|dig dug dug|draw drew drawn|drink drank drunk|drive drove driven|eat ate eaten
fall fell fallen|feed fed fed|feel felt felt|fight fought fought|find found found|flee fled fled
fling flung flung|fly flew flown|forbid forbade forbidden|forecast forecast forecast
forget forgot forgotten|forgive forgave forgiven|freeze froze frozen|give gave given|grind ground ground
grow grew grown|hang hung hung|hear heard heard|hide hid hidden|hit hit hit|hold held held|hurt hurt hurt
keep kept kept|kneel knelt knelt|know knew known|lay laid laid|lead led led|leave left left|lend lent lent
let let let|light lit lit|lose lost lost|make made made|mean meant meant|meet met met
mistake mistook mistaken|overcome overcame overcome|pay paid paid|prove proved proven|put put put
quit quit quit|read read read|rid rid rid|ride rode ridden|ring rang rung|rise rose risen|run ran run
see saw seen|seek sought sought|sell sold sold|send sent sent|set set set|sew sewed sewn
shake shook shaken|shed shed shed|shine shone shone|show showed shown|shrink shrank shrunk
shut shut shut|sing sang sung|sink sank sunk|sit sat sat|sleep slept slept|slide slid slid
speak spoke spoken|speed sped sped|spend spent spent|spin spun spun|spit spat spat|split split split
spread spread spread|spring sprang sprung|stand stood stood|steal stole stolen|stick stuck stuck
sting stung stung|strike struck struck|string strung strung|swear swore sworn|sweep swept swept
swim swam swum|swing swung swung|take took taken|teach taught taught|tear tore torn|tell told told
think thought thought|throw threw thrown|thrust thrust thrust|understand understood understood
undertake undertook undertaken|upset upset upset|wake woke woken|wear wore worn|weave wove woven
weep wept wept|win won won|wind wound wound|withdraw withdrew withdrawn|write wrote written
withstand withstood withstood|undergo underwent undergone|oversee oversaw overseen
overtake overtook overtaken|overhear overheard overheard|override overrode overridden
rebuild rebuilt rebuilt|rewrite rewrote rewritten|retell retold retold|mislead misled misled
misunderstand misunderstood misunderstood|uphold upheld upheld|foresee foresaw foreseen|bid bid bid
dream dreamed dreamed|learn learned learned|burn burned burned|lean leaned leaned|leap leaped leaped
spell spelled spelled|spill spilled spilled|smell smelled smelled|dive dived dived|hang hung hung"""
IRREGULAR_FORMS = {b: (p, pp) for b, p, pp in (e.split() for e in re.split(r"[|\n]", IRREGULAR))}
VOWELS = "aeiou"


def _pocketsphinx_model() -> Path:
    import pocketsphinx

    return Path(pocketsphinx.get_model_path()) / "en-us"


def load_cmudict(path: Path) -> dict[str, str]:
    """word -> its first pronunciation (phones with stress digits)."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        word, _, phones = line.partition(" ")
        if "(" not in word:
            out.setdefault(word, phones.strip())
    return out


class LanguageModel:
    """Unigram log-probabilities (pocketsphinx's log base 1.0001) of ``en-us.lm.bin``."""

    def __init__(self, path: Path):
        import pocketsphinx

        pocketsphinx.set_loglevel("FATAL")
        self.lm = pocketsphinx.NGramModel(pocketsphinx.Config(), pocketsphinx.LogMath(), str(path))

    def logprob(self, word: str) -> int:
        return self.lm.prob([word])


def read_index(pos: str) -> dict[str, list[str]]:
    """lemma -> synset offsets, most frequent sense first (WordNet ``index.<pos>``)."""
    out = {}
    for line in (WORDNET / f"index.{POS_FILES[pos]}").read_text().splitlines():
        if line.startswith("  "):
            continue
        f = line.split()
        p_cnt = int(f[3])
        out[f[0]] = f[6 + p_cnt:]
    return out


def read_data(pos: str) -> dict[str, tuple[str, list[int], str, set[str]]]:
    """synset offset -> (lexicographer file, verb frame numbers, gloss, the words as spelt)."""
    lexnames = {}
    for line in os.popen("zcat /usr/share/man/man5/lexnames.5WN.gz"):
        m = re.match(r"^(\d\d)\s+(\S+)", line)
        if m:
            lexnames[int(m[1])] = m[2]
    out = {}
    for line in (WORDNET / f"data.{POS_FILES[pos]}").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        head, _, gloss = line.partition(" | ")
        f = head.split()
        w_cnt = int(f[3], 16)
        k = 4 + 2 * w_cnt
        p_cnt = int(f[k])
        k += 1 + 4 * p_cnt
        frames = []
        if pos == "v" and k < len(f):
            f_cnt = int(f[k])
            frames = [int(f[k + 2 + 3 * j]) for j in range(f_cnt)]
        words = {re.sub(r"\(.*\)$", "", f[4 + 2 * j]) for j in range(w_cnt)}  # "wide(a)" -> "wide"
        out[f[0]] = (lexnames[int(f[1])], frames, gloss, words)
    return out


def read_counts() -> dict[tuple[str, str], int]:
    """(lemma, pos) -> SemCor sense-tag count summed over its senses (``cntlist.rev``)."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for line in (WORDNET / "cntlist.rev").read_text().splitlines():
        key, _, count = line.split()
        lemma, _, rest = key.partition("%")
        out[(lemma, SS_TYPE_POS[rest[0]])] += int(count)
    return out


def read_exceptions(pos: str) -> dict[str, list[str]]:
    """base -> inflected forms WordNet lists for it (``<pos>.exc``)."""
    out: dict[str, list[str]] = defaultdict(list)
    for line in (WORDNET / f"{POS_FILES[pos]}.exc").read_text().splitlines():
        form, *bases = line.split()
        for b in bases:
            out[b].append(form)
    return out


def _plural_of_noun(w: str, nouns: dict[str, list[str]]) -> bool:
    """Whether ``w`` is the regular plural of another noun ("authorities", "boxes", "bones")."""
    if w.endswith(("ss", "us", "is", "as", "os")):  # "boss", "bus", "bias", "gas": not plurals
        return False
    if w.endswith("ies"):
        return w[:-3] + "y" in nouns
    if w.endswith(("ses", "xes", "zes", "ches", "shes")) and w[:-2] in nouns:
        return True
    return w.endswith("s") and w[:-1] in nouns


def _compared(w: str, adjectives: dict[str, list[str]]) -> bool:
    """Whether ``w`` is a regular comparative or superlative of another adjective
    ("colder", "nicest", "happier", "biggest")."""
    for ending in ("er", "est"):
        if w.endswith(ending):
            stem = w[:-len(ending)]
            stems = {stem, stem + "e", stem[:-1] + "y" if stem.endswith("i") else stem}
            if len(stem) > 2 and stem[-1] == stem[-2]:
                stems.add(stem[:-1])  # "bigg" -> "big"
            if any(len(s) > 2 and s in adjectives for s in stems):
                return True
    return False


def article(pron: str) -> str:
    return "an" if pron and pron[0] in "AEIOU" else "a"


def third_person(v: str) -> str:
    if v.endswith(("s", "x", "z", "ch", "sh", "o")):
        return v + "es"
    if v.endswith("y") and v[-2:-1] not in VOWELS:
        return v[:-1] + "ies"
    return v + "s"


def regular_forms(v: str, exceptions: list[str]) -> tuple[str, str] | None:
    """(past, -ing) of a regular verb, with WordNet's listed doubled forms ("stopped")."""
    past = next((f for f in exceptions if f.endswith("ed")), None)
    ing = next((f for f in exceptions if f.endswith("ing")), None)
    if any(not f.endswith(("ed", "ing", "s")) for f in exceptions) and v not in IRREGULAR_FORMS:
        return None  # an irregular verb this file has no table entry for
    if past is None:
        if v.endswith("e"):
            past = v + "d"
        elif v.endswith("y") and v[-2:-1] not in VOWELS:
            past = v[:-1] + "ied"
        else:
            past = v + "ed"
    if ing is None:
        if v.endswith("ie"):
            ing = v[:-2] + "ying"
        elif v.endswith("e") and not v.endswith(("ee", "ye", "oe")) and len(v) > 2:
            ing = v[:-1] + "ing"
        else:
            ing = v + "ing"
    return past, ing


def plural(n: str, exceptions: list[str], lm: LanguageModel, cmu: dict[str, str]) -> str | None:
    """The most probable plural among WordNet's listed forms and the spelling rules' guesses
    ("-s", "-es", "-y" -> "-ies", "-man" -> "-men", "-f(e)" -> "-ves") that the CMU
    dictionary spells; None without one."""
    if n.endswith(("s", "x", "z", "ch", "sh")):
        guesses = [n + "es"]
    else:
        guesses = [n + "s", n + "es"] if n.endswith("o") else [n + "s"]
    if n.endswith("y") and n[-2:-1] not in VOWELS:
        guesses = [n[:-1] + "ies"]
    if n.endswith("man"):
        guesses.append(n[:-3] + "men")
    if n.endswith("f"):
        guesses.append(n[:-1] + "ves")
    if n.endswith("fe"):
        guesses.append(n[:-2] + "ves")
    candidates = [c for c in dict.fromkeys(exceptions + guesses) if c in cmu]
    return max(candidates, key=lambda c: (lm.logprob(c), c)) if candidates else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--top", type=int, default=12000, help="most probable candidate lemmas kept (default 12000)")
    ap.add_argument("--out", default=str(ROOT / "core" / "everyday_words.tsv"))
    args = ap.parse_args()

    model = _pocketsphinx_model()
    cmu = load_cmudict(model / "cmudict-en-us.dict")
    lm = LanguageModel(model / "en-us.lm.bin")
    index = {p: read_index(p) for p in POS_FILES}
    data = {p: read_data(p) for p in POS_FILES}
    counts = read_counts()
    exc = {p: read_exceptions(p) for p in ("n", "v", "a")}
    noun_plural_forms = {f for forms in exc["n"].values() for f in forms}
    adjective_forms = {f for forms in exc["a"].values() for f in forms}

    lemmas = sorted({w for p in POS_FILES for w in index[p]
                     if re.fullmatch(r"[a-z]{2,}", w) and w in cmu and w not in BLOCKED | FUNCTION_WORDS})
    lemmas = sorted(lemmas, key=lambda w: (-lm.logprob(w), w))[:args.top]

    rows: list[str] = []
    for w in lemmas:  # most probable first: the grammar draws some words from the head of each list
        if any(OFFENSIVE_GLOSS.search(data[p][o][2]) for p in POS_FILES for o in index[p].get(w, [])):
            continue
        present = [p for p in POS_FILES if w in index[p]]
        tags = {p: counts.get((w, p), 0) for p in present}
        if max(tags.values()) > 0:
            kinds = [p for p in present if tags[p] >= 0.25 * max(tags.values())]
        else:
            kinds = [max(present, key=lambda p: len(index[p][w]))]
        for p in kinds:
            lexname, frames, _, spelled = data[p][index[p][w][0]]
            if w not in spelled:
                continue  # its commonest sense is a name ("dallas" is "Dallas")
            if p == "n":
                if lexname not in NOUN_CLASSES or w in noun_plural_forms or _plural_of_noun(w, index["n"]):
                    continue  # "bones", "mice", "authorities": plurals listed as lemmas
                pl = plural(w, exc["n"].get(w, []), lm, cmu)
                countable = pl is not None and lm.logprob(pl) > -160000 and lm.logprob(pl) - lm.logprob(w) > -40000
                rows.append(f"n\t{NOUN_CLASSES[lexname]}\t{article(cmu[w])}\t{w}\t{pl if countable else '-'}")
            elif p == "v":
                if lexname not in VERB_CLASSES:
                    continue
                if w in IRREGULAR_FORMS:
                    past, part = IRREGULAR_FORMS[w]
                    ing = regular_forms(w, [f for f in exc["v"].get(w, []) if f.endswith("ing")]) or ("", "")
                    ing = ing[1]
                else:
                    forms = regular_forms(w, exc["v"].get(w, []))
                    if forms is None:
                        continue
                    past, ing = forms
                    part = past
                third = third_person(w)
                if not all(f in cmu for f in (third, past, part, ing)):
                    continue
                args_ = "".join(sorted({"t" if f in (8, 11) else "p" if f in (9, 10) else "i" if f in (1, 2) else ""
                                        for f in frames}))
                if not args_:
                    continue
                rows.append(f"v\t{VERB_CLASSES[lexname]}\t{args_}\t{w}\t{third}\t{past}\t{part}\t{ing}")
            elif p == "a":
                if lexname not in ADJ_FILES or w in adjective_forms or _compared(w, index["a"]):
                    continue  # "bigger", "latest": the grammar puts adjectives where the plain form goes
                rows.append(f"a\t{article(cmu[w])}\t{w}")
            elif p == "r":
                if w.endswith("ly"):
                    rows.append(f"r\t{w}")

    header = (ROOT / "tools" / "everyday_words_header.txt").read_text(encoding="utf-8")
    Path(args.out).write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    by_kind = defaultdict(int)
    for r in rows:
        by_kind[r.split("\t")[0] + ("." + r.split("\t")[1] if r[0] in "nv" else "")] += 1
    print(f"wrote {len(rows)} rows to {args.out}: {dict(sorted(by_kind.items()))}")


if __name__ == "__main__":
    main()
