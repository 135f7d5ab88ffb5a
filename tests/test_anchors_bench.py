"""benchmarks/anchors_speed.py on tiny lengths: output structure and equal parameter counts.

Needs the ``bench`` extra (Matcha-TTS, F5-TTS and what their networks import); skipped
without it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

for _name in ("matcha", "f5_tts", "diffusers", "conformer", "x_transformers", "pypinyin", "rjieba", "librosa"):
    pytest.importorskip(_name)


def _bench():
    spec = importlib.util.spec_from_file_location("anchors_speed", ROOT / "benchmarks" / "anchors_speed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["anchors_speed"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _bench()


@pytest.fixture(scope="module")
def result(bench):
    return bench.run_benchmark(seconds=(0.5,), batches=(1, 2), rounds=1, project="small", threads=1)


def test_result_structure(bench, result):
    assert set(result["networks"]) == set(bench.NETWORKS)
    assert len(result["timings"]) == len(bench.NETWORKS) * 2
    for t in result["timings"]:
        assert t["ms_per_nfe"] > 0 and len(t["rounds_ms"]) == 1
        assert t["ms_per_nfe_per_audio_second"] == pytest.approx(t["ms_per_nfe"] / t["batch"] / t["seconds"])
        if t["network"] == "project":
            assert t["ratio_vs_project"] == 1.0
    frames = {t["network"]: t["frames"] for t in result["timings"]}
    assert frames["project"] == frames["f5"] == round(0.5 * 24000 / 256)
    assert frames["matcha"] % 4 == 0 and frames["matcha"] >= 0.5 * 22050 / 256
    assert len(result["load_before"]) == len(result["load_after"]) == 3
    json.dumps(result)  # JSON-able
    table = bench.markdown_table(result)
    assert table.count("\n| 0.5 |") == 2 and "Load average" in table


def test_parameter_counts_match(bench, result):
    target = result["networks"]["project"]["params"]
    for name in ("matcha", "f5"):
        assert abs(result["networks"][name]["params"] - target) <= bench.TOLERANCE * target, name
    assert result["networks"]["project-udit"]["params"] == target  # the layout adds no parameters
    assert result["networks"]["f5"]["extra_params"] > 0  # the text embedding, counted apart


def test_unknown_options_list_the_valid_ones(bench):
    with pytest.raises(ValueError, match="valid: project, project-udit, matcha, f5"):
        bench.build_networks(("project", "grad-tts"))
    with pytest.raises(ValueError, match="valid: tiny, small, base"):
        bench.project_network("huge")


def test_main_writes_json_and_markdown(bench, tmp_path):
    assert bench.main(["--out", str(tmp_path), "--seconds", "0.3", "--batches", "1", "--rounds", "1",
                       "--networks", "f5"]) == 0
    data = json.loads((tmp_path / "anchors_speed.json").read_text())
    assert set(data["networks"]) == {"project", "f5"} and data["command"].startswith("python benchmarks/")
    assert (tmp_path / "anchors_speed.md").read_text().startswith("| audio (s) | batch |")
