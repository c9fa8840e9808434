"""hpsearch: hyperparameter search for PyTorch image models on a shared Optuna study.

A study module in ``studies/`` builds a :class:`Study` from a dataset name and a search
space function; :mod:`hpsearch.space` holds the building blocks for that function and
:mod:`hpsearch.models` the model specs (register your own with :func:`register_model`), and
:mod:`hpsearch.tasks` what the models learn (classify, reconstruct, segment).
"""

from hpsearch.config import ModelConfig, OptimConfig, TrialConfig
from hpsearch import tasks
from hpsearch.models import CAE, CNN, MLP, Encoder, ModelSpec, Torchvision, UNet, register_model
from hpsearch.study import Study

__version__ = "0.2.0"

__all__ = ["CAE", "CNN", "MLP", "Encoder", "ModelConfig", "ModelSpec", "OptimConfig", "Study", "Torchvision",
           "TrialConfig", "UNet", "__version__", "register_model", "tasks"]
