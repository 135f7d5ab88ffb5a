"""Vocoder training (``python -m core vocoder``): the MR-STFT loss against its closed
form, segment alignment, the data order, a few steps on a tiny synthetic set with a
bit-identical resume, export and reload through the Vocos folder loader and vocos
itself, the ``--acoustic`` path at tiny scale, and bad command lines."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from core.audio import mel_spectrogram
from core.config import AudioConfig, ConfigError
from core.vocoder_train.config import VocoderConfig, load_config, merge, preset
from core.vocoder_train.data import EpochSampler, segment_batch, Clip
from core.vocoder_train.losses import MultiResolutionSTFTLoss, PhaseLoss, anti_wrap


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tests train; at 2 threads on a shared 2-core machine torch slows down 10x
    or more, at 1 thread it barely notices (the thread count is restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(manifest: Path, **training) -> VocoderConfig:
    return merge(preset("tiny"), {"training": {"data": str(manifest), "val_data": str(manifest), **training}})


# --------------------------------------------------------------------------- pieces


def test_mrstft_loss_closed_form():
    y = torch.randn(2, 4096, generator=torch.Generator().manual_seed(0))
    loss = MultiResolutionSTFTLoss([[256, 64, 256], [512, 128, 512]])
    zero, parts = loss(y, y)
    assert float(zero) == 0.0
    for a in (0.5, 2.0):  # |S(a y)| = a |S(y)|: sc = |1 - a|, log-magnitude term = |log a|
        total, parts = loss(a * y, y)
        assert math.isclose(float(parts["sc"]), abs(1 - a), rel_tol=1e-5)
        assert math.isclose(float(parts["mag"]), abs(math.log(a)), rel_tol=1e-4)
        assert math.isclose(float(total), abs(1 - a) + abs(math.log(a)), rel_tol=1e-4)


def test_anti_wrap_is_the_distance_to_the_nearest_multiple_of_two_pi():
    d = torch.tensor([0.0, 0.3, -0.3, 1.0, -2.5, 3.0])
    for k in (-3, -1, 0, 1, 2):
        assert torch.allclose(anti_wrap(d + 2 * math.pi * k), d.abs(), atol=1e-5)
    # pi + e wraps to pi - e
    assert torch.allclose(anti_wrap(torch.tensor([math.pi + 0.5, -math.pi - 0.5])), torch.tensor([math.pi - 0.5] * 2))


@pytest.mark.parametrize("weighting", ["magnitude", "none"])
def test_phase_loss_closed_forms(weighting):
    """Gain does not move a phase (all three terms 0); a sign flip moves every bin by pi
    (ip = pi) but leaves the differences along frequency and time alone (gd = iaf = 0)."""
    y = torch.randn(2, 4096, generator=torch.Generator().manual_seed(0))
    loss = PhaseLoss([512, 128, 512], weighting)
    for y_hat in (y, 0.5 * y, 3.0 * y):
        total, parts = loss(y_hat, y)
        assert float(total) < 1e-4 and all(float(v) < 1e-4 for v in parts.values())
    total, parts = loss(-y, y)
    assert math.isclose(float(parts["ip"]), math.pi, rel_tol=1e-4)
    assert float(parts["gd"]) < 1e-4 and float(parts["iaf"]) < 1e-4
    assert math.isclose(float(total), math.pi, rel_tol=1e-4)


def test_phase_loss_weighting_ignores_silent_reference_bins():
    """A reference that holds only a 750 Hz tone (bin 16 of 512 at 24 kHz): with magnitude
    weighting, faint noise (where the reference is silent) costs almost nothing;
    unweighted, the noise's random phases cost a lot."""
    n = torch.arange(8192, dtype=torch.float32)
    tone = torch.sin(2 * math.pi * 750.0 / 24000 * n)[None]
    noise = 1e-3 * torch.randn(1, 8192, generator=torch.Generator().manual_seed(1))
    weighted, _ = PhaseLoss([512, 128, 512], "magnitude")(tone + noise, tone)
    plain, _ = PhaseLoss([512, 128, 512], "none")(tone + noise, tone)
    assert float(weighted) < 0.01 and float(plain) > 1.0  # measured 0.0016 and 3.86


def test_phase_loss_gradient_is_finite_on_silence():
    y = torch.randn(1, 2048, generator=torch.Generator().manual_seed(2))
    y_hat = torch.zeros(1, 2048, requires_grad=True)   # every bin of y_hat has no phase
    total, _ = PhaseLoss([256, 64, 256])(y_hat, y)
    total.backward()
    assert math.isfinite(float(total.detach())) and torch.isfinite(y_hat.grad).all()
    x = (0.1 * torch.randn(1, 2048, generator=torch.Generator().manual_seed(3))).requires_grad_(True)
    total, _ = PhaseLoss([256, 64, 256])(x, y)
    total.backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0


def test_phase_loss_in_training_is_logged_and_checked(tiny_corpus, tmp_path):
    from core.vocoder_train.step import VocoderLearner

    with pytest.raises(ConfigError, match="unknown loss.phase_weighting 'energy'; valid: magnitude, none"):
        merge(preset("tiny"), {"loss": {"phase_weight": 1.0, "phase_weighting": "energy"}})
    with pytest.raises(ConfigError, match="loss.phase_weight must be >= 0"):
        merge(preset("tiny"), {"loss": {"phase_weight": -1.0}})
    with pytest.raises(ConfigError, match="loss.phase_resolution must be a list of"):
        merge(preset("tiny"), {"loss": {"phase_resolution": [256, 64]}})
    assert VocoderLearner(preset("tiny")).phase_loss is None  # off by default: old runs unchanged
    cfg = merge(tiny(tiny_corpus, steps=2, adversarial_start=2), {"loss": {"phase_weight": 2.0,
                                                                         "phase_resolution": [256, 64, 256]}})
    trainer, _ = _run(cfg, tmp_path / "phase")
    rows = [r for r in _rows(tmp_path / "phase") if "mel" in r]
    assert len(rows) == 2 and all(0 < r["phase"] < 3 * math.pi for r in rows)
    # recon = 45 mel + 1 stft + 2 phase, within float32 rounding of the logged parts
    assert all(math.isclose(r["recon"], 45 * r["mel"] + r["stft"] + 2 * r["phase"], rel_tol=1e-4) for r in rows)


def _conv_params(c_in: int, c_out: int, k: int) -> int:
    """A weight-normed (k, 1) Conv2d: weight_v (c_out c_in k) + weight_g (c_out) + bias (c_out)."""
    return c_out * c_in * k + 2 * c_out


def test_thin_period_discriminator_channels():
    """``mpd_channels`` c gives c-4c-16c-32c-32c convolutions; c = 32 is vocos' own
    DiscriminatorP (same parameter count, same output shapes)."""
    from vocos.discriminators import DiscriminatorP

    from core.vocoder_train.config import DiscriminatorConfig
    from core.vocoder_train.discriminators import Discriminators, thin_period_discriminator

    def expected(c: int) -> int:
        widths = [1, c, 4 * c, 16 * c, 32 * c, 32 * c]
        return sum(_conv_params(a, b, 5) for a, b in zip(widths[:-1], widths[1:])) + _conv_params(32 * c, 1, 3)

    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(DiscriminatorP(period=3)) == expected(32) == count(thin_period_discriminator(3, 32))
    thin = thin_period_discriminator(3, 4)
    assert count(thin) == expected(4)
    x = torch.randn(2, 1000, generator=torch.Generator().manual_seed(0))
    out, fmap = thin(x)
    ref_out, ref_fmap = DiscriminatorP(period=3)(x)
    assert out.shape == ref_out.shape and [f.shape[2:] for f in fmap] == [f.shape[2:] for f in ref_fmap]
    assert [f.shape[1] for f in fmap] == [16, 64, 128, 128, 1]
    d = Discriminators(DiscriminatorConfig(periods=[2, 5], fft_sizes=[], mpd_channels=4))
    assert count(d) == 2 * expected(4)
    with pytest.raises(ConfigError, match="mpd_channels"):
        merge(preset("tiny"), {"discriminator": {"mpd_channels": 0}})


def test_segments_align_with_the_full_mel():
    """Mel frame f + j of the utterance is centred on sample (f + j) * hop, so the mel of
    the cut audio equals the cut mel wherever the STFT window stays inside the cut."""
    cfg = AudioConfig()
    wav = torch.randn(24000, generator=torch.Generator().manual_seed(1)) * 0.1
    mel = mel_spectrogram(wav[None], cfg)[0]                                    # (100, 94)
    frames = 16
    batch = segment_batch([Clip("a", wav, mel)] * 3, frames, cfg.hop_length, torch.Generator().manual_seed(0))
    assert batch.audio.shape == (3, frames * 256) and batch.mel.shape == (3, 100, frames + 1)
    inner = slice(2, frames - 1)  # n_fft / 2 = 2 hops of reflect padding at each end
    for b in range(3):
        again = mel_spectrogram(batch.audio[b][None], cfg)[0]
        assert torch.allclose(again[:, inner], batch.mel[b][:, inner], atol=1e-4)


def test_epoch_sampler_is_a_pure_permutation():
    s = EpochSampler(10, 3, seed=5)
    assert s.batches_per_epoch == 3
    epoch = [i for p in range(3) for i in s.batch(0, p)]
    assert len(set(epoch)) == 9 and s.batch(0, 1) == EpochSampler(10, 3, seed=5).batch(0, 1)
    assert s.batch(1, 0) != s.batch(0, 0) or s.batch(1, 1) != s.batch(0, 1)
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochSampler(2, 3, 0)


def test_config_checks_names():
    with pytest.raises(ConfigError, match="valid presets: tiny, cpu, vocos"):
        load_config("nonsense")
    with pytest.raises(ConfigError, match="valid:.*segment_frames"):
        merge(preset("tiny"), {"training": {"segmnt_frames": 3}})
    with pytest.raises(ConfigError, match="decay"):
        merge(preset("tiny"), {"training": {"decay": "exp"}})
    with pytest.raises(ConfigError, match="fft_sizes"):
        merge(preset("tiny"), {"discriminator": {"fft_sizes": [4]}})
    assert VocoderConfig.from_dict(preset("cpu").to_dict()) == preset("cpu")


# --------------------------------------------------------------------------- training


def _run(cfg, out, **kw):
    from core.vocoder_train.loop import VocoderTrainer

    trainer = VocoderTrainer(cfg, out, progress=False, **kw)
    return trainer, trainer.fit()


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def straight_run(tiny_corpus, tmp_path_factory):
    """6 steps in one go: 2 reconstruction steps, then adversarial every 2nd step."""
    out = tmp_path_factory.mktemp("vrun")
    trainer, path = _run(tiny(tiny_corpus), out)
    return trainer, path, out


def test_training_steps_log_validate_and_checkpoint(straight_run):
    trainer, path, out = straight_run
    assert path.name == "vocoder_00000006.pt" and trainer.step == 6
    rows = _rows(out)
    steps = [r for r in rows if "mel" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    # adversarial_start=2, disc_every=2: the steps with index 2 and 4 (numbered 3 and 5)
    assert [r["adversarial_steps"] for r in steps] == [0, 0, 1, 0, 1, 0]
    assert all("disc" in r and "fm" in r for r in steps if r["adversarial_steps"])
    assert all(math.isfinite(r["loss"]) for r in steps)
    val = [r for r in rows if "val_mel_l1" in r]
    assert [r["step"] for r in val] == [0, 3, 6] and all(r["val_mel_l1"] > 0 for r in val)
    assert any(r.get("event") == "reference" and r["griffin_lim_val_mel_l1"] > 0 for r in rows)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["vocoder_00000003.pt", "vocoder_00000006.pt"]
    assert len(list((out / "samples").glob("step_00000006_*.wav"))) == 1
    assert (out / "vocos" / "config.yaml").is_file() and (out / "config.json").is_file()


def test_resume_is_bit_identical(straight_run, tiny_corpus, tmp_path):
    trainer_a, _, out_a = straight_run
    out = tmp_path / "resumed"
    _run(tiny(tiny_corpus, steps=3), out)
    # the stored config (steps=3) wins over the one passed; steps= extends it
    trainer_b, path = _run(tiny(tiny_corpus, steps=3, lr=1.0), out, resume=True, steps=6)
    assert trainer_b.step == 6 and path.name == "vocoder_00000006.pt"
    for a, b in ((trainer_a.learner.generator, trainer_b.learner.generator),
                 (trainer_a.learner.discriminators, trainer_b.learner.discriminators)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    la = [r for r in _rows(out_a) if "mel" in r]
    lb = [r for r in _rows(out) if "mel" in r]
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]


def test_nan_guard_skips_and_stops(tiny_corpus, tmp_path, monkeypatch):
    from core.vocoder_train.loop import VocoderTrainingError
    from core.vocoder_train.step import VocoderLearner

    real = VocoderLearner.reconstruction

    def poisoned(self, y_hat, y):
        out = real(self, y_hat, y)
        out["recon"] = out["recon"] * float("nan")
        return out

    monkeypatch.setattr(VocoderLearner, "reconstruction", poisoned)
    cfg = tiny(tiny_corpus, max_bad_steps=3, val_every=0)
    before = None
    with pytest.raises(VocoderTrainingError, match="3 consecutive bad steps"):
        from core.vocoder_train.loop import VocoderTrainer

        trainer = VocoderTrainer(cfg, tmp_path / "nan", progress=False)
        before = {k: v.clone() for k, v in trainer.learner.generator.state_dict().items()}
        trainer.fit()
    assert trainer.step == 0
    assert all(torch.equal(before[k], v) for k, v in trainer.learner.generator.state_dict().items())
    assert sum(r.get("event") == "bad_step" for r in _rows(tmp_path / "nan")) == 3


# --------------------------------------------------------------------------- export


def test_export_reload_through_the_vocos_loader(straight_run, tmp_path, capsys):
    import vocos
    import yaml

    from core.cli import main
    from core.vocoders import VocoderError, VocosVocoder, check_compatible, load_vocoder

    trainer, path, _ = straight_run
    folder = tmp_path / "exported"
    assert main(["vocoder", "export", "--checkpoint", str(path), "--out", str(folder)]) == 0
    assert "fp16" in capsys.readouterr().out
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    assert state["backbone.embed.weight"].dtype == torch.float16
    mel = torch.randn(2, 100, 20, generator=torch.Generator().manual_seed(0)) - 4
    voc = load_vocoder(str(folder), AudioConfig())
    assert isinstance(voc, VocosVocoder) and voc.mel_settings == AudioConfig().mel_settings()
    g = trainer.learner.generator.eval()
    with torch.no_grad():
        want = g.head(g.backbone(mel))
    got = voc.decode(mel)
    assert got.shape == (2, 20 * 256)
    # fp16 weights: the output differs from the fp32 generator by rounding only
    assert torch.allclose(got, want, atol=2e-2 * float(want.abs().max()) + 1e-4)
    # vocos itself: from_hparams + a strict load_state_dict (what Vocos.from_pretrained does)
    model = vocos.Vocos.from_hparams(str(folder / "config.yaml"))
    model.load_state_dict(torch.load(folder / "pytorch_model.bin", weights_only=True))
    assert torch.allclose(model.decode(mel), got, atol=1e-5)
    # the mel-settings check still refuses a mismatch
    with pytest.raises(VocoderError, match="n_mels=100 but the checkpoint uses n_mels=80"):
        check_compatible(voc, AudioConfig(n_mels=80))
    assert yaml.safe_load((folder / "config.yaml").read_text())["backbone"]["init_args"]["dim"] == 32


def test_init_from_a_vocos_folder(straight_run, tiny_corpus, tmp_path):
    _, _, out = straight_run
    cfg = tiny(tiny_corpus, val_every=0)
    trainer, _ = _run(cfg, tmp_path / "init", init=str(out / "vocos"), steps=1)  # steps= on a fresh run
    assert trainer.config.generator.dim == 32 and trainer.init_spec == str(out / "vocos")
    assert trainer.step == 1 and cfg.training.steps == 6  # the caller's config is not edited


# --------------------------------------------------------------------------- acoustic


@pytest.fixture(scope="module")
def acoustic_checkpoint(tiny_corpus, tmp_path_factory):
    from conftest import tiny_config
    from core.train import Trainer

    out = tmp_path_factory.mktemp("tts")
    return Trainer(tiny_config(tiny_corpus, steps=2, val_every=0, checkpoint_every=2), out, progress=False).fit()


def test_acoustic_mels_align_with_the_recording(acoustic_checkpoint, tiny_corpus, tmp_path):
    from core.data import MelCache, read_manifest
    from core.vocoder_train.acoustic import AcousticMels

    utt = read_manifest(tiny_corpus)[0]
    real = MelCache(tmp_path / "c", AudioConfig())
    source = AcousticMels(acoustic_checkpoint, AudioConfig(), tmp_path / "c", real)
    mel = source(utt)
    want = real.get(utt.audio_path)
    assert mel.shape == want.shape and torch.isfinite(mel).all()
    assert not torch.allclose(mel, want)  # generated, not copied
    assert torch.equal(source(utt), mel)  # cached (and deterministic)
    assert torch.equal(source.generate(utt), mel)
    with pytest.raises(ConfigError, match="mel settings differ"):
        AcousticMels(acoustic_checkpoint, AudioConfig(n_mels=80), tmp_path / "d", MelCache(tmp_path / "d", AudioConfig(n_mels=80)))


def test_acoustic_mels_follow_the_checkpoints_own_sampling_settings(acoustic_checkpoint, tiny_corpus, tmp_path):
    from core.data import MelCache, read_manifest
    from core.export import export_checkpoint
    from core.vocoder_train.acoustic import SAMPLER, AcousticMels

    utt = read_manifest(tiny_corpus)[0]
    real = MelCache(tmp_path / "c", AudioConfig())
    plain = AcousticMels(acoustic_checkpoint, AudioConfig(), tmp_path / "c", real)
    assert plain.sampler == SAMPLER          # a checkpoint without recommended settings: the defaults
    voiced = export_checkpoint(acoustic_checkpoint, tmp_path / "voice.pt", dtype="fp32",
                               sampling={"cfg": 2.0, "steps": 4, "solver": "midpoint"})
    guided = AcousticMels(voiced, AudioConfig(), tmp_path / "c", real)
    assert guided.sampler == {**SAMPLER, "cfg": 2.0, "steps": 4, "solver": "midpoint"}
    assert guided.root != plain.root         # cached apart
    assert "midpoint" in (guided.root / "settings.json").read_text()
    a, b = plain(utt), guided(utt)
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_training_on_acoustic_mels(acoustic_checkpoint, tiny_corpus, tmp_path):
    trainer, path = _run(tiny(tiny_corpus, steps=2, val_every=0), tmp_path / "ac", acoustic=str(acoustic_checkpoint))
    assert trainer.step == 2
    from core.vocoder_train.loop import load_training_checkpoint

    assert load_training_checkpoint(path)["extra"]["acoustic"] == str(acoustic_checkpoint)
    # a resumed run keeps training on the acoustic mels without being told again
    resumed, _ = _run(tiny(tiny_corpus, steps=2, val_every=0), tmp_path / "ac", resume=True, steps=3)
    assert resumed.step == 3 and resumed.acoustic == str(acoustic_checkpoint)


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize("argv, message", [
    (["vocoder"], "needs an action; valid: train, export"),
    (["vocoder", "train", "--out", "X"], "--data is required"),
    (["vocoder", "train", "--out", "X", "--data", "/nonexistent.csv"], "no such file"),
    (["vocoder", "train", "--out", "X", "--data", "{corpus}", "--config", "huge"], "valid presets: tiny, cpu, vocos"),
    (["vocoder", "train", "--out", "X", "--data", "{corpus}", "--threads", "0"], "threads must be a whole number in 1..1024"),
    (["vocoder", "train", "--out", "X", "--data", "{corpus}", "--init", "owner/name"], "hub:<owner/name>"),
    (["vocoder", "export", "--checkpoint", "/nonexistent.pt", "--out", "X"], "no such vocoder checkpoint"),
    (["vocoder", "export", "--checkpoint", "{corpus}", "--out", "X"], "not a readable vocoder checkpoint"),
    (["vocoder", "export", "--checkpoint", "X", "--out", "X", "--dtype", "int8"], "valid: fp32, fp16"),
    (["vocoder", "fly"], "invalid choice"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, message, tiny_corpus, tmp_path, capsys):
    from core.cli import main

    argv = [a.replace("{corpus}", str(tiny_corpus)).replace("X", str(tmp_path / "x")) if a != "X" else
            str(tmp_path / "x") for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
