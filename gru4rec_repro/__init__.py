"""Shared library of the GRU4Rec reproducibility study.

data -> split -> implementations -> rank records -> metrics / statistics -> tables / report

Modules: ``atomic`` (write-then-rename), ``data`` (sources: synthetic, rsc15,
clicks, prepared), ``split`` (official preprocessing and split, manifest),
``dwell`` (dwell-time boosting), ``contract`` (the implementation contract),
``evaluation`` (rank records -> metrics), ``stats`` (seeds, paired tests),
``tables`` / ``paper`` (published numbers and paper-style tables).
"""
__version__ = "0.1.0"
