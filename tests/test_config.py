import pytest

from hpsearch import ModelConfig, OptimConfig, TrialConfig


def test_roundtrip_through_dict() -> None:
    cfg = TrialConfig(ModelConfig(blocks=3, organisation="half", activation="mish"),
                      OptimConfig(name="sgd", momentum=0.9, nesterov=True, scheduler="onecycle"), 32, "flip")
    assert TrialConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_keys_are_errors_not_dropped() -> None:
    d = TrialConfig().to_dict()
    d["model"]["widht"] = 3
    with pytest.raises(ValueError, match="unknown ModelConfig keys: widht"):
        TrialConfig.from_dict(d)


@pytest.mark.parametrize("bad, match", [
    (lambda: ModelConfig(kernel=4), "kernel must be odd"),
    (lambda: ModelConfig(activation="tanh"), "activation must be one of"),
    (lambda: OptimConfig(name="adam", nesterov=True), "nesterov needs optimizer 'sgd'"),
    (lambda: TrialConfig(augment="cutmix"), "augment must be one of"),
])
def test_invalid_values_say_what_is_allowed(bad, match) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=match):
        bad()
