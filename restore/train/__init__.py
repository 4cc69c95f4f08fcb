"""Training: the loop, its batches, its optimiser and its validation."""

from .folder import RunFolder
from .loop import NonFiniteError, TrainingInterrupted, train

__all__ = ["NonFiniteError", "RunFolder", "TrainingInterrupted", "train"]
