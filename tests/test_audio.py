"""Tests for core.audio: Vocos-exact mel, wav I/O, resampling, peak safety, loudness."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from core import audio as A
from core.config import AudioConfig, ConfigError

SR = 24000
HOP = 256
N_FFT = 1024


@pytest.fixture(scope="module")
def vocos_mel():
    feats = pytest.importorskip("vocos.feature_extractors")
    # Reference implementation: the feature extractor of charactr/vocos-mel-24khz.
    return feats.MelSpectrogramFeatures(sample_rate=24000, n_fft=1024, hop_length=256, n_mels=100,
                                        padding="center")


def _sine(freq: float, seconds: float, rate: int, amp: float = 1.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return amp * np.sin(2 * np.pi * freq * t)


# --------------------------------------------------------------------------- mel: reference match


@pytest.mark.parametrize("n", [513, 1000, 24000, 37777])
def test_mel_matches_vocos(vocos_mel, n):
    g = torch.Generator().manual_seed(n)
    wav = 0.3 * torch.randn(2, n, generator=g)
    ours = A.mel_spectrogram(wav)
    ref = vocos_mel(wav)
    assert ours.shape == ref.shape == (2, 100, n // HOP + 1)
    assert (ours - ref).abs().max().item() <= 1e-5


def test_mel_module_matches_vocos_on_speechlike_signal(vocos_mel):
    # A quiet chirp with silence: exercises the log clip at 1e-7 too.
    t = torch.arange(30000) / SR
    wav = 0.05 * torch.sin(2 * torch.pi * (100 + 2000 * t) * t)
    wav[20000:] = 0.0
    ours = A.MelSpectrogram()(wav)
    ref = vocos_mel(wav[None])
    assert (ours - ref).abs().max().item() <= 1e-5
    assert ours.min().item() == pytest.approx(math.log(1e-7), abs=1e-5)


def test_mel_padded_batch(vocos_mel):
    """Frames are computed on the padded batch: frame j of a row of real length L equals
    the unpadded result when its window lies inside the clip (j*hop + n_fft//2 <= L)."""
    lengths = [37777, 24000, 1000, 600]
    g = torch.Generator().manual_seed(0)
    clips = [0.3 * torch.randn(n, generator=g) for n in lengths]
    batch = torch.zeros(len(clips), max(lengths))
    for i, c in enumerate(clips):
        batch[i, : len(c)] = c
    mel = A.mel_spectrogram(batch)
    assert mel.shape == (4, 100, max(lengths) // HOP + 1)
    assert (mel - vocos_mel(batch)).abs().max().item() <= 1e-5
    for i, c in enumerate(clips):
        single = A.mel_spectrogram(c)[0]
        assert single.shape[-1] == A.mel_frames(len(c))
        inside = (len(c) - N_FFT // 2) // HOP + 1  # frames j with j*hop + n_fft//2 <= L
        assert inside >= 1
        diff = (mel[i, :, :inside] - single[:, :inside]).abs().max().item()
        assert diff <= 1e-5
        assert (single - vocos_mel(c[None])[0]).abs().max().item() <= 1e-5


# --------------------------------------------------------------------------- mel: shapes and options


@pytest.mark.parametrize("n", [513, 767, 768, 769, 24000, 24001])
def test_frame_count_formula(n):
    assert A.mel_frames(n) == n // HOP + 1
    assert A.mel_spectrogram(torch.zeros(n)).shape == (1, 100, n // HOP + 1)


def test_frame_count_without_centre():
    cfg = AudioConfig(center=False)
    for n in (1024, 1279, 1280, 5000):
        expected = (n - 1024) // 256 + 1
        assert A.mel_frames(n, cfg) == expected
        assert A.mel_spectrogram(torch.zeros(n), cfg).shape == (1, 100, expected)
    assert A.mel_frames(1000, cfg) == 0


def test_one_dimensional_input_is_batch_of_one():
    wav = 0.1 * torch.randn(5000)
    one = A.mel_spectrogram(wav)
    assert one.shape == (1, 100, A.mel_frames(5000))
    assert torch.equal(one, A.mel_spectrogram(wav[None]))


def test_bad_mel_inputs():
    with pytest.raises(A.AudioError, match="at least 513 samples"):
        A.mel_spectrogram(torch.zeros(512))
    with pytest.raises(A.AudioError, match="shape"):
        A.mel_spectrogram(torch.zeros(2, 1, 2000))
    with pytest.raises(TypeError, match="float"):
        A.mel_spectrogram(torch.zeros(2000, dtype=torch.int16))
    with pytest.raises(ConfigError, match="valid: htk, slaney"):
        A.MelSpectrogram(AudioConfig(mel_scale="bark"))


def test_mel_cache_reuses_module():
    wav = torch.zeros(2000)
    A.mel_spectrogram(wav)
    hits = A._cached_mel.cache_info().hits
    A.mel_spectrogram(wav)
    A.mel_spectrogram(wav, AudioConfig())
    assert A._cached_mel.cache_info().hits == hits + 2


def test_mel_float64_and_half_inputs():
    wav = 0.2 * torch.randn(4000, dtype=torch.float64)
    m64 = A.mel_spectrogram(wav)
    assert m64.dtype == torch.float64
    m16 = A.mel_spectrogram(wav.to(torch.bfloat16))
    assert m16.dtype == torch.float32
    assert (m64.float() - m16).abs().max().item() < 0.1


def _htk_centres(n_mels, f_min, f_max):
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # HTK mel scale
    pts = np.linspace(mel(f_min), mel(f_max), n_mels + 2)
    return 700.0 * (10.0 ** (pts / 2595.0) - 1.0)


def _slaney_centres(n_mels, f_min, f_max):
    # Slaney (Auditory Toolbox): linear 200/3 Hz per mel below 1 kHz, log above.
    logstep = math.log(6.4) / 27.0
    def mel(f):
        return f / (200.0 / 3) if f < 1000 else 15.0 + math.log(f / 1000.0) / logstep
    def hz(m):
        return m * (200.0 / 3) if m < 15.0 else 1000.0 * math.exp(logstep * (m - 15.0))
    return np.array([hz(m) for m in np.linspace(mel(f_min), mel(f_max), n_mels + 2)])


@pytest.mark.parametrize("cfg, centres", [
    (AudioConfig(), _htk_centres(100, 0.0, 12000.0)),
    (AudioConfig(f_min=300.0, f_max=6000.0), _htk_centres(100, 300.0, 6000.0)),
    (AudioConfig(mel_scale="slaney", n_mels=80, f_max=8000.0), _slaney_centres(80, 0.0, 8000.0)),
])
def test_sine_lands_in_its_mel_band(cfg, centres):
    """A sine at the centre frequency of band k peaks in band k (closed-form band centres),
    so f_min, f_max, n_mels and mel_scale all reach the filterbank."""
    for k in (20, 45):
        f0 = centres[k + 1]  # centres[0] is the lower edge of band 0
        wav = torch.from_numpy(_sine(f0, 0.5, cfg.sample_rate, 0.5)).float()
        mel = A.mel_spectrogram(wav, cfg)[0]
        assert mel.shape[0] == cfg.n_mels
        assert int(mel[:, 5:-5].mean(dim=1).argmax()) == k


def test_slaney_norm_is_area_normalisation():
    plain = A.MelSpectrogram(AudioConfig(mel_scale="slaney", f_max=8000.0)).mel.mel_scale.fb
    normed = A.MelSpectrogram(AudioConfig(mel_scale="slaney", f_max=8000.0, norm="slaney")).mel.mel_scale.fb
    edges = _slaney_centres(100, 0.0, 8000.0)
    scale = 2.0 / (edges[2:] - edges[:-2])  # librosa/Slaney: 2 / (f_{k+2} - f_k)
    assert torch.allclose(normed, plain * torch.from_numpy(scale).float(), rtol=1e-4, atol=1e-8)


def test_power_and_log_clip_are_honoured():
    wav = 0.3 * torch.randn(6000, generator=torch.Generator().manual_seed(1))
    mag = A.mel_spectrogram(wav)
    pow2 = A.mel_spectrogram(wav, AudioConfig(power=2.0))
    # log(sum_f w |X|^2) is not 2 log(sum_f w |X|), but both grow with the same energy:
    # a gain g shifts power-1 features by log g and power-2 features by 2 log g.
    assert torch.allclose(A.mel_spectrogram(2 * wav, AudioConfig(power=2.0)) - pow2,
                          torch.full_like(pow2, 2 * math.log(2)), atol=1e-4)
    assert torch.allclose(A.mel_spectrogram(2 * wav) - mag, torch.full_like(mag, math.log(2)), atol=1e-4)
    clipped = A.mel_spectrogram(torch.zeros(3000), AudioConfig(log_clip=1e-3))
    assert torch.allclose(clipped, torch.full_like(clipped, math.log(1e-3)))


# --------------------------------------------------------------------------- wav I/O


@pytest.mark.parametrize("subtype, tol", [("PCM_16", 1.0 / 32767), ("FLOAT", 0.0)])
def test_wav_round_trip(tmp_path, subtype, tol):
    x = (0.8 * np.sin(np.linspace(0, 200, 12345))).astype(np.float32)
    path = A.save_wav(tmp_path / "a" / "b" / "clip.wav", x, 22050, subtype=subtype)
    assert path.is_file()
    assert sf.info(str(path)).subtype == subtype
    clip = A.load_wav_with_rate(path)
    assert clip.sample_rate == 22050 and clip.samples.dtype == np.float32
    assert np.max(np.abs(clip.samples - x)) <= tol
    back = A.load_wav(path, sample_rate=None)
    assert back.dtype == torch.float32 and back.shape == (12345,)
    assert os.listdir(path.parent) == ["clip.wav"]  # no temporary file left behind


def test_save_wav_is_peak_safe_and_validates(tmp_path):
    x = np.array([0.0, 2.0, -1.0, 0.5, np.nan], dtype=np.float64)
    path = A.save_wav(tmp_path / "loud.wav", torch.from_numpy(x), 16000, subtype="FLOAT")
    back = sf.read(str(path), dtype="float32")[0]
    np.testing.assert_allclose(back, [0.0, 1.0, -0.5, 0.25, 0.0])
    with pytest.raises(ConfigError, match="PCM_16"):
        A.save_wav(tmp_path / "x.wav", x, 16000, subtype="PCM_17")
    with pytest.raises(A.AudioError, match="suffix"):
        A.save_wav(tmp_path / "x.notaudio", x, 16000)
    flac = A.save_wav(tmp_path / "x.flac", np.zeros(100), 16000)
    assert sf.info(str(flac)).format == "FLAC"


def test_stereo_mixdown(tmp_path):
    left = _sine(440, 0.1, 16000, 0.5)
    right = _sine(660, 0.1, 16000, 0.25)
    sf.write(str(tmp_path / "st.wav"), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    wav = A.load_wav(tmp_path / "st.wav", sample_rate=None)
    np.testing.assert_allclose(wav.numpy(), (left + right) / 2, atol=1e-6)


def test_resample_keeps_frequency_and_length():
    x = torch.from_numpy(_sine(440.0, 1.0, 16000, 0.5)).float()
    y = A.resample(x, 16000, 24000)
    assert y.shape == (24000,)  # ceil(16000 * 24000 / 16000)
    spec = np.abs(np.fft.rfft(y.numpy()))
    freqs = np.fft.rfftfreq(len(y), 1 / 24000)
    assert freqs[np.argmax(spec)] == pytest.approx(440.0, abs=1.0)
    # Amplitude is kept away from the edges (the sinc filter passes 440 Hz untouched).
    assert y[2000:-2000].abs().max().item() == pytest.approx(0.5, abs=0.01)
    batch = A.resample(torch.stack([x, x]), 16000, 24000)
    assert batch.shape == (2, 24000)
    assert A.resample(x, 16000, 16000) is x
    with pytest.raises(ValueError, match="new_rate"):
        A.resample(x, 16000, 0)


def test_load_wav_resamples_to_model_rate(tmp_path):
    sf.write(str(tmp_path / "s.wav"), _sine(300, 0.5, 16000, 0.5), 16000)
    wav = A.load_wav(tmp_path / "s.wav")  # default 24 kHz
    assert wav.shape == (12000,)
    freqs = np.fft.rfftfreq(len(wav), 1 / 24000)
    assert freqs[np.argmax(np.abs(np.fft.rfft(wav.numpy())))] == pytest.approx(300.0, abs=2.0)


def test_missing_and_garbage_files_raise_audio_error(tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(A.AudioError, match="nope.wav"):
        A.load_wav(missing)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(A.AudioError, match="garbage.wav"):
        A.load_wav(garbage)
    with pytest.raises(A.AudioError, match="not found"):
        A.load_wav_with_rate(tmp_path)  # a folder is not an audio file


# --------------------------------------------------------------------------- peak safety


def test_peak_safe_non_finite_to_zero():
    x = np.array([0.5, np.nan, np.inf, -np.inf, -0.25])
    np.testing.assert_array_equal(A.peak_safe(x), np.array([0.5, 0, 0, 0, -0.25], dtype=np.float32))


def test_peak_safe_scales_instead_of_clipping():
    x = torch.tensor([0.1, 2.0, -1.5, 0.9])
    y = A.peak_safe(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [0.05, 1.0, -0.75, 0.45], rtol=1e-7)
    quiet = np.array([0.1, -0.9], dtype=np.float32)
    np.testing.assert_array_equal(A.peak_safe(quiet), quiet)
    with pytest.raises(A.AudioError, match="1-D"):
        A.peak_safe(np.zeros((2, 10)))


# --------------------------------------------------------------------------- loudness


@pytest.mark.parametrize("rate", [48000, 24000])
@pytest.mark.parametrize("amp", [1.0, 0.1])
def test_sine_loudness_matches_bs1770(rate, amp):
    # ITU-R BS.1770-4, Annex 1: a 0 dBFS 1 kHz (997 Hz) sine in one front channel reads
    # -3.01 LKFS; loudness scales as 20 log10(amplitude).
    expected = -3.01 + 20 * math.log10(amp)
    assert A.loudness(_sine(997.0, 3.0, rate, amp), rate) == pytest.approx(expected, abs=0.1)


def test_loudness_short_clip_and_silence():
    short = _sine(997.0, 0.2, SR, 0.5)  # shorter than one 400 ms gating block
    assert A.loudness(short, SR) == pytest.approx(-3.01 + 20 * math.log10(0.5), abs=0.1)
    assert A.loudness(np.zeros(SR), SR) == -math.inf
    assert A.loudness(np.zeros(0), SR) == -math.inf
    assert A.loudness(torch.from_numpy(short).float(), SR) == pytest.approx(A.loudness(short, SR), abs=1e-4)
    with pytest.raises(A.AudioError, match="NaN"):
        A.loudness(np.array([0.1, np.nan] * 10000), SR)


@pytest.mark.parametrize("target", [-23.0, -16.0])
def test_normalize_loudness_hits_target(target):
    noise = 0.01 * np.random.default_rng(3).standard_normal(2 * SR)
    out = A.normalize_loudness(noise, SR, target)
    assert out.dtype == np.float32 and np.max(np.abs(out)) <= 1.0
    assert A.loudness(out, SR) == pytest.approx(target, abs=0.1)
    report = A.match_loudness(noise, SR, target)
    assert not report.peak_limited
    assert report.gain_db == pytest.approx(target - report.measured_lufs, abs=1e-9)


def test_normalize_loudness_peak_limit_and_silence():
    sine = _sine(997.0, 1.0, SR, 0.01)
    report = A.match_loudness(sine, SR, target_lufs=0.0)  # would need a peak of ~1.4
    assert report.peak_limited
    assert np.max(np.abs(report.audio)) == pytest.approx(1.0, abs=1e-6)
    # Peak 1 sine: -3.01 LUFS, quieter than the 0 LUFS target; gain_db is what was applied.
    assert A.loudness(report.audio, SR) == pytest.approx(-3.01, abs=0.1)
    assert report.gain_db == pytest.approx(40.0, abs=1e-4)
    silent = A.match_loudness(np.zeros(1000), SR)
    assert silent.measured_lufs == -math.inf and silent.gain_db == 0.0
    np.testing.assert_array_equal(silent.audio, np.zeros(1000, dtype=np.float32))
