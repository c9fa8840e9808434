"""What a finished search yields: retrained models, comparisons and the counted test look.

- ``best``: what `hpsearch best` answers (the best trial or the Pareto front, and the retrain record).
- ``retrain``: ``best --retrain`` (re-score, fresh seeds, the single test look, checkpoints).
- ``compare``: groups of search trials side by side; ``compare_test``: ``compare --test``.
- ``checkpoints``: checkpoints that rebuild their model with nothing else.
- ``provenance``: the evidence every saved result carries.
"""
