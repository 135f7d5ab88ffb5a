"""Vocoder training: ``python -m core vocoder train`` (the command line is :mod:`core.cli.vocoder`).

The trainer is never imported by inference: ``core.vocoders`` loads the exported Vocos folder."""
