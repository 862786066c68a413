"""The tutorial's Keras port of GRU4Rec (SPEC.md section 5), with its flaws as switches.

The model: one-hot item input of size n_items -> one GRU(100) (Keras/cuDNN
form) -> dropout -> Dense(n_items, softmax) over ALL items, categorical
cross-entropy (Keras' mean over the batch), Adam(lr 0.001), batch 512,
session-parallel batches with hidden-state resets. The GRU's own output is
its carried state (the dropout is a separate layer after it).

Known flaws of the public port, each a switch (all off = the port as it was
meant to work):

* ``flaw_reset_every_step``: the port's loader yielded, with every step of a
  window, the mask of lanes that got a new session at the window's start, and
  the loop zeroed those lanes before every step. So a new session's first
  ``minlen - 1`` steps (minlen = the shortest remaining session when the
  window began) all run from a zero state. Off: the reset happens only at the
  step where the new session starts.
* ``flaw_reset_late``: the reset is applied after the training step instead
  of before it: a new session's first step runs on the state left by the
  previous session of its lane, and the state that step produced is zeroed.
* ``flaw_no_eval_reset``: no resets during evaluation: a test session that
  takes over a lane continues from the previous session's state.
* ``flaw_epochs_minus_one``: ``range(1, n_epochs)``: one epoch fewer.
* ``flaw_drop_tail``: the epoch ends as soon as a finished lane cannot be
  refilled; the sessions the other lanes still hold are not trained on.
  Off: lanes are dropped one by one and every session is trained to its end.

Further details of the public code (pcerdam/KerasGRU4Rec, ``model/gru4rec.py``
at commit 1721877), each a switch:

* ``flaw_session_id_order``: sessions are served in SessionId order
  (``SessionDataset(time_sort=False)``), in training and evaluation, not by
  the time of their first event.
* ``flaw_carry_state``: the GRU is ``stateful=True`` and nothing resets it
  between epochs or before evaluation: epoch e+1 starts from the state epoch e
  ended with, and evaluation from the state training ended with. (When the
  batch has shrunk at the end of an epoch -- only without ``flaw_drop_tail``,
  which the public code also had -- the surviving lanes' states are carried
  and the missing lanes start from zero.)
* ``flaw_extra_output_unit``: ``train_n_items = nunique + 1``: the one-hot input
  and the softmax have n_items + 1 units; the extra output is never a target,
  and at evaluation it is one more column the target is ranked against.

* ``flaw_float32_time``: the port's dwell-time script
  (``preprocess/extractDwellTime.py``) writes the training file with Time cast
  to float32 (128 s resolution at 2014 unix times), and the port's loader
  joins the item map with an inner ``pd.merge`` before sorting by
  (SessionId, Time). Under the pandas the port pinned (1.0.5; pandas < 2.2) an
  inner merge with repeated keys returns the rows grouped by key in order of
  first appearance (pandas 2.2.0 release notes, "merge() and DataFrame.join()
  now consistently follow documented sort behavior"), so events of a session
  whose float32 times tie end up in the order their items first appear in the
  file, not in click order. Training split only (the script augments train only).
  :func:`float32_time_order` reproduces that order.

The dropout, 0.25 in the code against 0.5 in the slides, is the ``dropout``
parameter (default 0.5, as the slides; ``dropout: 0.25`` as published). It is
Keras' own ``Dropout`` layer, as in the port.

Backend-agnostic Keras 3 (``keras.ops`` and Keras layers only): the same code
trains on TensorFlow, JAX and PyTorch, whichever ``KERAS_BACKEND`` the process
started Keras with (``backend:`` of a run, set by the runner). A training step
is ``Model.train_on_batch`` (Keras' compiled step on each backend: a
TensorFlow graph function, a JAX jit, eager PyTorch). The hidden state lives
in a non-trainable variable of ``batch_size`` rows that the step reads and
writes, so that it passes through the compiled step on every backend; a step
gathers its lanes from it (``src``: the lane each row came from, the lanes
kept when the batch shrinks). On JAX, whose step is compiled anew for every
input shape, batches smaller than ``batch_size`` (the end of an epoch) are
padded to ``batch_size`` with lanes of sample weight 0 (``PAD_BATCHES``); the
loss is the mean over the real lanes (``mean_with_sample_weight``), the
port's batch mean. Evaluation runs eagerly (no dropout).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from keras import ops
from tqdm.auto import tqdm

from gru4rec_repro.atomic import atomic_path

from . import BACKENDS, compiled
from .data import SessionData, session_parallel
from .layers import OneHotLibraryGRU
from .model import evaluate_sessions
from .train import log_epoch, read_log

log = logging.getLogger(__name__)

FLAWS = ("flaw_reset_every_step", "flaw_reset_late", "flaw_no_eval_reset", "flaw_epochs_minus_one",
         "flaw_drop_tail", "flaw_session_id_order", "flaw_carry_state", "flaw_extra_output_unit",
         "flaw_float32_time")
DEFAULTS: dict = {
    "hidden": 100,
    "dropout": 0.5,
    "learning_rate": 0.001,
    "batch_size": 512,
    "n_epochs": 10,
    "eval_batch_size": 512,
    # the Keras backend the run asks for (the runner sets KERAS_BACKEND from it); None = the
    # process's backend
    "backend": None,
    **{flaw: False for flaw in FLAWS},
}
CHECKPOINT = "checkpoint.npz"
#: bumped when the checkpoint's layout changes (2: Keras 3 backend-agnostic port)
CHECKPOINT_FORMAT = 2
#: XLA for the training step, per backend
JIT_COMPILE = {"tensorflow": False, "jax": True, "torch": False}
#: backends whose compiled step is traced anew for every batch size: their smaller batches
#: are padded to ``batch_size`` (a TensorFlow graph function generalises the batch dimension
#: after a retrace; eager PyTorch has nothing to trace)
PAD_BATCHES = {"tensorflow": False, "jax": True, "torch": False}


def float32_time_order(train: pd.DataFrame) -> pd.DataFrame:
    """The training events as the public port read a file from its dwell-time script:
    Time cast to float32, rows grouped by ItemId in order of first appearance (the
    pandas < 2.2 inner merge), then stably sorted by (SessionId, Time)."""
    df = train[["SessionId", "ItemId", "Time"]].sort_values(["SessionId", "Time"], kind="stable")
    df = df.assign(Time=df["Time"].to_numpy().astype(np.float32).astype(np.float64))
    first_seen = pd.factorize(df["ItemId"])[0]
    df = df.iloc[np.argsort(first_seen, kind="stable")]
    return df.sort_values(["SessionId", "Time"], kind="stable").reset_index(drop=True)


def parse_params(params: dict | None) -> dict:
    params = dict(params or {})
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"Keras port: unknown parameter(s) {unknown}; known: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    for name in ("hidden", "batch_size", "n_epochs", "eval_batch_size"):
        p[name] = int(p[name])
    p["dropout"], p["learning_rate"] = float(p["dropout"]), float(p["learning_rate"])
    for flaw in FLAWS:
        p[flaw] = bool(p[flaw])
    running = keras.backend.backend()
    if p["backend"] is not None and p["backend"] != running:
        if p["backend"] not in BACKENDS:
            raise ValueError(f"Keras port: backend must be one of {BACKENDS}, not {p['backend']!r}")
        raise ValueError(f"Keras port: backend {p['backend']!r} asked for, but Keras runs on {running!r} "
                         "in this process (KERAS_BACKEND must be set before keras is imported)")
    p["backend"] = running
    return p




class PortNet(keras.Model):
    """GRU -> Dropout -> Dense(softmax), one session-parallel step per call.

    Inputs ``(src, in_idx, reset_before, reset_after)``: row i's state is the
    stored state of lane ``src[i]``, zeroed where ``reset_before``; the new
    state (zeroed where ``reset_after``) is written back to the first rows of
    ``lane_state``. Returns the softmax over the units.
    """

    def __init__(self, n_units: int, hidden: int, dropout: float, lanes: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.gru = OneHotLibraryGRU(n_units, hidden, seed=seed, name="GRU")
        self.dropout = keras.layers.Dropout(dropout, seed=seed + 3, name="dropout")
        self.dense = keras.layers.Dense(n_units, activation="softmax", name="dense",
                                        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2))
        self.dense.build((None, hidden))
        self.lane_state = self.add_weight(shape=(lanes, hidden), initializer="zeros", trainable=False,
                                          name="lane_state")

    def step_state(self, src, reset_before):
        """The state each row starts the step from."""
        H = ops.take(self.lane_state.value, src, axis=0)
        return ops.where(reset_before[:, None], ops.zeros_like(H), H)

    def call(self, inputs, training=False):
        src, in_idx, reset_before, reset_after = inputs
        h = self.gru(in_idx, self.step_state(src, reset_before))
        kept = ops.where(reset_after[:, None], ops.zeros_like(h), h)
        self.lane_state.assign(ops.slice_update(self.lane_state.value, (0, 0), kept))
        return self.dense(self.dropout(h, training=training))


def _numpy(x) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    return np.asarray(ops.convert_to_numpy(x.value if isinstance(x, keras.Variable) else x))


class KerasPort:
    """The port's model and training loop. ``trace=True`` records every step's resets."""

    def __init__(self, n_items: int, params: dict | None, seed: int):
        self.p = p = parse_params(params)
        self.n_items, self.seed = int(n_items), int(seed)
        self.item_ids = np.arange(self.n_items, dtype=np.int64)
        #: units of the one-hot input and of the softmax (the public code had one more than items)
        self.n_units = self.n_items + (1 if p["flaw_extra_output_unit"] else 0)
        self.net = PortNet(self.n_units, p["hidden"], p["dropout"], p["batch_size"], self.seed, name="port")
        self.gru, self.dropout, self.dense = self.net.gru, self.net.dropout, self.net.dense
        # the port's input was a dense one-hot matrix: Adam updates every row of the kernel (on
        # TensorFlow the gather's sparse gradient becomes dense in Adam's moment update)
        self.net.compile(optimizer=compiled.fused_optimizer(keras.optimizers.Adam(learning_rate=p["learning_rate"])),
                         loss=keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight"),
                         jit_compile=JIT_COMPILE[p["backend"]])
        self.net.optimizer.build(self.net.trainable_variables)
        self.trace: list[dict] | None = None
        self.epochs_trained = 0
        #: the state the last epoch ended with (kept for ``flaw_carry_state``)
        self.carried: np.ndarray | None = None

    def epochs(self) -> range:
        """The epochs the loop runs (the flaw: ``range(1, n_epochs)``)."""
        n = self.p["n_epochs"]
        return range(1, n) if self.p["flaw_epochs_minus_one"] else range(1, n + 1)

    def reset_masks(self, step) -> tuple[np.ndarray, np.ndarray]:
        """(reset before the step, reset after the step) for one iterator step."""
        lanes = len(step.in_idx)
        none = np.zeros(lanes, dtype=bool)
        if self.p["flaw_reset_every_step"]:
            mask = step.window_new
        else:
            mask = step.reset if step.reset is not None else none
        return (none, mask) if self.p["flaw_reset_late"] else (mask, none)

    @property
    def time_sort(self) -> bool:
        """Whether sessions are served by start time (False: SessionId order, the public code)."""
        return not self.p["flaw_session_id_order"]

    def initial_state(self, lanes: int) -> np.ndarray:
        """The state an epoch or the evaluation starts from: zero, or with
        ``flaw_carry_state`` the state the last epoch ended with (lanes beyond
        those it had start from zero; lanes beyond ``lanes`` are cut)."""
        H = np.zeros((lanes, self.p["hidden"]), np.float32)
        if self.p["flaw_carry_state"] and self.carried is not None:
            k = min(lanes, len(self.carried))
            H[:k] = self.carried[:k]
        return H

    def _lane_state(self) -> np.ndarray:
        return _numpy(self.net.lane_state)

    def run_epoch(self, data: SessionData, epoch: int, progress: bool = False) -> tuple[float, int, int]:
        """One epoch; returns (loss per training event, events, steps)."""
        p, most = self.p, self.p["batch_size"]
        lanes = min(most, data.n_sessions)
        start = np.zeros((most, p["hidden"]), np.float32)
        start[:lanes] = self.initial_state(lanes)
        self.net.lane_state.assign(start)
        loss_sum = 0.0
        events = steps = 0
        bar = tqdm(total=data.n_events - data.n_sessions, desc=f"port epoch {epoch}", disable=not progress,
                   unit="ev", mininterval=1.0)
        for step in session_parallel(data, most, min_lanes=1, drop_tail=p["flaw_drop_tail"]):
            lanes = len(step.in_idx)
            src = step.keep if step.keep is not None else np.arange(lanes)
            before, after = self.reset_masks(step)
            pad = most - lanes if PAD_BATCHES[p["backend"]] else 0
            x = (np.pad(src, (0, pad)).astype(np.int32), np.pad(step.in_idx, (0, pad)).astype(np.int32),
                 np.pad(before, (0, pad)), np.pad(after, (0, pad)))
            y = np.pad(step.out_idx, (0, pad)).astype(np.int32)
            weight = np.pad(np.ones(lanes, np.float32), (0, pad))
            state_in = self._lane_state()[src] if self.trace is not None else None
            loss = self.net.train_on_batch(x, y, sample_weight=weight)
            loss_sum += float(loss) * lanes  # the batch mean back to a sum over the lanes
            if self.trace is not None:
                self.trace.append({"epoch": epoch, "event": step.event.copy(), "reset_before": before.copy(),
                                   "reset_after": after.copy(), "state_before": state_in,
                                   "state_after": self._lane_state()[:lanes]})
            events += lanes
            steps += 1
            if steps % 200 == 0:
                bar.update(events - bar.n)
        bar.close()
        self.carried = self._lane_state()[:lanes]
        return loss_sum / max(events, 1), events, steps

    def fit(self, data: SessionData, outdir: Path, threads: int = 1, device: str = "cpu",
            progress: bool = True, trace: bool = False) -> list[dict]:
        outdir = Path(outdir)
        self.trace = [] if trace else None
        key = self._fingerprint(data)
        done = self._load_checkpoint(outdir / CHECKPOINT, key)
        log_path = outdir / "train_log.jsonl"
        records = read_log(log_path, done)
        for epoch in self.epochs():
            if epoch <= done:
                continue
            t0 = time.perf_counter()
            loss, events, steps = self.run_epoch(data, epoch, progress)
            log_epoch(records, log_path, epoch, loss, time.perf_counter() - t0, events, steps, threads, device,
                      what="Keras port")
            self.epochs_trained += 1
            self._save_checkpoint(outdir / CHECKPOINT, epoch, key)
        return records

    def _rank(self, H, in_idx, target_idx, reset_mask):
        """(higher, ties, (h,)) of one evaluation step (no dropout)."""
        H0 = _numpy(H[0])
        h = self.gru(ops.convert_to_tensor(in_idx), ops.convert_to_tensor(np.where(reset_mask[:, None], 0.0, H0)))
        probs = self.dense(h)
        target = ops.take_along_axis(probs, ops.convert_to_tensor(target_idx[:, None]), axis=1)
        higher = ops.sum(ops.cast(ops.greater(probs, target), "int64"), axis=1)
        ties = ops.sum(ops.cast(ops.equal(probs, target), "int64"), axis=1) - 1
        return higher, ties, (h,)

    def evaluate(self, test: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
        """Rank record of ``test``. Every test event is scored (the public code's
        loader also dropped the tail sessions at evaluation; that is not followed,
        so that rank records stay paired with the other runs'). With
        ``flaw_reset_every_step`` evaluation reapplies the window mask too, as the
        public code's shared loader did."""
        data = SessionData.from_frame(test, self.item_ids, where="test", drop_unknown=True,
                                      time_sort=self.time_sort)
        initial = lambda lanes: [self.initial_state(lanes)]  # noqa: E731
        if self.p["flaw_no_eval_reset"]:
            reset = "none"
        else:
            reset = "window" if self.p["flaw_reset_every_step"] else "step"
        return evaluate_sessions(self._rank, initial, data, self.p["eval_batch_size"],
                                 reset=reset, progress=progress)

    # ----- persistence -------------------------------------------------------------------------
    def _named_weights(self) -> tuple:
        return (("GRU.kernel", self.gru.kernel), ("GRU.recurrent_kernel", self.gru.recurrent_kernel),
                ("GRU.bias", self.gru.bias), ("dense.kernel", self.dense.kernel), ("dense.bias", self.dense.bias))

    def get_weights(self) -> dict[str, np.ndarray]:
        return {name: _numpy(var) for name, var in self._named_weights()}

    def set_weights(self, w: dict, where: str = "weights") -> None:
        for name, var in self._named_weights():
            if name not in w or tuple(w[name].shape) != tuple(var.shape):
                raise ValueError(f"{where}: {name} missing or not of shape {tuple(var.shape)}")
            var.assign(w[name])

    def save_weights(self, path) -> None:
        """Keras-layout weights of the port (not the GRU4Rec neutral format: another model)."""
        meta = {"variant": "port", "hidden": self.p["hidden"], "units": self.n_units, "format": 1,
                "backend": self.p["backend"]}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, item_ids=self.item_ids, meta=np.array(json.dumps(meta)), **self.get_weights())

    def _fingerprint(self, data: SessionData) -> str:
        h = hashlib.sha256(json.dumps({"params": self.p, "seed": self.seed, "format": CHECKPOINT_FORMAT},
                                      sort_keys=True).encode())
        for a in (self.item_ids, data.items, data.offsets):
            h.update(a.tobytes())
        return h.hexdigest()

    def _seed_state(self):
        """The dropout's seed generator state (none when the rate is 0)."""
        generator = getattr(self.dropout, "seed_generator", None)
        return generator.state if generator is not None else None

    def _save_checkpoint(self, path: Path, epoch: int, key: str) -> None:
        arrays = {f"w.{k}": v for k, v in self.get_weights().items()}
        arrays.update({f"opt.{i}": _numpy(v) for i, v in enumerate(self.net.optimizer.variables)})
        # the dropout's seed generator (the lane state is set anew at each epoch's start)
        if self._seed_state() is not None:
            arrays["seed"] = _numpy(self._seed_state())
        if self.carried is not None:
            arrays["carried"] = self.carried
        arrays["info"] = np.array(json.dumps({"epoch": epoch, "key": key}))
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    def _load_checkpoint(self, path: Path, key: str) -> int:
        if not path.exists():
            return 0
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            info = json.loads(str(arrays["info"]))
        except Exception as e:
            log.warning("%s: unreadable checkpoint (%s); starting from scratch", path, e)
            return 0
        if info.get("key") != key:
            return 0
        self.set_weights({k[2:]: v for k, v in arrays.items() if k.startswith("w.")}, str(path))
        for i, v in enumerate(self.net.optimizer.variables):
            v.assign(arrays[f"opt.{i}"])
        if self._seed_state() is not None:
            self._seed_state().assign(arrays["seed"])
        self.carried = arrays.get("carried")
        log.info("port: resuming after epoch %d from %s", info["epoch"], path)
        return int(info["epoch"])
