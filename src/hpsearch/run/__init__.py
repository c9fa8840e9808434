"""``hpsearch run``: supervise worker processes that pull trials from one shared study.

- ``supervisor``: validate the request, create or join the study, start and restart workers.
- ``workers``: the worker processes, their CPU slots and device placement.
- ``objective``: one Optuna trial → a plain training run (the trainer never sees Optuna).
- ``pruners``: which trials stop early; ``oom``: out of GPU memory is re-queued, not a crash.
- ``interrupts``: SIGINT and SIGTERM stop a process the same way.
"""
