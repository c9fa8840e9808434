"""Fashion-MNIST: 28×28 clothing images, 10 classes; validation is 5k of the 60k training images.

A second-stage space, sized so that a search and a 5-seed retrain fit in one sitting on a 2-core
CPU. The first stage (docs/benchmarks.md, "Quality") searched 2–3 blocks of 16 or 32 base filters
for 12 epochs; its best trials on *validation* were all 3 blocks of 32 → 64 → 128 with batch norm
and Adam/AdamW, and their validation curves were still rising at epoch 12. So this stage fixes that
trunk and trains longer, and keeps searching what it left open: activation, dropout, dense width,
optimizer, learning rate, weight decay, schedule, batch size and augmentation (which only pays off
with more epochs). With a GPU, widen `filters` and raise `max_epochs`.
"""

import optuna

from hpsearch import Study, TrialConfig, space

DATASET = "fashion_mnist"


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=space.cnn(trial, blocks=(3, 3), filters=(32,), organisations=("double",), kernels=(3,),
                        activations=("relu", "gelu", "silu"), batch_norm=(True,), dropout=(0.1, 0.5),
                        dense=(128, 256)),
        optim=space.optimizer(trial, names=("adam", "adamw"), lr=(5e-4, 1e-2), schedulers=("cosine", "onecycle")),
        batch_size=space.batch_size(trial, (64, 128, 256)),
        augment=space.augment(trial, DATASET, ("none", "flip", "flip_crop")),
    )


study = Study(dataset=DATASET, space=search_space, max_epochs=18, n_trials=12, val_fraction=1 / 12)
