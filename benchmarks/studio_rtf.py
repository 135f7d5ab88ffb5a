"""Explorer "Generate" in a real browser against a plain ``Synthesizer.synthesize`` call,
side by side on this machine, with the browser open the whole time.

    python benchmarks/studio_rtf.py --repeats 5 --out runs/studio_rtf.json

For each studio thread setting (``--studio-threads``, default ``auto 2``: the studio's
policy, then torch's own default on a 2-core machine, which is what the studio used
before it chose deliberately) it starts ``panel serve studio/app.py`` on the bundled demo
voice, opens the Explorer in Debian chromium, types a 63-character sentence and clicks
Generate ``--repeats`` times (seed k on click k, 10 Euler steps on the sway grid,
Griffin-Lim), reading each clip's RTF (total time / audio length) from the page.
Between clicks, with the browser still open and the server idle, a separate Python
process renders the same sentence and settings with ``core.Synthesizer`` at torch's
default thread count, as a user's script would, and again at 1 thread (the studio's own
policy on a 2-core machine), which isolates what the server and the page add.  Prints and writes the medians, their
ratio and the load average.  Needs ``/usr/bin/chromium`` and playwright.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TEXT = "The quick brown fox jumps over the lazy dog near the river bank."  # 63 characters
SCRIPT = """
import json, sys, time
from core import Synthesizer
synth = Synthesizer.from_checkpoint(None, device="cpu", vocoder="griffin-lim")
seed = int(sys.argv[1])
clip = synth.synthesize({text!r}, steps=10, solver="euler", schedule="sway", sway=-1.0, seed=seed, speaker=0)
start = time.perf_counter()
clip = synth.synthesize({text!r}, steps=10, solver="euler", schedule="sway", sway=-1.0, seed=seed, speaker=0)
print(json.dumps({{"rtf": clip.timings["total"] / clip.duration, "acoustic": clip.timings["acoustic"],
                  "total": clip.timings["total"], "duration": clip.duration}}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, threads: str, folder: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    env.pop("FLOWTTS_VOCOS", None)
    env.pop("OMP_NUM_THREADS", None)
    cmd = [sys.executable, "-m", "panel", "serve", "studio/app.py", "--port", str(port), "--address", "127.0.0.1",
           "--allow-websocket-origin", f"127.0.0.1:{port}", "--args", "--checkpoints", str(folder / "runs"),
           "--results", str(folder / "results"), "--device", "cpu", "--threads", threads]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(folder / f"server-{threads}.log", "w"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/app", timeout=60).close()
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("panel serve did not answer")


def plain_rtf(seed: int, threads: str = "") -> dict:
    """A user's script in its own process: torch's default threads, or ``threads``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    env.pop("OMP_NUM_THREADS", None)
    env.pop("FLOWTTS_THREADS", None)
    if threads:
        env["OMP_NUM_THREADS"] = threads
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(text=TEXT), str(seed)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def studio_rtf(page, seed: int) -> float:
    seed_box = page.get_by_label("Seed").first  # the Explorer tab comes first
    seed_box.fill(str(seed))
    seed_box.press("Tab")
    page.get_by_role("button", name="Generate").click()
    line = page.get_by_text(re.compile(rf"seed {seed} · vocoder")).first
    line.wait_for(timeout=300_000)
    summary = page.get_by_text(re.compile(r"RTF [0-9.]+")).first.inner_text()  # the clip's timings line
    return float(re.search(r"RTF ([0-9.]+)", summary).group(1))


def measure(threads: str, repeats: int, folder: Path) -> dict:
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc = start_server(port, threads, folder)
    studio, plain, plain1 = [], [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(f"http://127.0.0.1:{port}/app", wait_until="networkidle")
            text = page.locator("textarea").first
            text.fill(TEXT)
            text.press("Tab")
            page.get_by_role("button", name="Generate").wait_for()
            studio_rtf(page, 1000)  # warm-up: loads the model into the server's pool
            for k in range(repeats):
                studio.append(studio_rtf(page, k))
                plain.append(plain_rtf(k)["rtf"])  # the browser stays open, the server idles
                plain1.append(plain_rtf(k, "1")["rtf"])  # the same script at the studio's 1 thread
            browser.close()
    finally:
        proc.terminate()
        proc.wait(20)
    return {"studio_threads": threads, "studio_rtf": studio, "plain_rtf": plain,
            "plain_1thread_rtf": plain1, "studio_median": statistics.median(studio),
            "plain_median": statistics.median(plain), "plain_1thread_median": statistics.median(plain1),
            "ratio": statistics.median(studio) / statistics.median(plain),
            "ratio_same_threads": statistics.median(studio) / statistics.median(plain1), "load_after": os.getloadavg()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--studio-threads", nargs="+", default=["auto", "2"])
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"error: {CHROMIUM} is not installed", file=sys.stderr)
        return 2
    report = {"text": TEXT, "chars": len(TEXT), "cpu_count": os.cpu_count(), "load_before": os.getloadavg(),
              "settings": "demo voice, speaker 0, 10 Euler steps, sway -1, Griffin-Lim", "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "runs").mkdir()
        for threads in args.studio_threads:
            run = measure(threads, args.repeats, folder)
            report["runs"].append(run)
            print(f"studio --threads {threads}: RTF median {run['studio_median']:.3f} vs plain script "
                  f"{run['plain_median']:.3f} (torch default threads) -> {run['ratio']:.2f}x; vs the script at "
                  f"1 thread {run['plain_1thread_median']:.3f} -> {run['ratio_same_threads']:.2f}x "
                  f"(load {run['load_after'][0]:.2f})", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
