"""Where results live: the Optuna storage, its layout, and narrow reads of it.

- ``storage``: a storage URL → a resilient Optuna RDB storage, heartbeats, the locks.
- ``budget``: the exact global trial budget: count and create under the database lock, in one transaction.
- ``proxy``, ``proxy_client``: the gRPC storage proxy for many machines.
- ``compat``: every piece of Optuna's private API hpsearch uses, in one place.
- ``records``: every key hpsearch stores, and how to read any version's layout.
- ``rows``, ``queries``: fast read-only views (listing rows, studies, the best trial).
- ``paths``: study names and the files derived from them on disk.
"""
