"""The synthesis explorer: choose a checkpoint, set the sampler, render, inspect.

Pieces (all per browser session; nothing global):

* :class:`SynthesisService` -- the session's folders, checkpoint catalogue, a small cache
  of loaded :class:`core.Synthesizer` objects and the single-worker
  :class:`~studio.jobs.JobRunner` that runs loading and synthesis off the UI thread.
* :class:`~studio.controls_ui.SynthControls` (in its own module) -- one set of render
  settings (checkpoint, speaker, sampler, vocoder) as parameters; the speaker list and
  the model family follow the checkpoint, and only the family's controls are shown.
* :class:`~studio.clip_ui.ClipView` (in its own module) -- one rendered clip.
* :class:`Explorer` (one clip) and :class:`CompareView` (the same text and seed under
  settings A and B) -- the pages.  ``generate()`` returns False when refused (busy or
  bad options); errors land in ``alert`` as text, never a traceback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import panel as pn
import param

import core
from core.config import TextConfig
from core.sampling.options import SEED_RANGE, check_seed

from .clip_ui import ClipView, Rendered
from .config import CheckpointEntry, StudioSettings, find_checkpoints, resolve_inside, safe_upload_name
from .controls_ui import DEFAULT_SPEAKER, FAMILY_CONTROLS, READING_LABEL, SynthControls
from .jobs import JobOutcome, JobRunner, on_page_load
from .synthesis import (VOCODER_MODES, CheckpointInfo, SynthesizerPool, checkpoint_info, checkpoint_speakers,
                        shared_pool, speaker_labels, vocoder_spec)

__all__ = ["SynthesisService", "SynthControls", "Explorer", "CompareView", "speaker_labels", "VOCODER_MODES",
           "DEFAULT_SPEAKER", "DEFAULT_TEXT", "looks_like_checkpoint", "on_page_load", "FAMILY_CONTROLS"]

DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog."
EXPECTED_ERRORS = (core.CheckpointError, ValueError, OSError)  # TextError, VocoderError, ConfigError are ValueErrors
BUSY_NOTICE = "Still working on the previous request ({}); this click was ignored."
QUEUED_NOTICE = "Reading the chosen checkpoint first; this request starts as soon as it is read."


def looks_like_checkpoint(data: bytes) -> bool:
    """Whether ``data`` starts like a file :func:`core.load_checkpoint` could read: a
    PyTorch zip archive, a (legacy) pickle, or safetensors (an 8-byte little-endian
    header length followed by a JSON object)."""
    if data[:4] == b"PK\x03\x04" or (data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        return True
    if len(data) >= 10:
        n = int.from_bytes(data[:8], "little")
        return 2 <= n <= len(data) - 8 and data[8:9] == b"{"
    return False


class SynthesisService(param.Parameterized):
    """A session's checkpoint catalogue and job runner, rendering through the server's
    shared :class:`~studio.synthesis.SynthesizerPool` (models are loaded once per
    process, not per browser tab)."""

    catalog = param.Dict(default={}, doc="checkpoint label -> resolved path")

    def __init__(self, settings: StudioSettings, *, pool: Optional[SynthesizerPool] = None, **params):
        super().__init__(**params)
        self.settings = settings
        self.pool = pool if pool is not None else shared_pool(settings.device)
        self.runner = JobRunner(expected=EXPECTED_ERRORS)
        self.refresh_catalog()

    def refresh_catalog(self) -> None:
        self.catalog = {e.label: str(e.path) for e in find_checkpoints(self.settings)}

    def label_of(self, path: str) -> str:
        return next((label for label, p in self.catalog.items() if p == str(path)), Path(path).name)

    def vocoder_spec(self, mode: str, folder: str = "") -> str:
        """The :func:`core.vocoders.load_vocoder` spec of a UI choice; a Vocos folder must
        lie inside the checkpoint folders (PathRefused otherwise)."""
        return vocoder_spec(mode, folder, self.settings.checkpoint_dirs)

    def _path(self, checkpoint: str) -> Path:
        path = resolve_inside(checkpoint, self.settings.checkpoint_roots)
        if not path.is_file():
            raise core.CheckpointError(f"{path}: no such checkpoint file (refresh the list)")
        return path

    def synthesizer(self, checkpoint: str, vocoder: str):
        """The pool's Synthesizer for a checkpoint inside the configured folders; runs in jobs."""
        return self.pool.get(self._path(checkpoint), vocoder)

    def speakers(self, checkpoint: str) -> list[str]:
        """Speaker labels of a checkpoint (reads it with :func:`core.load_checkpoint`
        unless known); runs in jobs."""
        return checkpoint_speakers(self._path(checkpoint))

    def info(self, checkpoint: str) -> CheckpointInfo:
        """Speakers, family and defaults of a checkpoint (see :func:`checkpoint_info`); runs in jobs."""
        return checkpoint_info(self._path(checkpoint))

    def known_info(self, checkpoint: str) -> Optional[CheckpointInfo]:
        """:class:`CheckpointInfo` already read for this file version, else None."""
        return checkpoint_info(checkpoint, cached_only=True)

    def known_speakers(self, checkpoint: str) -> Optional[list[str]]:
        """Speaker labels already read for this file version, else None (no I/O but a stat)."""
        return checkpoint_speakers(checkpoint, cached_only=True)

    def render(self, checkpoint: str, vocoder: str, text: str, seed: int, options: dict[str, Any],
               trajectory: bool) -> Rendered:
        """Synthesise ``text`` (a job's work).  ``options``: ``synthesize`` keywords, or
        per family (``{"flow": {...}, "lewm": {...}}``, see :meth:`SynthControls.family_options`),
        of which the loaded checkpoint's family is used.  A trajectory is asked for only
        from a flow-matching checkpoint (LeWM has none)."""
        path = self._path(checkpoint)
        synth = self.pool.get(path, vocoder)
        family = synth.config.model.family
        if set(options) <= set(FAMILY_CONTROLS) and options:
            options = options[family]
        extra = {"return_trajectory": True} if trajectory and family == "flow" else {}
        result = self.pool.synthesize(path, vocoder, text, seed=seed, **extra, **options)
        audio = synth.config.audio
        labels = speaker_labels(synth.speakers, synth.config.model.n_speakers)
        return Rendered(result, audio.hop_length / audio.sample_rate, self.label_of(checkpoint), labels)

    def save_upload(self, filename: str, data: bytes) -> CheckpointEntry:
        """Store an uploaded checkpoint in ``<results>/uploads`` after
        :func:`core.load_checkpoint` accepted it; a bad file is removed and its
        CheckpointError (naming the upload) raised.  Refreshes the catalogue."""
        name = safe_upload_name(filename)
        if not data:
            raise core.CheckpointError(f"upload {filename}: the file is empty (0 bytes); nothing was saved")
        if not looks_like_checkpoint(data):
            raise core.CheckpointError(f"upload {filename}: not a checkpoint file (neither a PyTorch .pt archive "
                                       "nor a .safetensors file); nothing was saved")
        folder = self.settings.uploads_dir
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=Path(name).suffix, dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                ck = core.load_checkpoint(tmp)
            except core.CheckpointError as exc:
                raise core.CheckpointError(str(exc).replace(tmp, f"upload {filename}")) from None
            dest = folder / name
            if dest.exists():
                dest = folder / f"{Path(name).stem}-{ck.sha256[:8]}{Path(name).suffix}"
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.refresh_catalog()
        return CheckpointEntry(self.label_of(str(dest.resolve())), dest.resolve())


class _RenderPage(pn.viewable.Viewer):
    """Shared parts of the explorer and compare pages: text, seed, alert, busy notice."""

    text = param.String(default=DEFAULT_TEXT)
    seed = param.Integer(default=0, doc=f"random seed {SEED_RANGE[0]}..{SEED_RANGE[1]}: the same seed and "
                                        "settings give the same clip")
    alert = param.String(default="", doc="the last error, shown in the page")
    notice = param.String(default="", doc="information (e.g. a click ignored while busy)")
    text_warning = param.String(default="", doc="about the last clip's text (e.g. characters the voice cannot read)")

    def __init__(self, service: SynthesisService, **params):
        super().__init__(**params)
        self.service = service
        self._queued = None  # the runner watcher of a request waiting for a checkpoint read

    def _follow(self, controls: SynthControls) -> None:
        """Show a controls' checkpoint-reading error as this page's alert (cleared when a
        checkpoint is read fine)."""
        controls.param.watch(lambda e: setattr(self, "alert", e.new), ["load_error", "prompt_error"])
        if controls.load_error:  # read before the watcher existed
            self.alert = controls.load_error

    def _submit(self, jobs: list[tuple[SynthControls, ClipView]], trajectory: bool) -> bool:
        """Start rendering ``jobs``; False if refused.  A click while the page itself is
        reading a just-chosen checkpoint (the button's disabled state may not have reached
        the browser yet) is not lost: it runs once the read is done, with the settings of
        that moment (one such request waits at most).  A click during the user's own
        earlier request is ignored with a notice."""
        self.param.update(alert="", notice="")
        runner = self.service.runner
        if runner.busy:
            if runner.label == READING_LABEL and self._queued is None:
                self._queue(lambda: self._submit(jobs, trajectory))
                self.notice = QUEUED_NOTICE
                return True
            self.notice = BUSY_NOTICE.format(runner.label)
            return False
        try:
            if not self.text.strip():
                raise ValueError("text is empty; type something to say")
            seed = check_seed(self.seed, allow_none=False)
            plans = []
            for controls, _ in jobs:
                if controls.checkpoint is None:
                    raise ValueError("no checkpoint chosen: pick one, upload one, or start the studio with "
                                     "--args --checkpoints DIR")
                plans.append((controls.checkpoint, self.service.vocoder_spec(controls.vocoder, controls.vocos_folder),
                              controls.family_options()))
        except ValueError as exc:
            self.alert = str(exc)
            return False
        text = self.text

        def work():
            return [self.service.render(ck, voc, text, seed, opts, trajectory) for ck, voc, opts in plans]

        def done(outcome: JobOutcome) -> None:
            if not outcome.ok:
                self.alert = outcome.error
                return
            for (controls, view), rendered in zip(jobs, outcome.value):
                view.show(rendered)
                if controls.speakers_for != controls.checkpoint:
                    controls.set_speakers(controls.checkpoint, rendered.speakers)
                controls.family = rendered.synthesis.settings.get("family", "flow")
            warnings = dict.fromkeys(w for r in outcome.value for w in r.synthesis.warnings)
            self.text_warning = " ".join(w[:1].upper() + w[1:] + "." for w in warnings)
            self._rendered(outcome.value)

        if not runner.submit(work, done, label="rendering"):
            self.notice = BUSY_NOTICE.format(runner.label)
            return False
        return True

    def _queue(self, action: Callable[[], Any]) -> None:
        """Call ``action`` once, the next time the runner turns idle."""
        runner = self.service.runner

        def fire(event) -> None:
            if event.new or self._queued is None:
                return
            runner.param.unwatch(self._queued)
            self._queued = None
            action()

        self._queued = runner.param.watch(fire, "busy")

    def _rendered(self, rendered: list[Rendered]) -> None:
        """Hook after clips are shown (Compare aligns its time axes)."""

    def _text_widgets(self) -> list:
        area = pn.widgets.TextAreaInput.from_param(self.param.text, rows=3, sizing_mode="stretch_width",
                                                   placeholder="Type a sentence to speak")
        limit = TextConfig().max_chars
        counter = pn.pane.Markdown(pn.bind(lambda v: f"{len(v or '')} / {limit} characters (long text is split "
                                                     "at sentence ends)", area.param.value_input),
                                   styles={"font-size": "small", "color": "#666"}, margin=(0, 10))
        seed = pn.widgets.IntInput.from_param(self.param.seed, sizing_mode="stretch_width",
                                              description=self.param.seed.doc)
        return [area, counter, seed]

    def _status(self, on_click: Callable[[], Any], label: str) -> pn.Row:
        runner = self.service.runner
        button = pn.widgets.Button(label=label, color="primary", disabled=runner.param.busy)
        button.on_click(lambda _: on_click())
        return pn.Row(button, pn.indicators.LoadingSpinner(value=runner.param.busy, size=28),
                      pn.pane.Str(runner.param.label))

    def _messages(self) -> pn.Column:
        return pn.Column(
            pn.pane.Alert(self.param.alert, alert_type="danger", visible=self.param.alert.rx.bool()),
            pn.pane.Alert(self.param.text_warning, alert_type="warning",
                          visible=self.param.text_warning.rx.bool()),
            pn.pane.Alert(self.param.notice, alert_type="info", visible=self.param.notice.rx.bool()),
            sizing_mode="stretch_width")


class Explorer(_RenderPage):
    """Render one clip with the full trajectory; upload checkpoints."""

    def __init__(self, service: SynthesisService, **params):
        super().__init__(service, **params)
        self.controls = SynthControls(service, name="settings")
        self._follow(self.controls)
        self.clip = ClipView()
        self.upload_input = pn.widgets.FileInput(accept=".pt,.safetensors", multiple=False)
        self.upload_input.param.watch(self._on_upload, "value")
        self.controls.param.watch(lambda *_: self._preview_grid(), ["steps", "schedule", "sway"])
        self._preview_grid()

    def _preview_grid(self) -> None:
        """Before the first clip, the time-grid plot shows the grid the settings select."""
        if self.clip.rendered is None:
            self.clip.preview_grid(self.controls.grid())

    def generate(self) -> bool:
        """Render the text with the controls (in the background); False if refused."""
        return self._submit([(self.controls, self.clip)], trajectory=True)

    def upload(self, filename: str, data: bytes) -> bool:
        """Save and select an uploaded checkpoint; a bad file sets ``alert``."""
        self.param.update(alert="", notice="")
        try:
            entry = self.service.save_upload(filename, data)
        except (core.CheckpointError, ValueError, OSError) as exc:
            self.alert = str(exc)
            return False
        self.controls.checkpoint = str(entry.path)
        self.notice = f"Uploaded {entry.label}."
        return True

    def _on_upload(self, event) -> None:
        if event.new is not None:  # b"" (an empty file) is reported, not ignored
            self.upload(self.upload_input.filename or "upload.pt", event.new)

    def _catalog_note(self) -> str:
        s = self.service.settings
        lines = [] if s.available_voices() else [
            "No bundled voice (none of " + ", ".join(v.path.name for v in s.bundled_voices)
            + " is in assets/): choose a trained checkpoint."]
        lines += [f"Checkpoint folder {d} does not exist." for d in s.missing_dirs()]
        if not self.service.catalog:
            lines.append("No checkpoints found: train one (`python -m core train --out runs/NAME`) or upload one.")
        return "\n\n".join(lines)

    def __panel__(self):
        note = self._catalog_note()
        side = pn.Column(
            "### Text", *self._text_widgets(), self._status(self.generate, "Generate"),
            "### Checkpoint and sampler", self.controls.widgets(), "upload a checkpoint (.pt / .safetensors)",
            self.upload_input, width=340)
        main = pn.Column(pn.pane.Alert(note, alert_type="warning", visible=bool(note)), self._messages(),
                         self.clip, sizing_mode="stretch_width")
        return pn.Row(side, main, sizing_mode="stretch_width")


class CompareView(_RenderPage):
    """The same text and seed rendered with settings A and with settings B; both
    spectrograms share one time axis."""

    def __init__(self, service: SynthesisService, **params):
        super().__init__(service, **params)
        self.a = SynthControls(service, name="A")
        self.b = SynthControls(service, name="B", steps=32, schedule="linear")
        self._follow(self.a)
        self._follow(self.b)
        self.clip_a, self.clip_b = ClipView("A", detail=False), ClipView("B", detail=False)

    def generate(self) -> bool:
        """Render A then B in one background job; False if refused."""
        return self._submit([(self.a, self.clip_a), (self.b, self.clip_b)], trajectory=False)

    def _rendered(self, rendered: list[Rendered]) -> None:
        end = max(r.synthesis.mel.shape[1] * r.frame_seconds for r in rendered)
        for view in (self.clip_a, self.clip_b):
            view.mel.figure.x_range.update(start=0.0, end=max(end, 1e-3))

    def __panel__(self):
        top = pn.Row(pn.Column(*self._text_widgets(), width=400), self._status(self.generate, "Generate A and B"))
        sides = pn.Row(pn.Column("### A", self.a.widgets(), self.clip_a, sizing_mode="stretch_width"),
                       pn.Column("### B", self.b.widgets(), self.clip_b, sizing_mode="stretch_width"),
                       sizing_mode="stretch_width")
        return pn.Column(top, self._messages(), sides, sizing_mode="stretch_width")
