"""The stochastic transport from degraded to clean images (pure, stateless)."""

from .process import Transport
from .schedules import ConstantSchedule, PowerSchedule, Schedule

__all__ = ["ConstantSchedule", "PowerSchedule", "Schedule", "Transport"]
