"""The CPU thread policy (core.threads) and its use by the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from core.config import ConfigError
from core.threads import ENV_THREADS, configure_threads, default_threads, resolve_threads


@pytest.mark.parametrize("cores, threads", [(1, 1), (2, 1), (3, 2), (4, 3), (16, 8), (64, 8)])
def test_default_keeps_a_core_free_and_one_thread_on_small_machines(cores, threads):
    assert default_threads(cores) == threads


def test_resolve_order_argument_then_environment_then_default(monkeypatch):
    monkeypatch.delenv(ENV_THREADS, raising=False)
    assert resolve_threads(None) == resolve_threads("auto") == default_threads()
    monkeypatch.setenv(ENV_THREADS, "3")
    assert resolve_threads(None) == 3 and resolve_threads(2) == 2 and resolve_threads("5") == 5
    monkeypatch.setenv(ENV_THREADS, "lots")
    with pytest.raises(ConfigError, match=r"\$FLOWTTS_THREADS must be a whole number >= 1 or 'auto', got 'lots'"):
        resolve_threads(None)
    for bad in (0, -2, 2.5, True, "1e9"):
        with pytest.raises(ConfigError, match="threads must be a whole number"):
            resolve_threads(bad)


def test_configure_sets_torch_and_reaches_new_threads():
    import threading

    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
        seen = []
        t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        t.start()
        t.join()
        assert seen == [1]  # a studio job thread computes with the same count
    finally:
        torch.set_num_threads(before)


def test_every_subcommand_takes_threads_and_refuses_a_bad_value():
    proc = subprocess.run([sys.executable, "-m", "core", "export", "--threads", "0", "--checkpoint", "x.pt",
                           "--out", "y.pt"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: threads must be a whole number in 1..1024 or 'auto', got '0'"]
    for command in ("synth", "train", "eval", "bench", "corpus", "export"):
        help_text = subprocess.run([sys.executable, "-m", "core", command, "--help"], capture_output=True,
                                   text=True, timeout=120).stdout
        assert "--threads" in help_text, command
