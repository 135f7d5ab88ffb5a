"""Training under faults (issue 21): SIGKILL at three random moments, ``--resume`` each
time, against an uninterrupted run of the same steps (bit-identical weights); the newest
checkpoint truncated before resuming (fall back to the previous good one, saying so).

The killed run goes through ``python -m core train`` in fresh processes, the reference
through the same ``Trainer`` in this process, both on one thread.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from core import load_checkpoint
from core.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
STEPS = 12  # room for three kills, each a step or two after a random checkpoint


def _train(cfg_path: Path, out: Path, resume: bool) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "core", "train", "--config", str(cfg_path), "--out", str(out), "--device", "cpu",
           "--no-progress"] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("step_*.pt"))


def _newest_step(out: Path) -> int:
    found = _checkpoints(out)
    return int(found[-1].stem.split("_")[1]) if found else 0


@pytest.mark.slow
def test_sigkill_three_times_and_resume_is_bit_identical(tmp_path, tiny_corpus):
    cfg = tiny_config(tiny_corpus, steps=STEPS, checkpoint_every=1, val_every=0, log_every=1, keep_checkpoints=3)
    cfg_path = tmp_path / "cfg.json"
    cfg.save(cfg_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the killed runs (OMP_NUM_THREADS=1): same reduction order
    try:
        Trainer(cfg, tmp_path / "reference", progress=False).fit()
    finally:
        torch.set_num_threads(threads)
    # one step with its checkpoint write, as this machine runs it: the random kill moment stays
    # within about a step of the target, so a fast machine cannot run past the end (CI once
    # finished all 12 steps inside a fixed 0.3 s window)
    kept = _checkpoints(tmp_path / "reference")  # the newest three (keep_checkpoints=3)
    step_s = (kept[-1].stat().st_mtime - kept[0].stat().st_mtime) / (len(kept) - 1)

    rng = random.Random(21)
    run = tmp_path / "killed"
    kills = []
    for attempt in range(3):
        # kill once this many more steps are saved (never so late that the run could finish) ...
        target = min(_newest_step(run) + rng.randint(1, 2), STEPS - 4)
        proc = _train(cfg_path, run, resume=attempt > 0)
        deadline = time.time() + 300
        while time.time() < deadline and _newest_step(run) < target and proc.poll() is None:
            time.sleep(min(0.02, step_s / 4))  # poll faster than steps come, however fast the machine
        time.sleep(rng.uniform(0.0, step_s))  # ... plus a random moment (mid-step or mid-write)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
        kills.append(_newest_step(run))
    final = _train(cfg_path, run, resume=True)
    assert final.wait(timeout=600) == 0, final.stderr.read()[-2000:]
    print(f"\nkilled after checkpoints {kills} of {STEPS} steps ({step_s:.3f} s a step); resumed to {STEPS}")
    assert kills == sorted(kills) and kills[-1] < STEPS

    a = load_checkpoint(tmp_path / "reference" / "checkpoints" / f"step_{STEPS:08d}.pt")
    b = load_checkpoint(run / "checkpoints" / f"step_{STEPS:08d}.pt")
    for name in ("weights", "model_weights"):  # EMA and raw weights
        wa, wb = getattr(a, name), getattr(b, name)
        assert wa.keys() == wb.keys()
        different = [k for k in wa if not torch.equal(wa[k], wb[k])]
        assert different == [], f"{name} differ after kills at {kills}: {different[:3]}"
    sa, sb = a.train_state["optimizer"]["state"], b.train_state["optimizer"]["state"]
    assert all(torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"]) for k in sa)


def test_bad_newest_checkpoint_falls_back_and_says_so(tmp_path, tiny_cfg, caplog):
    Trainer(tiny_cfg, tmp_path, progress=False).fit()  # checkpoints at steps 3 and 6
    newest = tmp_path / "checkpoints" / "step_00000006.pt"
    data = newest.read_bytes()
    payload = torch.load(newest, weights_only=True)
    newest.write_bytes(data[: len(data) // 2])  # a torn copy, as a full disk or a bad sync leaves it
    with caplog.at_level(logging.WARNING, logger="core.train"):
        resumed = Trainer(tiny_cfg, tmp_path, progress=False, resume=True)
    assert resumed.step == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("skipping unreadable checkpoint" in w and "step_00000006.pt" in w for w in warnings), warnings

    # a complete file whose weights do not fit the model: skipped the same way, naming the weight
    caplog.clear()
    payload["weights"] = {k: v for k, v in payload["weights"].items() if k != "prior.bias"}
    torch.save(payload, newest)
    with caplog.at_level(logging.WARNING, logger="core.train"):
        resumed = Trainer(tiny_cfg, tmp_path, progress=False, resume=True)
    assert resumed.step == 3
    assert any("step_00000006.pt" in r.getMessage() and "prior.bias" in r.getMessage() for r in caplog.records)
