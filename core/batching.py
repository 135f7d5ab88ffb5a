"""Length-bucketed batches with a frame budget, deterministic per (seed, epoch),
sharded across DDP ranks and resumable mid-epoch."""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

__all__ = ["BucketBatchSampler"]


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of similar-length items whose padded size stays within a frame budget.

    Each epoch: indices are shuffled, stably sorted by length (so ties land in a random
    order), and filled greedily into batches with ``max(length) * size <= batch_frames``
    and ``size <= max_batch_size`` (an item longer than ``batch_frames`` is a batch of
    its own); then the batch order is shuffled.  Everything depends only on
    (``seed``, epoch).  With ``shuffle=False`` batches come shortest first.

    Several replicas: every rank gets the same number of batches, rank r taking batches
    r, r + R, ...; the remainder is padded by repeating the first batches of the epoch
    (those few are seen twice) or, with ``drop_last``, dropped.  ``drop_last`` has no
    effect with one replica.

    Resume: ``state_dict()`` is ``{"epoch", "position"}``, position = batches of this
    epoch already yielded; iteration continues from there, and after the last batch the
    sampler moves to the next epoch.  ``set_epoch(e)`` starts epoch e from its first batch
    unless e is the current epoch (so calling it after ``load_state_dict`` keeps the
    position).  A ``DataLoader`` with workers draws batches ahead of the training loop;
    then store ``{"epoch": e, "position": batches actually consumed}`` instead.
    """

    def __init__(self, lengths: list[int], batch_frames: int, max_batch_size: int, shuffle: bool = True,
                 seed: int = 0, num_replicas: int = 1, rank: int = 0, drop_last: bool = False):
        if batch_frames <= 0 or max_batch_size <= 0:
            raise ValueError(f"batch_frames ({batch_frames}) and max_batch_size ({max_batch_size}) must be positive")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas}, {rank}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if (self.lengths < 0).any():
            raise ValueError("lengths must be >= 0")
        self.batch_frames, self.max_batch_size = int(batch_frames), int(max_batch_size)
        self.shuffle, self.seed = shuffle, int(seed)
        self.num_replicas, self.rank, self.drop_last = num_replicas, rank, drop_last
        self.epoch, self.position = 0, 0
        self.total_batches = len(self._fill(np.argsort(self.lengths, kind="stable")))
        if drop_last and self.total_batches < num_replicas:
            raise ValueError(f"only {self.total_batches} batches for {num_replicas} replicas with drop_last; "
                             "lower batch_frames or use drop_last=False")

    def _fill(self, order: np.ndarray) -> list[list[int]]:
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order.tolist():  # ascending length: the newest item is the longest
            if current and (len(current) + 1 > self.max_batch_size
                            or self.lengths[i] * (len(current) + 1) > self.batch_frames):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch``, in order."""
        rng = np.random.default_rng([self.seed % (1 << 63), epoch])  # SeedSequence wants ints >= 0
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        order = order[np.argsort(self.lengths[order], kind="stable")]
        batches = self._fill(order)
        if self.shuffle:
            batches = [batches[k] for k in rng.permutation(len(batches))]
        r = self.num_replicas
        if self.drop_last:
            batches = batches[: len(batches) // r * r]
        elif batches and len(batches) % r:
            batches = batches + batches[: r - len(batches) % r]
        return batches[self.rank:: r]

    def __len__(self) -> int:
        r = self.num_replicas
        return self.total_batches // r if self.drop_last else math.ceil(self.total_batches / r)

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches(self.epoch)
        while self.position < len(batches):
            self.position += 1
            yield batches[self.position - 1]
        self.epoch, self.position = self.epoch + 1, 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.position = int(epoch), 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        unknown = set(state) - {"epoch", "position"}
        if unknown or "epoch" not in state or "position" not in state:
            raise ValueError(f"sampler state needs keys epoch, position; got {', '.join(map(str, state))}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
