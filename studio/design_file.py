"""Listening tests defined in a YAML file (``python -m studio test create --config FILE``;
the Experimenter page writes the same file with "Save design as YAML").

```yaml
type: mos                    # mos, ab, mushra, abx, smos, dcr or intelligibility
name: steps sweep            # optional, experimenters only
test_id: sweep-1             # optional: random hex when left out
conditions:                  # checkpoint (+ settings, seed) or folder of <sentence id>.wav
  - {label: euler-4, checkpoint: runs/demo/checkpoints/step_00002000.pt, settings: {steps: 4}, seed: 0}
  - label: lewm-prompted     # a LeWM checkpoint takes its own settings (studio.stimulus_renderer)
    checkpoint: runs/lewm/checkpoints/step_00020000.pt
    settings: {temperature: 0.3, max_length_ratio: 12, prompt_audio: prompts/slt.wav,
               prompt_text: Author of the danger trail.}
  - {label: recordings, folder: wavs/}
sentences:                   # text, or {id, text} (a folder condition reads <id>.wav)
  - The birch canoe slid on the smooth planks.
  - {id: s02, text: Glue the sheet to the dark blue background.}
gold:                        # optional attention trials, mos and ab only (studio.listening)
  - {kind: anchor, reference: euler-4, sentence_id: s01}
```

MUSHRA, SMOS and DCR name their reference condition; MUSHRA may add the 7 kHz anchor::

    type: mushra
    reference: recordings      # the open and hidden reference; anchors are low-passed from it
    anchor_7khz: true          # optional (the 3.5 kHz anchor is always there)

Any type may start every rater with a practice trial (``practice: true``; not counted).

Relative paths (checkpoints, folders, ``prompt_audio``) are relative to the file's folder.
A condition's settings must be those of its checkpoint's family: flow matching takes
``steps, solver, schedule, sway, cfg, duration_scale, temperature``; LeWM takes
``temperature, min_length_ratio, max_length_ratio`` and a voice prompt (``prompt_audio``
with ``prompt_text``); both take ``speaker`` and ``vocoder``.  ``python -m studio test
create`` checks them against each checkpoint before anything is written.  Sentences given as bare text get ids
``s01``, ``s02``, ... by position (wider from 100 sentences on).  Every unknown key is an
error naming the valid ones.

Balanced subsets (:mod:`studio.assignment`): each rater gets ``subset_per_rater`` items
(every item when absent), rotated over raters so that every item is rated about equally
often; ``raters_per_item`` states how many raters each item should get, from which
``python -m studio test list`` shows the raters the test still needs::

    subset_per_rater: 12
    raters_per_item: 8

Before the first trial every rater reads the instructions (the type's default unless
``instructions`` gives markdown), agrees to ``consent`` when the file has one, and takes
the headphone check with ``headphone_check: true`` (:mod:`studio.headphone_check`)::

    instructions: Rate how natural each sentence sounds.
    consent: I agree that my anonymous ratings are stored and published.
    headphone_check: true
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from core.config import choice_error
from studio.listening import ListeningError, TestDesign
from studio.results import TEST_TYPES

__all__ = ["read_design", "design_from_yaml_text", "design_to_yaml", "FILE_KEYS", "CONDITION_KEYS"]

FILE_KEYS = ("type", "name", "test_id", "conditions", "sentences", "gold", "reference", "anchor_7khz", "practice",
             "raters_per_item", "subset_per_rater", "instructions", "consent", "headphone_check")
CONDITION_KEYS = ("label", "checkpoint", "folder", "settings", "seed")


def _path(value, base: Path, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ListeningError(f"{what} must be a path, got {value!r}")
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def design_from_yaml_text(text: str, base: Union[str, Path] = ".", *, test_id: str = "") -> TestDesign:
    """The :class:`TestDesign` of a YAML text (paths relative to ``base``); ``test_id``
    is used when the file names none.  Raises ListeningError / core ConfigError."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ListeningError(f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise ListeningError("a test file is a YAML mapping with keys " + ", ".join(FILE_KEYS))
    for key in data:
        if key not in FILE_KEYS:
            raise choice_error("test file key", key, FILE_KEYS)
    if "type" not in data:
        raise ListeningError(f"the test file needs 'type' (one of {', '.join(TEST_TYPES)})")
    base = Path(base)
    conditions = data.get("conditions") or []
    if not isinstance(conditions, list):
        raise ListeningError("'conditions' must be a list")
    conds = []
    for c in conditions:
        if not isinstance(c, dict):
            raise ListeningError(f"each condition is a mapping with keys {', '.join(CONDITION_KEYS)}, got {c!r}")
        for key in c:
            if key not in CONDITION_KEYS:
                raise choice_error(f"condition key (condition {c.get('label')!r})", key, CONDITION_KEYS)
        c = dict(c, settings=c.get("settings") or {})
        for key in ("checkpoint", "folder"):
            if c.get(key) is not None:
                c[key] = _path(c[key], base, f"{key} of condition {c.get('label')!r}")
        if not isinstance(c["settings"], dict):
            raise ListeningError(f"settings of condition {c.get('label')!r} must be a mapping, got {c['settings']!r}")
        if c["settings"].get("prompt_audio") is not None:
            c["settings"] = dict(c["settings"], prompt_audio=_path(c["settings"]["prompt_audio"], base,
                                                                    f"prompt_audio of condition {c.get('label')!r}"))
        conds.append(c)
    sentences = data.get("sentences") or []
    if not isinstance(sentences, list):
        raise ListeningError("'sentences' must be a list of texts or {id, text} mappings")
    width = max(2, len(str(len(sentences))))
    sents = []
    for k, s in enumerate(sentences, 1):
        if isinstance(s, str):
            sents.append({"id": f"s{k:0{width}d}", "text": s})
        elif isinstance(s, dict):
            sents.append(s)
        else:
            raise ListeningError(f"sentence {k} must be a text or an {{id, text}} mapping, got {s!r}")
    test_type = data["type"]
    design = {"test_id": str(data.get("test_id") or test_id), "test_type": test_type,
              "name": str(data.get("name") or ""), "conditions": conds, "sentences": sents,
              "gold": data.get("gold") or []}
    if data.get("reference") is not None:
        design["reference"] = str(data["reference"])
    for key in ("anchor_7khz", "practice", "raters_per_item", "subset_per_rater", "instructions", "consent",
                "headphone_check"):
        if data.get(key) is not None:
            design[key] = data[key]
    try:
        return TestDesign.from_dict(design)
    except TypeError as exc:  # a list where a mapping belongs, and the like
        raise ListeningError(f"test file: {exc}") from None


def read_design(path: Union[str, Path], *, test_id: str = "") -> TestDesign:
    """The design in a YAML test file (see the module doc)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ListeningError(f"cannot read test file {path}: {exc.strerror or exc}") from None
    return design_from_yaml_text(text, path.resolve().parent, test_id=test_id)


def design_to_yaml(design: TestDesign, *, with_test_id: bool = False) -> str:
    """The YAML test file of a design (absolute paths); reading it back gives the same
    design.  The test id is left out unless asked for, so that creating a test from the
    file again makes a new test."""
    import yaml

    conds = []
    for c in design.conditions:
        d = {"label": c.label}
        if c.checkpoint is not None:
            d.update(checkpoint=c.checkpoint, settings=dict(c.settings), seed=c.seed)
        else:
            d["folder"] = c.folder
        conds.append(d)
    data = {"type": design.test_type}
    if design.name:
        data["name"] = design.name
    if with_test_id:
        data["test_id"] = design.test_id
    data["conditions"] = conds
    data["sentences"] = [{"id": s.id, "text": s.text} for s in design.sentences]
    if design.reference:
        data["reference"] = design.reference
    if design.anchor_7khz:
        data["anchor_7khz"] = True
    if design.practice:
        data["practice"] = True
    for key in ("subset_per_rater", "raters_per_item", "instructions", "consent", "headphone_check"):
        if getattr(design, key):
            data[key] = getattr(design, key)
    if design.gold:
        data["gold"] = [{"kind": g.kind, "reference": g.reference, "sentence_id": g.sentence_id} for g in design.gold]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
