"""Fashion-MNIST autoencoder: how small a latent code still reconstructs the clothes?

A convolutional autoencoder (``cae``) trained on MSE, scored by validation PSNR (dB, pixels
in [0, 1]); searched: the latent size, the depth (1 or 2 halvings: 28×28 allows no more),
the upsampling (transposed convolution, or nearest/bilinear resize + conv — the
checkerboard question), the base filters and the learning rate. Trained on a 6k subset for 5
epochs so a search fits a 2-core CPU (with a GPU, drop ``train_subset`` and train longer);
``best --retrain`` saves the checkpoints ``encoder_transfer`` reuses.
"""

import optuna

from hpsearch import Study, TrialConfig, space, tasks


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=space.cae(trial, depth=(1, 2), filters=(16, 32), latent=(16, 32, 64, 128)),
        optim=space.optimizer(trial, names=("adam",), lr=(3e-4, 3e-3), schedulers=("cosine",)),
        batch_size=128,
    )


study = Study(dataset="fashion_mnist", space=search_space, task=tasks.reconstruct(loss="mse"), metric="val_psnr",
              max_epochs=5, n_trials=12, train_subset=6000, val_fraction=1 / 12)
