"""The bundled voices (core.bundled): present, small, safe to load, and intelligible.

The default is the everyday voice ``assets/demo_everyday.pt`` (``docs/demo_voice.md``);
the first demo voice ``assets/demo.pt`` (the grammar voice, ``assets/README.md``) stays.
Both are the small preset trained on a flite corpus.  These tests check what a fresh
clone promises: the files are committed and under 25 MB, each is the exported EMA
weights of the training run its config describes, ``Synthesizer.from_checkpoint()``
with no path loads the default, and pocketsphinx understands each voice (bounds pinned
from measurements).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.checkpoint import load_checkpoint
from core.config import Config, to_dict
from core.eval import frame_levels_db, nonsilent_fraction, read_sentences
from core.sampling.synthesizer import DEMO_CHECKPOINT, Synthesizer

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def test_grammar_voice_is_committed_small_and_an_export_of_the_documented_run():
    grammar = ASSETS / "demo.pt"
    assert grammar.is_file() and grammar.stat().st_size < 25 * 2**20
    ck = load_checkpoint(grammar)
    assert ck.train_state is None and ck.model_weights is None       # sampling weights only
    assert ck.speakers == ["awb", "kal16", "rms", "slt"]
    want = Config.load(ASSETS / "demo_config.json")
    # the trainer fills in the speaker count and the vocabulary of the chars tokenizer it built
    assert ck.config.model == replace(want.model, n_speakers=4, vocab_size=56)
    # the objective's own settings (the stored config also holds EDM's former default sigma_data 0.5,
    # which a cfm voice never reads)
    for key in ck.config.objective.KEYS_OF["cfm"] + ("name", "duration_weight"):
        assert getattr(ck.config.objective, key) == getattr(want.objective, key), key
    assert ck.config.audio == want.audio
    assert ck.extra["exported_from"]["step"] == want.training.steps == ck.step
    assert ck.extra["exported_from"]["dtype"] == "fp16"


def test_everyday_voice_is_the_default_and_an_export_of_the_documented_run():
    assert DEMO_CHECKPOINT == ASSETS / "demo_everyday.pt" and DEMO_CHECKPOINT.is_file()
    ck = load_checkpoint(DEMO_CHECKPOINT)
    assert ck.train_state is None and ck.model_weights is None
    assert ck.speakers == ["awb", "kal16", "rms", "slt"]
    want = Config.load(Path(__file__).resolve().parents[1] / "docs" / "demo_voice_everyday.json")
    assert ck.config.text.tokenizer == "phonemes" == want.text.tokenizer
    assert ck.config.model == replace(want.model, n_speakers=4, vocab_size=ck.config.model.vocab_size)
    for key in ck.config.objective.KEYS_OF["cfm"] + ("name", "duration_weight"):
        assert getattr(ck.config.objective, key) == getattr(want.objective, key), key
    assert ck.extra["exported_from"]["step"] == want.training.steps == ck.step == 5000
    # its recommended sampling: guidance 2 (docs/demo_voice.md: 30 sentences, WER 0.186 at
    # cfg 0 against 0.084 at cfg 2 on the lost first run; 0.084 again on this one at cfg 2)
    assert ck.config.sampling.cfg == 2.0 and ck.config.sampling.steps == 10


def test_meanflow_voice_is_a_one_step_export_of_the_documented_fine_tune():
    ck = load_checkpoint(ASSETS / "demo_meanflow.pt")
    assert ck.train_state is None and ck.model_weights is None
    everyday = load_checkpoint(DEMO_CHECKPOINT)
    assert ck.speakers == everyday.speakers and ck.config.text == everyday.config.text
    want = Config.load(Path(__file__).resolve().parents[1] / "docs" / "demo_meanflow.json")
    assert ck.config.model == replace(want.model, n_speakers=4, vocab_size=ck.config.model.vocab_size)
    assert ck.config.model.vocab_size == everyday.config.model.vocab_size
    for key in ck.config.objective.KEYS_OF["meanflow"] + ("name", "duration_weight"):
        assert getattr(ck.config.objective, key) == getattr(want.objective, key), key
    assert ck.config.objective.jvp_tangent == "predicted" and ck.config.objective.cfg == 1.0
    # fine-tuned from the everyday voice's run (demo3, step 5000) and stopped at step 1000 of
    # the config's 3000 (docs/demo_voice.md: the 1-step WER of its checkpoints every 250 steps)
    assert ck.config.training.init.endswith("demo3/checkpoints/step_00005000.pt")
    assert ck.extra["exported_from"]["step"] == ck.step == 1000
    # guidance is trained in, so it speaks in one step without guidance at run time
    assert ck.config.sampling.steps == 1 and ck.config.sampling.cfg == 0.0


def test_demo_sentences_are_the_held_out_set():
    sentences = read_sentences(ASSETS / "demo_sentences.txt")
    assert len(sentences) == 100 and len({s.text for s in sentences}) == 100
    assert json.loads((ASSETS / "corpus.json").read_text())["heldout"] == 100


def test_studio_with_no_settings_offers_the_demo_voice_first(tmp_path):
    from studio.config import find_checkpoints, parse_settings

    settings = parse_settings([], env={}, cwd=tmp_path)          # `panel serve studio/app.py`, nothing else
    entries = find_checkpoints(settings)
    assert entries and entries[0].path == DEMO_CHECKPOINT.resolve()  # the Explorer selects the first entry


@pytest.fixture(scope="module")
def demo():
    return Synthesizer.from_checkpoint(device="cpu", vocoder="griffin-lim")


def test_no_path_means_the_demo_voice(demo):
    assert Path(demo.checkpoint_path) == DEMO_CHECKPOINT
    clip = demo.synthesize("Hello there.", steps=4, speaker="slt", seed=0)
    assert clip.settings["checkpoint_sha256"] == load_checkpoint(DEMO_CHECKPOINT).sha256
    assert clip.audio.dtype == np.float32 and np.isfinite(clip.audio).all() and np.abs(clip.audio).max() <= 1
    # flite's slt speaks about 14 characters a second on the corpus; the demo keeps that pace
    seconds = len(clip.audio) / clip.sample_rate
    assert 0.5 < seconds < 2.0, seconds


def eight_sentence_wer(checkpoint: Path, sentences: Path, speaker: str):
    """pocketsphinx's WER (pooled over all words) on the first 8 sentences of ``sentences``
    spoken by ``checkpoint``'s ``speaker`` at the checkpoint's default sampling settings (its
    config's ``sampling``: no sampler option is passed), Griffin-Lim, seed 0.

    Returns ``(result, clips, pairs)``: the :class:`core.eval.WERResult`, the
    :class:`core.Synthesis` of each sentence and (text, hypothesis) pairs for a message."""
    from core.eval import Recognizer, wer

    synth = Synthesizer.from_checkpoint(checkpoint, device="cpu", vocoder="griffin-lim")
    texts = [s.text for s in read_sentences(sentences)[:8]]
    clips = [synth.synthesize(text, speaker=speaker, seed=0) for text in texts]
    rec = Recognizer()
    hyps = [rec.transcribe(c.audio, c.sample_rate) for c in clips]
    return wer(texts, hyps), clips, list(zip(texts, hyps))


# One entry per bundled voice: (checkpoint, its sentence file, speaker, highest WER allowed on
# its first 8 sentences).  A new bundled voice gets the same check by one more entry, its bound
# measured with `eight_sentence_wer` and pinned a little above.
#
# demo_everyday.pt, on the first 8 hand-written everyday sentences at its defaults (10 Euler
# steps, sway -1, cfg 2): measured 2026-12-03 on this machine (x86_64, 1 torch thread, torch
# 2.9.1, pocketsphinx 5.1.1): 1 error in 77 words ("cost here" heard as "cost care"), WER 0.013
# (the same with the stateless recognizer of 2026-12-04),
# with the command below on 'demo_everyday.pt', 'everyday_sentences.txt'; `core eval --limit 8`
# at 2 threads gave the same.  flite's own recordings of these 8 sentences: 5 errors (0.065), so
# issue 17's bar (1.5x flite) is 7.5 errors.  The bound allows 3 more words than measured: 4 / 77.
EVERYDAY_WER_BOUND = 4 / 77
#
# demo_meanflow.pt on the same 8 sentences at its defaults (1 step, no guidance: cfg 1 is
# trained in): measured 2026-12-03 on this machine (x86_64, 1 torch thread, torch 2.9.1,
# pocketsphinx 5.1.1) with the command below on 'demo_meanflow.pt', 'everyday_sentences.txt':
# 2 errors in 77 words ("cost here" heard as "cause care"), WER 0.026.  The fp32 checkpoint
# it was exported from scored 4 errors at 2 threads (`core eval --limit 8 --steps 1 --cfg 0`).
# Re-measured 2026-12-04 after the recognizer became stateless across clips (core.eval.Recognizer
# re-initialises its front end per clip): 3 errors (0.039).  The bound allows 2-3 more words: 5 / 77,
# flite's own 0.065.
MEANFLOW_WER_BOUND = 5 / 77
#
# demo.pt knows only its grammar, so it is checked on its held-out grammar sentences, at its
# defaults (sampling section): 10 Euler steps, sway -1, no guidance.  Measured 2026-12-03 on this
# machine (x86_64, 1 torch thread as in the tests, torch 2.9.1, pocketsphinx 5.1.1): 42 errors in
# 79 words, WER 0.532 (34 substitutions, 3 deletions, 5 insertions), with
#   cd tests && OMP_NUM_THREADS=1 python -c "import torch; torch.set_num_threads(1); from test_demo_voice
#   import eight_sentence_wer as w, ASSETS as A; print(w(A / 'demo.pt', A / 'demo_sentences.txt', 'slt')[0])"
# (2 threads gave 44 errors on 2026-12-02: thread count moves a few words; the stateless
# recognizer of 2026-12-04 hears 41).  The bound sits 4 word
# errors above, 46 / 79 = 0.582, just under issue 5's bar of 1.5x flite's own slt recordings of
# these 8 sentences (31 errors, 0.392, runs/demo_table/ref_raw.json): 0.589.
DEMO_WER_BOUND = 46 / 79

BUNDLED_VOICES = [
    pytest.param("demo_everyday.pt", "everyday_sentences.txt", "slt", EVERYDAY_WER_BOUND, id="everyday"),
    pytest.param("demo_meanflow.pt", "everyday_sentences.txt", "slt", MEANFLOW_WER_BOUND, id="meanflow"),
    pytest.param("demo.pt", "demo_sentences.txt", "slt", DEMO_WER_BOUND, id="grammar"),
]


# The bundled LeWM voice (docs/lewm.md) is not yet intelligible (WER about 0.96 on the held-out
# sentences), so it has no WER bound; what it does promise is checked instead: it free-runs
# to a stop at a natural length, with speech-level loudness, not silence (the notes' collapse).
LEWM_VOICE = "lewm_demo.pt"


@pytest.mark.skipif(not (ASSETS / LEWM_VOICE).is_file(), reason="the LeWM voice is not in this checkout")
@pytest.mark.skipif(shutil.which("flite") is None, reason="Debian flite is not installed (the reference lengths)")
def test_bundled_lewm_voice_free_runs_to_a_stop_at_flites_length():
    # Measured 2026-12-04 (x86_64, 1 torch thread) on these 8 sentences: each one stopped (none
    # near the 25 frames-per-byte limit), generated/flite duration 0.79-0.97, non-silent
    # fraction within 0.093 of flite's.  The bounds are issue 18's targets (0.6-1.6, 0.15).
    from core.corpus import flite_speak

    synth = Synthesizer.from_checkpoint(ASSETS / LEWM_VOICE, device="cpu", vocoder="griffin-lim")
    assert synth.attention_stop is not None  # shipped with the attention stop on
    texts = [s.text for s in read_sentences(ASSETS / "everyday_sentences.txt")[:8]]
    for text in texts:
        clip = synth.synthesize(text, speaker="slt", seed=0)
        ref = flite_speak(text, "slt")
        ratio = (len(clip.audio) / clip.sample_rate) / (len(ref.samples) / ref.sample_rate)
        ref_mel = _logmel(ref.samples, ref.sample_rate, synth)
        floor = float(frame_levels_db(ref_mel).max()) - 40.0  # as benchmarks/lewm_table.py
        diff = abs(nonsilent_fraction(clip.mel, floor) - nonsilent_fraction(ref_mel, floor))
        assert 0.6 <= ratio <= 1.6 and diff <= 0.15, (text, ratio, diff)


def _logmel(samples: np.ndarray, rate: int, synth) -> np.ndarray:
    import torch

    from core.audio import mel_spectrogram, resample

    wav = resample(torch.from_numpy(np.asarray(samples, np.float32))[None], rate, synth.sample_rate)
    return mel_spectrogram(wav, synth.config.audio)[0].numpy()


@pytest.mark.parametrize("checkpoint, sentences, speaker, bound", BUNDLED_VOICES)
def test_bundled_voice_is_intelligible_at_its_defaults(checkpoint, sentences, speaker, bound):
    pytest.importorskip("pocketsphinx", reason="pocketsphinx (eval extra) is not installed")
    result, clips, pairs = eight_sentence_wer(ASSETS / checkpoint, ASSETS / sentences, speaker)
    # every clip was rendered at the checkpoint's own sampling defaults
    defaults = to_dict(load_checkpoint(ASSETS / checkpoint).config.sampling)
    for clip in clips:
        assert {k: clip.settings[k] for k in defaults} == defaults
        assert clip.settings["speaker"] == speaker and clip.settings["vocoder"] == "griffin-lim"
    assert result.words > 0 and result.wer <= bound, (result.errors, result.words, pairs)


def test_every_bundled_voice_present_is_small_sampling_only_and_checked_above():
    """core.bundled names the shipped voices; each one in this checkout is an fp16 export
    under 25 MB and has its 8-sentence WER entry in BUNDLED_VOICES."""
    from core.bundled import BUNDLED_VOICES as SHIPPED

    checked = {p.values[0] for p in BUNDLED_VOICES} | {LEWM_VOICE}
    present = [v for v in SHIPPED if v.available()]
    assert present and present[0].path == DEMO_CHECKPOINT
    for voice in present:
        assert voice.path.name in checked, f"{voice.path.name} is bundled but has no BUNDLED_VOICES entry"
        assert voice.path.stat().st_size < 25 * 2**20
        ck = load_checkpoint(voice.path)
        assert ck.train_state is None and ck.model_weights is None, voice.name
        assert ck.extra["exported_from"]["dtype"] == "fp16", voice.name
