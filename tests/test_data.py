"""Tests for core.data: readers, scan/skip report, mel cache, collate, bucket sampler, split.

Every dataset is built on the fly in tmp_path with soundfile (short sines/noise at
16 / 22.05 / 24 kHz, mono and stereo).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from core.audio import load_wav, mel_spectrogram
from core.config import AudioConfig
from core.data import (Batch, BucketBatchSampler, DataError, Item, LoadReport, MelCache, TTSDataset, Utterance,
                       collate, read_dataset, read_ljspeech, read_manifest, speaker_list, split_validation)

torch.set_num_threads(1)
AUDIO = AudioConfig()


def encode(text: str) -> list[int]:
    return [b + 1 for b in text.encode("utf-8")]


def write_wav(path: Path, seconds: float, rate: int = 24000, channels: int = 1, freq: float = 220.0,
              seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)
    data = np.stack([mono, 0.5 * mono], axis=1)[:, :channels] if channels > 1 else mono
    sf.write(str(path), data.astype(np.float32), rate)
    return path


# --------------------------------------------------------------------------- readers


def make_ljspeech(root: Path) -> Path:
    write_wav(root / "wavs" / "LJ001.wav", 0.3, 22050)
    write_wav(root / "wavs" / "LJ002.wav", 0.4, 22050, channels=2)
    write_wav(root / "wavs" / "LJ003.wav", 0.2, 22050)
    (root / "metadata.csv").write_text(
        "LJ001|Printing, in the 1st sense|Printing, in the first sense\n"
        "LJ002|He said \"no\"|\n"
        "\n"
        "LJ003\n", encoding="utf-8")
    return root


def test_read_ljspeech_prefers_normalized_text(tmp_path):
    root = make_ljspeech(tmp_path / "lj")
    rows = read_ljspeech(root)
    assert [u.id for u in rows] == ["LJ001", "LJ002", "LJ003"]
    assert rows[0].text == "Printing, in the first sense"
    assert rows[1].text == 'He said "no"'  # empty normalized column falls back to the text
    assert rows[2].text == ""  # no text: kept as a row, the dataset skips it as "empty text"
    assert rows[0].audio_path == root / "wavs" / "LJ001.wav"
    assert {u.speaker for u in rows} == {""}
    assert read_dataset(root) == rows
    with pytest.raises(DataError, match="metadata.csv"):
        read_ljspeech(tmp_path)


def test_read_manifest_csv_and_jsonl(tmp_path):
    write_wav(tmp_path / "a" / "x.wav", 0.3, 16000)
    absolute = write_wav(tmp_path / "elsewhere" / "y.wav", 0.3, 24000)
    (tmp_path / "m.csv").write_text(
        "audio_path,text,speaker,duration\n"
        "a/x.wav,hello there,bob,0.3\n"
        f"{absolute},\"hi, you\",alice,0.3\n", encoding="utf-8")
    rows = read_manifest(tmp_path / "m.csv")
    assert rows == [Utterance("a/x", tmp_path / "a" / "x.wav", "hello there", "bob"),
                    Utterance(str(absolute.with_suffix("")), absolute, "hi, you", "alice")]
    lines = [{"audio_path": "a/x.wav", "text": "hello", "speaker": "bob", "id": "u1"},
             {"audio_path": "a/x.wav", "text": "again"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n\n", encoding="utf-8")
    rows = read_dataset(tmp_path / "m.jsonl")
    assert rows == [Utterance("u1", tmp_path / "a" / "x.wav", "hello", "bob"),
                    Utterance("a/x", tmp_path / "a" / "x.wav", "again", "")]
    assert speaker_list(rows) == ["", "bob"]


def test_manifest_errors_name_what_is_wrong(tmp_path):
    (tmp_path / "bad.csv").write_text("path,transcript\nx.wav,hi\n", encoding="utf-8")
    with pytest.raises(DataError, match="audio_path, text; columns found: path, transcript"):
        read_manifest(tmp_path / "bad.csv")
    (tmp_path / "bad.jsonl").write_text('{"audio_path": "x.wav"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl:1: missing required column\(s\) text; columns found: audio_path"):
        read_manifest(tmp_path / "bad.jsonl")
    (tmp_path / "blank.csv").write_text("audio_path,text\n,hello\n", encoding="utf-8")
    [row] = read_manifest(tmp_path / "blank.csv")  # an empty path is a row the dataset skips
    assert row.id.endswith("blank.csv:2") and row.audio_path == tmp_path
    (tmp_path / "broken.jsonl").write_text('{"audio_path": "x.wav", "text": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(DataError, match="broken.jsonl:2"):
        read_manifest(tmp_path / "broken.jsonl")
    with pytest.raises(DataError, match="no such manifest"):
        read_manifest(tmp_path / "missing.csv")


def test_read_dataset_format_choice(tmp_path):
    with pytest.raises(ValueError, match="unknown data format 'tsv'; valid: auto, ljspeech, manifest"):
        read_dataset(tmp_path, "tsv")
    with pytest.raises(DataError, match="cannot tell the data format"):
        read_dataset(tmp_path)  # a folder without metadata.csv
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="cannot tell the data format"):
        read_dataset(tmp_path / "notes.txt")
    (tmp_path / "m.csv").write_text("audio_path,text\nx.wav,hi\n", encoding="utf-8")
    assert read_dataset(tmp_path / "m.csv", "manifest")[0].text == "hi"


# --------------------------------------------------------------------------- dataset


def mixed_rows(root: Path) -> list[Utterance]:
    """Good rows at three rates, mono and stereo, two speakers."""
    specs = [("a", 0.25, 16000, 1, "bob"), ("b", 0.5, 22050, 2, "alice"), ("c", 0.37, 24000, 1, "bob"),
             ("d", 0.8, 24000, 2, "alice"), ("e", 0.1, 16000, 1, "bob")]
    return [Utterance(uid, write_wav(root / f"{uid}.wav", sec, rate, ch, seed=i), f"text {uid}", spk)
            for i, (uid, sec, rate, ch, spk) in enumerate(specs)]


def test_dataset_lengths_match_decoded_mels(tmp_path):
    rows = mixed_rows(tmp_path)
    ds = TTSDataset(rows, AUDIO, encode, speaker_list(rows), max_seconds=5.0)
    assert len(ds) == 5 and ds.report == LoadReport(kept=5)
    for i in range(len(ds)):
        item = ds[i]
        assert isinstance(item, Item) and item.id == rows[i].id
        assert item.mel.shape == (100, ds.lengths[i])  # scan-time length == decoded length
        assert item.mel.dtype == torch.float32 and item.tokens.dtype == torch.long
        assert item.tokens.tolist() == encode(rows[i].text)
        assert item.speaker == ["alice", "bob"].index(rows[i].speaker)
    # 0.25 s at 16 kHz -> 6000 samples at 24 kHz -> 6000 // 256 + 1 = 24 frames (center=True)
    assert ds.lengths[0] == 24


def test_bad_rows_are_skipped_with_counts_and_logged_once(tmp_path, caplog):
    good = mixed_rows(tmp_path)[:2]
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all" * 10)
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, np.float32), 24000)
    sf.write(str(tmp_path / "tiny.wav"), np.zeros(100, np.float32), 24000)  # < n_fft // 2 + 1 samples
    bad = [
        Utterance("m1", tmp_path / "missing1.wav", "hi"),
        Utterance("m2", tmp_path / "missing2.wav", "hi"),
        Utterance("junk", tmp_path / "junk.wav", "hi"),
        Utterance("empty", tmp_path / "empty.wav", "hi"),
        Utterance("tiny", tmp_path / "tiny.wav", "hi"),
        Utterance("long", write_wav(tmp_path / "long.wav", 2.0, 16000), "hi"),
        Utterance("notext", good[0].audio_path, "   "),
        Utterance("notokens", good[0].audio_path, "zzz"),
        Utterance("stranger", good[0].audio_path, "hi", speaker="carol"),
    ]

    def picky(text: str) -> list[int]:
        return [] if text == "zzz" else encode(text)

    with caplog.at_level(logging.INFO, logger="core.data"):
        ds = TTSDataset(bad[:4] + good + bad[4:], AUDIO, picky, ["alice", "bob"], max_seconds=1.0)
    assert len(ds) == 2 and [u.id for u in ds.utterances] == ["a", "b"]
    assert ds.report.kept == 2
    assert ds.report.skipped == {"missing file": 2, "unreadable audio": 1, "empty audio": 1, "too short": 1,
                                 "too long": 1, "empty text": 1, "no tokens": 1, "unknown speaker": 1}
    assert [(e.row.split(" ")[0], e.reason) for e in ds.report.examples][:2] == [("m1", "missing file"),
                                                                                ("m2", "missing file")]
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("skipping rows: missing file") for m in messages) == 1
    assert sum(m.startswith("skipping rows:") for m in messages) == 8
    assert any("kept 2 of 11 utterances" in m for m in messages)


def test_decode_failure_mid_epoch_returns_none(tmp_path, caplog):
    rows = mixed_rows(tmp_path)[:3]
    ds = TTSDataset(rows, AUDIO, encode, speaker_list(rows), max_seconds=5.0)
    rows[1].audio_path.write_bytes(b"garbage now")  # file broke after the scan
    with caplog.at_level(logging.WARNING, logger="core.data"):
        items = [ds[i] for i in range(3)]
    assert items[1] is None and items[0] is not None and items[2] is not None
    assert any("dropping b" in r.getMessage() for r in caplog.records)
    batch = collate(items)
    assert batch.ids == ["a", "c"] and len(batch) == 2
    assert collate([None, None]) is None


# --------------------------------------------------------------------------- mel cache


def test_mel_cache_hit_miss_and_invalidation(tmp_path):
    wav = write_wav(tmp_path / "x.wav", 0.3, 22050)
    cache = MelCache(tmp_path / "cache", AUDIO)
    first = cache.get(wav)
    expected = mel_spectrogram(load_wav(wav, 24000), AUDIO)[0]
    torch.testing.assert_close(first, expected)
    assert (cache.stats.hits, cache.stats.misses) == (0, 1)
    torch.testing.assert_close(cache.get(wav), first)
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)
    # a new cache object on the same folder finds the entry
    again = MelCache(tmp_path / "cache", AUDIO)
    torch.testing.assert_close(again.get(wav), first)
    assert again.stats.hits == 1
    # a changed setting misses (and gives a different mel)
    other = MelCache(tmp_path / "cache", dataclasses.replace(AUDIO, f_max=8000.0))
    changed = other.get(wav)
    assert other.stats.misses == 1 and not torch.allclose(changed, first)
    # a changed file misses
    write_wav(wav, 0.3, 22050, freq=440.0)
    edited = cache.get(wav)
    assert cache.stats.misses == 2 and not torch.allclose(edited, first)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_shape"])
def test_mel_cache_corrupt_entry_is_recomputed(tmp_path, damage):
    wav = write_wav(tmp_path / "x.wav", 0.3, 24000)
    cache = MelCache(tmp_path / "cache", AUDIO)
    good = cache.get(wav)
    entry = cache.entry(wav)
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:100])
    elif damage == "garbage":
        entry.write_bytes(b"\x00" * 64)
    else:
        np.save(entry, np.zeros((3, 4), np.float32))
    torch.testing.assert_close(cache.get(wav), good)
    assert (cache.stats.corrupt, cache.stats.misses) == (1, 2)
    torch.testing.assert_close(cache.get(wav), good)  # the rewritten entry is valid again
    assert cache.stats.hits == 1
    assert not list(entry.parent.glob("*.tmp"))


def test_dataset_uses_cache(tmp_path):
    rows = mixed_rows(tmp_path)[:2]
    cache = MelCache(tmp_path / "cache", AUDIO)
    ds = TTSDataset(rows, AUDIO, encode, speaker_list(rows), max_seconds=5.0, cache=cache)
    first = [ds[i].mel for i in range(2)]
    second = [ds[i].mel for i in range(2)]
    assert (cache.stats.misses, cache.stats.hits) == (2, 2)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------- collate


def test_collate_pads_and_masks():
    items = [Item("u0", torch.tensor([5, 6, 7]), torch.full((4, 5), 1.5), 1, "x"),
             Item("u1", torch.tensor([9]), torch.full((4, 2), -2.0), 0, "y"),
             None]
    b = collate(items)
    assert b.tokens.shape == (2, 3) and b.mel.shape == (2, 4, 5)
    assert b.tokens.tolist() == [[5, 6, 7], [9, 0, 0]]
    assert b.token_mask.tolist() == [[True, True, True], [True, False, False]]
    assert b.mel_mask.sum(1).tolist() == [5, 2] and b.mel_mask.dtype == torch.bool
    assert b.token_lengths.tolist() == [3, 1] and b.mel_lengths.tolist() == [5, 2]
    assert b.speakers.tolist() == [1, 0] and b.speakers.dtype == torch.long
    assert b.ids == ["u0", "u1"] and b.texts == ["x", "y"]
    assert torch.all(b.mel[1, :, :2] == -2.0) and torch.all(b.mel[1, :, 2:] == 0.0)
    assert b.mel.sum().item() == pytest.approx(1.5 * 20 - 2.0 * 8)
    moved = b.to("meta")
    assert isinstance(moved, Batch) and moved.ids == b.ids
    assert all(getattr(moved, k).device.type == "meta" for k in Batch._TENSORS if getattr(b, k) is not None)
    assert b.durations is None and moved.durations is None  # no external durations: none moved
    assert moved.token_mask.dtype == torch.bool and b.tokens.device.type == "cpu"


def test_dataloader_end_to_end(tmp_path):
    rows = mixed_rows(tmp_path)
    ds = TTSDataset(rows, AUDIO, encode, speaker_list(rows), max_seconds=5.0)
    sampler = BucketBatchSampler(ds.lengths, batch_frames=120, max_batch_size=3, seed=1)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate)
    seen = []
    for k, batch in enumerate(loader, 1):
        assert sampler.state_dict() == {"epoch": 0, "position": k}  # no workers: position == consumed
        assert batch.mel.shape[2] * len(batch) <= 120 or len(batch) == 1
        assert batch.mel.shape[2] == batch.mel_lengths.max().item()
        seen += batch.ids
    assert sorted(seen) == ["a", "b", "c", "d", "e"]
    assert sampler.state_dict() == {"epoch": 1, "position": 0}


# --------------------------------------------------------------------------- sampler


LENGTHS = [int(x) for x in np.random.default_rng(0).integers(5, 200, size=97)] + [450, 30, 30, 30]


def test_sampler_covers_every_index_within_budget():
    s = BucketBatchSampler(LENGTHS, batch_frames=400, max_batch_size=6, seed=3)
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(len(LENGTHS)))  # each index exactly once
        assert len(batches) == len(s)
        for b in batches:
            assert len(b) <= 6
            assert max(LENGTHS[i] for i in b) * len(b) <= 400 or len(b) == 1
        assert [97] in batches  # the 450-frame item (index 97) is a batch of its own


def test_sampler_greedy_fill_pinned():
    # hand-worked: ascending 10, 20, 30 fit (3 * 30 = 90 <= 100); 40 would make 160;
    # then 40 + 50 -> 2 * 50 = 100.
    s = BucketBatchSampler([30, 10, 50, 20, 40], batch_frames=100, max_batch_size=8, shuffle=False)
    assert list(s) == [[1, 3, 0], [4, 2]]


def test_sampler_determinism_and_epochs():
    def run(seed, epoch):
        s = BucketBatchSampler(LENGTHS, 400, 6, seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert run(0, 0) == run(0, 0)
    assert run(0, 0) != run(0, 1)
    assert run(0, 0) != run(1, 0)
    s = BucketBatchSampler(LENGTHS, 400, 6, seed=0)
    first, second = list(s), list(s)  # finishing an epoch moves to the next one
    assert first == run(0, 0) and second == run(0, 1) and s.state_dict() == {"epoch": 2, "position": 0}


def test_sampler_resume_continues_exactly():
    s = BucketBatchSampler(LENGTHS, 400, 6, seed=5)
    s.set_epoch(4)
    full = s.batches(4)
    it = iter(s)
    head = [next(it) for _ in range(7)]
    state = s.state_dict()
    assert state == {"epoch": 4, "position": 7}
    resumed = BucketBatchSampler(LENGTHS, 400, 6, seed=5)
    resumed.load_state_dict(state)
    resumed.set_epoch(4)  # a trainer calling set_epoch for the current epoch keeps the position
    assert head + list(resumed) == full
    assert resumed.state_dict() == {"epoch": 5, "position": 0}
    with pytest.raises(ValueError, match="epoch, position"):
        resumed.load_state_dict({"epoch": 1, "pos": 2})


def test_sampler_replicas_disjoint_and_equal():
    total = BucketBatchSampler(LENGTHS, 400, 6, seed=2).total_batches
    assert total % 2 == 0 and total % 3 == 1  # pinned fixture: 34 batches (2 ranks divide, 3 do not)
    for epoch in (0, 1):
        parts = []
        for r in range(2):
            s = BucketBatchSampler(LENGTHS, 400, 6, seed=2, num_replicas=2, rank=r)
            s.set_epoch(epoch)
            parts.append([tuple(b) for b in s])
        assert len(parts[0]) == len(parts[1]) == total // 2 == len(s)
        assert not set(parts[0]) & set(parts[1])  # disjoint
        assert sorted(i for p in parts for b in p for i in b) == list(range(len(LENGTHS)))


@pytest.mark.parametrize("drop_last", [True, False])
def test_sampler_replicas_pad_or_drop_the_remainder(drop_last):
    total = 34  # see the test above
    parts = [[tuple(b) for b in BucketBatchSampler(LENGTHS, 400, 6, seed=2, num_replicas=3, rank=r,
                                                   drop_last=drop_last)] for r in range(3)]
    expected = total // 3 if drop_last else total // 3 + 1
    assert [len(p) for p in parts] == [expected] * 3
    flat = [b for p in parts for b in p]
    if drop_last:  # one batch left out, no batch twice
        assert len(set(flat)) == len(flat) == total - 1
    else:  # two batches repeated so that every rank has 12, every index seen
        assert len(set(flat)) == total and len(flat) == total + 2
        assert {i for b in flat for i in b} == set(range(len(LENGTHS)))


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        BucketBatchSampler([1, 2], batch_frames=0, max_batch_size=2)
    with pytest.raises(ValueError, match="rank"):
        BucketBatchSampler([1, 2], 10, 2, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="replicas with drop_last"):
        BucketBatchSampler([1, 2], 100, 8, num_replicas=2, drop_last=True)


# --------------------------------------------------------------------------- split


def test_split_validation_is_stable_and_nonempty():
    rows = [Utterance(f"id{i}", Path(f"{i}.wav"), "t") for i in range(1000)]
    train, val = split_validation(rows, 0.1, seed=0)
    assert len(train) + len(val) == 1000 and 60 < len(val) < 140  # binomial(1000, 0.1): +-4 sigma
    assert split_validation(rows, 0.1, seed=0) == (train, val)
    more = rows + [Utterance(f"new{i}", Path("n.wav"), "t") for i in range(50)]
    train2, val2 = split_validation(more, 0.1, seed=0)
    assert {u.id for u in val} == {u.id for u in val2 if u.id.startswith("id")}
    assert {u.id for u in split_validation(rows, 0.1, seed=1).val} != {u.id for u in val}
    tiny = rows[:2]
    t, v = split_validation(tiny, 0.01, seed=0)
    assert len(v) == 1 and len(t) == 1
    t, v = split_validation(tiny, 0.99, seed=0)
    assert len(v) == 1 and len(t) == 1
    assert split_validation(rows[:5], 0.0, seed=0) == (rows[:5], [])
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        split_validation(rows, 1.0, seed=0)
