"""Benchmark study: the anchor's search space (benchmarks/studies/anchor.py: conditional
optimizer arguments, 16 parameters) on the 8×8 digits set, so a sampler comparison over many
trials and seeds fits on two cores. The sampler comes from HPSEARCH_BENCH_SAMPLER
(tpe | tpe_mv | tpe_mv_group | random), set by benchmarks/samplers.py."""

import os

import optuna

from hpsearch import Study, TrialConfig, samplers, space

SAMPLERS = {
    "tpe": samplers.tpe(),
    "tpe_mv": samplers.tpe(multivariate=True),
    "tpe_mv_group": samplers.tpe(multivariate=True, group=True),
    "random": samplers.random(),
}


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=space.cnn(trial, blocks=(1, 2), filters=(8, 16, 32), organisations=("same", "double", "half"),
                        kernels=(3,), activations=("relu", "gelu", "silu", "elu", "leaky_relu"),
                        batch_norm=(True, False), dropout=(0.0, 0.5), dense=(0, 32, 64)),
        optim=space.optimizer(trial, names=("adam", "adamw", "sgd"), lr=(1e-4, 1e-1), weight_decay=(1e-6, 1e-2),
                              momentum=(0.9, 0.9), schedulers=("none", "cosine", "step")),
        batch_size=space.batch_size(trial, (32, 64, 128)),
    )


study = Study(dataset="digits", space=search_space, max_epochs=6, n_trials=30,
              sampler=SAMPLERS[os.environ.get("HPSEARCH_BENCH_SAMPLER", "tpe")])
