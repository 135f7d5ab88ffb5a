"""Run by tests/test_ddp.py under ``torchrun --nproc_per_node=2``: three training steps
with the gloo backend on CPU, then rank 0 saves the model weights."""

import sys
from pathlib import Path

import torch

from core.config import Config
from core.train import Trainer
from core.train.distributed import cleanup, init_from_env


def main(cfg_path: str, out: str, steps: int) -> None:
    torch.set_num_threads(1)
    world = init_from_env("cpu")
    trainer = Trainer(Config.load(cfg_path), out, device="cpu", progress=False, world=world)
    batches = trainer.batches()
    for _ in range(steps):
        trainer.train_step(next(batches))
    if world.is_main:
        torch.save(trainer.model.state_dict(), Path(out) / "ddp_final.pt")
    cleanup(world)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
