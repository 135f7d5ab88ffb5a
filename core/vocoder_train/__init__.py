"""Vocoder training: ``python -m core vocoder train`` (see :mod:`core.vocoder_train.cli`).

The trainer is never imported by inference: ``core.vocoders`` loads the exported Vocos folder."""
