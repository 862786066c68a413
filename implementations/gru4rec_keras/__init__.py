"""GRU4Rec in Keras 3 on the TensorFlow backend, and the tutorial's Keras port.

See README.md in this folder. ``runner.run`` is the contract entry point;
``model.GRU4Rec`` is the low-level API shared with the PyTorch implementation.
"""
import os

# quiet TensorFlow's C++ logging unless the user asked otherwise (must precede the TF import)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
