"""Training: the loop, its batches, its optimiser and its validation."""

from .loop import NonFiniteError, RunFolder, TrainingInterrupted, train

__all__ = ["NonFiniteError", "RunFolder", "TrainingInterrupted", "train"]
