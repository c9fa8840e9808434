"""Imported once, in the fork server that :class:`hpsearch.run.workers.WorkerPool` forks workers from.

Every worker needs torch, Optuna and the trainer: importing them costs ~2.4 CPU-seconds per
process (measured, this machine), which a spawned worker paid on every start and restart, all
workers at once on the same cores. The fork server pays it once; each worker is a fork of it.
Nothing here computes or touches CUDA, so a fork inherits no OpenMP pool and no CUDA context
(the reason workers are not forked from the supervisor).

The server must outlive a SIGTERM or SIGHUP sent to the whole process group: the supervisor
learns its workers' exit codes through it, and a dead server reads as every worker dead. It
ignores both; a worker restores them before its own handlers go in (``worker_main``). It exits
when the supervisor does (multiprocessing closes its pipe).
"""

import signal

for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, signal.SIG_IGN)

import hpsearch.run.workers  # noqa: E402,F401 - the point of this module: import once, fork many
