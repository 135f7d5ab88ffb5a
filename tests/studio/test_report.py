"""The one-page HTML report (studio.report): the P.800.2 facts it states, the numbers it
shows against the statistics record, its SVG plots against their closed-form
coordinates, ratings along training beside the run's loss, and the CLI export."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from studio.listening import Condition, RenderedClip, Sentence, TestDesign, render_stimuli

from studio.rater_session import RaterSession
from studio.report import errorbar_svg, report_html, steps_svg, training_loss
from studio.results import ResultsStore
from studio.stats import mos_summary
from studio.stats_report import test_statistics

SR = 16000
SENTENCES = tuple(Sentence(f"s{k}", f"sentence {k}") for k in range(3))


def tone(cond: Condition, text: str, seed: int) -> RenderedClip:
    f = 200 + 100 * int(re.search(r"(\d+)\.pt$", cond.checkpoint).group(1)) % 7
    t = np.arange(int(0.5 * SR)) / SR
    return RenderedClip(0.2 * np.sin(2 * np.pi * f * t), SR, {"vocoder": "test"})


@pytest.fixture
def rated(tmp_path):
    """A MOS test of two checkpoints of one run, rated by three raters: the late one
    gets 4 and 5, the early one 2 and 3."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    rows = [{"step": s, "loss": 2.0 / (1 + s / 100)} for s in range(0, 401, 50)] + [{"event": "bad_step", "step": 7}]
    for step in (100, 300):
        (run / "checkpoints" / f"step_{step:08d}.pt").write_bytes(b"stand-in: the render callable never opens it")
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{torn")
    conds = (Condition("early", checkpoint=str(run / "checkpoints" / "step_00000100.pt")),
             Condition("late", checkpoint=str(run / "checkpoints" / "step_00000300.pt")))
    design = TestDesign("rep1", "mos", conds, SENTENCES, name="steps study", headphone_check=False,
                        instructions="Rate naturalness.")
    store = ResultsStore(tmp_path / "results")
    render_stimuli(design, store, tmp_path / "results", tone)
    label = {s.stimulus_id: s.condition for s in store.stimuli("rep1")}
    for k in range(3):
        s = RaterSession(store, "rep1", f"r{k}", seed=k)
        while not s.done:
            for clip in s.current.clips:
                s.mark_played(clip, to_end=True)
            late = label[s.current.clips[0].stimulus_id] == "late"
            s.submit(score=(4 if late else 2) + (k == 2))
    return store, run


def test_report_states_the_p800_2_facts_and_the_numbers(rated):
    store, run = rated
    stats = test_statistics(store, "rep1", n_boot=10)
    page = report_html(store, "rep1", stats)
    for fact in ("MOS-LQS", "Absolute Category Rating, ITU-T P.800 Annex B", "1 Bad, 2 Poor, 3 Fair, 4 Good, "
                 "5 Excellent", "16000 Hz", "wideband (up to 8 kHz)", "-23 LUFS", "Rate naturalness.", "raters who started",
                 "compare conditions within the test", "headphones asked for (not checked)"):
        assert fact in page, fact
    assert "<script" not in page.lower() and page.count("<svg") == 2  # estimates + along training
    late = mos_summary([4, 4, 4, 4, 4, 4, 5, 5, 5])
    assert f"<td>{late.mean:.3f}</td>" in page and f"{late.ci95_low:.3f} .. {late.ci95_high:.3f}" in page
    assert "<td class='l'>raters who finished</td><td class='l'>3</td>" in page
    assert "Along training" in page and "training loss" in page  # the run's loss beside the scores


def test_training_loss_reads_the_run_and_skips_events_and_torn_lines(rated):
    _, run = rated
    steps, values = training_loss(run)
    assert steps == [float(s) for s in range(0, 401, 50)] and values[0] == 2.0
    assert training_loss(run / "nowhere") is None


def test_errorbar_svg_coordinates_closed_form():
    svg = errorbar_svg(["a", "b"], [3.0, 5.0], [2.0, 4.5], [4.0, 5.0], y_range=(1, 5), y_label="MOS",
                       width=640, height=280)
    # plot area: x from 60 to 620, y from 15 (top, value 5) to 220 (bottom, value 1)
    circles = [(float(x), float(y)) for x, y in re.findall(r"<circle cx='([\d.]+)' cy='([\d.]+)'", svg)]
    assert circles == [(200.0, pytest.approx(117.5)), (480.0, pytest.approx(15.0))]
    assert "y1='168.8' y2='66.2'" in svg  # a's interval 2 .. 4: 220 - (v - 1) / 4 * 205
    svg = steps_svg([100, 300], [2.5, 4.5], [2.0, 4.0], [3.0, 5.0], "MOS", ([0.0, 400.0], [2.0, 0.4]))
    xs = [float(x) for x, _ in re.findall(r"<circle cx='([\d.]+)' cy='([\d.]+)'", svg)]
    assert xs == [pytest.approx(60 + 100 / 400 * 520), pytest.approx(60 + 300 / 400 * 520)]  # shared step axis


def test_cli_export_writes_the_report(rated, tmp_path, capsys):
    from studio.cli import main

    store, _ = rated
    out = tmp_path / "exp" / "x.csv"
    out.parent.mkdir()
    assert main(["test", "export", "--test", "rep1", "--results", str(store.path.parent), "--out", str(out),
                 "--bootstrap", "10"]) == 0
    assert "x.report.html" in capsys.readouterr().out
    assert "MOS-LQS" in (out.parent / "x.report.html").read_text()


def test_statistics_panel_plots_scores_along_training_beside_the_loss_and_offers_the_report(rated):
    from studio.stats_ui import StatisticsPanel

    store, _ = rated
    panel = StatisticsPanel(store, n_boot=10)
    panel.show_test("rep1")
    assert panel.report_download.disabled and not panel.training_plot.visible
    panel.stats = test_statistics(store, "rep1", n_boot=10)
    panel._show()
    assert panel.training_plot.visible and panel.training_plot.object.count("<circle") == 2
    assert "training loss" in panel.training_plot.object
    assert not panel.report_download.disabled and panel.report_download.filename == "rep1.report.html"
    assert b"MOS-LQS" in panel.report_download.callback().getvalue()


def test_bandwidth_classes():
    from studio.report import _bandwidth

    assert [_bandwidth(r) for r in (8000, 16000, 24000, 32000, 44100, 48000)] == [
        "narrowband (up to 4 kHz)", "wideband (up to 8 kHz)", "wideband (up to 12 kHz)",
        "super-wideband (up to 16 kHz)", "fullband (up to 22.05 kHz)", "fullband (up to 24 kHz)"]
