"""Run a test file again on another Keras backend, in a fresh process (a process has one backend).

Keras reads ``KERAS_BACKEND`` once, at its first import, so a test file that
should run on TensorFlow, JAX and PyTorch runs itself on this process's
backend and, through :func:`run_file_on_backend`, once more in a child pytest
process for each other backend. The child gets ``KERAS_BACKEND`` and the
file's own child variable set (``child_env``: in the child the other-backend
tests skip, so it starts no more processes).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the module each Keras backend needs (the test skips without it)
BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def skip_unless_other_backend(backend: str, child_env: str) -> None:
    """Skip in a child process (``child_env`` set) and for this process's own backend (it runs
    the tests itself); skip when ``backend``'s module is not installed."""
    import keras

    if os.environ.get(child_env) or backend == keras.backend.backend():
        pytest.skip("this process's backend runs the tests itself")
    pytest.importorskip(BACKEND_MODULES[backend])


def run_file_on_backend(path, backend: str, child_env: str, select: str, *, allow_skipped: bool = False,
                        n_passed: int | None = None, timeout: float | None = None) -> str:
    """Run the tests of ``path`` that pytest's ``-k select`` picks, in a fresh process with
    ``KERAS_BACKEND=backend`` and ``child_env=1`` (skipped as :func:`skip_unless_other_backend`
    says), and assert that they passed: exit status 0 (else the child's output tails in the
    message), a summary line with passes and no failure or error, no skip unless
    ``allow_skipped``, exactly ``n_passed`` passes when given. ``timeout``: seconds, None for
    none. Returns pytest's summary line."""
    skip_unless_other_backend(backend, child_env)
    env = {**os.environ, "KERAS_BACKEND": backend, child_env: "1"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path), "-k", select],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{backend}:\n{out.stdout[-4000:]}\n{out.stderr[-2000:]}"
    summary = (out.stdout.strip().splitlines() or [""])[-1]
    assert re.search(r"\d+ passed", summary) and not re.search(r"\d+ (failed|errors?)\b", summary), summary
    if not allow_skipped:
        assert " skipped" not in summary, summary
    if n_passed is not None:
        assert summary.startswith(f"{n_passed} passed"), summary
    return summary
