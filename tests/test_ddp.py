"""Two-process DistributedDataParallel (gloo, CPU) equals single-process gradient
averaging over the two ranks' batches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.config import merge
from core.data import BucketBatchSampler
from core.train import Trainer

from conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
STEPS = 3


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["cfm", "meanflow"])
def test_two_process_gloo_matches_gradient_averaging(tmp_path, tiny_corpus, objective):
    cfg = merge(tiny_config(tiny_corpus, max_batch_size=2, steps=50, val_every=0, checkpoint_every=0),
                {"objective": {"name": objective}})
    cfg_path = tmp_path / "cfg.json"
    cfg.save(cfg_path)
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "tests") + os.pathsep + str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           str(ROOT / "tests" / "ddp_worker.py"), str(cfg_path), str(out), str(STEPS)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = torch.load(out / "ddp_final.pt", weights_only=True)

    # Reference: one process, the two ranks' batches and generators, gradients averaged.
    ref = Trainer(cfg, tmp_path / "ref", device="cpu", progress=False)
    t = cfg.training
    lengths = ref.data.train_sampler.lengths
    rank_batches = [BucketBatchSampler(lengths, t.batch_frames, t.max_batch_size, shuffle=True, seed=t.seed,
                                       num_replicas=2, rank=r).batches(0) for r in (0, 1)]
    assert len(rank_batches[0]) >= STEPS
    gens = [torch.Generator().manual_seed(t.seed * 1000 + r) for r in (0, 1)]
    for step in range(STEPS):
        ref.optimizer.zero_grad(set_to_none=True)
        outs = []
        for r in (0, 1):
            ref.generator = gens[r]
            batch = ref.data.make_batch(ref.data.train_set, rank_batches[r][step])
            outs.append(ref.accumulate(batch, 0.5))
        assert not ref.apply_update(outs[0], 1).skipped
    mine = ref.model.state_dict()
    for k in mine:
        torch.testing.assert_close(ddp[k], mine[k], rtol=1e-4, atol=1e-5, msg=f"{k} differs")
    # and the run actually moved the weights away from the initial ones
    init = Trainer(cfg, tmp_path / "init", device="cpu", progress=False).model.state_dict()
    assert any(not torch.allclose(init[k], mine[k]) for k in mine if mine[k].is_floating_point())
