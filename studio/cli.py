"""``python -m studio test {create,list,export}``: listening tests from the command line.

* ``test create --config test.yaml --results DIR`` defines the test of a YAML file
  (:mod:`studio.design_file`) in ``DIR/results.sqlite`` and renders its stimuli (the
  checkpoint conditions through :class:`studio.stimulus_renderer.StimulusRenderer`);
  running it again on the same file with a ``test_id`` renders only what is missing.
  Prints the test id and the rater link's query ``?test=<id>``.
* ``test list --results DIR``: one line per test (``--all`` adds archived ones); its
  ``raters`` column counts the raters who started, ``started/needed`` when the design
  sets ``raters_per_item``.
* ``test export --test ID --results DIR --out x.csv``: the per-rating CSV with
  ``x.columns.json``, and the statistics ``x.stats.json`` / ``x.stats.csv``
  (:mod:`studio.stats_report`) and the one-page report ``x.report.html``
  (:mod:`studio.report`; ``--no-stats`` leaves these three out).

Bad input is one line ``error: ...`` on stderr and exit status 2, as in ``python -m core``.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    """Bad input found after parsing: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"error: {self.prog}: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m studio", description="Listening tests of the flowtts studio.")
    sub = parser.add_subparsers(dest="command", metavar="{test}", parser_class=_Parser)
    test = sub.add_parser("test", help="create, list and export listening tests", description="Listening tests.")
    actions = test.add_subparsers(dest="action", metavar="{create,list,export}", parser_class=_Parser)
    create = actions.add_parser("create", help="define a test from a YAML file and render its stimuli")
    create.add_argument("--config", required=True, help="the test file (YAML, see studio/design_file.py)")
    create.add_argument("--results", required=True, help="results folder (results.sqlite, stimuli/)")
    create.add_argument("--device", default="auto", help="where checkpoint conditions are rendered: auto, cpu, cuda")
    create.add_argument("--threads", default=None, help="CPU threads for torch (as in python -m core)")
    lst = actions.add_parser("list", help="list the tests of a results folder")
    lst.add_argument("--results", required=True, help="results folder")
    lst.add_argument("--all", action="store_true", help="include archived tests")
    export = actions.add_parser("export", help="export a test's ratings (CSV), statistics (JSON, CSV) and report "
                                               "(HTML)")
    export.add_argument("--test", required=True, help="the test id (see 'test list')")
    export.add_argument("--results", required=True, help="results folder")
    export.add_argument("--out", required=True, help="the CSV file to write (statistics go beside it)")
    export.add_argument("--no-stats", action="store_true", help="write the per-rating CSV only (no statistics, no "
                                                                "report)")
    export.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the ranking (1000)")
    export.add_argument("--seed", type=int, default=0, help="bootstrap seed, recorded in the statistics (0)")
    return parser


def _store(folder: str, *, must_exist: bool):
    from studio.results import DB_NAME, ResultsStore

    path = Path(folder)
    if must_exist and not (path / DB_NAME).is_file():
        raise UsageError(f"no results database in {folder} ({DB_NAME} missing); check --results")
    if path.exists() and not path.is_dir():
        raise UsageError(f"--results {folder} is not a folder")
    return ResultsStore(path)


def _create(args) -> int:
    from studio.design_file import read_design
    from studio.listening import render_stimuli

    devices = ("auto", "cpu", "cuda")
    if args.device not in devices:
        raise UsageError(f"unknown device {args.device!r}; valid: {', '.join(devices)}")
    design = read_design(args.config, test_id=secrets.token_hex(4))
    for c in design.conditions:  # checked before the test is written to the store
        if c.checkpoint is not None and not Path(c.checkpoint).is_file():
            raise UsageError(f"checkpoint of condition {c.label!r} not found: {c.checkpoint}")
        if c.checkpoint is not None:  # its settings against its checkpoint's family, its voice prompt
            from studio.stimulus_renderer import check_condition

            check_condition(c)
        if c.folder is not None:
            missing = [f"{s.id}.wav" for s in design.sentences if not (Path(c.folder) / f"{s.id}.wav").is_file()]
            if missing:
                raise UsageError(f"condition {c.label!r}: {c.folder} lacks {', '.join(missing[:5])}"
                                 f"{' ...' if len(missing) > 5 else ''}")
    store = _store(args.results, must_exist=False)
    render = None
    if any(c.checkpoint for c in design.conditions):
        from core.threads import configure_threads
        from studio.stimulus_renderer import StimulusRenderer

        configure_threads(args.threads)
        render = StimulusRenderer(args.device)
    stimuli = render_stimuli(design, store, args.results, render)
    sys.stdout.write(f"{design.test_id}\t{design.test_type}\t{len(stimuli)} stimuli\t"
                     f"rater link: ?test={design.test_id}\n")
    return 0


def _list(args) -> int:
    from studio.listening import ListeningError, TestDesign

    store = _store(args.results, must_exist=True)
    sys.stdout.write("test_id\ttype\tconditions\tstimuli\traters\tratings\tarchived\tname\n")
    for t in store.tests(include_archived=args.all):
        ratings = store.ratings(t.test_id)
        labels = ",".join(c.label for c in store.conditions(t.test_id))
        raters = str(len(store.sessions(t.test_id)))
        try:
            needed = TestDesign.from_dict(t.design).raters_needed
        except (ListeningError, TypeError, KeyError):  # a design this version cannot read: list it anyway
            needed = None
        if needed is not None:
            raters += f"/{needed}"  # started / needed for raters_per_item
        sys.stdout.write(f"{t.test_id}\t{t.test_type}\t{labels}\t{len(store.stimuli(t.test_id))}\t"
                         f"{raters}\t{len(ratings)}\t{'yes' if t.archived else 'no'}\t{t.name}\n")
    return 0


def _export(args) -> int:
    from studio.results import UnknownTestError

    store = _store(args.results, must_exist=True)
    try:
        store.test(args.test)
    except UnknownTestError:
        known = [t.test_id for t in store.tests(include_archived=True)]
        raise UsageError(f"unknown test {args.test!r}; valid: {', '.join(known) or '(none)'}") from None
    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise UsageError(f"--out must end in .csv, got {args.out!r}")
    if not out.parent.is_dir():
        raise UsageError(f"folder of --out does not exist: {out.parent}")
    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    n = store.export_csv(args.test, out)
    written = [out, out.with_name(f"{out.stem}.columns.json")]
    if not args.no_stats:
        from studio.report import write_report
        from studio.stats_report import export_statistics, test_statistics

        stats = test_statistics(store, args.test, n_boot=args.bootstrap, seed=args.seed)
        written += export_statistics(store, args.test, out, stats=stats)
        written.append(write_report(store, args.test, out.with_name(f"{out.stem}.report.html"), stats))
    sys.stdout.write(f"{n} ratings; wrote {', '.join(str(p) for p in written)}\n")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None or getattr(args, "action", None) is None:
        parser.print_help(sys.stderr)
        return 2
    from core import CheckpointError

    try:
        return {"create": _create, "list": _list, "export": _export}[args.action](args)
    except (UsageError, CheckpointError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except ValueError as exc:  # ListeningError, ResultsError, ConfigError: messages for users
        sys.stderr.write(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
