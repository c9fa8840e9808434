import pytest

from hpsearch import ModelConfig, OptimConfig, TrialConfig


def test_roundtrip_through_dict() -> None:
    cfg = TrialConfig(ModelConfig(blocks=3, organisation="half", activation="mish"),
                      OptimConfig(name="sgd", momentum=0.9, nesterov=True, scheduler="onecycle"), 32, "flip")
    assert TrialConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_keys_are_errors_not_dropped() -> None:
    d = TrialConfig().to_dict()
    d["model"]["widht"] = 3
    with pytest.raises(ValueError, match="unknown CNN keys: widht"):
        TrialConfig.from_dict(d)


@pytest.mark.parametrize("bad, match", [
    (lambda: ModelConfig(padding=-1), "padding must be same, valid or a number of pixels >= 0"),
    (lambda: ModelConfig(padding="full"), "padding must be same, valid or a number of pixels >= 0"),
    (lambda: ModelConfig(activation="swish2"), "activation must be one of"),
    (lambda: OptimConfig(name="lbfgs"), "optimizer must be one of"),
    (lambda: OptimConfig(name="adam", momentum=0.9), "momentum applies to sgd/rmsprop only"),
    (lambda: OptimConfig(scheduler="onecycle", warmup_epochs=1), "onecycle warms up by itself"),
    (lambda: OptimConfig(name="adam", nesterov=True), "nesterov needs optimizer 'sgd'"),
    (lambda: TrialConfig(augment="cutmix"), "augment must be one of"),
])
def test_invalid_values_say_what_is_allowed(bad, match) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=match):
        bad()


def test_optimizer_names_are_case_insensitive_and_any_torch_optimizer_trains() -> None:
    import torch

    from hpsearch.train.loop import make_optimizer

    param = torch.nn.Parameter(torch.ones(3))
    for name in ("Rprop", "adagrad", "SGD", "ASGD", "adamax"):
        cfg = OptimConfig(name=name, lr=0.01)
        opt = make_optimizer([param], cfg)
        assert type(opt).__name__ == cfg.class_name and cfg.name == name.lower()
    rprop = make_optimizer([param], OptimConfig(name="rprop", args={"etas": (0.4, 1.3)}))
    assert rprop.defaults["etas"] == (0.4, 1.3)
    with pytest.raises(ValueError, match="optimizer rprop takes no weight_decay"):
        make_optimizer([param], OptimConfig(name="rprop", weight_decay=0.1))


@pytest.mark.parametrize("cfg, lrs", [
    (OptimConfig(lr=1.0, scheduler="step", step_size=2, gamma=0.5), [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]),
    (OptimConfig(lr=1.0, scheduler="step"), [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01]),  # at 1/2 and 3/4
    (OptimConfig(lr=1.0, warmup_epochs=1), [1 / 3, 2 / 3, 1, 1, 1, 1, 1, 1, 1, 1]),
])
def test_schedules_change_the_lr_at_the_documented_steps(cfg: OptimConfig, lrs: list[float]) -> None:
    import torch

    from hpsearch.train.loop import make_optimizer, make_scheduler

    opt = make_optimizer([torch.nn.Parameter(torch.ones(1))], cfg)
    sched = make_scheduler(opt, cfg, epochs=5, steps_per_epoch=2)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx(lrs)
