"""Benchmarks of losscast's numerical core (``make bench``) and the plain numpy/scipy reference
implementation they, and the tests, measure it against (:mod:`bench.reference`)."""
