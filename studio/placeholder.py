"""A status page for the studio until the explorer lands: project version, demo voice,
available checkpoints.  Pure function of the file system, testable without a browser."""

from __future__ import annotations

from pathlib import Path

import panel as pn

import core

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def demo_checkpoints(root: Path = ASSETS) -> list[Path]:
    """Checkpoint files bundled in ``assets/``."""
    return sorted(p for p in root.glob("*") if p.suffix in (".pt", ".safetensors"))


def status_markdown(root: Path = ASSETS) -> str:
    found = demo_checkpoints(root)
    lines = [f"# flowtts studio", "", f"core version {core.__version__}.", ""]
    if found:
        lines.append("Bundled checkpoints: " + ", ".join(p.name for p in found) + ".")
    else:
        lines.append("No bundled demo voice yet: train one with `python -m core train` (see README).")
    return "\n".join(lines)


def build_page(root: Path = ASSETS) -> pn.viewable.Viewable:
    return pn.Column(pn.pane.Markdown(status_markdown(root)), sizing_mode="stretch_width")
