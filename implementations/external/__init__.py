"""Implementations that live outside the project, each run in its own Python environment.

``implementations/external/<name>/`` holds ``requirements.txt`` (the exact pins
of its environment), ``adapter.py`` (a script: split files in, rank record out)
and ``features.yaml`` (the feature checklist, with file:line in the library).
``adapter_common.py`` is the standalone helper every adapter imports.
:mod:`gru4rec_repro.external` builds the environments and runs the adapters.
See docs/AUDIT.md.
"""
