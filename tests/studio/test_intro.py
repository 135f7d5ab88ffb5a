"""Before the first trial: the headphone check's stimuli against their closed forms and
its scoring, consent and the check in the rater's session (committed at once, resumed,
exported), and the intro page driven without a browser."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import soundfile as sf

from studio import headphone_check as hc
from studio.design_file import design_from_yaml_text, design_to_yaml
from studio.listening import Condition, ListeningError, Sentence, TestDesign, render_stimuli
from studio.rater_session import RaterSession
from studio.rater_ui import PlayEvent, RaterView
from studio.results import RatingError, ResultsStore

SR = 16000
SENTENCES = (Sentence("s1", "The cat sat on the mat."), Sentence("s2", "A dog ran far away."))
CONSENT = "I agree that my anonymous answers are stored."


def interval(audio, k):
    """The k-th tone (0-based) of a check clip."""
    n, gap = int(hc.TONE_S * hc.SAMPLE_RATE), int(hc.GAP_S * hc.SAMPLE_RATE)
    return audio[k * (n + gap):k * (n + gap) + n]


def test_check_clip_closed_forms():
    trial = hc.HeadphoneTrial(("antiphase", "standard", "quiet"))
    audio = hc.trial_audio(trial)
    assert audio.shape == (int(3 * hc.TONE_S * hc.SAMPLE_RATE + 2 * hc.GAP_S * hc.SAMPLE_RATE), 2)
    anti, std, quiet = (interval(audio, k) for k in range(3))
    rms = lambda x: float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))  # noqa: E731
    assert 20 * np.log10(rms(quiet) / rms(std)) == pytest.approx(-hc.QUIET_DB, abs=1e-4)
    assert rms(anti) == pytest.approx(rms(std), rel=1e-6)  # equally loud on headphones ...
    np.testing.assert_array_equal(anti[:, 1], -anti[:, 0])  # ... right channel inverted:
    assert rms(anti.sum(axis=1)) < 1e-6 < rms(std.sum(axis=1))  # the two channels cancel in the air
    # a Hann-ramped sine of amplitude LEVEL: rms over the tone = LEVEL * sqrt((T - 5/4 ramp) / (2 T))
    expected = hc.LEVEL * np.sqrt((hc.TONE_S - 1.25 * hc.RAMP_S) / (2 * hc.TONE_S))
    assert rms(std[:, 0]) == pytest.approx(expected, rel=2e-3)
    assert np.all(audio[int(hc.TONE_S * hc.SAMPLE_RATE) + 10:int((hc.TONE_S + hc.GAP_S) * hc.SAMPLE_RATE) - 10] == 0)
    assert trial.answer == 3
    data, rate = sf.read(io.BytesIO(hc.trial_wav_bytes(trial)))
    assert rate == hc.SAMPLE_RATE and data.shape == audio.shape


def test_trials_from_the_seed_and_scoring():
    trials = hc.headphone_trials(7)
    assert trials == hc.headphone_trials(7) and len(trials) == hc.TRIALS == 6
    assert all(sorted(t.order) == sorted(hc.KINDS) for t in trials)
    answers = {t.answer for seed in range(10) for t in hc.headphone_trials(seed)}
    assert answers == {1, 2, 3}
    right = {i: t.answer for i, t in enumerate(trials)}
    wrong = lambda i: right[i] % 3 + 1  # noqa: E731
    assert hc.score_answers(trials, right).label == "passed"
    assert hc.score_answers(trials, {**right, 0: wrong(0)}).passed  # 5 of 6 passes (Woods et al.)
    result = hc.score_answers(trials, {**right, 0: wrong(0), 1: wrong(1)})
    assert (result.correct, result.passed, result.label) == (4, False, "failed")
    assert hc.score_answers(trials, {0: right[0]}).label == "incomplete"


@pytest.fixture
def lab(tmp_path):
    conds = []
    t = np.arange(int(0.3 * SR)) / SR
    for k, label in enumerate(("a", "b")):
        folder = tmp_path / "wavs" / label
        folder.mkdir(parents=True)
        for s in SENTENCES:
            sf.write(folder / f"{s.id}.wav", 0.2 * np.sin(2 * np.pi * (300 + 200 * k) * t), SR)
        conds.append(Condition(label, folder=str(folder)))
    design = TestDesign("t1", "mos", tuple(conds), SENTENCES, instructions="Rate the *naturalness*.",
                        consent=CONSENT, headphone_check=True)
    store = ResultsStore(tmp_path / "results")
    render_stimuli(design, store, tmp_path / "results")
    return store, design


def export(store):
    buf = io.StringIO()
    store.export_csv("t1", buf)
    return list(csv.DictReader(io.StringIO(buf.getvalue())))


def test_session_needs_consent_and_the_check_before_rating(lab):
    store, design = lab
    s = RaterSession(store, "t1", "ann", seed=3)
    assert s.instructions == "Rate the *naturalness*." and s.consent_text == CONSENT
    assert s.consent_needed and s.before_trials and s.headphone_position == 0
    for clip in s.current.clips:
        s.mark_played(clip, to_end=True)
    with pytest.raises(RatingError, match="consent"):
        s.submit(score=4)
    with pytest.raises(RatingError, match="consent text first"):
        s.answer_headphone(1)
    s.give_consent()
    assert not s.consent_needed
    with pytest.raises(RatingError, match="play the three tones"):
        s.answer_headphone(1)
    s.mark_headphone_played(False)
    with pytest.raises(RatingError, match="play the three tones"):
        s.answer_headphone(1)
    trials = hc.headphone_trials(store.session(s.session_id).seed)
    for i in range(3):  # three right answers, then the rater closes the page
        s.mark_headphone_played(True)
        with pytest.raises(RatingError, match="1, 2 or 3"):
            s.answer_headphone(4)
        assert s.answer_headphone(trials[i].answer)
    with pytest.raises(RatingError, match="headphone check"):
        s.submit(score=4)
    again = RaterSession(store, "t1", "ann")  # resumes: consent kept, check at its 4th trial
    assert not again.consent_needed and again.headphone_position == 3 and again.headphone_result.correct == 3
    for i in range(3, 6):
        again.mark_headphone_played(True)
        again.answer_headphone(trials[i].answer % 3 + 1 if i >= 4 else trials[i].answer)  # two wrong
    assert not again.before_trials and again.headphone_result.label == "failed"  # 4 of 6
    with pytest.raises(RatingError, match="no headphone check"):
        again.answer_headphone(1)
    while not again.done:
        for clip in again.current.clips:
            again.mark_played(clip, to_end=True)
        again.submit(score=4)
    rows = export(store)
    assert len(rows) == 4 and {r["headphone_check"] for r in rows} == {"failed"}
    assert all(r["consent_utc"].endswith("Z") or "T" in r["consent_utc"] for r in rows)
    assert store.checks(again.session_id)[("consent", 0)][0]["sha256"]  # which text was agreed to


def test_a_test_without_them_asks_nothing_and_exports_empty_columns(lab, tmp_path):
    store, design = lab
    plain = TestDesign("t2", "mos", design.conditions, SENTENCES)
    render_stimuli(plain, store, tmp_path / "results")
    s = RaterSession(store, "t2", "bob", seed=1)
    assert not s.before_trials and s.headphone_result is None and s.headphone_position is None
    with pytest.raises(ListeningError, match="asks for no consent"):
        s.give_consent()
    for clip in s.current.clips:
        s.mark_played(clip, to_end=True)
    s.submit(score=3)
    buf = io.StringIO()
    store.export_csv("t2", buf)
    (row,) = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert (row["consent_utc"], row["headphone_check"]) == ("", "")


def test_design_keys_round_trip_and_checks(lab):
    _, design = lab
    assert TestDesign.from_dict(design.to_dict()) == design
    text = design_to_yaml(design, with_test_id=True)
    assert "headphone_check: true" in text and design_from_yaml_text(text) == design
    with pytest.raises(ListeningError, match="headphone_check must be true or false"):
        TestDesign("t", "mos", design.conditions, SENTENCES, headphone_check="yes")
    with pytest.raises(ListeningError, match="consent must be a text of at most 20000"):
        TestDesign("t", "mos", design.conditions, SENTENCES, consent="x" * 20001)


def test_rater_page_shows_the_intro_first(lab):
    store, _ = lab
    view = RaterView(store, test_id="t1")
    assert view.start("cy")
    intro = view.intro
    assert view.intro_area.visible and intro is not None and "naturalness" in intro.instructions.object
    assert not any(box.visible for box in view.player_boxes) and not view.mos_box.visible
    assert intro.begin_button.disabled and not intro.begin() and "I agree" in intro.message
    intro.consent_box.value = True  # ticking the box commits the consent
    assert intro.consent_box.disabled and not view.session.consent_needed
    assert not intro.begin() and "headphone check" in intro.message
    trials = hc.headphone_trials(store.session(view.session.session_id).seed)
    assert all(b.disabled for b in intro.hp_buttons.values())
    for i, trial in enumerate(trials):
        assert intro.player.src.startswith("data:audio/wav;base64,") and f"Check {i + 1} of 6" in intro.hp_status.object
        intro._player_event(PlayEvent("ended", intro._token - 1, 4.0, 4.0))  # a stale clip's event: ignored
        assert all(b.disabled for b in intro.hp_buttons.values())
        intro._player_event(PlayEvent("ended", intro._token, 4.0, 4.0))
        assert not intro.hp_buttons[trial.answer].disabled
        intro.hp_buttons[trial.answer].clicks += 1
    assert view.session.headphone_result.label == "passed" and not intro.begin_button.disabled
    intro.begin_button.clicks += 1
    assert not view.intro_area.visible and view.mos_box.visible and view.status == "### Trial 1 of 4"
    back = RaterView(store, test_id="t1")  # nothing left to do, but no trial answered yet: the intro again
    assert back.start("cy") and back.intro_area.visible and not back.intro.begin_button.disabled


def test_a_failed_headphone_check_flags_the_rater_in_the_statistics(lab):
    from studio.stats_report import test_statistics

    store, _ = lab
    for rater, wrong in (("good", 0), ("bad", 3)):
        s = RaterSession(store, "t1", rater, seed=11)
        s.give_consent()
        for i, trial in enumerate(hc.headphone_trials(11)):
            s.mark_headphone_played(True)
            s.answer_headphone(trial.answer % 3 + 1 if i < wrong else trial.answer)
        while not s.done:
            for clip in s.current.clips:
                s.mark_played(clip, to_end=True)
            s.submit(score=4)
    raters = {r["rater_id"]: r for r in test_statistics(store, "t1", n_boot=10)["raters"]}
    assert raters["bad"]["headphone_check"] == "failed" and "failed the headphone check" in raters["bad"]["reasons"]
    assert raters["good"]["headphone_check"] == "passed" and not raters["good"]["reasons"]
