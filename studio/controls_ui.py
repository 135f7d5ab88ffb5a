"""One set of render settings of the Explorer and Compare pages, as parameters.

:class:`SynthControls` holds the checkpoint, speaker, sampler and vocoder choices.  The
speaker list and the model family follow the checkpoint (read in the session's job
runner, see :class:`studio.explorer_ui.SynthesisService`), and only the family's
controls are shown (:data:`FAMILY_CONTROLS`): steps, solver, schedule, sway, duration
scale, cfg and temperature for flow matching; temperature (feedback noise or sampling), maximum
length ratio and a voice prompt (an uploaded clip and its transcript) for LeWM.
:meth:`SynthControls.family_options` gives the checked ``synthesize`` options of each
family; a render uses those of the checkpoint it loads.

Where the sampler values come from (``sampler_settings``, :data:`SETTINGS_SOURCES`):
``checkpoint default`` (the start) sets them to the chosen checkpoint's recommended
settings, its config's ``sampling`` section (LeWM: ``lewm.temperature`` and
``lewm.max_length_ratio``), each time a checkpoint is read; ``project default`` sets the
stated defaults (:func:`core.sampling.options.sampler_defaults`, :class:`LeWMConfig`);
editing a sampler control by hand makes it ``custom``, which keeps the values when
another checkpoint is chosen (only the LeWM controls still start from a LeWM
checkpoint's own values when the family switches to LeWM).  Choosing a source again
after an edit re-applies it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Optional

import panel as pn
import param

import core
from core.config import LeWMConfig
from core.lewm.synthesizer import MAX_TEMPERATURE, TEMPERATURE_HELP as LEWM_TEMPERATURE_HELP
from core.sampling import time_grid
from core.sampling.options import OPTION, check_sampler_options, sampler_defaults

from .jobs import JobOutcome, on_page_load

READING_LABEL = "reading checkpoint"
"""The runner's label while a chosen checkpoint is read (the page did it, not the user)."""
from .synthesis import VOCODER_MODES, CheckpointInfo

if TYPE_CHECKING:
    from .explorer_ui import SynthesisService

__all__ = ["SynthControls", "FAMILY_CONTROLS", "DEFAULT_SPEAKER", "VOCODER_HELP", "SETTINGS_SOURCES",
           "SAMPLER_CONTROLS"]

DEFAULT_SPEAKER = "(first speaker)"
FAMILY_CONTROLS = {
    "flow": ("steps", "solver", "schedule", "sway", "duration_scale", "cfg", "temperature"),
    "lewm": ("lewm_temperature", "max_length_ratio", "prompt_text"),
}
"""The :class:`SynthControls` parameters each model family uses (the rest are hidden)."""
SAMPLER_CONTROLS = ("steps", "solver", "schedule", "sway", "duration_scale", "cfg", "temperature",
                    "lewm_temperature", "max_length_ratio")
"""The number and choice controls that ``sampler_settings`` sets (both families)."""
SETTINGS_SOURCES = ("checkpoint default", "project default", "custom")
"""Where the sampler controls' values come from (module docstring)."""
SETTINGS_HELP = ("checkpoint default: the chosen checkpoint's recommended sampler settings (its config's sampling "
                 "section), applied whenever a checkpoint is chosen; project default: the stated defaults "
                 "(10 Euler steps on the sway grid, no guidance, ...); custom: your own values (any edit), kept "
                 "when you choose another checkpoint")
_LEWM_KEYS = {"lewm_temperature": "temperature", "max_length_ratio": "max_length_ratio"}  # control -> lewm key
MAX_LENGTH_HELP = ("LeWM: mel frames per text token at which generation ends if the stop head has not fired "
                   "(about 10 is normal speech)")
PROMPT_HELP = ("LeWM voice prompt: a short reference clip (at most 15 s; any rate, resampled) and its transcript; "
               "the clip's latents start the predictor and the transcript is read before the text")
VOCODER_HELP = ("auto: a Vocos vocoder when one is installed or bundled, else Griffin-Lim (the clip's summary "
                "names the one used); griffin-lim: no neural vocoder; vocos folder: config.yaml + pytorch_model.bin")


def _bounds(name: str) -> tuple:
    return OPTION[name].low, OPTION[name].high


class SynthControls(param.Parameterized):
    """One set of render settings; :meth:`options` gives checked ``synthesize`` keywords.
    Names, defaults and bounds come from :data:`core.sampling.options.SAMPLER_OPTIONS`."""

    checkpoint = param.Selector(default=None, objects={}, allow_None=True, doc="checkpoint path")
    speaker = param.Selector(default=DEFAULT_SPEAKER, objects=[DEFAULT_SPEAKER])
    steps = param.Integer(default=OPTION["steps"].default, bounds=_bounds("steps"), doc=OPTION["steps"].help)
    solver = param.Selector(default=OPTION["solver"].default, objects=list(OPTION["solver"].choices),
                            doc=OPTION["solver"].help)
    schedule = param.Selector(default=OPTION["schedule"].default, objects=list(OPTION["schedule"].choices),
                              doc=OPTION["schedule"].help)
    sway = param.Number(default=OPTION["sway"].default, bounds=_bounds("sway"), doc=OPTION["sway"].help)
    duration_scale = param.Number(default=OPTION["duration_scale"].default, bounds=_bounds("duration_scale"),
                                  doc=OPTION["duration_scale"].help)
    cfg = param.Number(default=OPTION["cfg"].default, bounds=_bounds("cfg"), doc=OPTION["cfg"].help)
    temperature = param.Number(default=OPTION["temperature"].default, bounds=_bounds("temperature"),
                               doc=OPTION["temperature"].help)
    family = param.Selector(default="flow", objects=list(FAMILY_CONTROLS),
                            doc="the checkpoint's model family (set when it is read): which controls apply")
    lewm_temperature = param.Number(default=LeWMConfig.temperature, bounds=(0.0, MAX_TEMPERATURE),
                                    softbounds=(0.0, 1.0), doc=LEWM_TEMPERATURE_HELP)
    max_length_ratio = param.Number(default=LeWMConfig.max_length_ratio, bounds=(0.5, 1000.0),
                                    softbounds=(2.0, 40.0), doc=MAX_LENGTH_HELP)
    prompt_text = param.String(default="", doc="the transcript of the voice prompt clip")
    prompt_name = param.String(default="", doc="file name of the voice prompt clip ('' = none)")
    prompt_error = param.String(default="", doc="why the last voice prompt upload was refused")
    sampler_settings = param.Selector(default="checkpoint default", objects=list(SETTINGS_SOURCES),
                                      doc=SETTINGS_HELP)
    vocoder = param.Selector(default="auto", objects=list(VOCODER_MODES), doc=VOCODER_HELP)
    vocos_folder = param.String(default="", doc="Vocos folder (config.yaml + pytorch_model.bin)")
    load_error = param.String(default="", doc="why the checkpoint's speakers could not be read")

    def __init__(self, service: SynthesisService, **params):
        if params.get("checkpoint") is None and service.catalog:
            params["checkpoint"] = next(iter(service.catalog.values()))
        if "sampler_settings" not in params and any(name in params for name in SAMPLER_CONTROLS):
            params["sampler_settings"] = "custom"  # a caller's own values (e.g. Compare's side B)
        super().__init__(**params)
        self.param.checkpoint.objects = dict(service.catalog)
        self.service = service
        self.speakers_for: Optional[str] = None  # checkpoint whose speakers are listed
        self.info: Optional[tuple[str, CheckpointInfo]] = None  # (checkpoint, its info) last read
        self._applying = False  # sampler values being set from a source, not edited
        self.prompt: Optional[tuple[Any, int]] = None  # the voice prompt clip: (samples, sample rate)
        self.param.watch(self._edited, list(SAMPLER_CONTROLS))
        self.param.watch(lambda _: self.apply_settings(), "sampler_settings")
        service.param.watch(lambda _: self._sync_catalog(), "catalog")
        service.runner.param.watch(lambda e: None if e.new else self.load_speakers(), "busy")
        self._sync_catalog()
        on_page_load(self.load_speakers)  # the first read waits for the page (see on_page_load)

    def _sync_catalog(self) -> None:
        self.param.checkpoint.objects = dict(self.service.catalog)
        if self.checkpoint not in self.service.catalog.values():
            self.checkpoint = next(iter(self.service.catalog.values()), None)

    @param.depends("checkpoint", watch=True)
    def load_speakers(self) -> None:
        """List the checkpoint's speakers (loads it in a job; retried when the runner is
        free again if it is busy now)."""
        if self.checkpoint is None or self.speakers_for == self.checkpoint:
            return
        known = self.service.known_info(self.checkpoint)
        if known is not None:
            self.set_info(self.checkpoint, known)
            return
        if self.speakers_for is not None:
            self.set_speakers(None, [])
        path = self.checkpoint

        def done(out: JobOutcome) -> None:
            if out.ok:
                self.set_info(path, out.value)
            else:
                self.set_speakers(path, [], out.error or "")

        self.service.runner.submit(lambda: self.service.info(path), done, label=READING_LABEL)

    def set_info(self, checkpoint: str, info: CheckpointInfo) -> None:
        """Take a checkpoint's speakers, family and recommended settings: with
        ``checkpoint default`` the sampler controls take those settings; otherwise
        switching to LeWM still loads the checkpoint's LeWM temperature and maximum
        length ratio (controls the page did not show before)."""
        self.info = (checkpoint, info)
        if self.sampler_settings == "checkpoint default":
            self._set(self.checkpoint_settings(info))
        elif self.sampler_settings == "custom" and info.family != self.family and info.family == "lewm":
            self._set(self.checkpoint_settings(info))
        self.family = info.family
        self.set_speakers(checkpoint, list(info.speakers))

    @staticmethod
    def checkpoint_settings(info: CheckpointInfo) -> dict[str, Any]:
        """A checkpoint's recommended values of its family's sampler controls."""
        defaults = dict(info.defaults)
        if info.family == "lewm":
            return {name: float(defaults[key]) for name, key in _LEWM_KEYS.items() if key in defaults}
        return {name: defaults[name] for name in FAMILY_CONTROLS["flow"] if name in defaults}

    @staticmethod
    def project_settings() -> dict[str, Any]:
        """The stated defaults of every sampler control (both families)."""
        lewm = LeWMConfig()
        return {**sampler_defaults(), **{name: float(getattr(lewm, key)) for name, key in _LEWM_KEYS.items()}}

    def apply_settings(self) -> None:
        """Set the sampler controls from ``sampler_settings``: the chosen checkpoint's
        recommended values (once it has been read), the project's, or nothing (custom)."""
        if self.sampler_settings == "project default":
            self._set(self.project_settings())
        elif self.sampler_settings == "checkpoint default" and self.info is not None \
                and self.info[0] == self.checkpoint:
            self._set(self.checkpoint_settings(self.info[1]))

    def _set(self, values: dict[str, Any]) -> None:
        self._applying = True
        try:
            self.param.update(**values)
        finally:
            self._applying = False

    def _edited(self, *_events) -> None:
        if not self._applying:
            self.sampler_settings = "custom"

    def set_speakers(self, checkpoint: Optional[str], names: list[str], error: str = "") -> None:
        self.speakers_for = checkpoint
        self.load_error = error
        self.param.speaker.objects = [DEFAULT_SPEAKER] + [n for n in names if n != DEFAULT_SPEAKER]
        if self.speaker not in self.param.speaker.objects:
            self.speaker = DEFAULT_SPEAKER

    def options(self) -> dict[str, Any]:
        """Checked keyword options of ``Synthesizer.synthesize`` for the checkpoint's
        family (no text or seed); raises ConfigError naming a bad value and the valid range."""
        return self.family_options()[self.family]

    def family_options(self) -> dict[str, dict[str, Any]]:
        """The checked ``synthesize`` options of each family: ``{"flow": ..., "lewm": ...}``
        (a render uses the one of the checkpoint it loads)."""
        speaker = None if self.speaker == DEFAULT_SPEAKER else self.speaker
        flow = check_sampler_options({name: getattr(self, name) for name in OPTION})
        lewm: dict[str, Any] = {"temperature": float(self.lewm_temperature),
                                "max_length_ratio": float(self.max_length_ratio)}
        if self.prompt is not None:
            if not self.prompt_text.strip():
                raise core.ConfigError("the voice prompt needs its transcript: type the words the clip says "
                                       "(or clear the prompt)")
            lewm.update(prompt_audio=self.prompt[0], prompt_sample_rate=self.prompt[1], prompt_text=self.prompt_text)
        return {"flow": {**flow, "speaker": speaker}, "lewm": {**lewm, "speaker": speaker}}

    def set_prompt(self, filename: str, data: bytes) -> None:
        """Use an uploaded audio file as the LeWM voice prompt (mono mix, its own rate);
        raises ConfigError for a file that is not audio or too short or long."""
        import numpy as np
        import soundfile as sf

        from core.lewm.prompt import MAX_PROMPT_SECONDS, MIN_PROMPT_SECONDS

        try:
            samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except Exception as exc:  # libsndfile's errors vary by format and version
            raise core.ConfigError(f"voice prompt {filename}: not an audio file soundfile can read ({exc})") from None
        seconds = len(samples) / rate
        if not MIN_PROMPT_SECONDS <= seconds <= MAX_PROMPT_SECONDS:
            raise core.ConfigError(f"voice prompt {filename} lasts {seconds:.2f} s; it must last "
                                   f"{MIN_PROMPT_SECONDS}-{MAX_PROMPT_SECONDS:g} s")
        self.prompt = (np.ascontiguousarray(samples.mean(axis=1)), int(rate))
        self.prompt_name = filename

    def clear_prompt(self) -> None:
        self.prompt = None
        self.prompt_name = ""

    def visible_controls(self) -> tuple[str, ...]:
        """The sampler parameters shown for the checkpoint's family."""
        return FAMILY_CONTROLS[self.family]

    def grid(self):
        """The time grid the next render will use (t = 0 noise .. 1 data), or None when
        the settings have none (e.g. epss with a step count it does not define)."""
        try:
            opts = check_sampler_options({n: getattr(self, n) for n in ("steps", "schedule", "sway")})
            return time_grid(opts["steps"], opts["schedule"], opts["sway"] if opts["schedule"] == "sway" else None)
        except core.ConfigError:
            return None

    def widgets(self) -> pn.Column:
        w = pn.widgets

        def tip(widget, name: str):  # sliders take no description: a tooltip icon beside them
            widget.param.update(sizing_mode="fixed", width=280)
            return pn.Row(widget, w.TooltipIcon(value=OPTION[name].help, margin=(22, 0, 0, 0)), width=330)

        def tip_text(widget, text: str):
            widget.param.update(sizing_mode="fixed", width=280)
            return pn.Row(widget, w.TooltipIcon(value=text, margin=(22, 0, 0, 0)), width=330)

        sway = tip(w.FloatSlider.from_param(self.param.sway, step=0.05, label="sway coefficient"), "sway")
        folder = w.TextInput.from_param(self.param.vocos_folder, label="Vocos folder",
                                        visible=self.vocoder == "vocos folder")
        self.param.watch(lambda e: setattr(folder, "visible", e.new == "vocos folder"), "vocoder")
        upload = w.FileInput(accept="audio/*,.wav,.flac,.ogg", multiple=False)
        upload.param.watch(lambda e: self._on_prompt_upload(upload), "value")
        clear = w.Button(label="clear voice prompt", color="light")
        clear.on_click(lambda _: self.clear_prompt())
        prompt = pn.Column(
            pn.Row(pn.pane.Markdown("**voice prompt**"), w.TooltipIcon(value=PROMPT_HELP)),
            pn.pane.Markdown(self.param.prompt_name.rx.pipe(lambda n: f"clip: {n}" if n else "no clip: none used")),
            upload, w.TextAreaInput.from_param(self.param.prompt_text, rows=2, label="prompt transcript"), clear)
        shown = {
            "steps": tip(w.IntSlider.from_param(self.param.steps), "steps"),
            "solver": w.Select.from_param(self.param.solver, description=OPTION["solver"].help),
            "schedule": w.Select.from_param(self.param.schedule, label="schedule",
                                            description=OPTION["schedule"].help),
            "sway": sway,
            "duration_scale": tip(w.FloatSlider.from_param(self.param.duration_scale, step=0.05,
                                                           label="duration scale"), "duration_scale"),
            "cfg": tip(w.FloatSlider.from_param(self.param.cfg, step=0.1, label="guidance (cfg)"), "cfg"),
            "temperature": tip(w.FloatSlider.from_param(self.param.temperature, step=0.05), "temperature"),
            "lewm_temperature": tip_text(w.FloatSlider.from_param(self.param.lewm_temperature, step=0.05,
                                                                  label="temperature"),
                                         LEWM_TEMPERATURE_HELP),
            "max_length_ratio": tip_text(w.FloatSlider.from_param(self.param.max_length_ratio, step=0.5,
                                                                  label="max length ratio"), MAX_LENGTH_HELP),
            "prompt_text": prompt,
        }

        def show(*_) -> None:
            for name, widget in shown.items():
                widget.visible = name in self.visible_controls() and (name != "sway" or self.schedule == "sway")

        show()
        self.param.watch(show, ["family", "schedule"])
        return pn.Column(
            w.Select.from_param(self.param.checkpoint, label="checkpoint"),
            w.Select.from_param(self.param.speaker, label="speaker"),
            w.Select.from_param(self.param.sampler_settings, label="sampler settings", description=SETTINGS_HELP),
            *shown.values(),
            w.Select.from_param(self.param.vocoder, description=VOCODER_HELP), folder, sizing_mode="stretch_width")

    def _on_prompt_upload(self, upload) -> None:
        if upload.value is None:
            return
        try:
            self.set_prompt(upload.filename or "prompt.wav", upload.value)
        except core.ConfigError as exc:
            self.prompt_error = str(exc)
        else:
            self.prompt_error = ""
