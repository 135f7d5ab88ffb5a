"""Listening-test studio (Panel) and the notebook training dashboard (ipywidgets).

Module names say what they hold: ``*_ui.py`` builds widgets (a studio page or part of
one, or the notebook dashboard); the other modules hold the logic those pages call and
import no widget toolkit at module level:

    app.py                 ``panel serve studio/app.py``: the tabs
    explorer_ui.py         synthesise, compare settings; clip_ui.py draws one clip
    experimenter_ui.py     design and render a listening test
    rater_ui.py            what a rater sees; listening_ui.py builds the listening tabs
    results_ui.py          ratings, statistics, CSV export
    training_ui.py         a run's loss curves in the studio; dashboard_ui.py in JupyterLab
    synthesis.py           the process-wide synthesizer pool and vocoder choices
    stimulus_renderer.py   renders a test's clips
    listening.py           test designs, trial orders, the rater's state machine
    results.py             where every rating is saved: results.sqlite, one transaction each
    stats.py, plots.py, jobs.py, config.py
"""
