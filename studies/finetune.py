"""Fine-tuning a torchvision ResNet-18 on CIFAR-10: pretrained or not × how much of it is frozen.

The reports' transfer-learning question as one search: ImageNet weights (``"DEFAULT"``) or a
random init, crossed with the freeze strategies (train everything, only the new head, the
first k stages frozen, or gradual unfreezing from the top), with a backbone learning-rate
multiplier where the trunk trains. CIFAR-10's 32×32 images go in as they are (ResNet-18's
stem downsamples 4×; raise ``min_size`` to 64 to trade speed for accuracy).

ImageNet weights are read from torch's hub cache (``~/.cache/torch/hub/checkpoints``, or
``$TORCH_HOME/hub/checkpoints``); offline, `hpsearch run finetune` names the file to put
there. Point ``weights`` at a ``state_dict`` file of your own the same way.
"""

import optuna

from hpsearch import Study, TrialConfig, space

DATASET = "cifar10"


def search_space(trial: optuna.Trial) -> TrialConfig:
    return TrialConfig(
        model=space.torchvision(trial, archs=("resnet18",), weights=(None, "DEFAULT"), backbone_lr=(0.01, 1.0)),
        optim=space.optimizer(trial, names=("sgd", "adamw"), lr=(1e-4, 5e-2), schedulers=("cosine",)),
        batch_size=space.batch_size(trial, (64, 128)),
        augment=space.augment(trial, DATASET, ("none", "flip_crop")),
    )


study = Study(dataset=DATASET, space=search_space, max_epochs=8, n_trials=16)
