"""The sentence generator and the flite corpus builder (``python -m core corpus``)."""

from __future__ import annotations

import json
import random
import re
import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from core.audio import save_wav
from core.cli import main
from core.corpus import (CorpusError, FliteMissing, build_corpus, check_voices, find_flite, list_voices,
                         read_eval_sentences, wav_is_complete)
from core.corpus_text import (HELDOUT_BUCKETS, MAX_WORDS, MIN_WORDS, TEXT_SOURCES, corpus_sentences,
                              is_heldout_text, number_words, random_sentence, text_source, word_count)
from core.data import read_manifest

needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="Debian flite is not installed")


# --------------------------------------------------------------------------- sentences


def test_sentences_are_deterministic_and_prefix_stable():
    a = corpus_sentences(300, 30, seed=3)
    assert a == corpus_sentences(300, 30, seed=3)
    assert corpus_sentences(300, 30, seed=4).train[:20] != a.train[:20]
    # asking for more of one set changes neither the first ones nor the other set
    b = corpus_sentences(500, 10, seed=3)
    assert b.train[:300] == a.train and b.heldout == a.heldout[:10]


def test_sentences_are_varied():
    train = corpus_sentences(3000, 0, seed=0).train
    assert len(set(train)) == 3000
    lengths = [word_count(s) for s in train]
    assert min(lengths) >= MIN_WORDS and max(lengths) <= MAX_WORDS
    assert min(lengths) <= 5 and max(lengths) >= 14  # the whole range is used
    openings = {" ".join(s.split()[:3]) for s in train}
    assert len(openings) > 0.5 * len(train)
    words = Counter(w for s in train for w in re.findall(r"[a-z']+", s.lower()))
    assert len(words) > 450
    ends = Counter(s[-1] for s in train)
    assert set(ends) == {".", "?", "!"} and min(ends.values()) > 0.05 * len(train)
    assert sum("forty" in s or "twenty" in s or "hundred" in s for s in train) > 30  # numbers, spelt out
    assert all(s[0].isupper() for s in train) and not any(re.search(r"\d", s) for s in train)


def test_heldout_is_disjoint_from_training():
    sets = corpus_sentences(4000, 200, seed=1)
    assert len(set(sets.heldout)) == 200
    assert not set(sets.train) & set(sets.heldout)
    assert all(is_heldout_text(s) for s in sets.heldout) and not any(is_heldout_text(s) for s in sets.train)
    # the hash split sends about 1 in HELDOUT_BUCKETS generated sentences to the held-out side
    rng = random.Random(7)
    share = np.mean([is_heldout_text(random_sentence(rng)) for _ in range(4000)])
    assert 0.6 / HELDOUT_BUCKETS < share < 1.4 / HELDOUT_BUCKETS
    assert corpus_sentences(0, 0, seed=1).train == []


def test_grammar_is_the_default_text_and_unchanged():
    assert corpus_sentences(2, 1, seed=0) == corpus_sentences(2, 1, seed=0, text="grammar")
    # pinned before text sources existed: the grammar's first sentences for seed 0 stay the same
    assert corpus_sentences(2, 0, seed=0).train == [
        "How many neighbors are above the field?", "Our blue shiny dancer calmly washes our turtle on Sunday."]


def test_text_sources_validate_their_name():
    assert list(TEXT_SOURCES) == ["grammar", "everyday"]
    assert text_source("everyday").version >= 1
    with pytest.raises(ValueError, match=r"unknown corpus text 'news'; valid: grammar, everyday"):
        corpus_sentences(3, 0, text="news")
    with pytest.raises(CorpusError, match=r"unknown corpus text 'Everyday'; valid: grammar, everyday"):
        build_corpus("unused", sentences=1, text="Everyday")  # refused before flite is looked for


def test_unknown_text_is_a_one_line_usage_error(tmp_path, capsys):
    assert main(["corpus", "--out", str(tmp_path / "c"), "--text", "books"]) == 2
    err = capsys.readouterr().err
    assert "unknown corpus text 'books'; valid: grammar, everyday" in err and err.count("\n") == 1
    assert not (tmp_path / "c").exists()


def test_read_eval_sentences(tmp_path):
    f = tmp_path / "eval.txt"
    f.write_text("# written for evaluation\nIt costs $5.\n\n  Who is there?  \n", encoding="utf-8")
    assert read_eval_sentences(f, ["Something else."]) == ["It costs five dollars.", "Who is there?"]
    with pytest.raises(CorpusError, match=r"eval.txt:2: sentence 'It costs \$5.' is also a training sentence"):
        read_eval_sentences(f, ["It costs five dollars."])
    f.write_text("Hello there.\nHello  there.\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"eval.txt:2: sentence 'Hello  there.' appears twice"):
        read_eval_sentences(f, [])
    f.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="holds no sentences"):
        read_eval_sentences(f, [])
    with pytest.raises(CorpusError, match="cannot read the evaluation sentences"):
        read_eval_sentences(tmp_path / "missing.txt", [])


def test_number_words():
    assert [number_words(n) for n in (0, 7, 13, 20, 42, 100, 305, 999)] == [
        "zero", "seven", "thirteen", "twenty", "forty two", "one hundred", "three hundred and five",
        "nine hundred and ninety nine"]
    with pytest.raises(ValueError):
        number_words(1000)


@pytest.mark.skipif(__import__("importlib").util.find_spec("pocketsphinx") is None,
                    reason="pocketsphinx (eval extra) is not installed")
def test_every_word_is_in_the_recognizer_dictionary():
    """A word the ASR cannot spell would count as an error for every system alike."""
    from pathlib import Path

    import pocketsphinx

    dictionary = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    known = {line.split()[0] for line in dictionary.read_text().splitlines() if line.strip()}
    sets = corpus_sentences(4000, 300, seed=0)
    words = {w for s in sets.train + sets.heldout for w in re.findall(r"[a-z']+", s.lower())}
    assert sorted(words - known) == []


# --------------------------------------------------------------------------- files


def test_wav_is_complete(tmp_path):
    good = save_wav(tmp_path / "a.wav", np.zeros(2400, np.float32) + 0.1, 24000)
    assert wav_is_complete(good)
    assert not wav_is_complete(save_wav(tmp_path / "b.wav", np.zeros(1600, np.float32), 16000))  # other rate
    data = good.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    assert not wav_is_complete(tmp_path / "cut.wav")
    (tmp_path / "junk.wav").write_bytes(b"not a wav file at all")
    assert not wav_is_complete(tmp_path / "junk.wav")
    assert not wav_is_complete(tmp_path / "missing.wav")


def test_check_voices():
    assert check_voices(["slt", "rms", "slt"], ["slt", "rms", "awb"]) == ["slt", "rms"]
    with pytest.raises(CorpusError, match=r"unknown flite voice 'bdl'; valid: slt, rms, awb"):
        check_voices(["bdl"], ["slt", "rms", "awb"])


def test_missing_flite_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no flite on PATH
    with pytest.raises(FliteMissing, match="apt-get install flite"):
        find_flite()
    assert main(["corpus", "--out", str(tmp_path / "c"), "--sentences", "3"]) == 2
    err = capsys.readouterr().err
    assert "apt-get install flite" in err and err.count("\n") == 1
    assert not (tmp_path / "c").exists()


# --------------------------------------------------------------------------- a tiny build with flite


@needs_flite
def test_list_voices():
    voices = list_voices()
    assert {"slt", "rms", "awb", "kal16"} <= set(voices) and "awb_time" not in voices


@needs_flite
def test_tiny_corpus_build_resume_and_repair(tmp_path, capsys):
    out = tmp_path / "corpus"
    report = build_corpus(out, sentences=3, voices=["slt", "kal16"], seed=0, heldout=1, jobs=2, progress=False)
    assert (report.rendered, report.kept) == (8, 0)

    rows = read_manifest(out / "manifest.csv")
    assert len(rows) == 6 and {r.speaker for r in rows} == {"slt", "kal16"}
    assert rows[0].audio_path == out / "wavs" / "slt" / "s00000.wav" and rows[0].id == "slt_s00000"
    for r in rows:
        info = sf.info(str(r.audio_path))
        assert (info.samplerate, info.channels) == (24000, 1) and info.duration > 0.5
    held = read_manifest(out / "heldout_manifest.csv")
    heldout_lines = (out / "heldout.txt").read_text().splitlines()
    assert len(held) == 2 and heldout_lines == [f"h0000|{held[0].text}"]
    assert held[0].text not in {r.text for r in rows}
    assert (out / "sentences.txt").read_text().splitlines()[0] == f"s00000|{rows[0].text}"

    # a second run keeps every file
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    again = build_corpus(out, sentences=3, voices=["slt", "kal16"], seed=0, heldout=1, progress=False)
    assert (again.rendered, again.kept) == (0, 8)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == mtimes

    # a truncated file and a stale temporary file are repaired; the CLI reports what it did
    victim = out / "wavs" / "kal16" / "s00001.wav"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3])
    stale = victim.parent / ".s00002.wav.abc123.tmp"
    stale.write_bytes(b"half")
    assert main(["corpus", "--out", str(out), "--sentences", "3", "--voices", "slt,kal16", "--heldout", "1",
                 "--quiet"]) == 0
    assert "rendered 1 wavs, kept 7" in capsys.readouterr().out
    assert victim.read_bytes() == data and not stale.exists()

    # another seed or another text in the same folder is refused
    with pytest.raises(CorpusError, match="seed 0, not 1"):
        build_corpus(out, sentences=3, voices=["slt"], seed=1, heldout=1, progress=False)
    with pytest.raises(CorpusError, match="text 'grammar', not 'everyday'"):
        build_corpus(out, sentences=3, voices=["slt"], seed=0, heldout=1, progress=False, text="everyday")
    settings = json.loads((out / "corpus.json").read_text())
    assert (settings["text"], settings["text_version"]) == ("grammar", 1)


@needs_flite
def test_everyday_corpus_and_old_settings(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert main(["corpus", "--out", str(out), "--text", "everyday", "--sentences", "2", "--heldout", "1",
                 "--voices", "slt", "--quiet"]) == 0
    assert "2 training + 1 held-out everyday sentences" in capsys.readouterr().out
    settings = json.loads((out / "corpus.json").read_text())
    assert (settings["text"], settings["text_version"]) == ("everyday", text_source("everyday").version)
    sets = corpus_sentences(2, 1, seed=0, text="everyday")
    assert [r.text for r in read_manifest(out / "manifest.csv")] == sets.train
    assert [r.text for r in read_manifest(out / "heldout_manifest.csv")] == sets.heldout

    # evaluation sentences: recorded beside the corpus; a changed line is recorded again
    sentences = tmp_path / "eval.txt"
    sentences.write_text("See you at 7:30!\nWho is there?\n", encoding="utf-8")
    report = build_corpus(out, sentences=2, heldout=1, voices=["slt"], progress=False, text="everyday",
                          eval_sentences=sentences)
    assert (report.rendered, report.kept, report.evaluation) == (2, 3, 2)
    assert (out / "eval.txt").read_text().splitlines() == ["e0000|See you at seven thirty!", "e0001|Who is there?"]
    assert [(r.id, r.text) for r in read_manifest(out / "eval_manifest.csv")] == [
        ("slt_e0000", "See you at seven thirty!"), ("slt_e0001", "Who is there?")]
    sentences.write_text("See you at 7:30!\nWhere is everybody?\n", encoding="utf-8")
    report = build_corpus(out, sentences=2, heldout=1, voices=["slt"], progress=False, text="everyday",
                          eval_sentences=sentences)
    assert (report.rendered, report.kept) == (1, 4)
    assert json.loads((out / "corpus.json").read_text())["eval_sentences"]["count"] == 2
    sentences.write_text(sets.train[0] + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="is also a training sentence"):
        build_corpus(out, sentences=2, heldout=1, voices=["slt"], progress=False, text="everyday",
                     eval_sentences=sentences)

    # a folder written before text sources (only "grammar_version") is the grammar at that version
    old = tmp_path / "old"
    old.mkdir()
    (old / "corpus.json").write_text(json.dumps({"seed": 0, "grammar_version": 1}))
    with pytest.raises(CorpusError, match="text 'grammar', not 'everyday'"):
        build_corpus(old, sentences=1, voices=["slt"], heldout=0, progress=False, text="everyday")
    report = build_corpus(old, sentences=1, voices=["slt"], heldout=0, progress=False)
    assert (report.rendered, report.text) == (1, "grammar")


@needs_flite
def test_unknown_voice_lists_the_available_ones(tmp_path, capsys):
    assert main(["corpus", "--out", str(tmp_path / "c"), "--voices", "slt,bdl"]) == 2
    err = capsys.readouterr().err
    assert "unknown flite voice 'bdl'; valid:" in err and "slt" in err and "kal16" in err
    assert err.count("\n") == 1
