"""What a run needs before its first step: data splits, tokenizer, speakers, samplers,
mel statistics, the resolved config, and the learning-rate schedule."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


from ..config import Config, ConfigError
from ..durations import DurationError, duration_source
from .distributed import World

log = logging.getLogger("core.train")


def lr_factor(step: int, warmup: int, total: int, decay: str) -> float:
    """Multiplier of the base learning rate after ``step`` updates: linear warm-up from
    ~0 to 1 over ``warmup`` steps, then ``cosine`` or ``linear`` decay to 0 at ``total``,
    or ``constant``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if decay == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if decay == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if decay == "linear":
        return 1.0 - progress
    raise ConfigError(f"unknown training.decay {decay!r}; valid: cosine, linear, constant")


@dataclass
class RunData:
    """Datasets and samplers of a run.  ``train_index`` / ``val_index`` map sampler
    positions to dataset rows (rows whose text has more tokens than mel frames are left
    out: monotonic alignment needs at least one frame per token)."""

    config: Config
    tokenizer: object
    encode: object
    speakers: list[str]
    train_set: object
    train_sampler: object
    val_set: Optional[object]
    val_batches: list[list[int]]
    mel_stats: tuple[float, float]

    def make_batch(self, dataset, indices):
        from ..data import collate

        return collate([dataset[i] for i in indices])


class _Subset:
    """Rows ``index`` of ``dataset`` (keeps ``__getitem__`` semantics: may return None)."""

    def __init__(self, dataset, index: list[int]):
        self.dataset, self.index = dataset, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        return self.dataset[self.index[i]]


def _alignable(dataset) -> list[int]:
    keep = [i for i in range(len(dataset)) if len(dataset.tokens[i]) <= dataset.lengths[i]]
    dropped = len(dataset) - len(keep)
    if dropped:
        log.warning("dataset: %d rows skipped: more tokens than mel frames (cannot be aligned)", dropped)
    return keep


def _mel_stats(dataset, n: int = 64) -> tuple[float, float]:
    """Mean and std of log-mel values over the real frames of up to ``n`` items."""
    total, total_sq, count = 0.0, 0.0, 0
    for i in range(min(n, len(dataset))):
        item = dataset[i]
        if item is None:
            continue
        m = item.mel.double()
        total += float(m.sum())
        total_sq += float((m * m).sum())
        count += m.numel()
    if count == 0:
        return 0.0, 1.0
    mean = total / count
    std = math.sqrt(max(total_sq / count - mean * mean, 1e-8))
    return mean, std


def build_run_data(config: Config, out: Path, world: World, tokenizer_state: Optional[dict] = None) -> RunData:
    """Read and split the data, build (or restore) the tokenizer and resolve the config:
    ``model.vocab_size`` and ``model.n_speakers`` follow the data."""
    from ..data import BucketBatchSampler, MelCache, TTSDataset, read_dataset, speaker_list, split_validation
    from ..text import TextFrontEnd, build_tokenizer, tokenizer_from_dict

    t = config.training
    if not t.data:
        raise ConfigError("training.data is empty: name an LJSpeech folder or a manifest (.csv/.jsonl)")
    rows = read_dataset(t.data, t.data_format)
    if t.val_data:
        train_rows, val_rows = rows, read_dataset(t.val_data, t.data_format)
    else:
        train_rows, val_rows = split_validation(rows, t.val_fraction, t.seed)
    speakers = speaker_list(list(train_rows) + list(val_rows))
    if tokenizer_state is not None:
        tokenizer = tokenizer_from_dict(tokenizer_state)
    elif config.text.tokenizer == "chars":
        from ..text import CharTokenizer, normalize_text

        texts = [normalize_text(r.text) if config.text.normalize else r.text for r in train_rows]
        tokenizer = CharTokenizer.fit(texts)
    else:
        tokenizer = build_tokenizer(config.text)
    model = dataclasses.replace(config.model, vocab_size=tokenizer.vocab_size, n_speakers=max(1, len(speakers)))
    config = dataclasses.replace(config, model=model)
    config.validate()
    encode = TextFrontEnd(config.text, tokenizer)
    cache = MelCache(Path(t.cache_dir) if t.cache_dir else out / "mel_cache", config.audio)
    try:
        given = duration_source(t.durations, config.audio, t.textgrid_dir, t.textgrid_tier)
    except DurationError as exc:
        raise ConfigError(str(exc)) from None
    train_full = TTSDataset(train_rows, config.audio, encode, speakers, t.max_audio_seconds, cache, given)
    keep = _alignable(train_full)
    if not keep:
        raise ConfigError(f"no usable training rows in {t.data}: {train_full.report.summary()}")
    train_set = _Subset(train_full, keep)
    lengths = [train_full.lengths[i] for i in keep]
    sampler = BucketBatchSampler(lengths, t.batch_frames, t.max_batch_size, shuffle=True, seed=t.seed,
                                 num_replicas=world.size, rank=world.rank)
    val_set, val_batches = None, []
    if val_rows:
        val_full = TTSDataset(val_rows, config.audio, encode, speakers, t.max_audio_seconds, cache, given)
        vkeep = _alignable(val_full)
        if vkeep:
            val_set = _Subset(val_full, vkeep)
            vs = BucketBatchSampler([val_full.lengths[i] for i in vkeep], t.batch_frames, t.max_batch_size,
                                    shuffle=False, num_replicas=world.size, rank=world.rank)
            val_batches = vs.batches(0)
    stats = _mel_stats(train_set)
    return RunData(config=config, tokenizer=tokenizer, encode=encode, speakers=speakers, train_set=train_set,
                   train_sampler=sampler, val_set=val_set, val_batches=val_batches, mel_stats=stats)
