"""A reconstruct fixture study: a small convolutional autoencoder on digits, scored by PSNR."""

import optuna

from hpsearch import CAE, OptimConfig, Study, TrialConfig, tasks


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=CAE(depth=1, filters=8, latent=trial.suggest_categorical("latent", [8, 16]),
                  upsampling=trial.suggest_categorical("upsampling", ["transposed", "nearest"])),
        optim=OptimConfig(name="adam", lr=trial.suggest_float("lr", 3e-3, 1e-2, log=True)),
        batch_size=64,
    )


study = Study(dataset="digits", space=search_space, task=tasks.reconstruct(loss="mse"), metric="val_psnr",
              max_epochs=3, n_trials=3)
