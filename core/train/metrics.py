"""The run's ``metrics.jsonl``: one JSON object per logged step, plus the per-timestep
loss curve (flow loss averaged in fixed bins of t; t = 0 noise, t = 1 data)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Optional

import torch

N_TIME_BINS = 10


class TimeBins:
    """Accumulates per-example losses into ``n`` equal bins of t in [0, 1]."""

    def __init__(self, n: int = N_TIME_BINS):
        self.n = n
        self.reset()

    def reset(self) -> None:
        self.sum = torch.zeros(self.n, dtype=torch.float64)
        self.count = torch.zeros(self.n, dtype=torch.float64)

    def add(self, t: torch.Tensor, loss: torch.Tensor) -> None:
        """t, loss: (B,) tensors (any device)."""
        t = t.detach().double().cpu().clamp(0.0, 1.0)
        loss = loss.detach().double().cpu()
        idx = (t * self.n).long().clamp(max=self.n - 1)
        self.sum.index_add_(0, idx, loss)
        self.count.index_add_(0, idx, torch.ones_like(loss))

    def means(self) -> list[float | None]:
        """Mean loss per bin; ``None`` for a bin with no examples since the last reset."""
        return [None if c == 0 else float(s / c) for s, c in zip(self.sum, self.count)]

    @staticmethod
    def edges(n: int = N_TIME_BINS) -> list[float]:
        return [i / n for i in range(n + 1)]


def _clean(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep it visible as a string
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class MetricsLog:
    """Appends JSON lines to ``path``; each line is flushed and fsynced so a killed run
    keeps every line it logged.  On resume, lines after the resumed step are dropped so
    the file never holds two different histories."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        keep = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if int(row.get("step", 0)) <= step:
                keep.append(line)
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
        os.replace(tmp, self.path)

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(_clean(row)) + "\n")
            f.flush()
            os.fsync(f.fileno())


class MetricsTail:
    """The one reader of a run's ``metrics.jsonl`` (trainer, studio, dashboard): reads
    only what was appended since the last call (a byte offset; a torn last line waits
    for its newline; a file replaced or shortened, as on resume, is read again from the
    start).  Rows that are not JSON objects are skipped."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.offset = 0
        self._inode: Optional[int] = None

    def read_new(self) -> tuple[list[dict[str, Any]], bool]:
        """(rows appended since the last call, whether the file was read from the start
        again because it was replaced or shortened).  A missing file gives ([], False)."""
        try:
            st = self.path.stat()
        except OSError:
            return [], False
        restart = self._inode is not None and (st.st_ino != self._inode or st.st_size < self.offset)
        if restart:
            self.offset = 0
        self._inode = st.st_ino
        if st.st_size == self.offset:
            return [], restart
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(st.st_size - self.offset)
        end = data.rfind(b"\n")
        if end < 0:
            return [], restart
        self.offset += end + 1
        rows = []
        for line in data[:end].decode("utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows, restart


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All complete rows of a ``metrics.jsonl`` (a torn last line is ignored)."""
    return MetricsTail(path).read_new()[0]


def last_row(path: str | Path) -> Optional[dict[str, Any]]:
    """The newest complete row of a ``metrics.jsonl``, or None."""
    rows = read_metrics(path)
    return rows[-1] if rows else None
