"""The study modules shipped with hpsearch: installed as ``hpsearch.shipped``, so ``hpsearch run
digits`` finds them from any folder when ``./studies`` (or ``--studies-dir``) does not hold one of
that name. Each is an example to copy and change: ``hpsearch run digits`` runs as is."""
