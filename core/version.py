"""The code version recorded in checkpoints, stimuli provenance and exports."""

__version__ = "0.1.0"
