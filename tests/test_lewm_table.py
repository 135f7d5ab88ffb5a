"""benchmarks/lewm_table.py, smoke-tested: a tiny LeWM checkpoint on 2 held-out sentences
of the tiny corpus gives every number of the issue's table, and the helpers are right on
closed forms."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from sampling_fixtures import cfm_checkpoint  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def table():
    spec = importlib.util.spec_from_file_location("lewm_table", ROOT / "benchmarks" / "lewm_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_frame_levels_and_nonsilent_fraction(table):
    # mean mel magnitude 1 -> 0 dB, 0.01 -> -40 dB
    mel = np.log(np.array([[1.0, 0.01, 0.001, 1.0]] * 3))
    np.testing.assert_allclose(table.frame_levels_db(mel), [0.0, -40.0, -60.0, 0.0], atol=1e-9)
    assert table.nonsilent_fraction(mel, -30.0) == 0.5
    assert table.nonsilent_fraction(mel, -50.0) == 0.75
    assert table.nonsilent_fraction(np.zeros((3, 0)), 0.0) == 0.0


def test_table_on_two_heldout_sentences(table, tiny_lewm_checkpoint, tiny_corpus, tmp_path):
    with open(tiny_corpus, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["speaker"] == "alice"][:2]
    sentences = tmp_path / "heldout.txt"
    sentences.write_text("".join(f"h{i:04d}|{r['text']}\n" for i, r in enumerate(rows)))
    report = table.run(["--checkpoint", str(tiny_lewm_checkpoint), "--sentences", str(sentences),
                        "--references", str(tiny_corpus), "--speaker", "alice", "--limit", "2",
                        "--max-length-ratio", "4", "--vocoder", "griffin-lim", "--out", str(tmp_path / "out")])
    s = report["summary"]
    assert s["sentences"] == 2 and len(report["rows"]) == 2
    assert 0.0 <= s["stop_rate"] <= 1.0 and 0.0 <= s["duration_in_range"] <= 1.0
    for row in report["rows"]:
        assert row["duration_ratio"] == pytest.approx(row["seconds"] / row["reference_seconds"], rel=1e-6)
        assert 0.0 <= row["nonsilent_generated"] <= 1.0 and 0.0 < row["nonsilent_reference"] <= 1.0
        assert isinstance(row["stopped"], bool) and isinstance(row["hypothesis"], str)
        assert row["steps"] >= 1 and row["seconds"] == pytest.approx(row["steps"] * 2 * 256 / 24000)
    assert s["wer"] >= 0.0 and s["wer_flite"] >= 0.0
    assert s["pred_mse"] > 0.0 and s["copy_mse"] > 0.0
    assert s["pred_over_copy"] == pytest.approx(s["pred_mse"] / s["copy_mse"])
    assert 0.0 < s["align"] < 1.0                   # the teacher-forced attention's guided-attention penalty
    assert set(s["targets_met"]) == {"stop_rate >= 0.95", "duration 0.6-1.6 for >= 90%",
                                     "mean |non-silent diff| <= 0.15", "WER <= 2 x flite"}
    saved = json.loads((tmp_path / "out" / "table.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(s)) and saved["settings"]["max_length_ratio"] == 4.0
    md = (tmp_path / "out" / "table.md").read_text()
    assert "stop fired" in md and "off the diagonal" in md



def test_cfg_reaches_generation_and_is_recorded(table, tiny_lewm_checkpoint, tiny_corpus, tmp_path, monkeypatch):
    """The same tiny weights, their config saying they were trained with text dropout:
    ``--cfg 1`` is passed to every generation and the settings say so (what guidance does
    is checked against the predictor in tests/test_lewm_guidance.py)."""
    import dataclasses

    import core.lewm
    from core import load_checkpoint, save_checkpoint

    ck = load_checkpoint(tiny_lewm_checkpoint)
    config = dataclasses.replace(ck.config, lewm=dataclasses.replace(ck.config.lewm, text_drop_prob=0.2))
    guided = save_checkpoint(tmp_path / "guided.pt", config=config, weights=ck.weights, speakers=ck.speakers)
    with open(tiny_corpus, newline="") as f:
        row = [r for r in csv.DictReader(f) if r["speaker"] == "alice"][0]
    sentences = tmp_path / "heldout.txt"
    sentences.write_text(f"h0000|{row['text']}\n")
    seen, real = [], core.lewm.generate
    monkeypatch.setattr(core.lewm, "generate", lambda *a, **k: seen.append(k.get("cfg", 0.0)) or real(*a, **k))
    reports = {}
    for value in ("0", "1"):
        reports[value] = table.run(["--checkpoint", str(guided), "--sentences", str(sentences), "--references",
                                    str(tiny_corpus), "--speaker", "alice", "--limit", "1", "--max-length-ratio",
                                    "4", "--vocoder", "griffin-lim", "--cfg", value, "--out", str(tmp_path / value)])
    assert seen == [0.0, 1.0]
    assert "cfg" not in reports["0"]["settings"] and reports["1"]["settings"]["cfg"] == 1.0
    assert "text guidance 1.0" in (tmp_path / "1" / "table.md").read_text()


def test_a_flow_checkpoint_is_refused(table, cfm_checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        table.run(["--checkpoint", str(cfm_checkpoint), "--sentences", "x", "--references", "y",
                   "--vocoder", "griffin-lim", "--out", str(tmp_path)])
    assert stop.value.code == 2 and "is not a LeWM checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("value, want", [("off", None), ("OFF", None), ("0", 0.0), ("1.5", 1.5)])
def test_attention_stop_flag(table, value, want):
    import argparse

    assert table._margin(argparse.ArgumentParser(), value) == want


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
def test_a_bad_attention_stop_flag_is_refused(table, value, capsys):
    import argparse

    with pytest.raises(SystemExit) as stop:
        table._margin(argparse.ArgumentParser(), value)
    assert stop.value.code == 2 and "--attention-stop must be 'off' or a margin >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("value, message", [("1.5", "needs a model trained with lewm.text_drop_prob > 0"),
                                            ("-1", "--cfg must be >= 0 (0 = no guidance), got -1.0"), ("nan", "--cfg must be a finite number >= 0")])
def test_cfg_needs_a_model_trained_for_it(table, tiny_lewm_checkpoint, tmp_path, capsys, value, message):
    with pytest.raises(SystemExit) as stop:
        table.run(["--checkpoint", str(tiny_lewm_checkpoint), "--sentences", "x", "--references", "y",
                   "--vocoder", "griffin-lim", "--cfg", value, "--out", str(tmp_path)])
    assert stop.value.code == 2 and message in capsys.readouterr().err
