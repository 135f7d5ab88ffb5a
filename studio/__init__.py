"""Listening-test studio (Panel) and the notebook training dashboard (ipywidgets).

Module names say what they hold: ``*_ui.py`` builds widgets (a studio page or part of
one, or the notebook dashboard); the other modules hold the logic those pages call and
import no widget toolkit at module level:

    app.py                 ``panel serve studio/app.py``: the tabs
    explorer_ui.py         synthesise, compare settings; clip_ui.py draws one clip
    controls_ui.py         one set of render settings: the loaded family's sampler controls
    experimenter_ui.py     design and render a listening test
    rater_ui.py            what a rater sees; listening_ui.py builds the listening tabs
    results_ui.py          ratings, statistics, CSV export; stats_ui.py its statistics panel
    training_ui.py         a run's loss curves in the studio; dashboard_ui.py in JupyterLab
    synthesis.py           the process-wide synthesizer pool and vocoder choices
    stimulus_renderer.py   renders a test's clips
    listening.py           test designs (MOS, A/B, MUSHRA, ABX, SMOS, DCR, intelligibility),
                           trial orders, MUSHRA anchors, the rater's state machine
    results.py             where every rating is saved: results.sqlite, one transaction each
    stats.py               MOS t-intervals, A/B binomial tests, per-condition tables
    ranking.py             Bradley-Terry ranking of A/B votes with bootstrap intervals
    mos_model.py           MOS intervals for raters and sentences (mixed model, clustered)
    agreement.py           Krippendorff's alpha, rater screening
    along_training.py      ratings per training step when conditions are one run's checkpoints
    type_stats.py          ABX share found per pair; intelligibility human and ASR WER
    stats_report.py        all statistics of a test, exported as JSON / CSV
    design_file.py         tests defined in a YAML file; cli.py: python -m studio test ...
    plots.py, jobs.py, config.py
"""
