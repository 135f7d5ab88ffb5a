"""``python -m core bench``: the JSON report has every field with sane values (run
in-process with ``--quick``; no wall-clock limits are asserted)."""

from __future__ import annotations

import json

import pytest
import torch

from core.cli import main
from core.sampling.bench import QUICK_PLAN, run_benchmark
from core.sampling.synthesizer import Synthesizer
from sampling_fixtures import cfm_checkpoint, meanflow_checkpoint  # noqa: F401


def test_quick_bench_json(cfm_checkpoint, tmp_path, capsys):
    out = tmp_path / "bench" / "report.json"
    code = main(["bench", "--checkpoint", str(cfm_checkpoint), "--quick", "--repeats", "1", "--device", "cpu",
                 "--vocoder", "griffin-lim", "--text", "red blue cat.", "--out", str(out)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    report = json.loads(out.read_text())
    assert printed == report
    assert report["device"] == "cpu" and report["torch"] == torch.__version__
    assert report["threads"] == torch.get_num_threads() and report["objective"] == "cfm"
    assert report["vocoder"] == "griffin-lim" and report["audio_s"] > 0 and report["parameters"] > 0

    rows = report["rtf"]
    assert [(r["solver"], r["steps"], r["nfe"]) for r in rows] == [
        ("euler", 1, 1), ("euler", 5, 5), ("heun", 1, 2), ("heun", 5, 10)]
    for r in rows:
        for key in ("rtf_total", "rtf_acoustic", "rtf_vocoder", "total_s", "acoustic_s", "vocoder_s"):
            assert r[key] > 0, key
        assert r["total_s"] >= r["acoustic_s"] and r["total_s"] >= r["vocoder_s"]

    overhead = report["sampler_overhead"]
    assert overhead["goal"] == 1.05
    assert [(r["solver"], r["steps"]) for r in overhead["rows"]] == [(r["solver"], r["steps"]) for r in rows]
    assert all(r["ratio"] > 0 and r["forward_s"] > 0 for r in overhead["rows"])

    g = report["guidance_cost"]
    assert g["cfg"] > 0 and g["acoustic_ratio"] > 0 and g["total_ratio"] > 0

    batches = report["batch_throughput"]
    assert [b["batch"] for b in batches] == list(QUICK_PLAN["batches"])
    assert all(b["audio_s_per_s"] > 0 and b["acoustic_audio_s_per_s"] >= b["audio_s_per_s"] for b in batches)
    assert batches[1]["audio_s"] == pytest.approx(2 * batches[0]["audio_s"])


def test_meanflow_bench_uses_jumps_only(meanflow_checkpoint):
    synth = Synthesizer.from_checkpoint(meanflow_checkpoint, device="cpu", vocoder="griffin-lim")
    plan = {"steps": (1, 2), "solvers": ("euler", "rk4"), "batches": (1,), "guidance_steps": 1, "batch_steps": 1}
    report = run_benchmark(synth, plan=plan, repeats=1, text="red blue")
    assert [(r["solver"], r["steps"], r["nfe"]) for r in report["rtf"]] == [("euler", 1, 1), ("euler", 2, 2)]


@pytest.mark.parametrize("args, message", [(["--repeats", "0"], "--repeats: must be an integer in 1..1000, got 0"),
                                           (["--threads", "0"], "--threads: must be an integer in 1..1024, got 0"),
                                           (["--text", "red " * 80, "--vocoder", "griffin-lim"],
                                            "benchmark text must be 1 to 300 characters")])
def test_bad_bench_arguments(cfm_checkpoint, capsys, args, message):
    try:
        rc = main(["bench", "--checkpoint", str(cfm_checkpoint), *args])
    except SystemExit as exc:  # refused while parsing (the counts' ranges), as argparse does
        rc = exc.code
    assert rc == 2
    assert message in capsys.readouterr().err
