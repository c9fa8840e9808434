"""What a study *is*, before anything runs: its declaration, search space and identity.

- ``declaration``: :class:`Study`, the object a study module builds, and the settings it stores.
- ``config``: :class:`TrialConfig` and friends, the frozen result of sampling the space.
- ``space``: the search-space building blocks (public as ``hpsearch.space``).
- ``samplers``: samplers as a stored study setting (public as ``hpsearch.samplers``).
- ``discover``: find and import a study module by name or path.
- ``fingerprint``: a module's source hash and declared space, to refuse silent changes.
- ``usercode``, ``rebuild``: user code that travels with results, and bringing it back.
- ``seeds``: every seed derived from the study seed.

Imports only ``tasks``, ``models``, ``data`` and the leaf modules (``errors``, ``fmt``).
"""
