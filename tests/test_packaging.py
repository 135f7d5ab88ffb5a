"""Packaging: the core installs and runs without the studio's packages, and the public
names other code relies on (docs/api.md) all import."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDIO_ONLY = ("panel", "bokeh", "param", "ipywidgets", "jupyterlab", "pandas")

BLOCK = """
import importlib.abc, importlib.machinery, sys
class Refuse(importlib.abc.Loader):
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        raise ImportError(f"{{module.__name__}} is a studio package and must not be needed by core")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            return importlib.machinery.ModuleSpec(name, Refuse())
        return None
sys.meta_path.insert(0, Block())
"""


def test_core_dependencies_leave_the_studio_packages_to_an_extra():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core_deps = {re.split(r"[<>=!\[ ]", d)[0].lower() for d in project["dependencies"]}
    assert not core_deps & set(STUDIO_ONLY)
    studio = {re.split(r"[<>=!\[ ]", d)[0].lower() for d in project["optional-dependencies"]["studio"]}
    assert {"panel", "bokeh", "param", "ipywidgets", "jupyterlab"} <= studio


def test_core_trains_and_synthesises_without_the_studio_packages(tiny_corpus, tmp_path):
    script = BLOCK.format(blocked=STUDIO_ONLY) + f"""
import core, core.cli, core.eval, core.train, core.sampling.bench, core.corpus, core.export, core.cli.synth, core.cli.evaluate, core.cli.vocoder
from conftest import tiny_config
from core.train import Trainer
ck = Trainer(tiny_config({str(tiny_corpus)!r}, steps=1, checkpoint_every=1, val_every=1), {str(tmp_path)!r},
             progress=False).fit()
clip = core.Synthesizer.from_checkpoint(ck, vocoder="griffin-lim").synthesize("red", steps=1, seed=0)
assert clip.audio.size > 0
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT / "tests", capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def public_names() -> list[str]:
    """The dotted names listed in docs/api.md (lines ``- `name` ...``)."""
    text = (ROOT / "docs" / "api.md").read_text()
    return re.findall(r"^- `([A-Za-z_][\w.]*)`", text, flags=re.M)


def test_every_public_name_in_docs_api_imports():
    names = public_names()
    assert len(names) >= 30
    for dotted in names:
        module, _, attr = dotted.rpartition(".")
        try:
            obj = importlib.import_module(dotted)
        except ImportError:
            obj = getattr(importlib.import_module(module), attr)
        assert obj is not None, dotted
