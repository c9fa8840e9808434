"""Choices shared by the built-in specs and the space helpers (torch-free)."""

ACTIVATIONS = ("relu", "gelu", "silu", "mish", "elu", "leaky_relu")
MORE_ACTIVATIONS = ("tanh", "sigmoid")  # accepted by the specs, not searched by default
INITS = ("default", "kaiming", "xavier", "orthogonal")
FREEZES = ("none", "head_only", "first_k", "gradual")  # see models._transfer


def check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def check_common(activation: str, init: str, dropout: float) -> None:
    check(activation in ACTIVATIONS + MORE_ACTIVATIONS,
          f"activation must be one of {', '.join(ACTIVATIONS + MORE_ACTIVATIONS)}, got {activation!r}")
    check(init in INITS, f"init must be one of {', '.join(INITS)}, got {init!r}")
    check(0.0 <= dropout < 1.0, f"dropout must be in [0, 1), got {dropout}")
