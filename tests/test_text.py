"""Tests for core.text: normaliser, tokenizers, front end and sentence splitting."""

import importlib.util
import json
import random
import shutil
import subprocess
import sys

import pytest

from core.config import TextConfig
from core.text import (BLANK_ID, DEFAULT_CHARS, PAD_ID, UNK_ID, ByteTokenizer, CharTokenizer,
                       PhonemeTokenizer, TextError, TextFrontEnd, build_tokenizer, intersperse,
                       normalize_text, number_to_words, ordinal_to_words, split_sentences,
                       tokenizer_from_dict, year_to_words)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

UNICODE_SAMPLES = [
    "Hello, world! 123 (ASCII) ~`^|",
    "héllo wörld, ñandú, Ærøskøbing",
    "日本語のテキストと中文",
    "👩‍👩‍👧 family 🙂 \U0001f680",
    "e\u0301 a\u0308 combining marks",
    "ctrl \x00\x01\x07\x1b\x7f\t\r\n end",
    "مرحبا بالعالم",
    "zero\u200bwidth \ufeff bom \U0010ffff",
    "lone surrogate \ud800 here",
]


# --------------------------------------------------------------------------- normaliser

# Expected outputs written by hand from the rules documented in normalize_text
# (American English cardinals without "and", years read in pairs).
NORMALIZER_CASES = [
    ("Mr. Smith met Dr. Jones.", "Mister Smith met Doctor Jones."),
    ("Mrs. Brown lives on Main St. near St. Paul.", "Misses Brown lives on Main Street near Saint Paul."),
    ("apples, pears, etc. and more, e.g. plums", "apples, pears, et cetera and more, for example plums"),
    ("cats vs. dogs", "cats versus dogs"),
    ("It costs $5.", "It costs five dollars."),
    ("$1.01 or $0.50 or £3", "one dollar and one cent or fifty cents or three pounds"),
    ("$2.5 million", "two point five million dollars"),
    ("a 50% rise, 3.5% more", "a fifty percent rise, three point five percent more"),
    ("the 21st, 2nd, 3rd, 12th and 100th", "the twenty-first, second, third, twelfth and one hundredth"),
    ("In 1984 and 1905 and 2000 and 2008 and 2024",
     "In nineteen eighty-four and nineteen oh five and two thousand and two thousand eight and twenty twenty-four"),
    ("the 1990s", "the nineteen nineties"),
    ("pi is 3.14", "pi is three point one four"),
    ("at 10:30, 3:05 or 7:00", "at ten thirty, three oh five or seven o'clock"),
    ("1,234,567 people", "one million two hundred thirty-four thousand five hundred sixty-seven people"),
    ("3000000000 stars", "three billion stars"),
    ("-5 degrees", "minus five degrees"),
    ("Tom & Jerry @ home", "Tom and Jerry at home"),
    ("  lots \t of\n\nspace  ", "lots of space"),
    ("\uff11\uff12 full-width", "twelve full-width"),  # NFKC: full-width digits -> "12"
    ("agent 007", "agent zero zero seven"),
    ("\u201cquoted\u201d it\u2019s", "\"quoted\" it's"),
    ("½ cup", "one half cup"),
    ("No. 7 vs. No one", "number seven versus No one"),
]


@pytest.mark.parametrize("raw, expected", NORMALIZER_CASES)
def test_normalize_table(raw, expected):
    assert normalize_text(raw) == expected


def test_number_words_pinned():
    assert number_to_words(0) == "zero"
    assert number_to_words(15) == "fifteen"
    assert number_to_words(40) == "forty"
    assert number_to_words(101) == "one hundred one"
    assert number_to_words(999_999) == "nine hundred ninety-nine thousand nine hundred ninety-nine"
    assert number_to_words(7_000_000_001) == "seven billion one"
    assert number_to_words(2 * 10**12 + 5) == "two trillion five"
    assert number_to_words(10**15) == "one " + "zero " * 14 + "zero"
    assert ordinal_to_words(1) == "first" and ordinal_to_words(90) == "ninetieth"
    assert ordinal_to_words(1_000_008) == "one million eighth"
    assert year_to_words(1066) == "ten sixty-six" and year_to_words(1900) == "nineteen hundred"
    assert year_to_words(3000) == "three thousand"


def test_normalize_other_language_only_unicode_and_whitespace():
    assert normalize_text("Dr.  5 \u00a0 %\uff21 &", "de") == "Dr. 5 %A &"
    assert normalize_text("1984", "fr-fr") == "1984"
    assert normalize_text("1984", "en-gb") == "nineteen eighty-four"


@pytest.mark.parametrize("text", UNICODE_SAMPLES)
def test_normalize_never_crashes(text):
    out = normalize_text(text)
    assert out == out.strip() and "  " not in out and "\x00" not in out


# --------------------------------------------------------------------------- byte tokenizer


@pytest.mark.parametrize("text", UNICODE_SAMPLES)
def test_bytes_round_trip(text):
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert tok.vocab_size == 259
    assert all(3 <= i <= 258 for i in ids)
    assert tok.decode(ids) == text


def test_bytes_layout_and_specials():
    tok = ByteTokenizer()
    assert tok.encode("A\u00e9") == [0x41 + 3, 0xC3 + 3, 0xA9 + 3]  # UTF-8 of "é" is C3 A9
    assert tok.decode([PAD_ID, 0x41 + 3, BLANK_ID, 0x42 + 3]) == "AB"
    assert tok.decode([UNK_ID]) == "\ufffd"
    assert tok.decode([0xC3 + 3]) == "\ufffd"  # a truncated sequence decodes best effort
    assert (tok.pad_id, tok.blank_id, tok.unk_id) == (0, 1, 2)


# --------------------------------------------------------------------------- char tokenizer


def test_chars_encode_decode_and_unknown():
    tok = CharTokenizer(list("abc "))
    assert tok.vocab_size == 7
    assert tok.encode("ab c") == [3, 4, 6, 5]
    assert tok.encode("axb") == [3, UNK_ID, 4]
    assert tok.decode(tok.encode("cab a")) == "cab a"
    assert tok.decode([3, 99, PAD_ID, BLANK_ID]) == "a\ufffd"


@pytest.mark.parametrize("text", UNICODE_SAMPLES)
def test_chars_any_unicode(text):
    tok = CharTokenizer(DEFAULT_CHARS)
    ids = tok.encode(text)
    assert len(ids) == len(text) and all(0 <= i < tok.vocab_size for i in ids)
    expected = "".join(c if c in DEFAULT_CHARS else "\ufffd" for c in text)
    assert tok.decode(ids) == expected
    fitted = CharTokenizer.fit([text])
    assert fitted.decode(fitted.encode(text)) == text and UNK_ID not in fitted.encode(text)


def test_chars_fit_is_sorted_and_deterministic():
    corpus = ["the cat", "a dog!", "Zebra \u00e9"]
    a = CharTokenizer.fit(corpus)
    b = CharTokenizer.fit(reversed(corpus))
    assert a.symbols == b.symbols == sorted(set("".join(corpus)))
    assert CharTokenizer.fit(["aab"], min_count=2).symbols == ["a"]


def test_chars_rejects_bad_symbol_lists():
    with pytest.raises(TextError, match="one character"):
        CharTokenizer(["a", "bc"])
    with pytest.raises(TextError, match="more than once"):
        CharTokenizer(["a", "b", "a"])


# --------------------------------------------------------------------------- serialisation


@pytest.mark.parametrize("tok", [ByteTokenizer(), CharTokenizer(list("xyz")), CharTokenizer(DEFAULT_CHARS)])
def test_to_dict_round_trip(tok):
    d = json.loads(json.dumps(tok.to_dict()))
    back = tokenizer_from_dict(d)
    assert type(back) is type(tok) and back == tok
    assert back.encode("xyz!") == tok.encode("xyz!")


def test_from_dict_errors():
    with pytest.raises(TextError, match="unknown tokenizer type 'bpe'; valid: bytes, chars, phonemes"):
        tokenizer_from_dict({"type": "bpe"})
    with pytest.raises(TextError, match="unknown key 'symbol'"):
        tokenizer_from_dict({"type": "chars", "symbol": ["a"]})
    with pytest.raises(TextError, match="vocab_size"):
        tokenizer_from_dict({"type": "chars", "symbols": ["a"], "vocab_size": 10})
    with pytest.raises(TextError, match="symbols"):
        tokenizer_from_dict({"type": "chars"})


# --------------------------------------------------------------------------- intersperse / build


def test_intersperse_layout():
    assert intersperse([5, 6, 7]) == [1, 5, 1, 6, 1, 7, 1]
    assert intersperse([5], blank=9) == [9, 5, 9]
    assert intersperse([]) == [1]


def test_build_tokenizer():
    assert isinstance(build_tokenizer(TextConfig(tokenizer="bytes")), ByteTokenizer)
    chars = build_tokenizer(TextConfig(tokenizer="chars"))
    assert isinstance(chars, CharTokenizer) and chars.symbols == DEFAULT_CHARS
    assert build_tokenizer(TextConfig(tokenizer="chars"), symbols=["q"]).symbols == ["q"]
    with pytest.raises(TextError, match="unknown tokenizer 'words'; valid: bytes, chars, phonemes"):
        build_tokenizer(TextConfig(tokenizer="words"))  # type: ignore[arg-type]
    with pytest.raises(TextError, match="no symbol list"):
        build_tokenizer(TextConfig(tokenizer="bytes"), symbols=["a"])


# --------------------------------------------------------------------------- front end


def _front(**kw):
    cfg = TextConfig(**kw)
    return TextFrontEnd(cfg, build_tokenizer(cfg))


@pytest.mark.parametrize("text", ["", "   ", "\n\t \u3000"])
def test_front_end_rejects_empty(text):
    with pytest.raises(TextError, match="empty"):
        _front()(text)


def test_front_end_limit_and_type():
    front = _front(max_chars=10)
    assert front("a" * 10)
    with pytest.raises(TextError, match=r"11 characters.*limit of 10 \(text.max_chars\)"):
        front("a" * 11)
    with pytest.raises(TextError, match="must be a string"):
        front(b"bytes")  # type: ignore[arg-type]


def test_front_end_pipeline():
    plain = _front(tokenizer="chars", normalize=False)
    assert plain.tokenizer.decode(plain("Dr. 5")) == "Dr. 5"
    norm = _front(tokenizer="chars")
    ids = norm("Dr.  5")
    assert norm.tokenizer.decode(ids) == "Doctor five"
    blanks = _front(tokenizer="chars", intersperse_blank=True)
    assert blanks("Dr.  5") == intersperse(ids)
    assert blanks.encode_batch(["Dr.  5", "hi"]) == [blanks("Dr.  5"), blanks("hi")]
    with pytest.raises(TextError, match="'bytes' but a 'chars' tokenizer"):
        TextFrontEnd(TextConfig(tokenizer="bytes"), CharTokenizer(["a"]))


@pytest.mark.parametrize("text", UNICODE_SAMPLES)
def test_front_end_any_unicode(text):
    front = _front(tokenizer="bytes", intersperse_blank=True)
    ids = front(text)
    assert ids[0] == BLANK_ID and all(0 <= i < 259 for i in ids)


# --------------------------------------------------------------------------- split_sentences


def _squash(s):
    return "".join(s.split())


def test_split_sentences_examples():
    text = ("Mr. Smith went home. He was tired! Was he? Yes; very, very tired, said the man "
            "who had walked all day.\nNew line here.")
    assert split_sentences(text, 30) == [
        "Mr. Smith went home.", "He was tired! Was he? Yes;", "very, very tired,",
        "said the man who had walked", "all day.", "New line here."]
    assert split_sentences(text, 1000) == [text.split("\n")[0], "New line here."]
    assert split_sentences("a" * 25 + " bb", 10) == ["a" * 10, "a" * 10, "a" * 5, "bb"]  # a cut word is not packed
    assert split_sentences("  \n ", 5) == []
    with pytest.raises(ValueError, match="max_chars"):
        split_sentences("x", 0)


def test_split_sentences_properties():
    rng = random.Random(0)
    words = ["a", "the", "Mr.", "cat,", "sat.", "really?", "yes!", "no;", "x" * 17, "é", "—", "dog:", "\n", "\"hi.\""]
    for trial in range(300):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 60)))
        max_chars = rng.randint(1, 40)
        pieces = split_sentences(text, max_chars)
        assert all(0 < len(p) <= max_chars and p == p.strip() for p in pieces), (text, max_chars)
        assert _squash("".join(pieces)) == _squash(text)


# --------------------------------------------------------------------------- phonemes


def test_phonemes_missing_espeak_names_the_packages(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no espeak-ng program on the PATH ...
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # ... and no espeakng-loader package
    with pytest.raises(TextError, match=r"pip install phonemizer espeakng-loader .*missing: espeakng_loader"):
        PhonemeTokenizer()
    with pytest.raises(TextError, match="apt-get install espeak-ng"):
        build_tokenizer(TextConfig(tokenizer="phonemes"))
    with pytest.raises(TextError, match="needs espeak-ng"):
        PhonemeTokenizer(espeak="program")
    with pytest.raises(TextError, match="unknown espeak-ng source 'system'; valid: auto, library, program"):
        PhonemeTokenizer(espeak="system")


needs_library = pytest.mark.skipif(importlib.util.find_spec("espeakng_loader") is None
                                   or importlib.util.find_spec("phonemizer") is None,
                                   reason="phonemizer / espeakng-loader not installed")


@needs_library
def test_phonemes_from_the_pip_library_pinned():
    tok = PhonemeTokenizer("en-us", espeak="library")
    assert tok.espeak.name == "library"
    if tok.espeak.version == "1.52.0":  # the espeak-ng inside espeakng-loader 0.2.4 (constraints.txt)
        assert tok.phonemize("Hello, world!") == "həlˈoʊ, wˈɜːld!"
        assert tok.phonemize("It cost forty two dollars.") == "ɪt kˈɔst fˈɔːɹɾi tˈuː dˈɑːlɚz."
    assert PhonemeTokenizer().espeak.name == "library"  # auto prefers the pinned library
    with pytest.raises(TextError, match="unknown espeak-ng language 'xx-nope'; valid: .*en-us"):
        PhonemeTokenizer("xx-nope", espeak="library")
    d = tok.to_dict()
    assert (d["espeak"], d["espeak_version"]) == ("library", tok.espeak.version)
    assert tokenizer_from_dict(json.loads(json.dumps(d))) == tok


@needs_library
def test_a_checkpoint_made_with_another_espeak_warns(caplog):
    d = dict(PhonemeTokenizer().to_dict(), espeak="program", espeak_version="1.49.0")
    with caplog.at_level("WARNING", logger="core.text"):
        tokenizer_from_dict(d)
    assert "made by espeak-ng 1.49.0 (program)" in caplog.text


@needs_espeak
def test_phonemes_ipa_pinned():
    tok = PhonemeTokenizer("en-us", espeak="program")
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    ipa = tok.phonemize("Hello, world!")
    if "1.51" in version:  # printed by espeak-ng 1.51 (Debian) on the machine these tests were written on
        assert ipa == "həlˈoʊ, wˈɜːld!"
    assert ipa.startswith("h") and "l" in ipa and "ˈ" in ipa and ipa.endswith("!") and ", " in ipa
    ids = tok.encode("Hello, world!")
    assert tok.decode(ids) == ipa and UNK_ID not in ids


@pytest.mark.parametrize("source", [pytest.param("program", marks=needs_espeak),
                                    pytest.param("library", marks=needs_library)])
def test_phonemes_batch_matches_single_and_keeps_punctuation(source):
    tok = PhonemeTokenizer(espeak=source)
    texts = ["The quick brown fox; jumps over the lazy dog.", "hello—world", "\"Quoted\" (paren)?",
             "she sells sea shells", "", "hello", "x \u2013 y", "hello...world"]
    # espeak-ng prints two lines for the last two (a clause break inside one run): the batch
    # must notice the line count and still line every text up with its own IPA
    batch = tok.phonemize_batch(texts)
    assert batch == [tok.phonemize(t) for t in texts]
    assert batch[6].startswith("ˈɛks") and batch[7].startswith("həlˈoʊ")
    assert batch[0].count(";") == 1 and batch[0].endswith(".") and batch[4] == ""
    assert "—" in batch[1] and batch[2].startswith('"') and batch[2].endswith(")?")
    for ids in tok.encode_batch(texts[:4]):  # common English IPA is all in the default symbols
        assert ids and UNK_ID not in ids


@needs_espeak
@pytest.mark.parametrize("text", UNICODE_SAMPLES)
def test_phonemes_any_unicode(text):
    tok = PhonemeTokenizer()
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert len(tok.decode(ids)) == len(ids)


@needs_espeak
def test_phonemes_unknown_symbols_language_and_round_trip():
    tok = PhonemeTokenizer(symbols=list("hl"))
    assert tok.encode("hello")[0] == 3 and UNK_ID in tok.encode("hello")
    back = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert back == tok and back.language == "en-us"
    with pytest.raises(TextError, match="unknown espeak-ng language 'xx-nope'; valid: .*en-us"):
        PhonemeTokenizer("xx-nope")
    front = TextFrontEnd(TextConfig(tokenizer="phonemes"), PhonemeTokenizer())
    assert front.tokenizer.decode(front("Dr. 5")) == front.tokenizer.phonemize("Doctor five")


@needs_library
def test_library_phonemizer_logs_no_word_count_warnings(caplog):
    """phonemizer's words_mismatch="ignore" still logs a summary line per call; a
    training run on 12000 clips logged thousands of them.  Nothing at WARNING now."""
    tok = PhonemeTokenizer("en-us", espeak="library")
    with caplog.at_level("DEBUG"):
        # "3 p.m." and "U.S." phonemise to a different word count than the text has
        ipa = tok.phonemize_batch(["It is 3 p.m. in the U.S.", "Twenty-one, I'd say."])
    assert all(ipa)
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text
