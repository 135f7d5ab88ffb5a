"""Studio settings: option/environment precedence, safe path resolution, discovery."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from studio.config import (BundledVoice, PathRefused, StudioConfigError, StudioSettings, find_checkpoints, find_runs,
                           parse_settings, resolve_inside, safe_upload_name)


def test_options_override_environment_which_overrides_defaults(tmp_path):
    env = {"FLOWTTS_CHECKPOINTS": f"e1{os.pathsep}e2", "FLOWTTS_RESULTS": "eres"}
    s = parse_settings(["--checkpoints", "a, b,a", "--results", "res"], env, cwd=tmp_path)
    assert s.checkpoint_dirs == (tmp_path / "a", tmp_path / "b")  # duplicates dropped, order kept
    assert s.results_dir == tmp_path / "res"
    assert s.uploads_dir == tmp_path / "res" / "uploads"
    assert s.roots == (tmp_path / "a", tmp_path / "b", tmp_path / "res" / "uploads")

    s = parse_settings([], env, cwd=tmp_path)
    assert s.checkpoint_dirs == (tmp_path / "e1", tmp_path / "e2")
    assert s.results_dir == tmp_path / "eres"

    s = parse_settings([], {}, cwd=tmp_path)
    assert s.checkpoint_dirs == (tmp_path / "runs",) and s.results_dir == tmp_path / "studio_results"
    assert s.device == "auto"
    assert parse_settings([f"--checkpoints={tmp_path}", "--device", "cuda:1"], {}).device == "cuda:1"


@pytest.mark.parametrize("argv, words", [
    (["--checkpoint", "x"], ["unrecognized", "usage"]),
    (["--checkpoints", " , "], ["names no folder"]),
    (["--results", " "], ["names no folder"]),
    (["--device", "tpu"], ["unknown device 'tpu'", "cpu", "cuda:N"]),
    (["stray"], ["unrecognized arguments: stray"]),
])
def test_bad_options_raise_a_clear_error(argv, words, tmp_path):
    with pytest.raises(StudioConfigError) as info:
        parse_settings(argv, {}, cwd=tmp_path)
    for word in words:
        assert word in str(info.value)


def test_resolve_inside_refuses_everything_outside(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "run").mkdir(parents=True)
    outside.mkdir()
    (outside / "x.pt").write_bytes(b"x")
    (root / "run" / "a.pt").write_bytes(b"a")
    (root / "link_out.pt").symlink_to(outside / "x.pt")
    (root / "dir_out").symlink_to(outside)
    (root / "link_in.pt").symlink_to(root / "run" / "a.pt")

    assert resolve_inside(root / "run" / "a.pt", [root]) == (root / "run" / "a.pt").resolve()
    assert resolve_inside("run/a.pt", [root]) == (root / "run" / "a.pt").resolve()  # relative: below a root
    assert resolve_inside(root / "link_in.pt", [root]) == (root / "run" / "a.pt").resolve()
    assert resolve_inside(root, [root]) == root.resolve()
    for bad in [root / ".." / "outside" / "x.pt", "../outside/x.pt", outside / "x.pt", "/etc/passwd",
                root / "link_out.pt", root / "dir_out" / "x.pt", "", "a\x00b"]:
        with pytest.raises(PathRefused):
            resolve_inside(bad, [root])
    with pytest.raises(PathRefused, match="outside the folders"):
        resolve_inside(outside / "x.pt", [root])
    assert issubclass(PathRefused, ValueError)


def _settings(tmp_path, demo: Path | None = None) -> StudioSettings:
    return StudioSettings(checkpoint_dirs=(tmp_path / "ck",), results_dir=tmp_path / "res",
                          bundled_voices=(BundledVoice("demo", demo or tmp_path / "assets" / "demo.pt", "demo voice (bundled)"),))


def test_find_checkpoints_recursive_skips_caches_and_links_out(tmp_path):
    ck = tmp_path / "ck"
    for rel in ["a/checkpoints/step_00000002.pt", "b/model.safetensors", "top.pt", "a/notes.txt",
                "a/mel_cache/x.pt", ".hidden/h.pt", "a/.part.pt"]:
        (ck / rel).parent.mkdir(parents=True, exist_ok=True)
        (ck / rel).write_bytes(b"x")
    (tmp_path / "elsewhere.pt").write_bytes(b"x")
    (ck / "out.pt").symlink_to(tmp_path / "elsewhere.pt")
    (tmp_path / "res" / "uploads").mkdir(parents=True)
    (tmp_path / "res" / "uploads" / "up.pt").write_bytes(b"x")

    found = find_checkpoints(_settings(tmp_path))
    assert [e.label for e in found] == ["ck/a/checkpoints/step_00000002.pt", "ck/b/model.safetensors", "ck/top.pt",
                                        "uploads/up.pt"]
    assert all(e.path.is_absolute() for e in found)

    demo = tmp_path / "assets" / "demo.pt"
    demo.parent.mkdir()
    demo.write_bytes(b"x")
    s = _settings(tmp_path, demo)
    assert find_checkpoints(s)[0].label == "demo voice (bundled)" and [v.name for v in s.available_voices()] == ["demo"]
    assert demo.parent.resolve() in s.checkpoint_roots


def test_every_bundled_voice_present_is_offered_first_in_order(tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    voices = (BundledVoice("demo", assets / "demo.pt", "demo voice (bundled)"),
              BundledVoice("everyday", assets / "demo_everyday.pt", "everyday voice (bundled)"),
              BundledVoice("meanflow", assets / "demo_meanflow.pt", "one-step voice (bundled)"))
    for v in (voices[0], voices[2]):  # the middle one is not in this checkout
        v.path.write_bytes(b"x")
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "mine.pt").write_bytes(b"x")
    s = StudioSettings(checkpoint_dirs=(tmp_path / "ck",), results_dir=tmp_path / "res", bundled_voices=voices)
    found = find_checkpoints(s)
    assert [e.label for e in found] == ["demo voice (bundled)", "one-step voice (bundled)", "ck/mine.pt"]
    assert found[1].path == voices[2].path.resolve()
    assert [v.name for v in s.available_voices()] == ["demo", "meanflow"]
    assert s.checkpoint_roots.count(assets.resolve()) == 1  # one folder, listed once
    # nothing bundled at all: nothing offered, no error
    none = StudioSettings(checkpoint_dirs=(tmp_path / "ck",), results_dir=tmp_path / "res",
                          bundled_voices=(BundledVoice("x", tmp_path / "missing.pt", "x"),))
    assert [e.label for e in find_checkpoints(none)] == ["ck/mine.pt"] and none.available_voices() == []


def test_find_runs_lists_folders_with_metrics(tmp_path):
    ck = tmp_path / "ck"
    for rel in ["r1", "group/r2", "not_a_run"]:
        (ck / rel).mkdir(parents=True)
    (ck / "r1" / "metrics.jsonl").write_text("{}\n")
    (ck / "group" / "r2" / "metrics.jsonl").write_text("{}\n")
    os.utime(ck / "r1" / "metrics.jsonl", (1e9, 1e9))  # older: listed last
    runs = find_runs(_settings(tmp_path))
    assert [r.label for r in runs] == ["ck/group/r2", "ck/r1"]
    assert runs[1].path == (ck / "r1").resolve()
    assert _settings(tmp_path).missing_dirs() == []
    assert StudioSettings((tmp_path / "nope",), tmp_path).missing_dirs() == [tmp_path / "nope"]


@pytest.mark.parametrize("given, expected", [
    ("model.pt", "model.pt"),
    ("../../etc/evil.pt", "evil.pt"),
    ("C:\\Users\\me\\voice one.safetensors", "voice_one.safetensors"),
    ("..pt", "upload.pt"),
    ("$(rm -rf).pt", "__rm_-rf_.pt"),
])
def test_safe_upload_name(given, expected):
    assert safe_upload_name(given) == expected


@pytest.mark.parametrize("given", ["notes.txt", "model.pt.zip", "", "model"])
def test_upload_name_needs_a_checkpoint_suffix(given):
    with pytest.raises(StudioConfigError, match=r"\.pt or \.safetensors"):
        safe_upload_name(given)
