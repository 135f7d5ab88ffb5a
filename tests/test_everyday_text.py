"""The ``everyday`` corpus text: word list, number formats, sentence mix, the held-out
split and the hand-written evaluation sentences (assets/everyday_sentences.txt)."""

from __future__ import annotations

import importlib.util
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from core import everyday_numbers as num
from core.corpus_text import corpus_sentences, is_heldout_text
from core.eval import normalize_for_wer
from core.everyday_text import MAX_WORDS, MIN_WORDS, spoken_sentence, written_sentence
from core.everyday_words import (CITIES, COUNTRIES, FIRST_NAMES, MONTHS, WORDS_FILE, _parse, load_lexicon)
from core.normalize import normalize_text
from core.text import DEFAULT_CHARS, CharTokenizer

ROOT = Path(__file__).resolve().parents[1]
EVAL_FILE = ROOT / "assets" / "everyday_sentences.txt"
has_pocketsphinx = importlib.util.find_spec("pocketsphinx") is not None


@pytest.fixture(scope="module")
def default_sets():
    """The training and held-out text of ``--text everyday`` with the default seed, at the
    size the demo corpus is built with (8000 training sentences)."""
    return corpus_sentences(8000, 200, seed=0, text="everyday")


@pytest.fixture(scope="module")
def written():
    rng = random.Random(5)
    return [written_sentence(rng) for _ in range(8000)]


def words_of(sentences) -> Counter:
    return Counter(w for s in sentences for w in normalize_for_wer(s).split())


# --------------------------------------------------------------------------- the word list


def test_word_list_rows_and_inflections():
    lex = load_lexicon()
    nouns = {n.word: n for kind in lex.nouns.values() for n in kind}
    verbs = {v.base: v for v in lex.verbs}
    # counts of the committed list (tools/make_everyday_words.py, --top 12000)
    assert (len(nouns), len(verbs), len(lex.adjectives), len(lex.adverbs)) == (6025, 1436, 2719, 406)
    assert len(lex.words()) > 16000
    assert [nouns[w].plural for w in ("woman", "child", "knife", "potato", "box", "city")] == [
        "women", "children", "knives", "potatoes", "boxes", "cities"]
    assert nouns["information"].plural is None and nouns["hour"].article == "an" and nouns["uniform"].article == "a"
    assert (verbs["take"].past, verbs["take"].participle, verbs["take"].third) == ("took", "taken", "takes")
    assert (verbs["stop"].past, verbs["stop"].ing, verbs["try"].third, verbs["try"].past) == (
        "stopped", "stopping", "tries", "tried")
    assert nouns["teacher"].kind == "person" and nouns["apple"].kind == "food" and "t" in verbs["eat"].frames
    assert not set(lex.words()) & {"the", "and", "kill", "hello", "seven", "monday"}  # function/blocked words


def test_word_list_errors_name_the_line():
    with pytest.raises(ValueError, match=r"everyday_words.tsv line 2 is not a word row: 'n\\tthing'"):
        _parse("# header\nn\tthing\n")


def test_closed_lists_are_distinct():
    for names in (FIRST_NAMES, CITIES, COUNTRIES):
        assert len(set(names)) == len(names)


# --------------------------------------------------------------------------- numbers


def test_ordinals():
    assert [num.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111, 112)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st", "111th", "112th"]


def test_number_formats_normalise_to_words():
    rng = random.Random(0)
    for make, pattern in ((num.money, r"[$£€]\d+(\.\d\d|\.\d million)?"), (num.clock, r"(1[0-2]|[1-9]):[0-5]\d"),
                          (num.percent, r"\d{1,2}%"), (num.decimal, r"\d+\.\d+"), (num.temperature, r"-?\d+"),
                          (num.date, r"(the \d+(st|nd|rd|th) of [A-Z]\w+|[A-Z]\w+ \d+(st|nd|rd|th)(, \d{4})?)")):
        for _ in range(300):
            s = make(rng)
            assert re.fullmatch(pattern, s), s
            assert not re.search(r"[\d$£€%:]", normalize_text(s)), (s, normalize_text(s))
    days = [int(re.search(r"\d+", num.day_of_month(rng, "February"))[0]) for _ in range(500)]
    assert min(days) == 1 and max(days) == 28
    assert normalize_text("It costs $4.50 at 7:30 on May 5th, 1987.") == \
        "It costs four dollars and fifty cents at seven thirty on May fifth, nineteen eighty-seven."


# --------------------------------------------------------------------------- sentences


def test_sentences_are_deterministic():
    a = [spoken_sentence(random.Random(3)) for _ in range(2)]
    assert a[0] == a[1]
    assert corpus_sentences(50, 5, seed=3, text="everyday") == corpus_sentences(50, 5, seed=3, text="everyday")
    assert corpus_sentences(50, 0, seed=3, text="everyday").train != corpus_sentences(50, 0, seed=4,
                                                                                      text="everyday").train
    # pinned: the first training sentence of the default seed (changes only with EVERYDAY_VERSION)
    assert corpus_sentences(1, 0, seed=0, text="everyday").train == [
        "Great, that stepfather will await the manpower on Thanksgiving."]


def test_vocabulary_of_a_training_set(default_sets):
    train = default_sets.train
    assert len(set(train)) == 8000
    # measured: 9243 distinct words in the 8000 default-seed training sentences (EVERYDAY_VERSION 1);
    # the old grammar's whole vocabulary is 575 words
    assert len(words_of(train)) >= 9200


def test_sentence_mix(default_sets, written):
    train = default_sets.train
    n = len(train)
    lengths = [len(s.split()) for s in train]
    assert min(lengths) == MIN_WORDS and max(lengths) <= MAX_WORDS
    # measured on these sets: 13.6 % of 4 words or fewer, 9.9 % of 15 or more, 3.5 % of 20 or more
    assert sum(k <= 4 for k in lengths) > 0.08 * n and sum(k >= 15 for k in lengths) > 0.06 * n
    assert sum(k >= 20 for k in lengths) > 0.02 * n
    assert 0.18 < sum(s.endswith("?") for s in train) / n < 0.3  # measured 0.243
    assert 0.05 < sum(s.endswith("!") for s in train) / n < 0.12  # measured 0.091
    assert all(s[0].isupper() and s[-1] in ".?!" for s in train)
    assert sum("n't " in s or " not " in s for s in train) > 0.06 * n  # negatives; measured 0.081
    contracted = re.compile(r"\b(I'm|I'll|you're|she's|he'll|we're|they're)\b")
    assert sum(bool(contracted.search(s)) for s in train) > 0.003 * n  # measured 0.0054

    def share(pattern: str) -> float:
        return sum(bool(re.search(pattern, s)) for s in written) / len(written)

    # written forms, measured with random.Random(5): digits 0.23, money 0.039, clock times 0.044,
    # months 0.047, ordinals 0.055, names 0.25, places 0.16
    assert 0.17 < share(r"\d") < 0.3
    assert share(r"[$£€]\d") > 0.025 and share(r"\d:\d\d") > 0.03 and share(r"\d(st|nd|rd|th)\b") > 0.04
    assert share(r"\b(" + "|".join(MONTHS) + r")\b") > 0.035
    assert share(r"\b(" + "|".join(FIRST_NAMES) + r")\b") > 0.18
    assert share(r"\b(" + "|".join(CITIES + COUNTRIES) + r")\b") > 0.1


def test_stored_text_is_normalised(default_sets):
    chars = CharTokenizer(DEFAULT_CHARS)
    for s in default_sets.train + default_sets.heldout:
        assert normalize_text(s) == s  # the normaliser leaves the stored text as it is
        assert not re.search(r"[\d$£€%:]", s) and chars.unknown_symbols(s) == [], s


def test_heldout_is_disjoint_from_training(default_sets):
    assert len(set(default_sets.heldout)) == 200 and not set(default_sets.train) & set(default_sets.heldout)
    assert all(is_heldout_text(s) for s in default_sets.heldout)
    assert not any(is_heldout_text(s) for s in default_sets.train)
    more = corpus_sentences(8500, 10, seed=0, text="everyday")  # prefix-stable both ways
    assert more.train[:8000] == default_sets.train and more.heldout == default_sets.heldout[:10]


# --------------------------------------------------------------------------- the evaluation sentences


def test_evaluation_sentences_are_varied_and_new(default_sets):
    lines = EVAL_FILE.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 100 and len(set(lines)) == 100 and all(line.strip() == line and line for line in lines)
    assert sum(s.endswith("?") for s in lines) >= 15 and sum(s.endswith("!") for s in lines) >= 5
    assert sum(bool(re.search(r"\d", s)) for s in lines) >= 15
    lengths = [len(normalize_text(s).split()) for s in lines]
    assert min(lengths) <= 4 and max(lengths) >= 20
    spoken = {normalize_text(s) for s in lines}
    assert not spoken & (set(default_sets.train) | set(default_sets.heldout))
    chars = CharTokenizer(DEFAULT_CHARS)
    for s in spoken:
        assert not re.search(r"[\d$£€%]", s) and chars.unknown_symbols(s) == [], s


def test_evaluation_sentences_phonemise_without_unknown_symbols():
    from core.text import DEFAULT_IPA_SYMBOLS, PhonemeTokenizer, TextError

    try:
        tok = PhonemeTokenizer("en-us")
    except TextError as exc:
        pytest.skip(f"no espeak-ng: {exc}")
    lines = [normalize_text(s) for s in EVAL_FILE.read_text(encoding="utf-8").splitlines()]
    ipa = tok.phonemize_batch(lines)
    assert all(ipa) and {c for p in ipa for c in p} <= set(DEFAULT_IPA_SYMBOLS)


@pytest.mark.skipif(not has_pocketsphinx, reason="pocketsphinx (eval extra) is not installed")
def test_every_word_is_in_the_recognizer_dictionary(default_sets):
    """A word the ASR cannot spell would count as an error for every system alike."""
    import pocketsphinx

    dictionary = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    known = {line.split()[0] for line in dictionary.read_text().splitlines() if line.strip()}
    evaluation = EVAL_FILE.read_text(encoding="utf-8").splitlines()
    assert sorted(set(words_of(default_sets.train + default_sets.heldout + evaluation)) - known) == []
    assert sorted(load_lexicon().words() - known) == []


@pytest.mark.skipif(not (has_pocketsphinx and Path("/usr/share/wordnet/data.noun").is_file()),
                    reason="needs WordNet (Debian wordnet-base) and pocketsphinx")
def test_the_word_list_is_what_the_script_writes(tmp_path):
    out = tmp_path / "words.tsv"
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_everyday_words.py"), "--out", str(out)],
                   check=True, capture_output=True, timeout=300)
    assert out.read_bytes() == WORDS_FILE.read_bytes()


def test_flite_reads_the_spoken_numbers_as_written():
    """flite speaks "forty-two" and "forty two" alike, so hyphens from the normaliser are safe."""
    if shutil.which("flite") is None:
        pytest.skip("Debian flite is not installed")

    def phones(text: str) -> str:
        return subprocess.run(["flite", "-ps", "-t", text, "-o", "/dev/null"], capture_output=True, text=True,
                              check=True).stdout.split()

    assert phones("forty-two and seventy-first") == phones("forty two and seventy first")
