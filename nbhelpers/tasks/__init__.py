"""Tasks: one module per task, each registering itself in nbhelpers.registry.TASKS."""

from nbhelpers.tasks import image_classification  # noqa: F401
from nbhelpers.tasks import sentiment_analysis  # noqa: F401
from nbhelpers.tasks import text_generation  # noqa: F401
from nbhelpers.tasks import ner  # noqa: F401
from nbhelpers.tasks import machine_translation  # noqa: F401
from nbhelpers.tasks import text_summarization  # noqa: F401
from nbhelpers.tasks.base import Task, TaskSpec

__all__ = ["Task", "TaskSpec"]
