"""benchmarks/voices_table.py (issue 17's Measure table): the rows each voice gets, the
"x flite" arithmetic and the two bars on hand-made numbers, and one whole run on tiny
flow-matching and MeanFlow checkpoints with 2 sentences of the tiny corpus."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

import sampling_fixtures

ROOT = Path(__file__).resolve().parents[1]
cfm_checkpoint = sampling_fixtures.cfm_checkpoint            # the session fixtures, for this module's tests
meanflow_checkpoint = sampling_fixtures.meanflow_checkpoint

DEFAULTS = {"steps": 10, "solver": "euler", "schedule": "sway", "sway": -1.0, "duration_scale": 1.0, "cfg": 0.0,
            "temperature": 1.0}   # core.config.SamplingConfig()


@pytest.fixture(scope="module")
def vt():
    spec = importlib.util.spec_from_file_location("voices_table", ROOT / "benchmarks" / "voices_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["voices_table"] = module   # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- rows


def _voice(vt, objective="cfm", **defaults):
    return vt.Voice("v", "v.pt", objective, {**DEFAULTS, **defaults})


def test_a_flow_voice_gets_five_step_counts_with_and_without_guidance(vt):
    rows = vt.voice_rows(_voice(vt, cfg=2.0), 2.0, "griffin-lim")
    assert [p.row.stem for p in rows] == [f"v_euler{s}_cfg{c}" for c in (0, 2) for s in (1, 2, 4, 10, 32)]
    assert [p.row.stem for p in rows if p.default] == ["v_euler10_cfg2"]   # its sampling section: 10 steps, CFG 2
    assert rows[2].row.args == ("--solver", "euler", "--steps", "4", "--cfg", "0", "--vocoder", "griffin-lim")
    assert rows[7].row.args == ("--solver", "euler", "--steps", "4", "--cfg", "2", "--vocoder", "griffin-lim")


def test_a_default_outside_the_grid_gets_its_own_row(vt):
    rows = vt.voice_rows(_voice(vt, steps=16, solver="midpoint"), 1.5, "griffin-lim")
    assert len(rows) == 11 and [p.default for p in rows] == [False] * 10 + [True]
    # no sampler option given: core eval takes every one from the checkpoint
    assert rows[-1].row.stem == "v_default" and rows[-1].row.args == ("--vocoder", "griffin-lim")
    assert rows[5].row.stem == "v_euler1_cfg1.5"


def test_an_epss_default_keeps_its_grid_where_it_exists(vt):
    rows = vt.voice_rows(_voice(vt, schedule="epss"), 2.0, "griffin-lim")
    # F5-TTS's epss grids exist for 5, 6, 7, 10, 12, 16 steps; the other counts take sway
    assert [("--schedule" in p.row.args) for p in rows[:5]] == [True, True, True, False, True]
    assert [p.row.stem for p in rows if p.default] == ["v_euler10_cfg0"]


def test_a_meanflow_voice_gets_one_and_two_steps_at_its_own_guidance(vt):
    rows = vt.voice_rows(_voice(vt, "meanflow", steps=1, cfg=1.0), 2.0, "auto")
    assert [p.row.stem for p in rows] == ["v_euler1", "v_euler2"]
    assert [p.default for p in rows] == [True, False]
    assert rows[0].row.args == ("--solver", "euler", "--steps", "1", "--vocoder", "auto")  # no --cfg: its own


# --------------------------------------------------------------------------- x flite and the bars


def _entry(stem, wer, voice=None, default=False, steps=None, acoustic_ms=None, cfg=0.0):
    return {"row": stem, "stem": stem, "voice": voice, "objective": None, "default": default, "steps": steps,
            "cfg": cfg, "wer": wer, "acoustic_ms": acoustic_ms}


def _table(vt, flow_wer, mf_wer, flow_ms, mf_ms):
    table = [_entry("ref_raw", 0.16), _entry("ref_resynth", 0.18),
             _entry("new_euler1_cfg0", 0.50, "new", steps=1, acoustic_ms=20.0),
             _entry("new_euler10_cfg2", flow_wer, "new", True, 10, flow_ms, 2.0),
             _entry("mf_euler1", mf_wer, "mf", True, 1, mf_ms),
             _entry("mf_euler2", 0.30, "mf", False, 2, 2 * mf_ms)]
    vt.add_x_flite(table)
    return table


def test_x_flite_is_wer_over_the_recordings_wer(vt):
    table = _table(vt, 0.20, 0.25, 100.0, 10.0)
    assert [r["x_flite"] for r in table] == pytest.approx([1.0, 0.18 / 0.16, 0.50 / 0.16, 1.25, 0.25 / 0.16,
                                                           0.30 / 0.16])


@pytest.mark.parametrize("flow_wer, mf_wer, flow_ms, mf_ms, met", [
    (0.20, 0.25, 100.0, 10.0, (True, True)),     # 1.25x flite; 1.25x flow, 10x faster
    (0.24, 0.312, 50.0, 10.0, (True, True)),     # exactly on both bars: 1.5x, 1.3x, 5x
    (0.25, 0.25, 100.0, 10.0, (False, True)),    # 1.5625x flite
    (0.20, 0.27, 100.0, 10.0, (True, False)),    # MeanFlow 1.35x the flow voice's WER
    (0.20, 0.20, 40.0, 10.0, (True, False)),     # acoustic model only 4x faster
])
def test_bars_met_and_not_met(vt, flow_wer, mf_wer, flow_ms, mf_ms, met):
    bars = vt.bars(_table(vt, flow_wer, mf_wer, flow_ms, mf_ms), "new", "mf")
    assert tuple(b.met for b in bars) == met
    assert bars[0].line().endswith("**met**" if met[0] else "**NOT met**")
    assert f"{flow_ms / mf_ms:.1f}x faster" in bars[1].text


def test_bars_read_the_default_row_and_say_what_is_missing(vt):
    table = _table(vt, 0.20, 0.25, 100.0, 10.0)
    bars = vt.bars(table, "new", None)
    # the flow voice's default row (10 steps, CFG 2), not its first row (WER 0.50)
    assert "10 steps, CFG 2) WER 0.200 = 1.25x flite's 0.160" in bars[0].text
    assert bars[1].met is None and "no MeanFlow voice given" in bars[1].line() and "not judged" in bars[1].line()
    assert [b.met for b in vt.bars(table, None, "mf")] == [None, None]
    table[3]["acoustic_ms"] = None          # a report from before the acoustic time was recorded
    assert vt.bars(table, "new", "mf")[1].met is None


# --------------------------------------------------------------------------- one whole run


def _corpus(tiny_manifest: Path, folder: Path) -> Path:
    """A corpus folder with eval.txt and eval_manifest.csv: 3 clips of speaker alice of the tiny corpus."""
    with open(tiny_manifest, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["speaker"] == "alice"][:3]
    folder.mkdir()
    (folder / "eval.txt").write_text("".join(f"e{i:04d}|{r['text']}\n" for i, r in enumerate(rows)))
    with open(folder / "eval_manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["audio_path", "text", "speaker", "id"])
        for i, r in enumerate(rows):
            writer.writerow([str(tiny_manifest.parent / r["audio_path"]), r["text"], "alice", f"alice_e{i:04d}"])
    return folder


def test_one_run_on_tiny_checkpoints(vt, cfm_checkpoint, meanflow_checkpoint, tiny_corpus, tmp_path, monkeypatch,
                                     capsys):
    pytest.importorskip("pocketsphinx", reason="pocketsphinx (eval extra) is not installed")
    corpus = _corpus(tiny_corpus, tmp_path / "corpus")
    out = tmp_path / "out"
    argv = ["--corpus", str(corpus), "--voice", f"flow={cfm_checkpoint}", "--voice", f"mf={meanflow_checkpoint}",
            "--speaker", "alice", "--limit", "2", "--vocoder", "griffin-lim", "--no-dnsmos", "--out", str(out)]
    assert vt.main(argv) == 0
    saved = json.loads((out / "table.json").read_text())
    rows = saved["rows"]
    # the tiny checkpoints keep SamplingConfig's defaults (10 Euler steps, CFG 0): the flow voice's
    # default is a grid row; MeanFlow's 10 steps are not, so it gets a row of its own
    assert [r["stem"] for r in rows] == (["ref_raw", "ref_resynth"]
                                        + [f"flow_euler{s}_cfg{c}" for c in (0, 2) for s in (1, 2, 4, 10, 32)]
                                        + ["mf_euler1", "mf_euler2", "mf_default"])
    assert [r["stem"] for r in rows if r["default"]] == ["flow_euler10_cfg0", "mf_default"]
    assert all(r["n"] == 2 for r in rows)
    flite = rows[0]["wer"]
    for r in rows:
        assert r["x_flite"] == (pytest.approx(r["wer"] / flite) if flite else None)
    models = rows[2:]
    # the settings the reports say were used; Euler and MeanFlow: one network evaluation a step
    assert [(r["steps"], r["cfg"]) for r in models] == ([(s, c) for c in (0.0, 2.0) for s in (1, 2, 4, 10, 32)]
                                                        + [(1, 0.0), (2, 0.0), (10, 0.0)])
    assert all(r["nfe"] == r["steps"] for r in models)
    assert all(r["acoustic_ms"] > 0 and r["rtf"] > 0 and r["mcd"] > 0 for r in models)
    assert rows[0]["acoustic_ms"] is None and rows[0]["mcd"] is None and rows[1]["mcd"] > 0
    assert saved["settings"]["flow_voice"] == "flow" and saved["settings"]["meanflow_voice"] == "mf"
    assert saved["settings"]["voices"]["mf"]["objective"] == "meanflow"
    # the bars, judged on the numbers of the table
    flow_default, mf_one = rows[5], rows[12]
    speedup = flow_default["acoustic_ms"] / mf_one["acoustic_ms"]
    ratio = mf_one["wer"] / flow_default["wer"] if flow_default["wer"] else None
    assert saved["bars"][0]["met"] == (flow_default["x_flite"] <= 1.5 if flite else None)
    if ratio is not None:
        assert saved["bars"][1]["met"] == (ratio <= 1.3 and speedup >= 5)
    assert f"{speedup:.1f}x faster" in saved["bars"][1]["text"]
    md = (out / "table.md").read_text()
    assert md == capsys.readouterr().out and "| flow (cfm) | yes | 10 | 10 | 0 |" in md
    assert "Issue 17's bars:" in md and md.count("\n- ") == 2 + 2   # two voice lines, two bars

    # a rerun reuses every report: core eval is never called
    def no_eval(args):
        raise AssertionError(f"core eval called again: {args}")

    monkeypatch.setattr(sys.modules["demo_voice_table"], "core_main", no_eval)
    assert vt.main(argv) == 0
    assert json.loads((out / "table.json").read_text())["rows"] == rows


def test_refusals_name_what_to_do(vt, cfm_checkpoint, tmp_path, capsys):
    corpus = tmp_path / "c"
    corpus.mkdir()

    def refused(*argv):
        with pytest.raises(SystemExit) as stop:
            vt.main(["--corpus", str(corpus), "--out", str(tmp_path / "o"), *argv])
        assert stop.value.code == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    assert "give at least one --voice" in refused()
    assert "expected LABEL=CHECKPOINT" in refused("--voice", str(cfm_checkpoint))
    assert "no such checkpoint file missing.pt" in refused("--voice", "a=missing.pt")
    two = ["--voice", f"a={cfm_checkpoint}", "--voice", f"b={cfm_checkpoint}"]
    assert "several flow-matching voices (a, b): name the one the bars judge with --flow-voice" in refused(*two)
    assert "--flow-voice c: not a flow-matching voice of this run; valid: a, b" in refused(*two, "--flow-voice", "c")
    assert "--meanflow-voice a: not a MeanFlow voice of this run; valid: none" in refused(*two, "--flow-voice", "a",
                                                                                       "--meanflow-voice", "a")
    assert "--voice labels must differ: a, a" in refused("--voice", f"a={cfm_checkpoint}", "--voice",
                                                          f"a={cfm_checkpoint}")
    assert "--cfg must be above 0" in refused("--voice", f"a={cfm_checkpoint}", "--cfg", "0")
    assert "invalid choice: 'train'" in refused("--voice", f"a={cfm_checkpoint}", "--set", "train")
    assert f"{corpus / 'eval.txt'} not found" in refused("--voice", f"a={cfm_checkpoint}")
