"""hpsearch: hyperparameter search for PyTorch image classifiers on a shared Optuna study.

A study module in ``studies/`` builds a :class:`Study` from a dataset name and a search
space function; :mod:`hpsearch.space` holds the building blocks for that function and
:mod:`hpsearch.models` the model specs (register your own with :func:`register_model`).
"""

from hpsearch.config import ModelConfig, OptimConfig, TrialConfig
from hpsearch.models import CNN, MLP, Encoder, ModelSpec, Torchvision, register_model
from hpsearch.study import Study

__version__ = "0.2.0"

__all__ = ["CNN", "MLP", "Encoder", "ModelConfig", "ModelSpec", "OptimConfig", "Study", "Torchvision",
           "TrialConfig", "__version__", "register_model"]
