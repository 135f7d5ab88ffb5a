"""The synthesis explorer: choose a checkpoint, set the sampler, render, inspect.

Pieces (all per browser session; nothing global):

* :class:`SynthesisService` -- the session's folders, checkpoint catalogue, a small cache
  of loaded :class:`core.Synthesizer` objects and the single-worker
  :class:`~studio.jobs.JobRunner` that runs loading and synthesis off the UI thread.
* :class:`SynthControls` -- one set of render settings (checkpoint, speaker, sampler,
  vocoder) as parameters; the speaker list follows the checkpoint.
* :class:`~studio.clip_view.ClipView` (in its own module) -- one rendered clip.
* :class:`Explorer` (one clip) and :class:`CompareView` (the same text and seed under
  settings A and B) -- the pages.  ``generate()`` returns False when refused (busy or
  bad options); errors land in ``alert`` as text, never a traceback.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Optional

import panel as pn
import param

import core
from core.config import choice_error
from core.sampling import FIXED_STEP_SOLVERS, SCHEDULES, SWAY_RANGE

from .clip_view import ClipView, Rendered
from .config import CheckpointEntry, StudioSettings, find_checkpoints, resolve_inside, safe_upload_name
from .jobs import JobOutcome, JobRunner

__all__ = ["SynthesisService", "SynthControls", "Explorer", "CompareView", "speaker_labels", "VOCODER_MODES",
           "DEFAULT_SPEAKER", "DEFAULT_TEXT"]

VOCODER_MODES = ("auto", "griffin-lim", "vocos folder")
DEFAULT_SPEAKER = "(first speaker)"
DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog."
EXPECTED_ERRORS = (core.CheckpointError, ValueError, OSError)  # TextError, VocoderError, ConfigError are ValueErrors
BUSY_NOTICE = "Still working on the previous request ({}); this click was ignored."


class SynthesisService(param.Parameterized):
    """A session's checkpoint catalogue, synthesizer cache and job runner."""

    catalog = param.Dict(default={}, doc="checkpoint label -> resolved path")

    def __init__(self, settings: StudioSettings, *, cache_size: int = 2, **params):
        super().__init__(**params)
        self.settings = settings
        self.runner = JobRunner(expected=EXPECTED_ERRORS)
        self._cache: OrderedDict[tuple, Any] = OrderedDict()
        self._cache_size = cache_size
        self._speakers: dict[tuple[str, int], list[str]] = {}
        self._lock = threading.Lock()
        self.refresh_catalog()

    def refresh_catalog(self) -> None:
        self.catalog = {e.label: str(e.path) for e in find_checkpoints(self.settings)}

    def label_of(self, path: str) -> str:
        return next((label for label, p in self.catalog.items() if p == str(path)), Path(path).name)

    def vocoder_spec(self, mode: str, folder: str = "") -> str:
        """The :func:`core.vocoders.load_vocoder` spec of a UI choice; a Vocos folder must
        lie inside the checkpoint folders (PathRefused otherwise)."""
        if mode not in VOCODER_MODES:
            raise choice_error("vocoder", mode, VOCODER_MODES)
        if mode == "vocos folder":
            return str(resolve_inside(folder, self.settings.checkpoint_dirs))
        return mode

    def synthesizer(self, checkpoint: str, vocoder: str):
        """A loaded Synthesizer (cached by path, file time and vocoder); runs in jobs."""
        path = resolve_inside(checkpoint, self.settings.checkpoint_roots)
        if not path.is_file():
            raise core.CheckpointError(f"{path}: no such checkpoint file (refresh the list)")
        key = (str(path), path.stat().st_mtime_ns, vocoder)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            synth = core.Synthesizer.from_checkpoint(path, device=self.settings.device, vocoder=vocoder)
            self._cache[key] = synth
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return synth

    def speakers(self, checkpoint: str) -> list[str]:
        """Speaker labels of a checkpoint (reads it with :func:`core.load_checkpoint`
        unless known); runs in jobs."""
        known = self.known_speakers(checkpoint)
        if known is not None:
            return known
        path = resolve_inside(checkpoint, self.settings.checkpoint_roots)
        ck = core.load_checkpoint(path)
        return self._remember(path, speaker_labels(ck.speakers, ck.config.model.n_speakers))

    def known_speakers(self, checkpoint: str) -> Optional[list[str]]:
        """Speaker labels already read for this file version, else None (no I/O but a stat)."""
        try:
            return self._speakers.get((checkpoint, os.stat(checkpoint).st_mtime_ns))
        except OSError:
            return None

    def _remember(self, path: Path, labels: list[str]) -> list[str]:
        self._speakers[(str(path), path.stat().st_mtime_ns)] = labels
        return labels

    def render(self, checkpoint: str, vocoder: str, text: str, seed: int, options: dict[str, Any],
               trajectory: bool) -> Rendered:
        """Synthesise ``text`` (a job's work)."""
        synth = self.synthesizer(checkpoint, vocoder)
        result = synth.synthesize(text, seed=seed, return_trajectory=trajectory, **options)
        audio = synth.config.audio
        labels = self._remember(Path(synth.checkpoint_path), speaker_labels(synth.speakers,
                                                                            synth.config.model.n_speakers))
        return Rendered(result, audio.hop_length / audio.sample_rate, self.label_of(checkpoint), labels)

    def save_upload(self, filename: str, data: bytes) -> CheckpointEntry:
        """Store an uploaded checkpoint in ``<results>/uploads`` after
        :func:`core.load_checkpoint` accepted it; a bad file is removed and its
        CheckpointError (naming the upload) raised.  Refreshes the catalogue."""
        name = safe_upload_name(filename)
        if not data:
            raise core.CheckpointError(f"{filename}: the upload is empty")
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


def speaker_labels(speakers: list[str], n: int) -> list[str]:
    """Labels of ``n`` speakers: their names, unnamed ones by index."""
    names = list(speakers) + [""] * max(0, n - len(speakers))
    return [name or str(i) for i, name in enumerate(names[:n])]


class SynthControls(param.Parameterized):
    """One set of render settings; :meth:`options` gives ``synthesize`` keywords."""

    checkpoint = param.Selector(default=None, objects={}, allow_None=True, doc="checkpoint path")
    speaker = param.Selector(default=DEFAULT_SPEAKER, objects=[DEFAULT_SPEAKER])
    steps = param.Integer(default=10, bounds=(1, 128), doc="solver steps")
    solver = param.Selector(default="euler", objects=list(FIXED_STEP_SOLVERS))
    schedule = param.Selector(default="sway", objects=list(SCHEDULES), doc="time-grid schedule")
    sway = param.Number(default=-1.0, bounds=SWAY_RANGE, doc="sway coefficient (schedule 'sway' only)")
    duration_scale = param.Number(default=1.0, bounds=(0.25, 4.0), doc="> 1 speaks slower")
    cfg = param.Number(default=0.0, bounds=(0.0, 10.0), doc="guidance strength (0 = none)")
    temperature = param.Number(default=1.0, bounds=(0.0, 2.0), doc="scale of the initial noise")
    vocoder = param.Selector(default="auto", objects=list(VOCODER_MODES))
    vocos_folder = param.String(default="", doc="Vocos folder (config.yaml + pytorch_model.bin)")
    load_error = param.String(default="", doc="why the checkpoint's speakers could not be read")

    def __init__(self, service: SynthesisService, **params):
        super().__init__(**params)
        self.service = service
        self.speakers_for: Optional[str] = None  # checkpoint whose speakers are listed
        service.param.watch(lambda _: self._sync_catalog(), "catalog")
        service.runner.param.watch(lambda e: None if e.new else self.load_speakers(), "busy")
        self._sync_catalog()
        if self.checkpoint is None and service.catalog:
            self.checkpoint = next(iter(service.catalog.values()))

    def _sync_catalog(self) -> None:
        self.param.checkpoint.objects = dict(self.service.catalog)
        if self.checkpoint not in self.service.catalog.values():
            self.checkpoint = None

    @param.depends("checkpoint", watch=True)
    def load_speakers(self) -> None:
        """List the checkpoint's speakers (loads it in a job; retried when the runner is
        free again if it is busy now)."""
        if self.checkpoint is None or self.speakers_for == self.checkpoint:
            return
        known = self.service.known_speakers(self.checkpoint)
        if known is not None:
            self.set_speakers(self.checkpoint, known)
            return
        if self.speakers_for is not None:
            self.set_speakers(None, [])
        path = self.checkpoint
        self.service.runner.submit(lambda: self.service.speakers(path),
                                   lambda out: self.set_speakers(path, out.value if out.ok else [], out.error or ""),
                                   label="reading checkpoint")

    def set_speakers(self, checkpoint: Optional[str], names: list[str], error: str = "") -> None:
        self.speakers_for = checkpoint
        self.load_error = error
        self.param.speaker.objects = [DEFAULT_SPEAKER] + [n for n in names if n != DEFAULT_SPEAKER]
        if self.speaker not in self.param.speaker.objects:
            self.speaker = DEFAULT_SPEAKER

    def options(self) -> dict[str, Any]:
        """Keyword options of ``Synthesizer.synthesize`` (no text or seed)."""
        return {"steps": self.steps, "solver": self.solver, "schedule": self.schedule, "sway": self.sway,
                "duration_scale": self.duration_scale, "cfg": self.cfg, "temperature": self.temperature,
                "speaker": None if self.speaker == DEFAULT_SPEAKER else self.speaker}

    def widgets(self) -> pn.Column:
        w = pn.widgets
        sway = w.FloatSlider.from_param(self.param.sway, step=0.05, label="sway coefficient")
        sway.visible = self.schedule == "sway"
        self.param.watch(lambda e: setattr(sway, "visible", e.new == "sway"), "schedule")
        folder = w.TextInput.from_param(self.param.vocos_folder, label="Vocos folder",
                                        visible=self.vocoder == "vocos folder")
        self.param.watch(lambda e: setattr(folder, "visible", e.new == "vocos folder"), "vocoder")
        return pn.Column(
            w.Select.from_param(self.param.checkpoint, label="checkpoint"),
            w.Select.from_param(self.param.speaker, label="speaker"),
            w.IntSlider.from_param(self.param.steps), w.Select.from_param(self.param.solver),
            w.Select.from_param(self.param.schedule, label="schedule"), sway,
            w.FloatSlider.from_param(self.param.duration_scale, step=0.05, label="duration scale"),
            w.FloatSlider.from_param(self.param.cfg, step=0.1, label="guidance (cfg)"),
            w.FloatSlider.from_param(self.param.temperature, step=0.05),
            w.Select.from_param(self.param.vocoder), folder, sizing_mode="stretch_width")


class _RenderPage(pn.viewable.Viewer):
    """Shared parts of the explorer and compare pages: text, seed, alert, busy notice."""

    text = param.String(default=DEFAULT_TEXT)
    seed = param.Integer(default=0, bounds=(0, 2 ** 31 - 1))
    alert = param.String(default="", doc="the last error, shown in the page")
    notice = param.String(default="", doc="information (e.g. a click ignored while busy)")

    def __init__(self, service: SynthesisService, **params):
        super().__init__(**params)
        self.service = service

    def _follow(self, controls: SynthControls) -> None:
        """Show a controls' checkpoint-reading error as this page's alert (cleared when a
        checkpoint is read fine)."""
        controls.param.watch(lambda e: setattr(self, "alert", e.new), "load_error")
        if controls.load_error:  # read before the watcher existed
            self.alert = controls.load_error

    def _submit(self, jobs: list[tuple[SynthControls, ClipView]], trajectory: bool) -> bool:
        self.param.update(alert="", notice="")
        runner = self.service.runner
        if runner.busy:
            self.notice = BUSY_NOTICE.format(runner.label)
            return False
        try:
            if not self.text.strip():
                raise ValueError("text is empty; type something to say")
            plans = []
            for controls, _ in jobs:
                if controls.checkpoint is None:
                    raise ValueError("no checkpoint chosen: pick one, upload one, or start the studio with "
                                     "--args --checkpoints DIR")
                plans.append((controls.checkpoint, self.service.vocoder_spec(controls.vocoder, controls.vocos_folder),
                              controls.options()))
        except ValueError as exc:
            self.alert = str(exc)
            return False
        text, seed = self.text, self.seed

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

        if not runner.submit(work, done, label="rendering"):
            self.notice = BUSY_NOTICE.format(runner.label)
            return False
        return True

    def _text_widgets(self) -> list:
        return [pn.widgets.TextAreaInput.from_param(self.param.text, rows=3, sizing_mode="stretch_width"),
                pn.widgets.IntInput.from_param(self.param.seed, sizing_mode="stretch_width")]

    def _status(self, on_click: Callable[[], Any], label: str) -> pn.Row:
        runner = self.service.runner
        button = pn.widgets.Button(label=label, color="primary", disabled=runner.param.busy)
        button.on_click(lambda _: on_click())
        return pn.Row(button, pn.indicators.LoadingSpinner(value=runner.param.busy, size=28),
                      pn.pane.Str(runner.param.label))

    def _messages(self) -> pn.Column:
        return pn.Column(
            pn.pane.Alert(self.param.alert, alert_type="danger", visible=self.param.alert.rx.bool()),
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
        if event.new:
            self.upload(self.upload_input.filename or "upload.pt", event.new)

    def _catalog_note(self) -> str:
        s = self.service.settings
        lines = [] if s.demo_available() else [
            f"No bundled demo voice ({s.demo_checkpoint.name} is not in assets/): choose a trained checkpoint."]
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
    """The same text and seed rendered with settings A and with settings B."""

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

    def __panel__(self):
        top = pn.Row(pn.Column(*self._text_widgets(), width=400), self._status(self.generate, "Generate A and B"))
        sides = pn.Row(pn.Column("### A", self.a.widgets(), self.clip_a, sizing_mode="stretch_width"),
                       pn.Column("### B", self.b.widgets(), self.clip_b, sizing_mode="stretch_width"),
                       sizing_mode="stretch_width")
        return pn.Column(top, self._messages(), sides, sizing_mode="stretch_width")
