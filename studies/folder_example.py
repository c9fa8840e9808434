"""Your own images: a folder of class folders, searched like a built-in dataset.

Point ``HPSEARCH_FOLDER`` at a folder in torchvision's ImageFolder layout::

    HPSEARCH_FOLDER=~/data/inat10 hpsearch run folder_example --workers 2

    ~/data/inat10/train/<class>/*.jpg     the training images (validation is cut from them)
    ~/data/inat10/test/<class>/*.jpg      the held-out test images (read once, by best --retrain)

(or one folder of class folders: change ``test_fraction`` below from None to 0.2). Every
image is converted to RGB and resized to 64×64 once, on the first run; later runs, workers
and retrains read the cached tensors. The study records a hash of the files, so adding or
editing images later is noticed (``--allow-data-change`` to go on anyway).
"""

import os

import optuna

from hpsearch import Study, TrialConfig, datasets, space

FOLDER = os.environ.get("HPSEARCH_FOLDER", "data/my-images")
DATA = datasets.image_folder(FOLDER, size=(64, 64), channels=3, test_fraction=None)


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=space.cnn(trial, blocks=(2, 4), filters=(16, 32, 64), organisations=("double",), kernels=(3,),
                        batch_norm=(True,), dense=(0, 128)),
        optim=space.optimizer(trial, names=("adam", "adamw", "sgd"), lr=(3e-4, 3e-2)),
        batch_size=space.batch_size(trial, (32, 64, 128)),
        augment=space.augment(trial, DATA, ("none", "flip", "flip_crop", "color_jitter")),
    )


study = Study(dataset=DATA, space=search_space, max_epochs=15, n_trials=20, val_fraction=0.15)
