"""``python -m studio test {create,list,export}`` with a tiny trained checkpoint: tests
from a YAML file, bad input as one line and exit status 2, exports with statistics."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from studio.cli import main
from studio.design_file import design_from_yaml_text, design_to_yaml, read_design
from studio.rater_session import RaterSession
from studio.results import CSV_COLUMNS, ResultsStore

from conftest import tiny_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_corpus, tmp_path_factory):
    from core.train import Trainer

    out = tmp_path_factory.mktemp("cli_run")
    return Trainer(tiny_config(tiny_corpus, steps=2, checkpoint_every=2, val_every=2), out, progress=False).fit()


def write_yaml(folder: Path, text: str) -> Path:
    path = folder / "test.yaml"
    path.write_text(text)
    return path


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "studio", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    return proc.returncode, proc.stdout, proc.stderr


def test_create_list_rate_export(tiny_checkpoint, tmp_path, capsys):
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    for sid in ("s01", "hello"):
        sf.write(wavs / f"{sid}.wav", 0.1 * np.sin(np.linspace(0, 400, 8000)), 16000)
    ck = os.path.relpath(tiny_checkpoint, tmp_path)  # relative to the YAML file's folder
    config = write_yaml(tmp_path, f"""
type: mos
name: cli test
test_id: cli-1
conditions:
  - {{label: fast, checkpoint: {ck}, settings: {{steps: 2, vocoder: griffin-lim}}, seed: 3}}
  - {{label: rec, folder: wavs}}
sentences:
  - red green blue
  - {{id: hello, text: hello there}}
gold:
  - {{kind: anchor, reference: fast, sentence_id: s01}}
""")
    results = tmp_path / "results"
    assert main(["test", "create", "--config", str(config), "--results", str(results), "--device", "cpu",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cli-1\tmos\t5 stimuli\trater link: ?test=cli-1")
    store = ResultsStore(results)
    design = store.test("cli-1").design
    assert [c["label"] for c in design["conditions"]] == ["fast", "rec"]
    assert design["conditions"][0]["checkpoint"] == str(Path(tiny_checkpoint).resolve())
    assert [s["id"] for s in design["sentences"]] == ["s01", "hello"]
    fast = [s for s in store.stimuli("cli-1") if s.condition == "fast"]
    assert len(fast) == 2 and all(s.provenance["render"]["vocoder"] == "griffin-lim" for s in fast)
    # creating it again renders nothing new
    assert main(["test", "create", "--config", str(config), "--results", str(results), "--device", "cpu"]) == 0
    assert "5 stimuli" in capsys.readouterr().out

    for rater in ("ann", "bob"):
        session = RaterSession(store, "cli-1", rater, seed=1)
        while not session.done:
            for clip in session.current.clips:
                session.mark_played(clip, to_end=True)
            session.submit(score=4 if rater == "ann" else 3)

    assert main(["test", "list", "--results", str(results)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["test_id", "type", "conditions", "stimuli", "raters", "ratings", "archived", "name"]
    assert lines[1].split("\t") == ["cli-1", "mos", "fast,rec,anchor:fast", "5", "2", "10", "no", "cli test"]

    dest = tmp_path / "out" / "x.csv"
    dest.parent.mkdir()
    assert main(["test", "export", "--test", "cli-1", "--results", str(results), "--out", str(dest),
                 "--bootstrap", "10", "--seed", "5"]) == 0
    assert "10 ratings" in capsys.readouterr().out
    rows = list(csv.DictReader(dest.open()))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 10
    assert {r["trial_type"] for r in rows} == {"mos", "gold"}
    assert (tmp_path / "out" / "x.columns.json").is_file()
    stats = json.loads((tmp_path / "out" / "x.stats.json").read_text())
    assert stats["test_id"] == "cli-1" and stats["settings"]["bootstrap_seed"] == 5
    assert [m["condition"] for m in stats["all_raters"]["mos"]] == ["fast", "rec"]
    assert (tmp_path / "out" / "x.stats.csv").read_text().startswith("subset,statistic,")


def call(capsys, *args):
    try:
        rc = main(list(args))
    except SystemExit as exc:  # argparse
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    results = tmp_path / "results"
    cases = [
        ("type: mos\nconditions: []\nsentenses: [a]\n", "unknown test file key 'sentenses'; valid: type, name,"),
        ("type: musra\nconditions: [{label: a, folder: w}]\nsentences: [a]\n",
         "unknown test type 'musra'; valid: mos, ab, mushra, abx, smos, dcr, intelligibility"),
        ("type: mos\nconditions: [{label: a, folder: w, steps: 4}]\nsentences: [a]\n",
         "unknown condition key (condition 'a') 'steps'; valid: label, checkpoint, folder, settings, seed"),
        ("type: mos\nconditions: [{label: a, checkpoint: nope.pt}]\nsentences: [a]\n",
         "checkpoint of condition 'a' not found"),
        ("type: mos\nconditions: [{label: a, folder: w}]\nsentences: [a]\nsubset_per_rater: 5\n",
         "subset_per_rater is 5 but the test has only 1 items"),
        ("type: mos\nconditions: [{label: a, folder: w}]\nsentences: [a]\nraters_per_item: -1\n",
         "raters_per_item must be a whole number >= 1"),
        ("type: [mos\n", "not valid YAML at line"),
        ("type: mos\nconditions: [{label: a, folder: .}]\nsentences: [a]\n", "lacks s01.wav"),
    ]
    for text, message in cases:
        rc, out, err = call(capsys, "test", "create", "--config", str(write_yaml(tmp_path, text)), "--results",
                            str(results))
        assert rc == 2, (text, err)
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err, (text, err)
    rc, _, err = call(capsys, "test", "create", "--config", str(tmp_path / "missing.yaml"), "--results", str(results))
    assert rc == 2 and "cannot read test file" in err and err.count("\n") == 1
    assert not (results / "results.sqlite").exists() or not ResultsStore(results).tests()  # nothing half made
    rc, _, err = call(capsys, "test", "list", "--results", str(tmp_path / "nowhere"))
    assert rc == 2 and "no results database" in err
    ResultsStore(results).create_test("mos", test_id="t1")
    rc, _, err = call(capsys, "test", "export", "--test", "t2", "--results", str(results), "--out",
                      str(tmp_path / "a.csv"))
    assert rc == 2 and err == "error: unknown test 't2'; valid: t1\n"
    rc, _, err = call(capsys, "test", "export", "--test", "t1", "--results", str(results), "--out", "x.txt")
    assert rc == 2 and err == "error: --out must end in .csv, got 'x.txt'\n"
    # the module entry point, as a user runs it
    rc, _, err = run_cli("test", "frobnicate")
    assert rc == 2 and err.count("\n") == 1
    assert "invalid choice: 'frobnicate' (choose from 'create', 'list', 'export')" in err


def test_yaml_round_trip_and_relative_paths(tmp_path):
    (tmp_path / "w").mkdir()
    design = design_from_yaml_text("type: ab\nconditions:\n  - {label: a, folder: w}\n  - {label: b, folder: /x/y}\n"
                                   "sentences: [one, two]\ngold: [{kind: identical, reference: a, sentence_id: s02}]\n",
                                   tmp_path, test_id="abc")
    assert design.test_id == "abc" and design.conditions[0].folder == str((tmp_path / "w").resolve())
    text = design_to_yaml(design)
    assert "test_id" not in text
    (tmp_path / "again.yaml").write_text(text)
    assert read_design(tmp_path / "again.yaml", test_id="abc") == design
