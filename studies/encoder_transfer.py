"""A Fashion-MNIST classifier from scratch vs from the ``cae_fashion`` autoencoder's encoder.

One grid over three arms × 3 seeds: the cae's encoder architecture with a new linear head
trained from a random init (``scratch``), from the autoencoder's weights with the encoder
frozen (``frozen``: a linear probe of the latent code), or fine-tuned end to end at a tenth of
the learning rate (``finetuned``). Trained on 2,000 labelled images: the question is what
unsupervised pre-training on all the images buys when labels are few.

Needs a ``cae_fashion`` checkpoint: ``hpsearch run cae_fashion`` then ``hpsearch best
cae_fashion --retrain`` (the newest ``runs/cae_fashion/*.pt`` is used), or
``HPSEARCH_ENCODER=path/to/checkpoint.pt``.
"""

import os
from pathlib import Path

import optuna

from hpsearch import OptimConfig, Study, TrialConfig, samplers, space

ARMS = ["scratch", "frozen", "finetuned"]


def checkpoint() -> Path:
    """The encoder's checkpoint: $HPSEARCH_ENCODER, else the newest cae_fashion retrain."""
    if os.environ.get("HPSEARCH_ENCODER"):
        return Path(os.environ["HPSEARCH_ENCODER"]).expanduser()
    found = sorted(Path("runs", "cae_fashion").glob("*.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError("encoder_transfer needs a cae_fashion checkpoint: run `hpsearch run cae_fashion` and "
                                "`hpsearch best cae_fashion --retrain`, or set HPSEARCH_ENCODER=path/to/checkpoint.pt")
    return found[-1]


CHECKPOINT = checkpoint()


def search_space(trial: optuna.Trial) -> TrialConfig:
    arm = trial.suggest_categorical("arm", ARMS)
    model = space.encoder_from(CHECKPOINT, freeze=("head_only" if arm == "frozen" else "none",),
                               pretrained=arm != "scratch", backbone_lr=0.1 if arm == "finetuned" else 1.0)
    return TrialConfig(model=model, optim=OptimConfig(name="adam", lr=2e-3), batch_size=64)


study = Study(dataset="fashion_mnist", space=search_space, max_epochs=8, n_trials=9, train_subset=2000,
              sampler=samplers.grid({"arm": ARMS, "seed": [0, 1, 2]}))
