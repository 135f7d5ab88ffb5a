"""Every ``python -m core`` subcommand refuses bad input with exit status 2 and one line
on stderr, no traceback (issue 21): missing files, counts of -1, 1e9 (and 10**9 written
out: refused up front with the valid range, never attempted), nan, unknown options.

The matrix runs ``core.cli.main`` in this process (the same parser and error handling
as the command); one subprocess per subcommand checks the real command line end to end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main

ROOT = Path(__file__).resolve().parents[1]

# the arguments each subcommand needs, and the count option it takes (its valid range in the help)
BASE = {
    "synth": (["synth", "--text", "hi", "--out", "{tmp}/x.wav", "--checkpoint", "{tmp}/missing.pt"], "--steps"),
    "train": (["train", "--config", "tiny", "--out", "{tmp}/run", "--data", "{tmp}/missing.csv"], "--steps"),
    "eval": (["eval", "--sentences", "{tmp}/missing.txt", "--checkpoint", "{tmp}/missing.pt"], "--steps"),
    "bench": (["bench", "--checkpoint", "{tmp}/missing.pt"], "--repeats"),
    "corpus": (["corpus", "--out", "{tmp}/corpus"], "--sentences"),
    "export": (["export", "--checkpoint", "{tmp}/missing.pt", "--out", "{tmp}/voice.pt"], None),
}


def _call(argv, capsys) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    return rc, capsys.readouterr().err


def _args(name, tmp_path, *extra):
    return [a.format(tmp=tmp_path) for a in BASE[name][0]] + list(extra)


def _assert_one_line(rc, err, *needles):
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("name", ["synth", "train", "eval", "bench", "export"])
def test_missing_input_file(name, tmp_path, capsys):
    rc, err = _call(_args(name, tmp_path), capsys)
    _assert_one_line(rc, err, "missing")


@pytest.mark.parametrize("name", [n for n, (_, opt) in BASE.items() if opt])
@pytest.mark.parametrize("value, needle", [("-1", "got -1"), ("0", "got 0"), ("1e9", "got '1e9'"),
                                           ("1000000000", "got 1000000000"), ("nan", "got 'nan'"),
                                           ("inf", "got 'inf'"), ("", "got ''"), ("ten", "got 'ten'")])
def test_counts_out_of_range(name, value, needle, tmp_path, capsys):
    option = BASE[name][1]
    rc, err = _call(_args(name, tmp_path, option, value), capsys)
    _assert_one_line(rc, err, option, "must be an integer in", needle)


@pytest.mark.parametrize("name, option", [("synth", "--cfg"), ("synth", "--temperature"), ("synth", "--sway"),
                                          ("synth", "--duration-scale"), ("eval", "--cfg"), ("eval", "--sway")])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "x"])
def test_numbers_must_be_finite(name, option, value, tmp_path, capsys):
    rc, err = _call(_args(name, tmp_path, f"{option}={value}"), capsys)  # "--cfg -inf" would read as an option
    _assert_one_line(rc, err, option, "must be a finite number")


def test_sway_range_named(tmp_path, capsys):
    rc, err = _call(_args("synth", tmp_path, "--sway", "2"), capsys)
    _assert_one_line(rc, err, "--sway", "[-1, 1]", "got '2'")


@pytest.mark.parametrize("name", list(BASE))
def test_unknown_option(name, tmp_path, capsys):
    rc, err = _call(_args(name, tmp_path, "--bogus", "1"), capsys)
    _assert_one_line(rc, err, "unrecognized arguments: --bogus")


def test_export_unknown_dtype(tmp_path, capsys):
    rc, err = _call(_args("export", tmp_path, "--dtype", "nan"), capsys)
    _assert_one_line(rc, err, "nan")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BASE))
def test_real_command_line(name, tmp_path):
    """End to end, one bad input each: exit 2, one line, no traceback from the interpreter."""
    option = BASE[name][1]
    extra = [option, "1e9"] if option else []
    proc = subprocess.run([sys.executable, "-m", "core", *_args(name, tmp_path, *extra)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    _assert_one_line(proc.returncode, proc.stderr, "1e9" if option else "missing")
