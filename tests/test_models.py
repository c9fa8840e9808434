import pytest
import torch

from hpsearch import ModelConfig
from hpsearch.config import ACTIVATIONS
from hpsearch.data import get_source
from hpsearch.models import MODELS, block_filters, create_model


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("dataset", ["digits", "mnist", "cifar10"])
@pytest.mark.parametrize("organisation, activation, bn",
                         [("same", "relu", False), ("half", "relu", True)] + [("double", a, True) for a in ACTIVATIONS])
def test_every_model_runs_forward_and_backward(name: str, dataset: str, organisation: str, activation: str,
                                               bn: bool) -> None:
    info = get_source(dataset).info
    cfg = ModelConfig(blocks=3, filters=8, organisation=organisation, activation=activation, batch_norm=bn,
                      dropout=0.1, dense=16)
    model = create_model(name, cfg, info)
    x = torch.randn(4, info.channels, info.size, info.size)
    out = model(x)
    assert out.shape == (4, info.num_classes)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_filter_organisation() -> None:
    assert block_filters(ModelConfig(blocks=3, filters=16, organisation="double")) == [16, 32, 64]
    assert block_filters(ModelConfig(blocks=3, filters=16, organisation="half")) == [16, 8, 4]
    assert block_filters(ModelConfig(blocks=3, filters=16, organisation="same")) == [16, 16, 16]
