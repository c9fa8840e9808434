"""Plain PyTorch training on resident tensors. Nothing here imports Optuna.

- ``loop``: :class:`Training`, one run's epochs, the optimizer and schedule, ``fit``.
- ``fused``: several runs of one architecture trained as one vmapped model.
- ``capture``: CUDA-graph capture of a training step with an eager fallback.
- ``options``: :class:`Speedups` (fusion, capture), read from ``HPSEARCH_FUSE``/``HPSEARCH_CAPTURE`` once, by the CLI.
"""
