"""The Synthesizer on tiny checkpoints trained for a few CPU steps: reproducibility,
batching, NFE, guidance cost, trajectories, durations, speakers, long text, errors,
vocoders and the three objectives.  GPU tests are marked and skip without CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointError
from core.config import ConfigError
from core.sampling import nfe_per_step
from core.sampling import synthesizer as synth_module
from core.sampling.synthesizer import (CROSSFADE_SECONDS, OPTION_NAMES, Synthesis, Synthesizer, crossfade_join)
from core.text import TextError, split_sentences
from core.vocoders import VocoderError
from sampling_fixtures import (cfm_checkpoint, cfm_synth, edm_checkpoint, meanflow_checkpoint,  # noqa: F401
                               write_vocos_folder)

TEXT = "red blue cat dog"
HOP = 256


class CountCalls:
    """Wraps ``model.predict`` of a synthesizer and records the batch of every call."""

    def __init__(self, synth, monkeypatch):
        self.batches = []
        real = synth.model.predict

        def counting(x, t, cond, r=None, drop=None, attention=None):
            self.batches.append(x.shape[0])
            return real(x, t, cond, r=r, drop=drop, attention=attention)

        monkeypatch.setattr(synth.model, "predict", counting)


# --------------------------------------------------------------------------- the result


def test_synthesis_record(cfm_synth, cfm_checkpoint):
    out = cfm_synth.synthesize(TEXT, steps=3, seed=1)
    assert isinstance(out, Synthesis)
    assert out.audio.dtype == np.float32 and out.audio.ndim == 1 and np.abs(out.audio).max() <= 1.0
    assert np.isfinite(out.audio).all() and np.abs(out.audio).max() > 0
    assert out.sample_rate == 24000
    assert out.mel.dtype == np.float32 and out.mel.shape[0] == 100
    assert len(out.audio) == out.mel.shape[1] * HOP  # one chunk: no cross-fade
    assert set(out.timings) == {"acoustic", "vocoder", "total"} and all(v > 0 for v in out.timings.values())
    assert out.trajectory is None and out.times is None
    s = out.settings
    assert {"text", *OPTION_NAMES, "vocoder", "checkpoint", "checkpoint_sha256", "code_version",
            "objective"} <= set(s)
    assert s["text"] == TEXT and s["seed"] == 1 and s["speaker"] == "alice" and s["vocoder"] == "griffin-lim"
    assert s["checkpoint"] == str(cfm_checkpoint) and len(s["checkpoint_sha256"]) == 64
    assert s["objective"] == "cfm"


def test_fixed_seed_is_bit_identical_and_seeds_differ(cfm_synth):
    a = cfm_synth.synthesize(TEXT, steps=3, seed=7)
    b = cfm_synth.synthesize(TEXT, steps=3, seed=7)
    c = cfm_synth.synthesize(TEXT, steps=3, seed=8)
    assert np.array_equal(a.audio, b.audio) and np.array_equal(a.mel, b.mel)
    assert np.abs(a.mel - c.mel).max() > 1e-2


def test_random_seed_is_recorded_and_rerenders(cfm_synth):
    a = cfm_synth.synthesize(TEXT, steps=2)
    assert isinstance(a.settings["seed"], int)
    again = cfm_synth.synthesize(a.settings["text"], **{k: a.settings[k] for k in OPTION_NAMES})
    assert np.array_equal(a.audio, again.audio)


def test_temperature_zero_ignores_the_seed(cfm_synth):
    a = cfm_synth.synthesize(TEXT, steps=2, temperature=0.0, seed=1)
    b = cfm_synth.synthesize(TEXT, steps=2, temperature=0.0, seed=2)
    assert np.array_equal(a.mel, b.mel)
    # and it starts from exactly zero noise: the first trajectory state is the mel mean
    t = cfm_synth.synthesize(TEXT, steps=2, temperature=0.0, seed=3, return_trajectory=True)
    assert np.allclose(t.trajectory[0], float(cfm_synth.model.mel_mean), atol=1e-6)


def test_batch_equals_each_item_alone(cfm_synth, monkeypatch):
    texts = ["red blue", "cat dog sun tree map", "old"]
    calls = CountCalls(cfm_synth, monkeypatch)
    batch = cfm_synth.synthesize(texts, steps=3, seed=11)
    assert calls.batches == [3, 3, 3]  # one padded batch, one forward per step
    assert isinstance(batch, list) and len(batch) == 3
    lengths = {b.mel.shape[1] for b in batch}
    assert len(lengths) > 1  # really padded
    for k, item in enumerate(batch):
        assert item.settings["seed"] == 11 + k and item.settings["text"] == texts[k]
        alone = cfm_synth.synthesize(texts[k], steps=3, seed=11 + k)
        assert alone.mel.shape == item.mel.shape
        np.testing.assert_allclose(item.mel, alone.mel, atol=1e-4)
        assert len(alone.audio) == len(item.audio)


@pytest.mark.parametrize("solver", ["euler", "midpoint", "heun", "rk4"])
def test_nfe_is_steps_times_nfe_per_step(cfm_synth, monkeypatch, solver):
    calls = CountCalls(cfm_synth, monkeypatch)
    out = cfm_synth.synthesize(TEXT, steps=2, solver=solver, seed=0)
    assert out.nfe == 2 * nfe_per_step(solver) == len(calls.batches)


def test_guidance_changes_output_and_costs_one_batched_forward(cfm_synth, monkeypatch):
    plain = cfm_synth.synthesize(TEXT, steps=3, seed=5)
    calls = CountCalls(cfm_synth, monkeypatch)
    guided = cfm_synth.synthesize(TEXT, steps=3, seed=5, cfg=2.0)
    assert calls.batches == [2, 2, 2]  # conditional + null rows in one forward per evaluation
    assert guided.nfe == 3 and guided.settings["cfg"] == 2.0
    assert np.abs(guided.mel - plain.mel).max() > 1e-3


def test_trajectory(cfm_synth):
    out = cfm_synth.synthesize(TEXT, steps=4, seed=2, return_trajectory=True)
    assert out.trajectory.shape == (5, 100, out.mel.shape[1]) and out.trajectory.dtype == np.float32
    assert np.array_equal(out.trajectory[-1], out.mel)
    assert out.times.shape == (5,) and out.times[0] == 0.0 and out.times[-1] == 1.0
    assert np.all(np.diff(out.times) > 0)
    # the sway grid with coef -1 is 1 - cos(pi/2 u) (core/sampling/grids.py)
    np.testing.assert_allclose(out.times, 1 - np.cos(np.pi / 2 * np.linspace(0, 1, 5)), atol=1e-6)


def test_duration_scale_two_doubles_the_frames(cfm_synth):
    one = cfm_synth.synthesize(TEXT, steps=1, seed=0).mel.shape[1]
    two = cfm_synth.synthesize(TEXT, steps=1, seed=0, duration_scale=2.0).mel.shape[1]
    # frames = sum(max(1, round(d * scale))): within one frame per token of exactly 2x
    n_tokens = len(cfm_synth.front_end(TEXT))
    assert abs(two - 2 * one) <= n_tokens and 1.6 < two / one < 2.4


def test_speaker_by_name_and_index(cfm_synth):
    by_name = cfm_synth.synthesize(TEXT, steps=2, seed=0, speaker="bob")
    by_index = cfm_synth.synthesize(TEXT, steps=2, seed=0, speaker=1)
    default = cfm_synth.synthesize(TEXT, steps=2, seed=0)
    alice = cfm_synth.synthesize(TEXT, steps=2, seed=0, speaker="alice")
    assert np.array_equal(by_name.mel, by_index.mel) and by_index.settings["speaker"] == "bob"
    assert np.array_equal(default.mel, alice.mel) and default.settings["speaker"] == "alice"
    assert by_name.mel.shape != alice.mel.shape or np.abs(by_name.mel - alice.mel).max() > 1e-4


@pytest.mark.parametrize("speaker", ["carol", 2, -1, 1.0])
def test_unknown_speaker_lists_the_known_ones(cfm_synth, speaker):
    with pytest.raises(ConfigError, match=r"unknown speaker .*valid: alice, bob \(or an index 0\.\.1\)"):
        cfm_synth.synthesize(TEXT, speaker=speaker)


# --------------------------------------------------------------------------- long text


def test_crossfade_join_is_equal_power():
    a, b = np.ones(10), np.ones(6)
    out = crossfade_join([a, b], 4)
    assert len(out) == 12
    u = (np.arange(4) + 0.5) / 4
    np.testing.assert_allclose(out[6:10], np.cos(np.pi / 2 * u) + np.sin(np.pi / 2 * u))
    np.testing.assert_allclose(out[:6], 1.0)
    np.testing.assert_allclose(out[10:], 1.0)
    fade = crossfade_join([a, np.zeros(6)], 4)[6:10]
    np.testing.assert_allclose(fade ** 2 + crossfade_join([np.zeros(10), b], 4)[6:10] ** 2, 1.0)
    assert len(crossfade_join([np.ones(2), np.ones(5), np.ones(3)], 4)) == 10 - 2 - 3  # overlaps cut to fit


def test_long_text_is_split_and_crossfaded(cfm_synth, monkeypatch, ):
    monkeypatch.setattr(synth_module, "CHUNK_CHARS", 24)
    text = "Red blue cat dog sun. Tree map run big old. Sea hat red blue cat!"
    chunks = split_sentences(text, 24)
    assert len(chunks) == 3
    calls = CountCalls(cfm_synth, monkeypatch)
    out = cfm_synth.synthesize(text, steps=2, seed=4, return_trajectory=True)
    assert calls.batches == [3, 3]  # all chunks in one batch
    assert out.settings["chunks"] == 3 and out.settings["text"] == text
    overlap = round(CROSSFADE_SECONDS * 24000)
    assert out.mel.shape[1] * HOP > 3 * overlap  # every chunk is longer than the cross-fade
    assert len(out.audio) == out.mel.shape[1] * HOP - 2 * overlap
    assert out.trajectory.shape == (3, 100, out.mel.shape[1])


def test_empty_text_is_an_error(cfm_synth):
    for bad in ("", "   \n\t "):
        with pytest.raises(TextError, match="empty"):
            cfm_synth.synthesize(bad)
    with pytest.raises(TextError, match="non-empty list"):
        cfm_synth.synthesize([])
    with pytest.raises(TextError, match="empty"):
        cfm_synth.synthesize(["red", " "])


def test_too_long_text_is_refused_before_any_compute(cfm_synth, monkeypatch):
    calls = CountCalls(cfm_synth, monkeypatch)
    limit = cfm_synth.config.text.max_chars
    with pytest.raises(TextError, match=f"over the limit of {limit}"):
        cfm_synth.synthesize("red " * (limit // 4 + 1))
    assert calls.batches == []


# the ranges are those of core.sampling.options.SAMPLER_OPTIONS (one place for every page and CLI)
@pytest.mark.parametrize("option, value, message", [
    ("steps", 0, r"steps must be an integer in 1\.\.1000, got 0"),
    ("steps", 2.5, r"steps must be an integer in 1\.\.1000"),
    ("steps", 10 ** 9, r"steps must be an integer in 1\.\.1000"),
    ("solver", "dopri", "unknown solver 'dopri'; valid: euler, midpoint, heun, rk4"),
    ("schedule", "cosine", "unknown schedule 'cosine'; valid: linear, power, sway, epss"),
    ("sway", 1.5, r"sway must be a number in \[-1.0, 1.0\]"),
    ("duration_scale", 0.0, r"duration_scale must be a number in \[0.25, 4.0\]"),
    ("temperature", -0.1, r"temperature must be a number in \[0.0, 2.0\]"),
    ("temperature", float("nan"), r"temperature must be a number in \[0.0, 2.0\], got nan"),
    ("cfg", -1.0, r"cfg must be a number in \[0.0, 10.0\]"),
    ("cfg", 100.0, r"cfg must be a number in \[0.0, 10.0\]"),
    ("seed", -3, r"seed must be None or an integer in 0\.\.2147483647"),
])
def test_bad_options_list_valid_values(cfm_synth, option, value, message):
    with pytest.raises(ConfigError, match=message):
        cfm_synth.synthesize(TEXT, **{option: value})


def test_epss_schedule_needs_a_defined_step_count(cfm_synth):
    assert cfm_synth.synthesize(TEXT, steps=5, schedule="epss", seed=0).nfe == 5
    with pytest.raises(ConfigError, match="epss schedule is defined for steps 5, 6, 7, 10, 12, 16"):
        cfm_synth.synthesize(TEXT, steps=4, schedule="epss")


# --------------------------------------------------------------------------- loading, vocoders, objectives


def test_missing_demo_voice_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(synth_module, "DEMO_CHECKPOINT", tmp_path / "assets" / "demo.pt")
    with pytest.raises(CheckpointError, match="bundled demo voice .*demo.pt is not there"):
        Synthesizer.from_checkpoint(None)


def test_bad_precision_and_device(cfm_checkpoint):
    with pytest.raises(ConfigError, match="unknown precision 'fp8'; valid: fp32, bf16, fp16"):
        Synthesizer.from_checkpoint(cfm_checkpoint, vocoder="griffin-lim", precision="fp8")
    with pytest.raises(ConfigError, match="unknown device"):
        Synthesizer.from_checkpoint(cfm_checkpoint, device="tpu:0", vocoder="griffin-lim")


def test_vocos_folder_and_mismatch(cfm_checkpoint, tmp_path):
    folder = write_vocos_folder(tmp_path / "vocos100")
    synth = Synthesizer.from_checkpoint(cfm_checkpoint, device="cpu", vocoder=str(folder))
    out = synth.synthesize(TEXT, steps=2, seed=0)
    assert out.settings["vocoder"] == f"vocos:{folder}"
    assert len(out.audio) == out.mel.shape[1] * HOP and np.isfinite(out.audio).all()
    bad = write_vocos_folder(tmp_path / "vocos80", n_mels=80)
    with pytest.raises(VocoderError, match="vocoder expects n_mels=80 but the checkpoint uses n_mels=100"):
        Synthesizer.from_checkpoint(cfm_checkpoint, device="cpu", vocoder=str(bad))


def test_bf16_autocast_on_cpu_is_close(cfm_checkpoint, cfm_synth):
    ref = cfm_synth.synthesize(TEXT, steps=2, seed=0)
    bf16 = Synthesizer.from_checkpoint(cfm_checkpoint, device="cpu", vocoder="griffin-lim", precision="bf16")
    out = bf16.synthesize(TEXT, steps=2, seed=0)
    assert out.settings["precision"] == "bf16" and out.mel.shape == ref.mel.shape
    assert np.abs(out.mel - ref.mel).max() < 0.1  # bf16 keeps ~3 significant digits


def test_edm_checkpoint_synthesises(edm_checkpoint):
    synth = Synthesizer.from_checkpoint(edm_checkpoint, device="cpu", vocoder="griffin-lim")
    out = synth.synthesize(TEXT, steps=3, solver="heun", seed=0, cfg=1.0)
    assert out.settings["objective"] == "edm" and out.nfe == 6
    assert np.isfinite(out.mel).all() and np.isfinite(out.audio).all() and np.abs(out.audio).max() > 0


def test_meanflow_one_step_is_one_jump(meanflow_checkpoint, monkeypatch):
    synth = Synthesizer.from_checkpoint(meanflow_checkpoint, device="cpu", vocoder="griffin-lim")
    calls = CountCalls(synth, monkeypatch)
    out = synth.synthesize(TEXT, steps=1, seed=3, return_trajectory=True)
    assert out.nfe == 1 and calls.batches == [1]
    assert np.isfinite(out.audio).all() and out.settings["objective"] == "meanflow"
    # x1 = x0 + u(x0, 0, 1) in the network's normalised space
    model = synth.model
    x0 = torch.from_numpy(out.trajectory[0])[None]
    tokens = torch.tensor([synth.front_end(TEXT)])
    with torch.no_grad():
        cond = model.inference_conditioning(tokens, torch.ones_like(tokens, dtype=torch.bool), torch.tensor([0]))
        z = model.normalize_mel(x0)
        u = model.predict(z, torch.ones(1), cond, r=torch.zeros(1))
        x1 = model.denormalize_mel(z + u)
    np.testing.assert_allclose(out.mel, x1[0].numpy(), atol=1e-4)
    assert synth.synthesize(TEXT, steps=4, seed=3).nfe == 4
    with pytest.raises(ConfigError, match="solver must be 'euler'"):
        synth.synthesize(TEXT, solver="heun")


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_matches_cpu(cfm_checkpoint, cfm_synth, precision):
    ref = cfm_synth.synthesize(TEXT, steps=4, seed=9)
    gpu = Synthesizer.from_checkpoint(cfm_checkpoint, device="cuda", vocoder="griffin-lim", precision=precision)
    out = gpu.synthesize(TEXT, steps=4, seed=9, cfg=0.0)  # the noise comes from a CPU generator
    assert out.mel.shape == ref.mel.shape and np.isfinite(out.audio).all()
    assert np.abs(out.mel - ref.mel).max() < (1e-3 if precision == "fp32" else 0.1)
    batch = gpu.synthesize([TEXT, "red"], steps=4, seed=9, cfg=1.0)
    assert len(batch) == 2 and all(np.isfinite(b.audio).all() for b in batch)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_cuda_sampling_loop_has_no_host_syncs(cfm_checkpoint, solver):
    from core.sampling import integrate, model_net, time_grid

    gpu = Synthesizer.from_checkpoint(cfm_checkpoint, device="cuda", vocoder="griffin-lim")
    tokens = torch.tensor([gpu.front_end(TEXT)], device="cuda")
    with torch.inference_mode():
        cond = gpu.model.inference_conditioning(tokens, torch.ones_like(tokens, dtype=torch.bool),
                                                torch.zeros(1, dtype=torch.long, device="cuda"))
        x0 = torch.randn(1, 100, cond.mel_mask.shape[1], device="cuda")
        grid = time_grid(8, "sway", -1.0, device="cuda")
        velocity = gpu.objective.velocity(model_net(gpu.model, cond, 2.0))
        integrate(velocity, x0, grid, solver)  # warm-up (lazy initialisation may sync)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            x1 = integrate(velocity, x0, grid, solver)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(x1).all()


def test_options_left_out_take_the_checkpoints_sampling_defaults(cfm_synth):
    import copy
    from dataclasses import replace

    from core.config import SamplingConfig

    # the stock defaults: 10 Euler steps, sway grid, sway -1, no guidance
    plain = cfm_synth.synthesize(TEXT, seed=3)
    assert plain.nfe == 10 and plain.settings["solver"] == "euler" and plain.settings["sway"] == -1.0
    assert plain.settings["cfg"] == 0.0 and plain.settings["schedule"] == "sway"
    # a checkpoint whose config recommends other settings (a shallow copy: the fixture is shared)
    tuned = copy.copy(cfm_synth)
    tuned.config = replace(cfm_synth.config, sampling=SamplingConfig(
        steps=3, solver="midpoint", schedule="linear", sway=0.0, duration_scale=1.5, cfg=1.5, temperature=0.5))
    got = tuned.synthesize(TEXT, seed=3)
    want = cfm_synth.synthesize(TEXT, seed=3, steps=3, solver="midpoint", schedule="linear", sway=0.0,
                                duration_scale=1.5, cfg=1.5, temperature=0.5)
    assert got.nfe == 3 * nfe_per_step("midpoint")
    assert {k: got.settings[k] for k in OPTION_NAMES} == {k: want.settings[k] for k in OPTION_NAMES}
    np.testing.assert_array_equal(got.audio, want.audio)
    # an option given explicitly wins over the checkpoint's default
    assert tuned.synthesize(TEXT, seed=3, steps=2, solver="euler").nfe == 2


def test_a_long_text_of_numbers_is_spoken_in_chunks(cfm_synth):
    # each 300-character chunk may read out longer than its text; the whole text is not
    # checked as one piece (its spelled-out form is far over 1.5 x text.max_chars of the tiny
    # preset: these 1899 characters read out to 4599, over the 3000 the whole text would be allowed)
    text = ". ".join(["1 2 3 4 5 6 7 8 9"] * 100)[:1990] + "."
    out = cfm_synth.synthesize(text, steps=1, seed=0)
    assert out.settings["chunks"] > 1 and out.settings["normalized_text"].startswith("one two three")
