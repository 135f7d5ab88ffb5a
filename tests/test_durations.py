"""External token durations (core.durations): parsing, TextGrid frames against the
closed form, the fit to the frame count, the model's conditioning on given durations,
and training from a manifest column and from TextGrids without alignment search."""

from __future__ import annotations

import csv
import json
import math

import pytest
import soundfile as sf
import torch

from core.audio import mel_frames
from core.config import AudioConfig, ConfigError, merge
from core.data import DataError, read_manifest
from core.durations import DurationError, fit_to_frames, parse_durations, textgrid_durations, tolerance
from core.text import TextFrontEnd, build_tokenizer
from core.train import Trainer


def write_textgrid(path, intervals, tier="phones", end=None):
    from praatio import textgrid
    from praatio.data_classes.interval_tier import IntervalTier

    end = end if end is not None else intervals[-1][1]
    grid = textgrid.Textgrid()
    grid.addTier(IntervalTier(tier, [iv for iv in intervals if iv[2]], 0, end))
    grid.save(str(path), format="long_textgrid", includeBlankSpaces=True)


def test_parse_durations():
    assert parse_durations("3 7 0 12") == (3, 7, 0, 12) == parse_durations("3,7, 0 ,12")
    for bad, message in (("", "empty"), ("3 x", "whole frame counts"), ("3 -1", ">= 0"), ("2.5", "whole")):
        with pytest.raises(DurationError, match=message):
            parse_durations(bad)


def test_fit_to_frames():
    assert fit_to_frames((3, 4, 5), 3, 12) == (3, 4, 5)
    assert fit_to_frames((3, 4, 5, 0), 4, 14) == (3, 4, 7, 0)  # the last token with frames absorbs +2
    assert fit_to_frames((3, 4, 5), 3, 10) == (3, 4, 3)
    assert tolerance(100) == 3 and tolerance(1000) == 20
    with pytest.raises(DurationError, match="3 durations for 4 tokens"):
        fit_to_frames((3, 4, 5), 4, 12)
    with pytest.raises(DurationError, match="sum to 12 frames but the audio has 20"):
        fit_to_frames((3, 4, 5), 3, 20)
    with pytest.raises(DurationError, match="cannot absorb"):
        fit_to_frames((10, 1), 2, 9)


def test_textgrid_frames_closed_form(tmp_path):
    audio = AudioConfig()  # 24 kHz, hop 256: 93.75 frames per second
    path = tmp_path / "u.TextGrid"
    # the middle interval is empty (a silence): it still covers time, so it is a token
    write_textgrid(path, [(0.0, 0.1, "h"), (0.1, 0.25, ""), (0.25, 0.5, "i")])
    # boundaries round(t * 93.75): 0, 9.375 -> 9, 23.4375 -> 23, 46.875 -> 47
    assert textgrid_durations(path, "phones", audio) == (9, 14, 24)
    with pytest.raises(DurationError, match="no tier 'words'; tiers: phones"):
        textgrid_durations(path, "words", audio)
    bad = tmp_path / "bad.TextGrid"
    bad.write_text("not a textgrid")
    with pytest.raises(DurationError, match="cannot read TextGrid"):
        textgrid_durations(bad, "phones", audio)


def test_manifest_column_and_its_errors(tmp_path):
    (tmp_path / "m.csv").write_text("audio_path,text,durations\na.wav,hi,3 4\nb.wav,yo,\n")
    rows = read_manifest(tmp_path / "m.csv")
    assert rows[0].durations == (3, 4) and rows[1].durations is None
    (tmp_path / "bad.csv").write_text("audio_path,text,durations\na.wav,hi,3 x\n")
    with pytest.raises(DataError, match=r"bad.csv:2: durations must be whole frame counts"):
        read_manifest(tmp_path / "bad.csv")
    (tmp_path / "m.jsonl").write_text('{"audio_path": "a.wav", "text": "hi", "durations": [2, 5]}\n')
    assert read_manifest(tmp_path / "m.jsonl")[0].durations == (2, 5)


def test_conditioning_on_given_durations_skips_the_search(tiny_cfg, monkeypatch):
    from core.models import tts as tts_module
    from core.models.tts import TTSModel

    model = TTSModel(tiny_cfg.model).eval()
    tokens = torch.tensor([[5, 6, 7], [8, 9, 0]])
    token_mask = tokens > 0
    durations = torch.tensor([[2, 0, 3], [4, 1, 0]])
    mel_mask = torch.arange(5)[None] < torch.tensor([[5], [5]])
    x1 = torch.randn(2, model.n_mels, 5)
    monkeypatch.setattr(tts_module, "monotonic_alignment_search", lambda *a: (_ for _ in ()).throw(AssertionError))
    cond = model.conditioning(tokens, token_mask, None, x1, mel_mask, durations=durations)
    assert torch.equal(cond.durations, durations)
    # frame t belongs to token l for t in [sum d_<l, sum d_<=l): item 0 -> tokens 0,0,2,2,2
    assert cond.attn[0].argmax(0).tolist() == [0, 0, 2, 2, 2] and cond.attn[1].argmax(0).tolist() == [0, 0, 0, 0, 1]
    enc = model.encode(tokens, token_mask, None)
    torch.testing.assert_close(cond.cond, model.expand(enc.hidden, cond.attn))
    with pytest.raises(ValueError, match="durations sum to"):
        model.conditioning(tokens, token_mask, None, x1, mel_mask, durations=torch.tensor([[2, 0, 2], [4, 1, 0]]))


def corpus_with_durations(tiny_corpus, tmp_path, how: str):
    """Copy the tiny corpus's manifest with uniform durations for every row (``how``:
    "manifest": a durations column; "textgrid": one TextGrid per row), plus one row whose
    durations do not fit (too few)."""
    audio = AudioConfig()
    front = TextFrontEnd(merge_cfg_text(), build_tokenizer(merge_cfg_text()))
    rows = list(csv.DictReader(open(tiny_corpus)))
    grids = tmp_path / "grids"
    grids.mkdir()
    out_rows = []
    for k, row in enumerate(rows):
        wav = tiny_corpus.parent / row["audio_path"]
        n_frames = mel_frames(sf.info(str(wav)).frames, audio)
        n_tok = len(front(row["text"]))
        if k == 0:
            n_tok -= 1  # this row's durations miss a token: skipped with the reason
        base, extra = divmod(n_frames, n_tok)
        d = [base + (1 if i < extra else 0) for i in range(n_tok)]
        uid = f"u{k:03d}"
        out_rows.append({"audio_path": str(wav), "text": row["text"], "speaker": row["speaker"], "id": uid,
                         "durations": " ".join(map(str, d))})
        seconds = n_frames * audio.hop_length / audio.sample_rate
        edges = [seconds * sum(d[:i]) / n_frames for i in range(n_tok + 1)]
        write_textgrid(grids / f"{uid}.TextGrid", [(a, b, "x") for a, b in zip(edges[:-1], edges[1:])])
    manifest = tmp_path / "m.csv"
    fields = ["audio_path", "text", "speaker", "id"] + (["durations"] if how == "manifest" else [])
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(out_rows)
    return manifest, grids


def merge_cfg_text():
    from core.config import preset

    return preset("tiny").text


@pytest.mark.parametrize("how", ["manifest", "textgrid"])
def test_training_from_external_durations_never_searches(tmp_path, tiny_corpus, how, monkeypatch):
    from conftest import tiny_config
    from core.models import tts as tts_module

    manifest, grids = corpus_with_durations(tiny_corpus, tmp_path, how)
    training = {"durations": how, **({"textgrid_dir": str(grids)} if how == "textgrid" else {})}
    cfg = tiny_config(manifest, steps=2, checkpoint_every=2, val_every=2, **training)
    monkeypatch.setattr(tts_module, "monotonic_alignment_search", lambda *a: (_ for _ in ()).throw(
        AssertionError("alignment search ran although durations were given")))
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    trainer.fit()
    skipped: dict = {}
    for part in (trainer.data.train_set, trainer.data.val_set):
        for reason, n in (part.dataset.report.skipped.items() if part is not None else ()):
            skipped[reason] = skipped.get(reason, 0) + n
    assert skipped == {"durations do not fit": 1}  # the row with a token too few; every other row trained
    rows = [r for r in map(json.loads, open(tmp_path / "run" / "metrics.jsonl")) if "loss" in r]
    assert len(rows) == 2 and all(math.isfinite(r["duration"]) and math.isfinite(r["prior"]) for r in rows)


def test_config_checks_for_external_durations(tiny_corpus, tmp_path):
    from conftest import tiny_config

    with pytest.raises(ConfigError, match="needs training.textgrid_dir"):
        tiny_config(tiny_corpus, durations="textgrid").validate()
    with pytest.raises(ConfigError, match="textgrid_dir is set but training.durations is 'mas'"):
        tiny_config(tiny_corpus, textgrid_dir="x").validate()
    with pytest.raises(ConfigError, match="unknown training.durations"):
        tiny_config(tiny_corpus, durations="mfa")
    with pytest.raises(ConfigError, match="applies to model.family 'flow' only"):
        merge(tiny_config(tiny_corpus), {"model": {"family": "lewm"}, "training": {"durations": "manifest"}})
    # every row without durations: the run stops with the counted reason
    with pytest.raises(ConfigError, match="no durations: "):
        Trainer(tiny_config(tiny_corpus, durations="manifest"), tmp_path / "r", progress=False)
