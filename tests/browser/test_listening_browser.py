"""End to end in Debian chromium: ``panel serve studio/app.py`` with a MOS and an A/B test
prepared in its results folder (folder conditions of short generated WAVs, rendered
with the engine directly); a rater completes both through the page, playing every clip
to the end; the CSV exported from the Results tab holds the expected rows; the browser
console stays free of errors.  Screenshots go to ``docs/screenshots/``."""

from __future__ import annotations

import csv
import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("playwright")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from studio.listening import Condition, Sentence, TestDesign, render_stimuli

from studio.rater_session import RaterSession
from studio.results import CSV_COLUMNS, ResultsStore

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
LABELS = ("sys-alpha", "sys-beta")
SENTENCES = (Sentence("s01", "The cat sat on the mat."), Sentence("s02", "A dog ran far away."))

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(tmp: Path) -> dict:
    """Two folder conditions (0.3 s tones) and a MOS and an A/B test rendered from them."""
    ckdir, results = tmp / "checkpoints", tmp / "results"
    conds = []
    for label, freq in zip(LABELS, (330.0, 550.0)):
        folder = ckdir / label
        folder.mkdir(parents=True)
        t = np.arange(int(0.3 * 24000)) / 24000
        for s in SENTENCES:
            sf.write(folder / f"{s.id}.wav", 0.3 * np.sin(2 * np.pi * freq * t) * np.hanning(t.size), 24000)
        conds.append(Condition(label, folder=str(folder)))
    store = ResultsStore(results)
    for tid, kind in (("e2emos01", "mos"), ("e2eab001", "ab")):
        design = TestDesign(tid, kind, tuple(conds), SENTENCES, name=f"{kind} {LABELS[0]} vs {LABELS[1]}")
        render_stimuli(design, store, results)
    labels = {s.stimulus_id: s.condition for tid in ("e2emos01", "e2eab001") for s in store.stimuli(tid)}
    for k, rater in enumerate(("earlier-1", "earlier-2", "earlier-3")):  # answers already given, for the plots
        for tid in ("e2emos01", "e2eab001"):
            session = RaterSession(store, tid, rater)
            while (trial := session.current) is not None:
                for clip in trial.clips:
                    session.mark_played(clip, to_end=True)
                if trial.kind == "mos":
                    session.submit(score=(4 + k % 2) if labels[trial.clips[0].stimulus_id] == LABELS[0] else 2 + k % 2)
                else:
                    session.submit(choice="A" if labels[trial.clips[0].stimulus_id] == LABELS[0] else "B")
    store.close()
    return {"checkpoints": ckdir, "results": results, "labels": labels}


def start_server(lab: dict, port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("FLOWTTS_EXPERIMENTERS", None)
    cmd = [sys.executable, "-m", "panel", "serve", "studio/app.py", "--port", str(port), "--address", "127.0.0.1",
           "--allow-websocket-origin", f"127.0.0.1:{port}",
           "--args", "--checkpoints", str(lab["checkpoints"]), "--results", str(lab["results"]), "--device", "cpu"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"panel serve exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    try:  # the first page imports the studio (torch, ...): wait for it once
        urllib.request.urlopen(f"http://127.0.0.1:{port}/app", timeout=90).close()
    except OSError as exc:
        proc.terminate()
        raise RuntimeError(f"panel serve did not answer ({exc}): {log.read_text()[-2000:]}") from None
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def open_tab(page, title: str) -> None:
    """Click the studio tab ``title`` (a rater page may show the Rate page alone: no tabs)."""
    tabs = page.locator(".bk-tab").filter(has_text=re.compile(rf"^{title}$"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if tabs.count():
            tabs.first.click()
            return
        if page.get_by_label("Your rater id").is_visible():
            return
        time.sleep(0.2)
    raise AssertionError(f"neither a {title!r} tab nor the rater page appeared")


def play_all(page) -> int:
    """Play every clip of the trial to the end (the element's play(), as autoplay may be off)."""
    clips = page.locator("audio.rater-clip[src]")  # a player not in use has no source
    clips.first.wait_for(state="attached")
    n = clips.count()
    for i in range(n):
        clips.nth(i).evaluate("""el => new Promise((ok, fail) => {
            el.addEventListener("ended", ok, {once: true});
            setTimeout(() => fail(new Error("the clip did not play to the end in 10 s")), 10000);
            el.currentTime = 0;
            el.play().catch(fail);
        })""")
    return n


def rate_test(page, url: str, rater: str, total: int, answer, screenshot: Path) -> None:
    page.goto(url)
    open_tab(page, "Rate")
    page.get_by_label("Your rater id").fill(rater)
    page.get_by_role("button", name="Start / continue").click()
    for k in range(total):
        page.get_by_text(f"Trial {k + 1} of {total}").wait_for()
        if k == 0:
            page.screenshot(path=str(screenshot), full_page=True)
        button = page.get_by_role("button", name=answer(k), exact=True)
        assert button.is_disabled()  # nothing heard yet (header and buttons arrive in one update)
        play_all(page)
        expect(button).to_be_enabled(timeout=5000)
        button.click()
    page.get_by_text(f"All {total} trials are rated").wait_for()


@pytest.mark.timeout(240)
def test_rater_completes_mos_and_ab_tests_in_chromium(tmp_path):
    lab = prepare(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}/app"
    proc = start_server(lab, port, tmp_path / "server.log")
    errors: list[str] = []
    SHOTS.mkdir(parents=True, exist_ok=True)
    mos_scores = ["5 Excellent", "4 Good", "2 Poor", "1 Bad"]
    ab_choices = ["A", "B"]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.set_default_timeout(20000)

            rate_test(page, f"{base}?test=e2emos01", "rater-1", 4, lambda k: mos_scores[k], SHOTS / "mos.png")
            rate_test(page, f"{base}?test=e2eab001", "rater-1", 2, lambda k: ab_choices[k], SHOTS / "ab.png")

            exported = {}
            for tid in ("e2emos01", "e2eab001"):
                page.goto(base)
                open_tab(page, "Results")
                select = page.get_by_label("Results of test", exact=True)
                select.select_option(label=next(o for o in select.locator("option").all_inner_texts() if tid in o))
                page.get_by_text(re.compile(rf"Test {tid} \((MOS|AB)\): 4 raters")).wait_for()
                with page.expect_download() as download:
                    page.get_by_role("button", name="Export CSV").click()
                exported[tid] = Path(download.value.path()).read_text(encoding="utf-8")
                if tid == "e2emos01":
                    page.screenshot(path=str(SHOTS / "results.png"), full_page=True)
            browser.close()
    finally:
        stop_server(proc)
    assert not errors, errors

    mos = list(csv.DictReader(io.StringIO(exported["e2emos01"])))
    assert tuple(mos[0].keys()) == CSV_COLUMNS and len(mos) == 4 * 4  # 3 earlier raters + the browser's
    mos = [r for r in mos if r["rater_id"] == "rater-1"]
    assert sorted(int(r["trial_index"]) for r in mos) == [0, 1, 2, 3]
    for r in sorted(mos, key=lambda r: int(r["trial_index"])):
        assert r["rater_id"] == "rater-1" and r["condition"] == lab["labels"][r["stimulus_id"]]
        assert r["score"] == mos_scores[int(r["trial_index"])].split()[0] and r["trial_type"] == "mos"
        assert r["listened_to_end"] == "true" and int(r["play_count"]) >= 1
    ab = list(csv.DictReader(io.StringIO(exported["e2eab001"])))
    assert len(ab) == 4 * 2
    ab = [r for r in ab if r["rater_id"] == "rater-1"]
    assert len(ab) == 2
    for r in ab:
        a, b = lab["labels"][r["stimulus_id_a"]], lab["labels"][r["stimulus_id_b"]]
        assert {a, b} == set(LABELS) and (r["condition_a"], r["condition_b"]) == (a, b)
        assert r["choice"] == ab_choices[int(r["trial_index"])]
        assert r["chosen_condition"] == (a if r["choice"] == "A" else b) and r["condition"] == ""
    store = ResultsStore(lab["results"])  # the CSV agrees with the database
    assert len(store.ratings("e2emos01")) == 16 and len(store.ratings("e2eab001")) == 8


@pytest.mark.timeout(300)
def test_a_rater_who_closes_the_browser_after_three_answers_finishes_later(tmp_path):
    """Answer 3 of 6 trials, close the browser context, open the link again with the same
    rater id, finish: the CSV has 6 rows for that rater and no duplicates."""
    lab = prepare(tmp_path)
    store = ResultsStore(lab["results"])
    folders = {label: lab["checkpoints"] / label for label in LABELS}
    sentences = SENTENCES + (Sentence("s03", "Red sun."),)
    for label, folder in folders.items():  # a third sentence's clips: 2 conditions x 3 sentences = 6 trials
        t = np.arange(int(0.3 * 24000)) / 24000
        sf.write(folder / "s03.wav", 0.3 * np.sin(2 * np.pi * 440 * t) * np.hanning(t.size), 24000)
    design = TestDesign("resume06", "mos", tuple(Condition(lb, folder=str(f)) for lb, f in folders.items()),
                        sentences, name="resume")
    render_stimuli(design, store, lab["results"])
    store.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}/app?test=resume06"
    proc = start_server(lab, port, tmp_path / "server.log")
    errors: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for visit, trials in ((1, range(3)), (2, range(3, 6))):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
                page.set_default_timeout(20000)
                page.goto(url)
                page.get_by_label("Your rater id").fill("returning-rater")
                page.get_by_role("button", name="Start / continue").click()
                for k in trials:
                    page.get_by_text(f"Trial {k + 1} of 6").wait_for()
                    play_all(page)
                    button = page.get_by_role("button", name="3 Fair", exact=True)
                    expect(button).to_be_enabled(timeout=5000)
                    button.click()
                page.get_by_text("Trial 4 of 6" if visit == 1 else "All 6 trials are rated").wait_for()
                context.close()  # visit 1: the rater closes the browser mid-test
            browser.close()
    finally:
        stop_server(proc)
    assert not errors, errors
    server_log = (tmp_path / "server.log").read_text()
    assert "must be at most" not in server_log and "Traceback" not in server_log, server_log[-2000:]
    buf = io.StringIO()
    ResultsStore(lab["results"]).export_csv("resume06", buf)
    rows = [r for r in csv.DictReader(io.StringIO(buf.getvalue())) if r["rater_id"] == "returning-rater"]
    assert sorted(int(r["trial_index"]) for r in rows) == list(range(6))  # 6 rows, no duplicates
