"""The one place that names Keras backends: gradients, compilation, in-place writes, threads.

Everything else in this package is written with ``keras.ops``, Keras layers
and Keras variables. Keras 3 leaves three things to the backend, and this
module does them for the backend Keras runs on (``keras.backend.backend()``):

* differentiation (:func:`value_and_grad`): Keras 3 has no backend-agnostic
  gradient; its own trainers use ``jax.value_and_grad``,
  ``tensorflow.GradientTape`` and ``torch.autograd`` (``keras/src/backend/*/trainer.py``),
  and so does this function;
* compiling a pure step (:func:`step_function`): ``pure(values, *args) ->
  (outputs, writes)`` takes the variables' values and returns the outputs and
  the new values as ``writes`` (one per variable: ``None`` = unchanged,
  ``("all", value)`` or ``("rows", idx, rows)`` = these rows of it). The
  wrapper applies the writes: JAX jits the whole step (XLA) and donates the
  old values, so its functional row updates are done in place; TensorFlow
  runs it as a graph (``tensorflow.function``, XLA with ``jit=True``) and writes rows
  with the variable's own ``scatter_update``; PyTorch runs it eagerly (or
  ``torch.compile`` with ``jit=True``) and writes rows with ``index_copy_``.
  A functional ``scatter_update`` of a 37k-row matrix would copy it every
  step on those two (measured in README.md);
* threads and the device (:func:`configure`);
* the dropout draw in a compiled step (:func:`uniform_draws`): Keras' ``keras.random.uniform``
  in a ``keras.StatelessScope``, or on TensorFlow the same numbers from its stateless ops with
  fewer steps around them.

The backend modules are reached through ``importlib`` under their names, so
that no ``import`` of a backend appears in the model code.
"""
from __future__ import annotations

import contextlib
import importlib
from typing import Callable, NamedTuple

import keras
import numpy as np


def backend() -> str:
    return keras.backend.backend()


def _module(name: str):
    return importlib.import_module(name)


def versions() -> dict[str, str]:
    """Keras and the backend's versions (for the training log)."""
    out = {"keras": keras.__version__}
    name = backend()
    mods = {"tensorflow": ["tensorflow"], "jax": ["jax", "jaxlib"], "torch": ["torch"]}[name]
    for mod in mods:
        out[mod] = _module(mod).__version__
    return out


def configure(seed: int, threads: int, device: str, logger=None) -> str:
    """Threads and determinism of the backend; returns ``"cpu"`` or ``"gpu"`` (what runs)."""
    name = backend()
    threads = int(threads)
    keras.utils.set_random_seed(int(seed))
    if name == "tensorflow":
        tensorflow = _module("tensorflow")
        try:
            tensorflow.config.threading.set_intra_op_parallelism_threads(threads)
            tensorflow.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError as e:  # the TF runtime was already initialised in this process
            if logger:
                logger.warning("could not set TensorFlow threads to %s (%s)", threads, e)
        tensorflow.config.experimental.enable_op_determinism()
        gpu = bool(tensorflow.config.list_physical_devices("GPU"))
    elif name == "torch":
        torch = _module("torch")
        torch.set_num_threads(threads)
        gpu = torch.cuda.is_available()
    else:  # jax: XLA's CPU thread pool is set by XLA_FLAGS before jax starts, not here
        jax = _module("jax")
        gpu = jax.default_backend() == "gpu"
    if device in ("gpu", "cuda") and not gpu and logger:
        logger.warning("device %r asked for but Keras/%s sees no GPU; using the CPU", device, name)
    return "gpu" if gpu and device in ("auto", "gpu", "cuda") else "cpu"


def fixed_shapes(jit: bool) -> bool:
    """Whether compiled steps should keep one shape: XLA compiles once per shape (JAX always,
    TensorFlow with ``jit``), a second or more each (measured in README.md)."""
    return backend() == "jax" or (backend() == "tensorflow" and bool(jit))


def draws_outside_xla(jit: bool) -> bool:
    """Whether a step's random draws are made by a step of their own, outside its XLA function:
    TensorFlow with ``jit``, whose XLA kernel of ``StatelessRandomUniformV2`` (Philox) costs about
    2 ms on one core for one 32 x 100 dropout mask, against 0.3 ms as a graph op (measured in
    README.md). JAX's draw is XLA code of its own (fast); the other paths are not XLA."""
    return backend() == "tensorflow" and bool(jit)


def device_scope(device: str):
    """``keras.device`` for ``"/CPU:0"`` or ``"/GPU:0"``. Not on torch: there ``keras.device``
    breaks building a ``GRUCell`` (Keras 3.15: its int seed variable is made to require
    gradients); Keras' torch backend puts everything on the GPU when torch sees one."""
    if backend() == "torch":
        return contextlib.nullcontext()
    return keras.device(device.strip("/").lower())


def value_and_grad(fn: Callable) -> Callable:
    """``fn(diff, *rest) -> (loss, aux)`` -> ``g(diff, *rest) -> ((loss, aux), grads)``;
    ``diff``: a list of tensors, ``grads`` the gradients of ``loss`` with respect to each."""
    name = backend()
    if name == "jax":
        return _module("jax").value_and_grad(fn, has_aux=True)
    if name == "tensorflow":
        tensorflow = _module("tensorflow")

        def g(diff, *rest):
            with tensorflow.GradientTape() as tape:
                tape.watch(diff)
                loss, aux = fn(diff, *rest)
            grads = tape.gradient(loss, diff, unconnected_gradients=tensorflow.UnconnectedGradients.ZERO)
            return (loss, aux), grads
        return g
    torch = _module("torch")

    def g(diff, *rest):
        diff = [x.detach().requires_grad_(True) for x in diff]
        with torch.enable_grad():
            loss, aux = fn(diff, *rest)
            grads = torch.autograd.grad(loss, diff, allow_unused=True)
        grads = [torch.zeros_like(x) if gr is None else gr for x, gr in zip(diff, grads)]
        return (loss.detach(), aux), grads
    return g


def uniform_draws(generator, state, shapes: list) -> tuple[list, object]:
    """Uniform [0, 1) draws of ``shapes`` from ``generator`` (a ``keras.random.SeedGenerator``)
    inside a compiled step whose value of the generator's state is ``state``: ``(draws, new
    state)``, the same numbers and the same new state as ``keras.random.uniform(shape,
    seed=generator)`` once per shape in a ``keras.StatelessScope`` (Keras 3.15).

    TensorFlow: Keras' draw (``keras/src/backend/tensorflow/random.py`` ``uniform``) copies the
    state, casts it, casts the bounds and rescales the draw; here the state ``(seed, counter)``
    keys ``StatelessRandomGetKeyCounter`` and ``StatelessRandomUniformV2`` directly, draw ``i``
    with counter + i, as TensorFlow's ``stateless_uniform`` does (measured in README.md). The
    state goes through Keras' own reduction (``floormod`` by 2**31 - 2 and a cast to int32), so
    that every seed gives Keras' numbers. Other backends: Keras' draw."""
    if backend() == "tensorflow":
        tensorflow = _module("tensorflow")
        raw = tensorflow.raw_ops
        auto = tensorflow.random.Algorithm.AUTO_SELECT.value  # stateless_uniform's default
        draws = []
        for i, shape in enumerate(shapes):
            seed = tensorflow.cast(tensorflow.math.floormod(state + tensorflow.constant([0, i], state.dtype),
                                                            2 ** 31 - 2), "int32")
            key, counter = raw.StatelessRandomGetKeyCounter(seed=seed)
            draws.append(raw.StatelessRandomUniformV2(shape=tensorflow.stack(shape), key=key, counter=counter,
                                                      alg=auto, dtype=tensorflow.float32))
        return draws, state + tensorflow.constant([0, len(shapes)], state.dtype)
    with keras.StatelessScope(state_mapping=[(generator.state, state)]) as scope:
        draws = [keras.random.uniform(shape, seed=generator) for shape in shapes]
        return draws, scope.get_current_value(generator.state)


class Spec(NamedTuple):
    """The shape (``None`` for a dimension that varies) and dtype of a step's argument."""
    shape: tuple
    dtype: str


def fused_optimizer(optimizer):
    """``optimizer`` (a built Keras optimizer), its update of the variables run as one XLA
    cluster on TensorFlow, inside whatever step calls it; unchanged on the other backends (JAX
    compiles the whole step with XLA already; eager torch has nothing to fuse).

    TensorFlow runs Keras' Adam as a dozen element-wise ops per variable, each a pass over the
    table; XLA fuses them into one. For the port's dense Adam over 1.2M weights (3,000 items):
    5.3 -> 2.7 ms per step on one core, the new values within 1.1e-6 of the unfused ones after
    100 steps (floating-point contraction; measured in README.md). The whole step under XLA is
    slower on the CPU (its matrix products: 32 -> 55 ms at 512 lanes), so only the update is
    fused. Keras 3.15's ``_backend_update_step`` (``keras/src/optimizers/base_optimizer.py``,
    called by ``apply`` with the gradients, the variables and the learning rate) is wrapped;
    the Keras version is pinned (requirements.txt)."""
    if backend() != "tensorflow":
        return optimizer
    tensorflow = _module("tensorflow")
    unfused = optimizer._backend_update_step
    # one XLA function per list of variables, kept on the optimizer (for tests and debugging;
    # read back: TensorFlow's attribute tracking stores a wrapped copy of the dict)
    optimizer._fused_steps = {}
    steps = optimizer._fused_steps

    def update(grads, trainable_variables, learning_rate):
        key = tuple(id(v) for v in trainable_variables)
        if key not in steps:
            # the learning rate is read inside (a variable or a schedule of the iterations), so
            # that the XLA function takes only the gradients
            steps[key] = tensorflow.function(
                lambda g: unfused(g, trainable_variables, optimizer._get_current_learning_rate()),
                jit_compile=True, autograph=False)
        # dense before the XLA function: a sparse gradient's row count varies with the batch and
        # would compile the function anew for every batch size
        return steps[key]([tensorflow.convert_to_tensor(g) for g in grads])
    optimizer._backend_update_step = update
    return optimizer


def take_rows(x, idx):
    """``x[idx]`` along the first axis. On a TensorFlow variable a sparse read: once a variable
    has been row-updated, TensorFlow copies the whole of it for every dense read (its
    copy-on-read mode), which ``keras.ops.take`` would be."""
    if hasattr(x, "sparse_read"):
        return x.sparse_read(idx)
    return keras.ops.take(x, idx, axis=0)


def sum_repeated_rows(idx, g_rows, n_rows: int, static: bool):
    """``(rows, g)``: the rows ``idx`` names (repeats allowed) and the sum of the gradients
    ``g_rows`` of each row's positions, one entry per row written (so that writing them in
    any order gives the same result).

    ``static`` (shapes fixed for XLA) or JAX: one entry per position, each
    position's sum (``segment_sum`` over a representative position per row, found by a
    scatter of the positions into an ``n_rows`` buffer: no ``unique``, which XLA cannot
    compile; no sort, measured slower). TensorFlow's graph: ``unique`` and
    ``unsorted_segment_sum`` (eager PyTorch: ``unique`` and ``index_add_``), one entry per
    distinct row, as the TensorFlow-only Keras
    GRU4Rec did (commit 7e1bf23, optim.py ``_apply_sparse``): fewer ops and fewer rows
    to read and write (measured in README.md)."""
    if backend() == "tensorflow" and not static:
        tensorflow = _module("tensorflow")
        rows, where = tensorflow.unique(idx)
        return rows, tensorflow.math.unsorted_segment_sum(g_rows, where, tensorflow.shape(rows)[0])
    if backend() == "torch" and not static:
        # eager PyTorch: the same, with ``unique`` and ``index_add_`` (Keras' segment_sum on
        # torch runs a dozen kernels; measured in README.md)
        torch = _module("torch")
        rows, where = torch.unique(idx, return_inverse=True)
        g = torch.zeros((rows.shape[0],) + tuple(g_rows.shape[1:]), dtype=g_rows.dtype, device=g_rows.device)
        return rows, g.index_add_(0, where, g_rows)
    ops = keras.ops
    n = ops.shape(idx)[0]
    buffer = ops.scatter_update(ops.zeros((n_rows,), "int32"), idx[:, None], ops.arange(n, dtype="int32"))
    rep = ops.take(buffer, idx, axis=0)
    return idx, ops.take(ops.segment_sum(g_rows, rep, num_segments=n), rep, axis=0)


def _spec_tf(tensorflow, spec):
    if isinstance(spec, Spec):
        return tensorflow.TensorSpec(spec.shape, spec.dtype)
    return tuple(_spec_tf(tensorflow, s) for s in spec)


#: JAX's compiled steps by the caller's ``cache_key``: one per process, shared by models of the
#: same static configuration (a new model per seed would otherwise compile its step again)
_JAX_STEPS: dict = {}


def step_function(pure: Callable, variables: list, jit: bool = False, specs: list | None = None,
                  writes: bool = True, cache_key=None) -> Callable:
    """Compile ``pure(values, *args) -> (outputs, writes)`` for this backend; the returned
    ``f(*args) -> outputs`` reads ``variables``' values and applies ``writes`` to them.
    ``writes=False``: ``pure(values, *args) -> outputs`` only reads.

    ``specs``: one :class:`Spec` per argument (a tuple of them for a tuple
    argument): TensorFlow traces once for all batch sizes with them. JAX traces
    once per distinct shape.

    ``cache_key`` (hashable, JAX only): steps made with an equal key share one compiled
    function (JAX compiles once per process and shape, not once per model). The caller
    promises that equal keys mean the same computation: ``pure`` reads nothing of its model
    but the values it is given and constants the key covers.
    """
    name = backend()
    variables = list(variables)
    if not writes:
        read_only = pure

        def pure(values, *args):
            return read_only(values, *args), [None] * len(values)
    if name == "jax" and not writes:
        jitted_read = _jax_cached(cache_key, lambda: _module("jax").jit(read_only))
        return lambda *args: jitted_read([v.value for v in variables], *args)
    if name == "jax":
        jax = _module("jax")

        fn = _with_writes_applied(pure)
        jitted = _jax_cached(cache_key, lambda: jax.jit(fn, donate_argnums=0))

        def call(*args):
            outputs, new = jitted([v.value for v in variables], *args)
            for var, x in zip(variables, new):
                var.assign(x)
            return outputs
        return call

    if name == "tensorflow":
        tensorflow = _module("tensorflow")

        def fn(*args):
            outputs, writes = pure([v.value for v in variables], *args)
            for var, w in zip(variables, writes):
                if w is None:
                    continue
                if w[0] == "all":
                    var.value.assign(w[1])
                else:
                    var.value.scatter_update(tensorflow.IndexedSlices(w[2], w[1]))
            return outputs
        signature = [_spec_tf(tensorflow, s) for s in specs] if specs is not None else None
        # autograph off: the step has no Python control flow on tensors to convert
        traced = tensorflow.function(fn, input_signature=signature, jit_compile=bool(jit), autograph=False,
                                     reduce_retracing=signature is None)
        if signature is None:
            return traced
        return _concrete_on_first_call(traced)

    torch = _module("torch")
    convert = keras.ops.convert_to_tensor

    def fn(*args):
        with torch.no_grad():
            values = [v.value for v in variables]
            outputs, writes = pure(values, *args)
            for var, w in zip(variables, writes):
                if w is None:
                    continue
                if w[0] == "all":
                    var.value.copy_(w[1])
                else:
                    var.value.index_copy_(0, w[1].long(), w[2])
        return outputs
    if jit:
        fn = torch.compile(fn, dynamic=True)

    def call(*args):
        return fn(*(_convert_nested(convert, a) for a in args))
    return call


def _concrete_on_first_call(traced) -> Callable:
    """``traced`` (a ``tensorflow.function`` with an input signature: one graph for every batch
    size) called through its concrete function, traced on the first call. Calling the
    ``tensorflow.function`` itself binds and canonicalises the arguments and looks the graph up
    in its cache at every call; the concrete function skips that dispatch: 6.7 -> 5.8 ms a step
    (XE, 35,212 items, one core; measured in README.md)."""
    concrete = []

    def call(*args):
        if not concrete:
            concrete.append(traced.get_concrete_function())
        return concrete[0](*args)
    return call


def _with_writes_applied(pure: Callable) -> Callable:
    """JAX: ``pure(values, *args) -> (outputs, writes)`` as ``f(values, *args) -> (outputs, new
    values)``, each write applied functionally (``None``: unchanged; ``("all", x)``; ``("rows",
    idx, rows)``: ``.at[idx].set(rows)``, in place once jitted with the values donated)."""
    def fn(values, *args):
        outputs, writes = pure(values, *args)
        new = []
        for v, w in zip(values, writes):
            if w is None:
                new.append(v)
            elif w[0] == "all":
                new.append(w[1])
            else:
                new.append(v.at[w[1]].set(w[2]))
        return outputs, new
    return fn


def _jax_cached(key, make: Callable) -> Callable:
    if key is None:
        return make()
    if key not in _JAX_STEPS:
        _JAX_STEPS[key] = make()
    return _JAX_STEPS[key]


def _convert_nested(convert, a):
    if isinstance(a, (tuple, list)):
        return tuple(_convert_nested(convert, x) for x in a)
    return convert(a) if isinstance(a, np.ndarray) else a


def batches_seeds() -> bool:
    """Whether :func:`batched_step_function` is available here: JAX (``jax.vmap``). On
    TensorFlow and PyTorch seeds trained together step one after another (:mod:`.seeds`;
    ``tensorflow.vectorized_map`` and ``torch.func.vmap`` not tried: the step takes its
    gradient with ``tensorflow.GradientTape`` / ``torch.autograd.grad`` and writes rows into
    variables in place)."""
    return backend() == "jax"


def batch_seeds_by_default() -> bool:
    """Whether seeds trained together use :func:`batched_step_function` unless told: JAX on a
    GPU (or another accelerator). On JAX's CPU the vmapped step of S seeds was measured no faster
    than S single steps (0.63-1.24x per CPU-second, README.md), so there they step one after
    another unless asked (``SeedsTogether(models, batched=True)``)."""
    return backend() == "jax" and _module("jax").default_backend() != "cpu"


def batched_step_function(pure: Callable, in_axes: tuple, cache_key=None) -> Callable:
    """JAX: ``pure(values, *args) -> (outputs, writes)`` (a step of :func:`step_function`) for
    S models at once: ``f(values, *args) -> (outputs, new values)``, ``values`` each with a
    leading seed axis, ``args`` batched along axis 0 where ``in_axes`` says 0 and shared where it
    says ``None``; ``outputs`` get the seed axis. ``jax.vmap`` of the step with its writes
    applied (rows: ``.at[rows].set`` per seed), jitted once per process and ``cache_key``, the
    stacked values donated (updated in place). The caller holds the values."""
    if backend() != "jax":
        raise RuntimeError(f"batched_step_function: JAX only, Keras runs on {backend()!r}")
    jax = _module("jax")

    batched = jax.vmap(_with_writes_applied(pure), in_axes=(0, *in_axes))
    key = None if cache_key is None else ("batched", cache_key, tuple(in_axes))
    return _jax_cached(key, lambda: jax.jit(batched, donate_argnums=0))
