"""The Experimenter's condition form: a checkpoint with the settings of its model family,
or a folder of WAV files.

:class:`ConditionForm` reads the chosen checkpoint's family
(:func:`studio.synthesis.checkpoint_info`, which never runs code) and takes only that
family's settings (:data:`FORM_CONTROLS`); :meth:`ConditionForm.checkpoint_controls`
shows only those:

* flow matching: steps, solver, time-grid schedule and sway, guidance (cfg), duration
  scale, temperature;
* LeWM: temperature, minimum and maximum length ratios (started from the checkpoint's own
  ``lewm`` values when the form switches to a LeWM checkpoint) and an optional voice
  prompt: an audio file inside the studio's folders (``StudioSettings.roots``; a path
  elsewhere is refused) and its transcript;
* both: vocoder, speaker, seed.

So a condition, the design file written from it and the provenance of its clips hold
only settings that applied.  Folder conditions are ``<sentence id>.wav`` files inside
the configured folders.
"""

from __future__ import annotations

from pathlib import Path

import panel as pn
import param

from core import CheckpointError
from core.config import LeWMConfig
from core.lewm.synthesizer import MAX_TEMPERATURE, TEMPERATURE_HELP as LEWM_TEMPERATURE_HELP
from core.sampling.options import OPTION, SEED_RANGE, check_seed
from studio.config import StudioSettings, find_checkpoints, resolve_inside
from studio.listening import Condition, ListeningError
from studio.stimulus_renderer import check_prompt_file, synthesis_options
from studio.synthesis import VOCODER_MODES, checkpoint_info, vocoder_spec

__all__ = ["ConditionForm", "FORM_CONTROLS", "FIRST_SPEAKER"]

FIRST_SPEAKER = "(first speaker)"
FORM_CONTROLS = {
    "flow": ("steps", "solver", "schedule", "sway", "cfg", "duration_scale", "temperature"),
    "lewm": ("lewm_temperature", "min_length_ratio", "max_length_ratio", "prompt_audio", "prompt_text"),
}
"""The :class:`ConditionForm` parameters each model family's conditions take (the rest
are hidden); vocoder, speaker and seed apply to both."""
_LEWM_SETTING = {"lewm_temperature": "temperature"}  # form parameter -> condition setting, where they differ


class ConditionForm(param.Parameterized):
    """The condition being defined; :meth:`condition` turns it into a checked :class:`Condition`.

    The number fields hold whatever was typed (no silent clamping or reverting): a value
    outside the range of :data:`core.sampling.options.SAMPLER_OPTIONS` (flow) or of
    :mod:`core.lewm.synthesizer` (LeWM) is refused when the condition is added, with the
    valid range in the message.  Speaker and vocoder are choices, as in the Explorer.
    ``family`` follows the checkpoint; switching to a LeWM checkpoint loads its
    temperature and length ratios into the LeWM fields.
    """

    label = param.String(default="", doc="experimenter's name for it (never shown to raters)")
    source = param.Selector(default="checkpoint", objects=["checkpoint", "folder"])
    checkpoint = param.Selector(default=None, objects=[], allow_None=True, doc="a found checkpoint")
    folder = param.String(default="", doc="folder of <sentence id>.wav files, inside the configured folders")
    family = param.Selector(default="flow", objects=list(FORM_CONTROLS),
                            doc="the checkpoint's model family (read from it): which settings apply")
    steps = param.Integer(default=OPTION["steps"].default, doc=OPTION["steps"].help)
    solver = param.Selector(default=OPTION["solver"].default, objects=list(OPTION["solver"].choices),
                            doc=OPTION["solver"].help)
    schedule = param.Selector(default=OPTION["schedule"].default, objects=list(OPTION["schedule"].choices),
                              doc=OPTION["schedule"].help)
    sway = param.Number(default=OPTION["sway"].default, doc=OPTION["sway"].help)
    cfg = param.Number(default=OPTION["cfg"].default, doc=OPTION["cfg"].help)
    duration_scale = param.Number(default=OPTION["duration_scale"].default, doc=OPTION["duration_scale"].help)
    temperature = param.Number(default=OPTION["temperature"].default, doc=OPTION["temperature"].help)
    lewm_temperature = param.Number(default=LeWMConfig.temperature,
                                    doc=f"{LEWM_TEMPERATURE_HELP}; 0..{MAX_TEMPERATURE:g}")
    min_length_ratio = param.Number(default=LeWMConfig.min_length_ratio,
                                    doc="LeWM: mel frames per text token before which the stop head is ignored")
    max_length_ratio = param.Number(default=LeWMConfig.max_length_ratio,
                                    doc="LeWM: mel frames per text token at which generation ends")
    prompt_audio = param.String(default="", doc="LeWM voice prompt: an audio file (0.25-15 s) inside the configured "
                                                "folders ('' = none)")
    prompt_text = param.String(default="", doc="LeWM voice prompt: the words its clip says")
    vocoder = param.Selector(default="auto", objects=list(VOCODER_MODES), doc="as in the Explorer")
    vocos_folder = param.String(default="", doc="Vocos folder (config.yaml + pytorch_model.bin), inside the "
                                                "configured folders")
    speaker = param.Selector(default=FIRST_SPEAKER, objects=[FIRST_SPEAKER], doc="a speaker of the checkpoint")
    seed = param.Integer(default=0, doc=f"sampling seed {SEED_RANGE[0]}..{SEED_RANGE[1]}")
    note = param.String(default="", doc="why the checkpoint's speakers could not be read")

    def __init__(self, settings: StudioSettings, **params):
        super().__init__(**params)
        self.settings = settings
        self.refresh_checkpoints()
        self._read_checkpoint()

    def refresh_checkpoints(self) -> None:
        found = {e.label: str(e.path) for e in find_checkpoints(self.settings)}
        self.param.checkpoint.objects = found
        if self.checkpoint not in found.values():
            self.checkpoint = next(iter(found.values()), None)

    @param.depends("checkpoint", watch=True)
    def _read_checkpoint(self) -> None:
        """Offer the checkpoint's speakers and take its family (read once per file
        version, never runs code); switching to LeWM loads its defaults."""
        names: list[str] = []
        self.note = ""
        if self.checkpoint is not None:
            try:
                info = checkpoint_info(self.checkpoint)
            except (CheckpointError, ValueError, OSError) as exc:
                self.note = str(exc)
            else:
                names = list(info.speakers)
                if info.family == "lewm" and self.family != "lewm":
                    d = dict(info.defaults)
                    self.param.update(lewm_temperature=float(d.get("temperature", LeWMConfig.temperature)),
                                      min_length_ratio=float(d.get("min_length_ratio", LeWMConfig.min_length_ratio)),
                                      max_length_ratio=float(d.get("max_length_ratio", LeWMConfig.max_length_ratio)))
                self.family = info.family
        self.param.speaker.objects = [FIRST_SPEAKER] + names
        if self.speaker not in self.param.speaker.objects:
            self.speaker = FIRST_SPEAKER

    def family_settings(self) -> dict:
        """The settings of the checkpoint's family as the form holds them (unchecked;
        an empty voice prompt left out)."""
        out = {_LEWM_SETTING.get(name, name): getattr(self, name) for name in FORM_CONTROLS[self.family]}
        if self.family == "lewm" and not out["prompt_audio"].strip() and not out["prompt_text"].strip():
            del out["prompt_audio"], out["prompt_text"]
        return out

    def condition(self, label: str) -> Condition:
        """The condition (``label`` used when the form's label is blank); raises
        ListeningError / ConfigError / PathRefused with a message for the page."""
        label = self.label.strip() or label
        if self.source == "folder":
            if not self.folder.strip():
                raise ListeningError("give the folder of WAV files for this condition")
            folder = resolve_inside(self.folder.strip(), self.settings.roots)
            if not folder.is_dir():
                raise ListeningError(f"{self.folder}: not a folder")
            return Condition(label, folder=str(folder))
        allowed = {str(e.path) for e in find_checkpoints(self.settings)}
        if self.checkpoint is None or self.checkpoint not in allowed:
            raise ListeningError("choose a checkpoint (none found under the configured folders?)")
        settings = synthesis_options(self.family_settings(), self.family, prompt_roots=self.settings.roots)
        if "prompt_audio" in settings:
            if not Path(settings["prompt_audio"]).is_file():
                raise ListeningError(f"{self.prompt_audio}: no such voice prompt file")
            check_prompt_file(settings["prompt_audio"])
        settings["vocoder"] = vocoder_spec(self.vocoder, self.vocos_folder, self.settings.roots)
        if self.speaker != FIRST_SPEAKER:
            settings["speaker"] = self.speaker
        return Condition(label, checkpoint=self.checkpoint, settings=settings,
                         seed=check_seed(self.seed, allow_none=False))

    def checkpoint_controls(self) -> pn.Column:
        """The widgets of a checkpoint condition: the checkpoint, then the controls of its
        family only (``self.family_panes``, each shown while ``family`` is its own)."""
        f, w = self, pn.widgets

        def number(name: str, kind):
            return kind.from_param(f.param[name], width=110, description=f.param[name].doc)

        self.family_panes = {
            "flow": pn.Column(
                pn.Row(number("steps", w.IntInput),
                       w.Select.from_param(f.param.solver, width=110, description=OPTION["solver"].help),
                       w.Select.from_param(f.param.schedule, width=110, description=OPTION["schedule"].help)),
                pn.Row(*(number(n, w.FloatInput) for n in ("sway", "cfg", "duration_scale", "temperature"))),
                visible=f.param.family.rx() == "flow"),
            "lewm": pn.Column(
                pn.Row(w.FloatInput.from_param(f.param.lewm_temperature, label="Temperature", width=110,
                                               description=f.param.lewm_temperature.doc),
                       number("min_length_ratio", w.FloatInput), number("max_length_ratio", w.FloatInput)),
                pn.Row(w.TextInput.from_param(f.param.prompt_audio, label="Voice prompt file (optional)", width=260,
                                              description=f.param.prompt_audio.doc),
                       w.TextInput.from_param(f.param.prompt_text, label="Its transcript", width=300,
                                              description=f.param.prompt_text.doc)),
                visible=f.param.family.rx() == "lewm"),
        }
        return pn.Column(w.Select.from_param(f.param.checkpoint, label="Checkpoint", width=420),
                         pn.pane.Alert(f.param.note, alert_type="warning", visible=f.param.note.rx.bool()),
                         number("seed", w.IntInput), self.family_panes["flow"], self.family_panes["lewm"],
                         pn.Row(w.Select.from_param(f.param.vocoder, width=160),
                                w.TextInput.from_param(f.param.vocos_folder, label="Vocos folder", width=260,
                                                       visible=f.param.vocoder.rx() == "vocos folder"),
                                w.Select.from_param(f.param.speaker, width=180)),
                         visible=pn.bind(lambda s: s == "checkpoint", f.param.source))
