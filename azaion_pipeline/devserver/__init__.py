"""Reference Azaion resource API (AZAION_FORMAT.md) for the local stack and the tests.

Run it alone with ``python -m azaion_pipeline.devserver serve``; create users with
``python -m azaion_pipeline.devserver add-user``.
"""
