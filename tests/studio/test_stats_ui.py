"""The statistics on the Results page, driven without a browser."""

from __future__ import annotations

import json

from studio.results_ui import ResultsView

from test_stats_models import store_with_ratings


def test_results_page_computes_shows_and_downloads_statistics(tmp_path):
    answers = {f"r{k}": [((c, f"s{s}", None), {"score": {"x": 4, "y": 2}[c] + (s + k) % 2})
                         for c in ("x", "y") for s in range(4)] for k in range(3)}
    answers["r3"] = [(("anchor:x", "s0", "score<=2"), {"score": 5})] + answers["r0"]
    store, tid = store_with_ratings(tmp_path, "mos", answers)
    view = ResultsView(store)
    view.__panel__()
    panel = view.statistics
    assert panel.test_id == tid and panel.stats is None and panel.json_download.disabled
    assert panel.compute()
    panel.runner.wait()
    assert panel.stats["flagged_raters"] == ["r3"]
    frame = panel.estimates_pane.object
    assert list(frame["subset"]) == ["all_raters", "all_raters", "excluding_flagged", "excluding_flagged"]
    assert list(frame["condition"]) == ["x", "y", "x", "y"]
    assert (frame["mixed_ci95_high"] > frame["mixed_ci95_low"]).all()
    assert "Krippendorff's alpha" in panel.agreement_pane.object and "r3" in panel.agreement_pane.object
    assert list(panel.raters_pane.object["flagged"]) == [False, False, False, True]
    assert not panel.json_download.disabled
    assert json.loads(panel.json_download.callback().read())["test_id"] == tid
    assert panel.csv_download.callback().read().decode().startswith("subset,statistic,")
    # a new rating marks the numbers stale; another test clears them
    session = store.start_or_resume_session(tid, "r4", make_order=lambda s, i: store.sessions(tid)[0].order[:1])
    store.record_rating(session.session_id, 0, score=3, play_counts=[1], listened_to_end=[True], response_time_s=1.0)
    view.poll()
    assert "compute them again" in panel.note
    panel.show_test(None)
    assert panel.stats is None and not panel.estimates_pane.visible


def test_statistics_done_at_once_leave_the_finished_note(tmp_path, inline_jobs):
    answers = {f"r{k}": [((c, f"s{s}", None), {"score": {"x": 4, "y": 2}[c] + (s + k) % 2})
                         for c in ("x", "y") for s in range(4)] for k in range(3)}
    store, tid = store_with_ratings(tmp_path, "mos", answers)
    panel = ResultsView(store).statistics
    assert panel.compute() and panel.stats is not None
    assert panel.note.startswith("Computed in"), panel.note
