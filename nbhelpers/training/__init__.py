"""Training: the Trainer, run-directory I/O, monitors and run_experiment()."""

from nbhelpers.training.experiment import Experiment, RunResult, run_experiment
from nbhelpers.training.trainer import FitResult, Trainer

__all__ = ["Experiment", "FitResult", "RunResult", "Trainer", "run_experiment"]
