"""LeWM voice prompts: the reference's latents are the predictor's prefix (the cache path
equals full recomputation with it, the output changes with it and excludes it), and bad
prompts are clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import core
from core.audio import AudioError
from core.lewm import generate
from core.lewm.generate import MAX_PREFIX_STEPS, encode_prompt
from core.lewm.prompt import MAX_PROMPT_SECONDS

from test_lewm import gens, tiny_model, tokens_of


def _tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


# ----------------------------------------------------------------------------- generate()


def test_prefix_with_the_cache_equals_full_recomputation():
    model = tiny_model()
    tokens, mask = tokens_of([9, 6])
    prefix = torch.randn(5, model.config.latent_dim)
    out = generate(model, tokens, mask, generators=gens([0, 1]), min_length_ratio=6.0, max_length_ratio=8.0,
                   prenet_dropout=False, prefix=prefix, prefix_tokens=[3, 3])
    assert out.steps > 3
    memory = model.encode_text(tokens, mask)
    fed = torch.cat([prefix[None].expand(2, -1, -1), out.latents[:, :-1]], 1)
    again = model.teacher_forced(fed, memory, mask)        # one causal forward over prefix + output, no cache
    for b, n in enumerate(out.lengths.tolist()):
        torch.testing.assert_close(again.pred[b, 5:5 + n], out.latents[b, :n], atol=1e-5, rtol=1e-5)


def test_prefix_changes_the_output_and_is_not_part_of_it():
    model = tiny_model()
    with torch.no_grad():
        model.predictor.stop.bias.fill_(-100.0)             # lengths from the limits
    tokens, mask = tokens_of([8])
    kw = dict(min_length_ratio=1.0, max_length_ratio=4.0, prenet_dropout=False)
    plain = generate(model, tokens, mask, generators=gens([0]), **kw)
    prompted = generate(model, tokens, mask, generators=gens([0]), prefix=torch.randn(7, model.config.latent_dim),
                        prefix_tokens=[4], **kw)
    # the limits count the 4 text tokens after the transcript: ceil(4 * 4 / 2) = 8 latent frames, not 16
    assert plain.lengths.tolist() == [16] and prompted.lengths.tolist() == [8]
    assert prompted.latents.shape[1] == 8 and prompted.mel.shape[-1] == 16
    assert not torch.allclose(prompted.latents, plain.latents[:, :8])


def test_prefix_with_prenet_dropout_batch_equals_single():
    model = tiny_model()
    tokens, mask = tokens_of([9, 5])
    prefix = torch.randn(4, model.config.latent_dim)
    kw = dict(temperature=0.3, min_length_ratio=1.0, max_length_ratio=4.0, prenet_dropout=True, prefix=prefix)
    batch = generate(model, tokens, mask, generators=gens([3, 4]), prefix_tokens=[2, 2], **kw)
    for b in range(2):
        n = int(mask[b].sum())
        alone = generate(model, tokens[b:b + 1, :n], mask[b:b + 1, :n], generators=gens([3 + b]), prefix_tokens=[2],
                         **kw)
        k = int(alone.lengths[0])
        torch.testing.assert_close(batch.latents[b, :k], alone.latents[0, :k], atol=1e-5, rtol=1e-5)


def test_bad_prefixes_are_clear_errors():
    model = tiny_model()
    tokens, mask = tokens_of([4])
    d = model.config.latent_dim
    with pytest.raises(ValueError, match="prefix must be"):
        generate(model, tokens, mask, generators=gens([0]), prefix=torch.randn(3, d + 1))
    with pytest.raises(ValueError, match="over the limit"):
        generate(model, tokens, mask, generators=gens([0]), prefix=torch.zeros(MAX_PREFIX_STEPS + 1, d))
    with pytest.raises(ValueError, match="prefix_tokens"):
        generate(model, tokens, mask, generators=gens([0]), prefix=torch.zeros(2, d), prefix_tokens=[4])
    with pytest.raises(ValueError, match="prompt mel"):
        encode_prompt(model, torch.zeros(80, 10))
    assert encode_prompt(model, torch.zeros(100, 9)).shape == (5, d)      # ceil(9 / 2) latent frames


# ----------------------------------------------------------------------------- the Synthesizer


@pytest.fixture(scope="module")
def synth(tiny_lewm_checkpoint):
    return core.Synthesizer.from_checkpoint(tiny_lewm_checkpoint, device="cpu", vocoder="griffin-lim")


def test_synthesize_with_a_voice_prompt(synth, tmp_path):
    path = tmp_path / "ref.wav"
    sf.write(path, _tone(1.0, 24000), 24000)
    kw = dict(seed=3, temperature=0.0, min_length_ratio=2.0, max_length_ratio=3.0)
    plain = synth.synthesize("Say this now.", **kw)
    clip = synth.synthesize("Say this now.", prompt_audio=str(path), prompt_text="A reference line.", **kw)
    s = clip.settings
    assert s["prompt_audio"] == str(path) and s["prompt_text"] == "A reference line." and len(s["prompt_sha256"]) == 64
    assert plain.settings["prompt_audio"] is None
    # the clip is the continuation only: its length follows the text's limits, not the prompt's 1 s
    assert clip.mel.shape == plain.mel.shape and not np.allclose(clip.mel, plain.mel)
    again = synth.synthesize(s["text"], **{k: s[k] for k in ("temperature", "min_length_ratio", "max_length_ratio",
                                                             "seed", "speaker", "prompt_audio", "prompt_text")})
    np.testing.assert_array_equal(again.mel, clip.mel)
    # an array at another rate is resampled: the same clip at 16 kHz gives (nearly) the same prompt
    arr = synth.synthesize("Say this now.", prompt_audio=_tone(1.0, 16000), prompt_sample_rate=16000,
                           prompt_text="A reference line.", **kw)
    assert arr.settings["prompt_audio"] == "array" and arr.mel.shape == clip.mel.shape
    # batched texts with one prompt
    both = synth.synthesize(["Say this now.", "And this."], prompt_audio=str(path), prompt_text="A reference line.",
                            **kw)
    np.testing.assert_allclose(both[0].mel, clip.mel, atol=1e-4)


def test_bad_voice_prompts_are_clear_errors(synth, tmp_path):
    wav = _tone(1.0, 24000)
    with pytest.raises(core.ConfigError, match="needs its transcript"):
        synth.synthesize("Hi.", prompt_audio=wav, prompt_sample_rate=24000)
    with pytest.raises(core.ConfigError, match="needs its transcript"):
        synth.synthesize("Hi.", prompt_audio=wav, prompt_sample_rate=24000, prompt_text="  ")
    with pytest.raises(core.ConfigError, match="without prompt_audio"):
        synth.synthesize("Hi.", prompt_text="words")
    with pytest.raises(core.ConfigError, match="needs prompt_sample_rate"):
        synth.synthesize("Hi.", prompt_audio=wav, prompt_text="words")
    with pytest.raises(core.ConfigError, match="positive integer"):
        synth.synthesize("Hi.", prompt_audio=wav, prompt_text="words", prompt_sample_rate=-5)
    with pytest.raises(core.ConfigError, match="over the limit of 15 s"):
        synth.synthesize("Hi.", prompt_audio=_tone(MAX_PROMPT_SECONDS + 1, 8000), prompt_sample_rate=8000,
                         prompt_text="words")
    with pytest.raises(core.ConfigError, match="shorter than"):
        synth.synthesize("Hi.", prompt_audio=wav[:1000], prompt_sample_rate=24000, prompt_text="words")
    with pytest.raises(core.ConfigError, match="1-D float"):
        synth.synthesize("Hi.", prompt_audio=np.zeros((2, 24000), np.float32), prompt_sample_rate=24000,
                         prompt_text="words")
    with pytest.raises(AudioError, match="not found"):
        synth.synthesize("Hi.", prompt_audio=str(tmp_path / "missing.wav"), prompt_text="words")
