"""End to end in Debian chromium, one small test per new type: MUSHRA, ABX, SMOS, DCR and
intelligibility tests are prepared from folders of short WAVs; a rater opens each
test's link, plays every clip to the end, answers through the page (sliders, buttons,
a text box) and finishes; the results database then holds one rating per trial with the
expected values, and the browser console stays free of errors.  One server serves them
all.  Screenshots of each type's first trial go to ``docs/screenshots/``."""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("playwright")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from studio.listening import Condition, Sentence, TestDesign, render_stimuli  # noqa: E402
from studio.results import ResultsStore  # noqa: E402
from test_listening_browser import ARGS, CHROMIUM, SHOTS, free_port, play_all, start_server, stop_server  # noqa: E402

LABELS = ("ref-voice", "sys-one", "sys-two")
SENTENCES = (Sentence("s01", "The cat sat on the mat."), Sentence("s02", "A dog ran far away."))
TESTS = {  # test id -> (type, conditions, options)
    "e2emushra": ("mushra", LABELS[:2], {"reference": LABELS[0]}),
    "e2eabx001": ("abx", LABELS[1:], {}),
    "e2esmos01": ("smos", LABELS[:2], {"reference": LABELS[0]}),
    "e2edcr001": ("dcr", LABELS[:2], {"reference": LABELS[0]}),
    "e2eintel1": ("intelligibility", LABELS[1:], {}),
    "e2eintro1": ("mos", LABELS[1:], {"instructions": "Rate how *natural* each sentence sounds.",
                                      "consent": "I agree that my anonymous ratings are stored.",
                                      "headphone_check": True, "subset_per_rater": 2}),
}

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("types")
    ckdir, results = tmp / "checkpoints", tmp / "results"
    conds = {}
    t = np.arange(int(0.3 * 24000)) / 24000
    for k, label in enumerate(LABELS):
        (ckdir / label).mkdir(parents=True)
        for s in SENTENCES:
            sf.write(ckdir / label / f"{s.id}.wav", 0.3 * np.sin(2 * np.pi * (330 + 110 * k) * t) * np.hanning(t.size),
                     24000)
        conds[label] = Condition(label, folder=str(ckdir / label))
    store = ResultsStore(results)
    for tid, (kind, labels, options) in TESTS.items():
        render_stimuli(TestDesign(tid, kind, tuple(conds[x] for x in labels), SENTENCES, **options), store, results)
    store.close()
    lab = {"checkpoints": ckdir, "results": results}
    port = free_port()
    proc = start_server(lab, port, tmp / "server.log")
    yield f"http://127.0.0.1:{port}/app", lab
    stop_server(proc)


@contextlib.contextmanager
def rater_page(base: str, tid: str, rater: str):
    """Chromium on the test's link, started as ``rater``: yields the page; fails on any
    browser error (console or page) when the block ends."""
    errors: list[str] = []
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.set_default_timeout(20000)
        page.goto(f"{base}?test={tid}")
        page.get_by_label("Your rater id").fill(rater)
        page.get_by_role("button", name="Start / continue").click()
        yield page
        browser.close()
    assert not errors, errors


def run_rater(base: str, tid: str, total: int, answer, rater: str = "rater-1") -> None:
    """Open the test's link, start as ``rater`` and answer ``total`` trials with
    ``answer(page, k)`` after playing every clip; fails on any browser error."""
    with rater_page(base, tid, rater) as page:
        for k in range(total):
            page.get_by_text(f"Trial {k + 1} of {total}").wait_for()
            play_all(page)
            if k == 0:
                page.screenshot(path=str(SHOTS / f"{TESTS[tid][0]}.png"), full_page=True)
            answer(page, k)
        page.get_by_text(f"All {total} trials are rated").wait_for()


def click(page, name: str) -> None:
    button = page.get_by_role("button", name=name, exact=True)
    expect(button).to_be_enabled(timeout=5000)
    button.click()


def rows(lab, tid):
    buf = io.StringIO()
    ResultsStore(lab["results"]).export_csv(tid, buf)
    return list(csv.DictReader(io.StringIO(buf.getvalue())))


@pytest.mark.timeout(240)
def test_mushra_in_chromium(served):
    base, lab = served

    def answer(page, k):
        sliders = page.locator(".noUi-target:visible")
        expect(sliders).to_have_count(3)  # hidden reference, sys-one, the 3.5 kHz anchor
        for i in range(3):
            box = sliders.nth(i).bounding_box()
            handle = sliders.nth(i).locator(".noUi-handle").bounding_box()
            page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * (0.95 - 0.3 * i), box["y"] + box["height"] / 2, steps=5)
            page.mouse.up()
        expect(page.get_by_text("not rated yet")).to_have_count(0)
        click(page, "Submit ratings")

    run_rater(base, "e2emushra", 2, answer)
    got = rows(lab, "e2emushra")
    assert len(got) == 2 * 3 and {r["trial_type"] for r in got} == {"mushra"}
    assert sorted(r["clip_role"] for r in got) == ["anchor"] * 2 + ["condition"] * 2 + ["hidden_reference"] * 2
    assert all(0 < int(r["score"]) <= 100 for r in got)
    assert {r["reference_condition"] for r in got} == {LABELS[0]}


@pytest.mark.timeout(240)
def test_abx_in_chromium(served):
    base, lab = served
    run_rater(base, "e2eabx001", 2, lambda page, k: click(page, "X is A"))
    got = rows(lab, "e2eabx001")
    assert [r["choice"] for r in got] == ["A", "A"] and {r["trial_type"] for r in got} == {"abx"}
    assert all(r["correct"] == ("true" if r["x_is"] == "A" else "false") for r in got)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("tid, button", [("e2esmos01", "4 Very similar"), ("e2edcr001", "2 Annoying")])
def test_reference_scored_types_in_chromium(served, tid, button):
    base, lab = served

    def answer(page, k):
        if k == 0:
            click(page, button)
        else:  # the keyboard shortcut for the same score
            expect(page.get_by_role("button", name=button, exact=True)).to_be_enabled(timeout=5000)
            page.keyboard.press(button[0])

    run_rater(base, tid, 2, answer)
    got = rows(lab, tid)
    assert [r["score"] for r in got] == [button[0]] * 2
    assert {r["condition"] for r in got} == {LABELS[1]} and {r["reference_condition"] for r in got} == {LABELS[0]}


@pytest.mark.timeout(240)
def test_intelligibility_in_chromium(served):
    base, lab = served

    def answer(page, k):
        for s in SENTENCES:  # the sentence never reaches the page
            assert page.get_by_text(s.text).count() == 0
        page.get_by_placeholder("type the words here").fill("the cat sat on a mat")
        click(page, "Submit text")

    run_rater(base, "e2eintel1", 2, answer)
    got = sorted(rows(lab, "e2eintel1"), key=lambda r: r["sentence_id"])
    assert [r["transcript"] for r in got] == ["the cat sat on a mat"] * 2
    assert float(got[0]["wer"]) == pytest.approx(1 / 6, abs=1e-4)  # "the" for "a": one substitution in 6 words


@pytest.mark.timeout(240)
def test_instructions_consent_headphone_check_and_a_balanced_subset_in_chromium(served):
    """The intro page before the first trial: instructions, consent, the six-trial
    headphone check answered right (the clips played at 4x), then a 2-item subset."""
    from studio.headphone_check import headphone_trials

    base, lab = served
    with rater_page(base, "e2eintro1", "intro-rater") as page:
        page.get_by_text("Rate how natural each sentence sounds.").wait_for()
        expect(page.get_by_role("button", name="Begin the test")).to_be_disabled()
        page.screenshot(path=str(SHOTS / "intro.png"), full_page=True)
        page.locator("input[type=checkbox]:visible").first.check()  # the one checkbox on the page: "I agree"
        store = ResultsStore(lab["results"])
        (session,) = store.sessions("e2eintro1")
        for k, trial in enumerate(headphone_trials(session.seed)):
            page.get_by_text(f"Check {k + 1} of 6").wait_for()
            page.locator("audio.rater-clip[src]").first.evaluate("""el => new Promise((ok, fail) => {
                el.addEventListener("ended", ok, {once: true});
                setTimeout(() => fail(new Error("the check clip did not end in 10 s")), 10000);
                el.currentTime = 0; el.playbackRate = 4;
                el.play().catch(fail);
            })""")
            click(page, f"Tone {trial.answer}")
        page.get_by_text("Headphone check done").wait_for()
        click(page, "Begin the test")
        for k in range(2):
            page.get_by_text(f"Trial {k + 1} of 2").wait_for()
            play_all(page)
            click(page, "4 Good")
        page.get_by_text("All 2 trials are rated").wait_for()
        from studio.report import write_report  # the test's P.800.2 report, as a screenshot for the README

        report = write_report(ResultsStore(lab["results"]), "e2eintro1", lab["results"] / "report.html", n_boot=10)
        page.goto(report.as_uri())
        page.get_by_text("Listening test report").wait_for()
        page.screenshot(path=str(SHOTS / "report.png"), full_page=True)
    got = rows(lab, "e2eintro1")
    assert len(got) == 2 and {r["headphone_check"] for r in got} == {"passed"} and all(r["consent_utc"] for r in got)
    assert store.checks(session.session_id)[("consent", 0)]
