"""GRU4Rec in backend-agnostic Keras 3 (TensorFlow, JAX or PyTorch), and the tutorial's Keras port.

See README.md in this folder. ``runner.run`` is the contract entry point;
``model.GRU4Rec`` is the low-level API shared with the PyTorch implementation.

Keras reads its backend once, when it is first imported (``KERAS_BACKEND``).
:func:`use_backend` sets it for this process before that import and refuses a
second backend once Keras is loaded; nothing in this file imports Keras.
"""
import os
import sys

# quiet TensorFlow's C++ logging unless the user asked otherwise (must precede the TF import)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: the Keras backends the model runs on (the run parameter ``backend``)
BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"


def use_backend(name: str | None) -> str:
    """Make ``name`` this process's Keras backend (``None``: the default, tensorflow).

    Sets ``KERAS_BACKEND`` when Keras is not imported yet; when it is, its
    backend must already be ``name`` (a process runs one backend).
    """
    name = DEFAULT_BACKEND if name is None else str(name)
    if name not in BACKENDS:
        raise ValueError(f"gru4rec_keras: backend must be one of {', '.join(BACKENDS)}, not {name!r}")
    if "keras" in sys.modules:
        import keras

        current = keras.backend.backend()
        if current != name:
            raise RuntimeError(
                f"gru4rec_keras: backend {name!r} asked for, but Keras is already imported in this process "
                f"with backend {current!r} (Keras reads KERAS_BACKEND once, at its first import); run it in "
                f"a fresh process, e.g. with KERAS_BACKEND={name} set")
        return name
    os.environ["KERAS_BACKEND"] = name
    return name
