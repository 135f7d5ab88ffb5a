"""Vocoders: a randomly initialised small Vocos loaded from a folder (and refused when
its mel settings, files or pickles are wrong), Griffin-Lim round trips, and the
``auto`` choice with an empty / fake Hugging Face cache.  No network."""

from __future__ import annotations

import math
import pickle
import time
from pathlib import Path

import pytest
import torch
import vocos
import yaml

from core.audio import mel_spectrogram
from core.config import AudioConfig
from core.vocoders import (BUNDLED_VOCODER, DEFAULT_HUB_ID, VOCOS_ENV, GriffinLimVocoder, Vocoder, VocoderError, VocosVocoder,
                           check_compatible, load_vocoder)


def vocos_config(n_mels: int = 100, feature_class: str = "vocos.feature_extractors.MelSpectrogramFeatures") -> dict:
    """The charactr/vocos-mel-24khz config.yaml, shrunk (dim 512 -> 64, intermediate 1536 -> 128,
    8 -> 2 layers) so building it takes milliseconds."""
    return {
        "feature_extractor": {"class_path": feature_class,
                              "init_args": {"sample_rate": 24000, "n_fft": 1024, "hop_length": 256,
                                            "n_mels": n_mels, "padding": "center"}},
        "backbone": {"class_path": "vocos.models.VocosBackbone",
                     "init_args": {"input_channels": n_mels, "dim": 64, "intermediate_dim": 128, "num_layers": 2}},
        "head": {"class_path": "vocos.heads.ISTFTHead",
                 "init_args": {"dim": 64, "n_fft": 1024, "hop_length": 256, "padding": "same"}},
    }


def write_vocos_folder(folder: Path, n_mels: int = 100, seed: int = 0) -> vocos.Vocos:
    """A random Vocos saved as config.yaml + pytorch_model.bin; returns the model."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(vocos_config(n_mels)))
    torch.manual_seed(seed)
    model = vocos.Vocos.from_hparams(str(folder / "config.yaml")).eval()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return model


@pytest.fixture(scope="module")
def vocos_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vocos100")
    return folder, write_vocos_folder(folder)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline, no $FLOWTTS_VOCOS and no bundled vocoder."""
    import core.vocoders

    monkeypatch.setattr(core.vocoders, "BUNDLED_VOCODER", tmp_path / "no-bundle")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(VOCOS_ENV, raising=False)
    return tmp_path / "hf" / "hub"


# --------------------------------------------------------------------------- Vocos


def test_vocos_folder_decodes_like_vocos(vocos_folder):
    folder, model = vocos_folder
    mel = torch.randn(2, 100, 37, generator=torch.Generator().manual_seed(1))
    for voc in (VocosVocoder.from_folder(folder), load_vocoder(str(folder), AudioConfig())):
        assert isinstance(voc, VocosVocoder) and voc.name == f"vocos:{folder}"
        assert voc.sample_rate == 24000
        wav = voc.decode(mel)
        assert wav.shape == (2, 37 * 256) and wav.dtype == torch.float32
        assert torch.isfinite(wav).all() and wav.abs().max() > 0
        assert torch.equal(wav, model.decode(mel))
        wav.mul_(0.5)  # callers may edit the output in place (not an inference tensor)


def test_vocos_mel_settings_are_the_design_defaults(vocos_folder):
    # DESIGN.md: the checkpoint defaults are exactly Vocos charactr/vocos-mel-24khz's features
    assert VocosVocoder.from_folder(vocos_folder[0]).mel_settings == AudioConfig().mel_settings()


def test_vocos_with_80_mels_is_refused(tmp_path):
    folder = tmp_path / "vocos80"
    write_vocos_folder(folder, n_mels=80)
    voc = VocosVocoder.from_folder(folder)
    assert voc.decode(torch.zeros(1, 80, 4)).shape == (1, 1024)
    with pytest.raises(VocoderError, match="vocoder expects n_mels=80 but the checkpoint uses n_mels=100"):
        check_compatible(voc, AudioConfig())
    with pytest.raises(VocoderError, match="n_mels=80"):
        load_vocoder(folder, AudioConfig())
    check_compatible(voc, AudioConfig(n_mels=80))  # and fine with a checkpoint that has 80


def test_check_compatible_names_every_mismatch():
    voc = GriffinLimVocoder(AudioConfig(sample_rate=22050, hop_length=300), n_iter=1)
    with pytest.raises(VocoderError) as info:
        check_compatible(voc, AudioConfig())
    msg = str(info.value)
    assert "sample_rate=22050 but the checkpoint uses sample_rate=24000" in msg
    assert "hop_length=300 but the checkpoint uses hop_length=256" in msg
    assert "n_mels" not in msg


class _WritesMarker:
    """Unpickling this runs ``exec`` that creates a file: what weights_only must refuse."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_malicious_pickle_is_refused(vocos_folder, tmp_path, writer):
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "config.yaml").write_text((vocos_folder[0] / "config.yaml").read_text())
    # the payload is real: a plain unpickle does write its marker
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_WritesMarker(proof)))
    assert proof.exists()
    marker = tmp_path / "marker"
    payload = {"backbone.embed.weight": _WritesMarker(marker)}
    if writer == "torch.save":
        torch.save(payload, folder / "pytorch_model.bin")
    else:
        (folder / "pytorch_model.bin").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(VocoderError, match="pytorch_model.bin"):
        VocosVocoder.from_folder(folder)
    assert not marker.exists()


def _copy_folder(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("config.yaml", "pytorch_model.bin"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


@pytest.mark.parametrize("damage, named", [
    ("no weights", "pytorch_model.bin"),
    ("truncated weights", "pytorch_model.bin"),
    ("wrong weights", "pytorch_model.bin"),
    ("no config", "config.yaml"),
    ("bad yaml", "config.yaml"),
    ("encodec features", "config.yaml"),
    ("foreign class", "config.yaml"),
])
def test_damaged_folder_names_the_file(vocos_folder, tmp_path, damage, named):
    folder = _copy_folder(vocos_folder[0], tmp_path / "v")
    weights, config = folder / "pytorch_model.bin", folder / "config.yaml"
    if damage == "no weights":
        weights.unlink()
    elif damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "wrong weights":
        torch.save({"backbone.embed.weight": torch.zeros(3)}, weights)
    elif damage == "no config":
        config.unlink()
    elif damage == "bad yaml":
        config.write_text("feature_extractor: [unclosed")
    elif damage == "encodec features":
        config.write_text(yaml.safe_dump(vocos_config(feature_class="vocos.feature_extractors.EncodecFeatures")))
    elif damage == "foreign class":  # config.yaml must not be a way to call any importable function
        cfg = vocos_config()
        cfg["head"] = {"class_path": "subprocess.run", "init_args": {"args": ["touch", str(tmp_path / "ran")]}}
        config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(VocoderError, match=named.replace(".", r"\.")) as info:
        VocosVocoder.from_folder(folder)
    assert str(folder) in str(info.value)
    if damage == "encodec features":
        assert "EncodecFeatures" in str(info.value) and "mel" in str(info.value)
    assert not (tmp_path / "ran").exists()


def test_vocoder_refuses_wrong_mel_shape(vocos_folder):
    voc = VocosVocoder.from_folder(vocos_folder[0])
    for bad in (torch.zeros(100, 10), torch.zeros(1, 80, 10), torch.zeros(1, 100, 0)):
        with pytest.raises(VocoderError, match=r"\(B, 100, T>=1\)"):
            voc.decode(bad)


# --------------------------------------------------------------------------- Griffin-Lim


def test_griffin_lim_round_trip_of_a_sine():
    cfg = AudioConfig()
    t = torch.arange(cfg.sample_rate) / cfg.sample_rate
    mel = mel_spectrogram(0.5 * torch.sin(2 * math.pi * 1000.0 * t)[None], cfg)  # (1, 100, 94)
    voc = GriffinLimVocoder(cfg)
    wav = voc.decode(mel)
    assert wav.shape == (1, mel.shape[-1] * cfg.hop_length) and wav.dtype == torch.float32
    assert torch.equal(wav, voc.decode(mel))  # deterministic: zero initial phase
    spectrum = torch.stft(wav[0], cfg.n_fft, cfg.hop_length, window=torch.hann_window(cfg.n_fft),
                          return_complex=True).abs().mean(-1)
    assert abs(spectrum.argmax().item() - 1000.0 / (cfg.sample_rate / cfg.n_fft)) <= 1.0  # 1 kHz = bin 42.67
    back = mel_spectrogram(wav, cfg)[..., : mel.shape[-1]]
    err = (back - mel)[..., 4:-4].abs()  # edge frames see the zero tail / reflect padding
    # measured on this code (torch 2.9.1): mean 0.117 (0.145 with 8 iterations, 3.9 with no
    # phase iterations), 0.052 in the loudest band; pinned with some headroom
    assert err.mean() < 0.15
    loudest = mel[0].mean(-1).argmax()
    assert err[0, loudest].max() < 0.1


def test_griffin_lim_magnitude_inverts_the_filterbank():
    cfg = AudioConfig()
    fb_t = GriffinLimVocoder(cfg, n_iter=0).fb_t  # (n_mels, n_freqs)

    def log_mel_error(spec, nnls_iter):
        mel = torch.log(fb_t @ spec)
        est = GriffinLimVocoder(cfg, n_iter=0, nnls_iter=nnls_iter).magnitude(mel)
        assert (est >= 0).all()
        return (torch.log(fb_t @ est) - mel).abs()

    # closed form: a smooth positive spectrum has a non-negative exact solution of
    # fb^T S = exp(mel), which the pseudo-inverse finds (float32 rounding only)
    smooth = torch.rand(2, cfg.n_fft // 2 + 1, 20, generator=torch.Generator().manual_seed(0)) + 0.1
    assert log_mel_error(smooth, 0).max() < 1e-5
    assert log_mel_error(smooth, 10).max() < 1e-5
    # a few spectral lines: the pseudo-inverse goes negative and is clamped; the NNLS
    # updates recover much of the fit (mean |error| measured 1.64 -> 0.45 at 10 steps)
    lines = torch.full((1, cfg.n_fft // 2 + 1, 1), 1e-4)
    lines[0, [20, 43, 90, 200, 350], 0] = torch.tensor([3.0, 5.0, 1.0, 2.0, 0.5])
    clamp_only, nnls = log_mel_error(lines, 0).mean(), log_mel_error(lines, 10).mean()
    assert nnls < 0.6 and nnls < 0.5 * clamp_only


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 9])
def test_griffin_lim_short_and_batched(frames):
    voc = GriffinLimVocoder(AudioConfig(), n_iter=2)
    wav = voc.decode(torch.full((3, 100, frames), -5.0))
    assert wav.shape == (3, frames * 256) and torch.isfinite(wav).all()


def test_griffin_lim_options_are_checked():
    for kwargs in ({"n_iter": -1}, {"momentum": 1.0}, {"nnls_iter": 1.5}):
        with pytest.raises(VocoderError):
            GriffinLimVocoder(AudioConfig(), **kwargs)


# --------------------------------------------------------------------------- load_vocoder / auto


def test_auto_with_empty_cache_is_griffin_lim(empty_hub):
    voc = load_vocoder("auto", AudioConfig(n_mels=80))
    assert isinstance(voc, GriffinLimVocoder) and voc.name == "griffin-lim" and voc.n_mels == 80


def test_auto_never_downloads(tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append(kwargs.get("local_files_only"))
        raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")

    import core.vocoders

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(core.vocoders, "BUNDLED_VOCODER", tmp_path / "no-bundle")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv(VOCOS_ENV, raising=False)
    assert isinstance(load_vocoder("auto", AudioConfig()), GriffinLimVocoder)
    assert calls == [True]
    with pytest.raises(VocoderError, match="not in"):
        VocosVocoder.from_hub(DEFAULT_HUB_ID, allow_download=False)


def test_auto_uses_flowtts_vocos(vocos_folder, empty_hub, monkeypatch):
    monkeypatch.setenv(VOCOS_ENV, str(vocos_folder[0]))
    voc = load_vocoder("auto", AudioConfig())
    assert isinstance(voc, VocosVocoder) and voc.name == f"vocos:{vocos_folder[0]}"
    with pytest.raises(VocoderError, match=f"{VOCOS_ENV}.*n_mels=100 but the checkpoint uses n_mels=80"):
        load_vocoder("auto", AudioConfig(n_mels=80))
    monkeypatch.setenv(VOCOS_ENV, str(empty_hub / "nowhere"))
    with pytest.raises(VocoderError, match="nowhere"):
        load_vocoder("auto", AudioConfig())


def _fake_hub_cache(cache: Path, src: Path) -> None:
    """The huggingface_hub cache layout for DEFAULT_HUB_ID holding ``src``'s files."""
    repo = cache / ("models--" + DEFAULT_HUB_ID.replace("/", "--"))
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots").mkdir()
    _copy_folder(src, repo / "snapshots" / commit)


def test_auto_uses_a_cached_hub_model(vocos_folder, empty_hub):
    _fake_hub_cache(empty_hub, vocos_folder[0])
    voc = load_vocoder("auto", AudioConfig())
    assert isinstance(voc, VocosVocoder) and voc.name == f"vocos:{DEFAULT_HUB_ID}"
    assert load_vocoder(f"hub:{DEFAULT_HUB_ID}", AudioConfig()).name == voc.name
    # a cached model that does not fit the checkpoint is skipped, not an error
    assert isinstance(load_vocoder("auto", AudioConfig(n_mels=80)), GriffinLimVocoder)


def test_from_hub_offline_and_not_cached_fails_fast(empty_hub):
    start = time.perf_counter()
    with pytest.raises(VocoderError, match="HF_HUB_OFFLINE"):
        VocosVocoder.from_hub("charactr/vocos-mel-24khz")
    with pytest.raises(VocoderError, match="HF_HUB_OFFLINE"):
        load_vocoder("hub:someone/some-vocos", AudioConfig())
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize("spec, message", [
    ("owner/not-a-folder", "hub:owner/not-a-folder"),
    ("wavenet", "valid: auto, griffin-lim"),
    ("", "non-empty"),
    ("hub:not a valid id!", "invalid Hugging Face repo id"),
])
def test_unknown_specs(spec, message, empty_hub):
    with pytest.raises(VocoderError, match=message.replace("(", r"\(")):
        load_vocoder(spec, AudioConfig())


def test_griffin_lim_spec_and_device_move():
    voc = load_vocoder("griffin-lim", AudioConfig())
    assert isinstance(voc, Vocoder) and voc.to("cpu") is voc
    assert voc.decode(torch.zeros(1, 100, 5, dtype=torch.float64)).dtype == torch.float32


def test_from_hub_downloads_only_when_allowed(vocos_folder, tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_download(repo_id, filename, **kwargs):  # the hub, served from the random folder
        calls.append((filename, kwargs.get("local_files_only", False)))
        if kwargs.get("local_files_only"):
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        return str(vocos_folder[0] / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    # online for this test only (conftest turns the hub off); the download above is a fake
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    voc = VocosVocoder.from_hub("someone/vocos", allow_download=True)
    assert voc.name == "vocos:someone/vocos"
    assert calls == [("config.yaml", True), ("config.yaml", False),
                     ("pytorch_model.bin", True), ("pytorch_model.bin", False)]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(VocoderError, match="HF_HUB_OFFLINE"):
        VocosVocoder.from_hub("someone/vocos")


def test_auto_warns_about_a_broken_cached_model(vocos_folder, empty_hub):
    _fake_hub_cache(empty_hub, vocos_folder[0])
    weights = next(empty_hub.rglob("pytorch_model.bin"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.warns(UserWarning, match="pytorch_model.bin"):
        voc = load_vocoder("auto", AudioConfig())
    assert isinstance(voc, GriffinLimVocoder)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_vocoders_on_cuda_match_cpu(vocos_folder):
    mel = torch.randn(2, 100, 40, generator=torch.Generator().manual_seed(3))
    for voc in (VocosVocoder.from_folder(vocos_folder[0]), GriffinLimVocoder(AudioConfig(), n_iter=2)):
        cpu = voc.decode(mel)
        gpu = voc.to("cuda").decode(mel)  # the input may stay on the CPU
        assert gpu.device.type == "cuda" and gpu.dtype == torch.float32
        assert torch.allclose(gpu.cpu(), cpu, atol=1e-2 * cpu.abs().max().item() + 1e-5)  # TF32 convs


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_is_a_clear_error():
    from core.config import ConfigError

    # one device resolution (core/devices.py) and one error type for every caller
    with pytest.raises(ConfigError, match="CUDA is not available"):
        load_vocoder("griffin-lim", AudioConfig(), device="cuda")
    with pytest.raises(ConfigError, match="unknown device 'tpu'; valid: auto, cpu, cuda, cuda:N"):
        load_vocoder("griffin-lim", AudioConfig(), device="tpu")


def test_auto_order_env_then_hub_then_bundled_then_griffin_lim(vocos_folder, empty_hub, tmp_path, monkeypatch):
    """``auto``: $FLOWTTS_VOCOS, else the cached hub Vocos, else the bundled folder, else
    Griffin-Lim; each choice is taken away in turn to reveal the next."""
    import core.vocoders

    env_folder = _copy_folder(vocos_folder[0], tmp_path / "env")
    bundle = _copy_folder(vocos_folder[0], tmp_path / "bundle")
    monkeypatch.setattr(core.vocoders, "BUNDLED_VOCODER", bundle)
    _fake_hub_cache(empty_hub, vocos_folder[0])
    monkeypatch.setenv(VOCOS_ENV, str(env_folder))
    assert load_vocoder("auto", AudioConfig()).name == f"vocos:{env_folder}"
    monkeypatch.delenv(VOCOS_ENV)
    assert load_vocoder("auto", AudioConfig()).name == f"vocos:{DEFAULT_HUB_ID}"
    for p in empty_hub.iterdir():  # empty the hub cache
        import shutil

        shutil.rmtree(p)
    assert load_vocoder("auto", AudioConfig()).name == f"vocos:{bundle}"
    # a bundle whose mel settings differ is skipped (log line), not an error
    assert isinstance(load_vocoder("auto", AudioConfig(n_mels=80)), GriffinLimVocoder)
    # a damaged bundle is skipped with a warning naming the file
    (bundle / "pytorch_model.bin").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="pytorch_model.bin"):
        assert isinstance(load_vocoder("auto", AudioConfig()), GriffinLimVocoder)
    (bundle / "config.yaml").unlink()  # no bundle at all: silently Griffin-Lim
    assert isinstance(load_vocoder("auto", AudioConfig()), GriffinLimVocoder)


def test_bundled_vocoder_path_is_under_assets():
    assert BUNDLED_VOCODER.name == "vocoder" and BUNDLED_VOCODER.parent.name == "assets"
