"""Benchmarks: ``make bench`` (``python -m benchmarks [NAME ...]``).

Every module ``bench_*.py`` here has a ``main()`` that measures a goal and its baseline in
the same run and prints the ratio. Benchmarks never fail a build on a slow machine.
"""
