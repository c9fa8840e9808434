"""Fashion-MNIST: 28×28 clothing images, 10 classes; validation is 5k of the 60k training images.

Sized so that a search and a 5-seed retrain fit in one sitting on a 2-core CPU: batch norm on,
3×3 kernels, at most 32 base filters (3 blocks of 32 → 64 → 128 is the widest), Adam or AdamW
with a decaying schedule, 12 epochs. In the search benchmark (docs/benchmarks.md, 12k images,
the full space) the best trial of each tool in its first repeat used batch norm with Adam or
AdamW. With a GPU, widen `filters` and raise `max_epochs`.
"""

import optuna

from hpsearch import Study, TrialConfig, space

DATASET = "fashion_mnist"


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=space.cnn(trial, blocks=(2, 3), filters=(16, 32), kernels=(3,), activations=("relu", "gelu", "silu"),
                        batch_norm=(True,), dropout=(0.0, 0.5), dense=(128, 256)),
        optim=space.optimizer(trial, names=("adam", "adamw"), lr=(5e-4, 1e-2), schedulers=("cosine", "onecycle")),
        batch_size=space.batch_size(trial, (64, 128, 256)),
        augment=space.augment(trial, DATASET, ("none", "flip", "flip_crop")),
    )


study = Study(dataset=DATASET, space=search_space, max_epochs=12, n_trials=20, val_fraction=1 / 12)
