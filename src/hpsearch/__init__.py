"""hpsearch: hyperparameter search for PyTorch image classifiers on a shared Optuna study.

A study module in ``studies/`` builds a :class:`Study` from a dataset name and a search
space function; :mod:`hpsearch.space` holds the building blocks for that function.
"""

from hpsearch.config import ModelConfig, OptimConfig, TrialConfig
from hpsearch.study import Study

__version__ = "0.1.0"

__all__ = ["ModelConfig", "OptimConfig", "Study", "TrialConfig", "__version__"]
