"""Balanced per-rater subsets (studio.assignment): the Latin-square layout, how evenly
items and conditions spread over raters, the rater numbers the results store hands out,
and the test file / ``test list`` side."""

from __future__ import annotations

import collections
import itertools

import numpy as np
import pytest
import soundfile as sf

from studio.assignment import latin_cell, rater_cells, raters_needed
from studio.cli import main
from studio.design_file import design_from_yaml_text, design_to_yaml
from studio.listening import Condition, ListeningError, Sentence, TestDesign, build_trials, render_stimuli
from studio.rater_session import RaterSession
from studio.results import ResultsStore

SR = 16000
SENTENCES = tuple(Sentence(f"s{k}", f"sentence number {k}") for k in range(1, 7))


def test_latin_layout_is_a_bijection_and_rows_hold_every_unit():
    for units, sentences in ((3, 6), (4, 4), (2, 5), (5, 3), (1, 7)):
        cells = [latin_cell(m, units, sentences) for m in range(units * sentences)]
        assert sorted(cells) == sorted(itertools.product(range(units), range(sentences)))
        for row in range(sentences):
            block = cells[row * units:(row + 1) * units]
            assert [u for u, _ in block] == list(range(units))  # every unit once per row
            if sentences >= units:
                assert len({s for _, s in block}) == units  # ... each of a different sentence
    with pytest.raises(ValueError, match="outside a grid"):
        latin_cell(6, 2, 3)


@pytest.mark.parametrize("units,sentences,subset", [(3, 6, 4), (4, 5, 7), (2, 3, 6), (6, 10, 9), (1, 9, 2)])
def test_every_item_is_given_equally_often_give_or_take_one(units, sentences, subset):
    counts = collections.Counter()
    for rater in range(2 * units * sentences + 3):
        cells = rater_cells(units, sentences, subset, rater)
        assert len(set(cells)) == subset  # no item twice to one rater
        per_unit = collections.Counter(u for u, _ in cells)
        assert max(per_unit.values()) - min(per_unit[u] for u in range(units)) <= 1 + (subset < units)
        counts.update(cells)
        values = [counts[c] for c in itertools.product(range(units), range(sentences))]
        assert max(values) - min(values) <= 1, (rater, values)


def test_raters_needed_closed_form():
    assert raters_needed(18, 8, 12) == 12  # 18 items x 8 ratings / 12 per rater
    assert raters_needed(10, 3, 4) == 8  # ceil(30 / 4)
    assert raters_needed(10, 3) == 3  # every rater rates every item
    with pytest.raises(ValueError):
        raters_needed(10, 0, 4)
    with pytest.raises(ValueError, match="subset_per_rater must be 1..6"):
        rater_cells(2, 3, 7, 0)


def folders(tmp_path, labels):
    conds = []
    t = np.arange(int(0.3 * SR)) / SR
    for k, label in enumerate(labels):
        folder = tmp_path / "wavs" / label
        folder.mkdir(parents=True)
        for s in SENTENCES:
            sf.write(folder / f"{s.id}.wav", 0.2 * np.sin(2 * np.pi * (300 + 100 * k) * t), SR)
        conds.append(Condition(label, folder=str(folder)))
    return tuple(conds)


@pytest.mark.parametrize("kind,labels,units", [("mos", ("a", "b", "c"), 3), ("ab", ("a", "b", "c"), 3),
                                               ("smos", ("ref", "a", "b"), 2), ("mushra", ("ref", "a"), 1),
                                               ("intelligibility", ("a", "b", "c"), 1)])
def test_build_trials_gives_each_rater_its_cells(tmp_path, kind, labels, units):
    extra = {"reference": "ref"} if "ref" in labels else {}
    full = TestDesign("t1", kind, folders(tmp_path, labels), SENTENCES, **extra)
    design = TestDesign("t1", kind, full.conditions, SENTENCES, subset_per_rater=4, raters_per_item=2, **extra)
    assert design.units == units and design.n_items == units * 6 and design.items_per_rater == 4
    assert design.raters_needed == -(-units * 6 * 2 // 4)
    stimuli = render_stimuli(full, ResultsStore(tmp_path / "results"), tmp_path / "results")
    key = {s.stimulus_id: (s.condition, s.sentence_id) for s in stimuli}
    everything = build_trials(full, stimuli, seed=5, rater_index=0)
    assert len(everything) == full.n_items
    seen = collections.Counter()
    for rater in range(6):
        trials = build_trials(design, stimuli, seed=rater, rater_index=rater)
        assert len(trials) == 4 and trials == build_trials(design, stimuli, seed=rater, rater_index=rater)
        expected = rater_cells(units, 6, 4, rater)
        sentences = sorted(SENTENCES[k].id for _, k in expected)
        assert sorted(t.sentence_id for t in trials) == sentences
        if kind == "mos":  # the unit is the condition
            want = sorted((labels[u], SENTENCES[k].id) for u, k in expected)
            assert sorted(key[t.stimulus_ids[0]] for t in trials) == want
        if kind == "intelligibility":  # the condition rotates by rater number (a Latin square's row)
            for t in trials:
                k = [s.id for s in SENTENCES].index(t.sentence_id)
                assert key[t.stimulus_ids[0]][0] == labels[(k + rater) % 3]
        seen.update(t.sentence_id for t in trials)
    assert max(seen.values()) - min(seen.values()) <= units  # sentences spread over raters


def test_gold_trials_go_to_every_rater(tmp_path):
    from studio.listening import GoldTrial

    conds = folders(tmp_path, ("a", "b"))
    design = TestDesign("t1", "mos", conds, SENTENCES, gold=(GoldTrial("anchor", "a", "s1"),), subset_per_rater=3)
    stimuli = render_stimuli(design, ResultsStore(tmp_path / "results"), tmp_path / "results")
    for rater in range(4):
        trials = build_trials(design, stimuli, seed=rater, rater_index=rater)
        assert len(trials) == 4 and sum(t.gold is not None for t in trials) == 1


def test_design_checks_and_file_round_trip(tmp_path):
    conds = folders(tmp_path, ("a", "b"))
    with pytest.raises(ListeningError, match="subset_per_rater is 13 but the test has only 12 items"):
        TestDesign("t", "mos", conds, SENTENCES, subset_per_rater=13)
    for bad in (-1, 2.5, True, "3"):
        with pytest.raises(ListeningError, match="raters_per_item must be a whole number >= 1"):
            TestDesign("t", "mos", conds, SENTENCES, raters_per_item=bad)
    design = TestDesign("t", "ab", conds, SENTENCES, subset_per_rater=3, raters_per_item=5)
    assert TestDesign.from_dict(design.to_dict()) == design
    text = design_to_yaml(design, with_test_id=True)
    assert "subset_per_rater: 3" in text and "raters_per_item: 5" in text
    assert design_from_yaml_text(text) == design
    assert "subset_per_rater" not in TestDesign("t", "ab", conds, SENTENCES).to_dict()  # old designs unchanged


def test_store_numbers_raters_and_sessions_follow_the_rotation(tmp_path, capsys):
    conds = folders(tmp_path, ("a", "b", "c"))
    design = TestDesign("t1", "mos", conds, SENTENCES, subset_per_rater=5, raters_per_item=2)
    store = ResultsStore(tmp_path / "results")
    render_stimuli(design, store, tmp_path / "results")
    key = {s.stimulus_id: (s.condition, s.sentence_id) for s in store.stimuli("t1")}
    given = collections.Counter()
    for rater in range(4):
        session = RaterSession(store, "t1", f"rater{rater}", seed=100 + rater)
        order = store.session(session.session_id).order
        want = sorted((("a", "b", "c")[u], SENTENCES[k].id) for u, k in rater_cells(3, 6, 5, rater))
        assert sorted(key[t.stimulus_ids[0]] for t in order) == want
        given.update(key[t.stimulus_ids[0]] for t in order)
    again = RaterSession(store, "t1", "rater1", seed=7)  # a returning rater keeps their session
    assert store.session(again.session_id).order == store.session(
        store.start_or_resume_session("t1", "rater1").session_id).order
    assert max(given.values()) - min(given.values()) <= 1

    assert main(["test", "list", "--results", str(tmp_path / "results")]) == 0
    line = capsys.readouterr().out.splitlines()[1].split("\t")
    assert line[4] == "4/8"  # started / needed: 18 items x 2 ratings / 5 per rater = 7.2 -> 8
