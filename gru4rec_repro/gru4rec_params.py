"""GRU4Rec settings as the authors' code reads them (SPEC.md section 4).

Framework-neutral: both GRU4Rec implementations (``implementations/gru4rec_torch``
and ``implementations/gru4rec_keras``) call :func:`resolve` to turn the
``params:`` of a run into the complete settings they train with.

Sources of settings, lowest priority first:

1. :data:`OFFICIAL_DEFAULTS`, the defaults of the official PyTorch code
   (``GRU4Rec.__init__`` of hidasib/GRU4Rec_PyTorch_Official,
   ``gru4rec_pytorch.py`` line 381), plus :data:`OUR_DEFAULTS` for the keys
   only this project has;
2. ``params_file:`` an official parameter file (``paramfiles/*.py`` of the
   PyTorch code, ``param_samples/*.py`` of the Theano code), read with
   :func:`read_params_file` (parsed, never executed);
3. ``ps:`` the ``-ps`` string of the authors' ``run.py`` (:func:`parse_ps`);
4. the other keys given next to them.

Each source is normalised on its own first (``final_act: elu-0.5`` becomes
``final_act: elu`` + ``elu_param: 0.5`` inside that source), so a later
source's ``elu_param`` replaces the one an earlier ``final_act`` carried.

The final activation (``final_act`` and ``elu_param`` of the result):

* ``bpr-max``: ELU(elu_param) is applied to the scores whenever
  ``elu_param > 0``, as the official PyTorch code does
  (``bpr_max_loss_with_elu``, ``gru4rec_pytorch.py`` lines 442-444); with
  ``elu_param`` left out that is ELU(0.5). An explicit ``final_act: linear``
  (or ``tanh``, ``relu``) with ``elu_param`` left out means no ELU
  (``elu_param`` becomes 0). An explicit non-ELU ``final_act`` together with an
  explicit ``elu_param > 0``, or ``final_act: elu`` with ``elu_param: 0``,
  contradicts itself and is refused with a message naming both keys.
* every other loss: the official PyTorch code never applies ELU to
  cross-entropy (``xe_loss_with_softmax``, lines 430-436: ``elu_param`` is
  unused there), so ``final_act`` defaults to ``linear`` (cross-entropy's
  softmax is part of the loss; the Theano files' ``final_act: softmax`` means
  exactly that) and ELU is applied only when ``final_act`` says ``elu``. An
  explicit ``elu_param > 0`` with an explicit non-ELU ``final_act`` is refused
  as above; with ``final_act`` left out it is ignored on cross-entropy (as in
  the official code) and refused on top1/bpr/top1-max (neither official code
  has that combination, so its meaning would be a guess).

In the result ``elu_param`` is the alpha of the ELU actually applied, 0.0
when none is, so ``resolve(resolve(p)) == resolve(p)``.

Keys of this project beyond the official ones:

* ``onehot_dropout``: ``"embed"`` (default; the official PyTorch code, whose
  one-hot mode drops out the first GRU layer's output with
  ``dropout_p_embed``, ``gru4rec_pytorch.py`` lines 232-235, and leaves
  ``dropout_p_hidden`` for the layers after it) or ``"hidden"`` (the Theano
  original: ``dropout_p_hidden`` after every layer, no embedding dropout);
* ``time_sort``: ``True`` (default) serves sessions by the time of their
  first event; ``False`` in SessionId order, as the authors' 2016 script did
  (a Theano key of the same name and meaning);
* ``sample_store_size`` (the authors' ``-ss`` option of run.py) and
  ``eval_batch_size`` (their evaluation's ``batch_size=512``);
* ``final_act`` (a Theano key; see above).

Theano keys whose value is what both implementations do (``hidden_act:
tanh``, ``adapt: adagrad``, ``lmbd: 0``, ``smoothing: 0``, ``grad_cap: 0``,
``sigma: 0``, ``init_as_normal: False``, ``train_random_order: False``,
``adapt_params: []``) are accepted and dropped; any other value of them is
refused (not implemented). ``hidden_size`` is accepted as a spelling of
``layers``; ``embedding: layersize`` means the first layer's size, as in the
official code.
"""
from __future__ import annotations

import ast
import os
from pathlib import Path

#: Defaults of the official PyTorch code for keys left out (SPEC.md section 4).
OFFICIAL_DEFAULTS: dict = {
    "loss": "cross-entropy",
    "layers": [100],
    "n_epochs": 10,
    "batch_size": 64,
    "dropout_p_embed": 0.0,
    "dropout_p_hidden": 0.0,
    "learning_rate": 0.05,
    "momentum": 0.0,
    "sample_alpha": 0.5,
    "n_sample": 2048,
    "embedding": 0,
    "constrained_embedding": True,
    "bpreg": 1.0,
    "elu_param": 0.5,
    "logq": 0.0,
}

#: Defaults of the keys only this project has (``final_act`` is derived, see the module docstring).
OUR_DEFAULTS: dict = {
    "final_act": None,
    "onehot_dropout": "embed",
    "time_sort": True,
    "sample_store_size": 10_000_000,
    "eval_batch_size": 512,
}

LOSSES = ("cross-entropy", "top1", "bpr", "top1-max", "bpr-max")
FINAL_ACTIVATIONS = ("linear", "tanh", "elu", "relu")
ONEHOT_DROPOUT = ("embed", "hidden")

#: Theano keys accepted when their value is what the implementations do; dropped after the check.
_INERT_THEANO = {"hidden_act": "tanh", "adapt": "adagrad", "lmbd": 0.0, "smoothing": 0.0, "grad_cap": 0.0,
                 "sigma": 0.0, "init_as_normal": False, "train_random_order": False, "adapt_params": []}
_ALIASES = {"hidden_size": "layers"}
_INTS = ("embedding", "batch_size", "n_sample", "n_epochs", "sample_store_size", "eval_batch_size")
_FLOATS = ("dropout_p_embed", "dropout_p_hidden", "learning_rate", "momentum", "sample_alpha", "bpreg",
           "elu_param", "logq")
_BOOLS = ("constrained_embedding", "time_sort")
_SOURCES = ("params_file", "ps")
_DERIVED = "\0elu_param_from_final_act"  # internal marker of _normalise


def known_keys(extra: dict | None = None) -> list[str]:
    """Every key :func:`resolve` accepts (``extra``: an implementation's own keys)."""
    return sorted({*OFFICIAL_DEFAULTS, *OUR_DEFAULTS, *_INERT_THEANO, *_ALIASES, *_SOURCES, *(extra or {})})


# ------------------------------------------------------------------ reading
def _literal(node: ast.AST, where: str):
    try:
        return ast.literal_eval(node)
    except ValueError as err:
        raise ValueError(f"{where}: not a literal ({ast.unparse(node)!r}): {err}") from None


def _mapping_literal(node: ast.AST, where: str) -> dict:
    """``OrderedDict([(k, v), ...])``, ``OrderedDict(k=v)``, ``dict(...)`` or ``{...}`` as a dict."""
    if isinstance(node, ast.Dict):
        return _literal(node, where)
    if isinstance(node, ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name in ("OrderedDict", "dict") and len(node.args) <= 1:
            pairs = list(_literal(node.args[0], where)) if node.args else []
            pairs += [(kw.arg, _literal(kw.value, where)) for kw in node.keywords]
            out: dict = {}
            for pair in pairs:
                if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[0], str)):
                    raise ValueError(f"{where}: expected (name, value) pairs, got {pair!r}")
                if pair[0] in out:
                    raise ValueError(f"{where}: key {pair[0]!r} given twice")
                out[pair[0]] = pair[1]
            return out
    raise ValueError(f"{where}: expected OrderedDict([...]) or a dict literal, got {ast.unparse(node)!r}")


def read_params_file(path: str | os.PathLike) -> dict:
    """The settings of an official parameter file, read without executing it.

    The file is Python source as in the authors' ``paramfiles/*.py`` (PyTorch)
    and ``param_samples/*.py`` (Theano): ``gru4rec_params = OrderedDict([...])``
    (a dict literal works too). It is parsed with :mod:`ast` and only the
    literal is evaluated; values keep their types (``layers: [100]``).
    """
    path = Path(path)
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except FileNotFoundError:
        raise ValueError(f"params_file {path}: no such file") from None
    except SyntaxError as err:
        raise ValueError(f"params_file {path}: not Python source ({err})") from None
    found = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            found[stmt.targets[0].id] = stmt.value
    if "gru4rec_params" in found:
        node = found["gru4rec_params"]
    elif len(found) == 1:
        node = next(iter(found.values()))
    else:
        raise ValueError(f"params_file {path}: no assignment to gru4rec_params "
                         f"(assigned names: {sorted(found) or 'none'})")
    return _mapping_literal(node, f"params_file {path}")


def _typed(value: str):
    """A ``-ps`` value: bool, int, float, ``a/b`` list of ints, else the string."""
    if value in ("True", "False", "true", "false"):
        return value in ("True", "true")
    if "/" in value:
        try:
            return [int(v) for v in value.split("/")]
        except ValueError:
            return value
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def parse_ps(text: str) -> dict:
    """The ``-ps`` string of the authors' run.py, ``"loss=bpr-max,layers=100/100,..."``.

    Values are typed: ``True``/``False`` -> bool, integers -> int, other
    numbers -> float, ``100/100`` -> ``[100, 100]``; anything else stays a
    string (``final_act=elu-0.5``). ``layers=100`` gives the int 100, which
    :func:`resolve` turns into ``[100]``.
    """
    out: dict = {}
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"ps {text!r}: {part!r} is not name=value")
        if key in out:
            raise ValueError(f"ps {text!r}: key {key!r} given twice")
        out[key] = _typed(value.strip())
    return out


# ---------------------------------------------------------------- resolving
def _normalise(src: dict, where: str, extra: dict) -> dict:
    """One source's keys in our spelling; ``final_act: elu-X`` split into ``elu`` + ``elu_param``."""
    known = set(known_keys(extra)) - set(_SOURCES)
    unknown = sorted(set(src) - known)
    if unknown:
        raise ValueError(f"{where}: unknown GRU4Rec key(s) {unknown}; known: {known_keys(extra)}")
    out = {}
    for key, value in src.items():
        if key in _INERT_THEANO:
            inert = _INERT_THEANO[key]
            same = value == inert if not isinstance(inert, float) else _is_number(value) and float(value) == inert
            if isinstance(inert, bool):
                same = _as_bool(value, key, where, strict=False) is inert
            if not same:
                raise ValueError(f"{where}: {key}={value!r} is not implemented (only {key}={inert!r}, "
                                 "what the authors' tuned settings use)")
            continue
        key = _ALIASES.get(key, key)
        if key in out:
            raise ValueError(f"{where}: layers given twice (as layers and hidden_size)")
        out[key] = value
    act = out.get("final_act")
    if isinstance(act, str):
        name, _, arg = act.partition("-")
        if name == "elu" and arg:
            try:
                alpha = float(arg)
            except ValueError:
                raise ValueError(f"{where}: final_act {act!r}: the ELU parameter is not a number") from None
            if "elu_param" in out and float(out["elu_param"]) != alpha:
                raise ValueError(f"{where}: final_act={act!r} and elu_param={out['elu_param']!r} contradict "
                                 "each other (two different ELU parameters)")
            out["final_act"], out["elu_param"], out[_DERIVED] = "elu", alpha, True
        elif act == "softmax":
            if out.get("loss", OFFICIAL_DEFAULTS["loss"]) != "cross-entropy":
                raise ValueError(f"{where}: final_act='softmax' is only cross-entropy's own softmax; "
                                 f"loss is {out.get('loss')!r}")
            out["final_act"] = "linear"  # the softmax is inside the cross-entropy loss
        elif act not in FINAL_ACTIVATIONS:
            raise ValueError(f"{where}: final_act {act!r} is not one of {FINAL_ACTIVATIONS} "
                             "(nor elu-<alpha>, nor softmax with cross-entropy)")
    elif act is not None:
        raise ValueError(f"{where}: final_act must be a string, got {act!r}")
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as_bool(value, key: str, where: str, strict: bool = True):
    if isinstance(value, bool):
        return value
    if value in (0, 1) and not isinstance(value, float):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if strict:
        raise ValueError(f"{where}: {key} must be True or False, got {value!r}")
    return None


def resolve(params: dict | None, extra: dict | None = None, base_dir: str | os.PathLike | None = None) -> dict:
    """The complete settings a run trains with (see the module docstring).

    ``params``: the run's ``params:``, possibly with ``params_file:`` (a path,
    relative to ``base_dir`` or the working directory) and ``ps:`` (a string).
    ``extra``: an implementation's own keys and their defaults (for example
    ``{"jit_compile": False}``), passed through unchecked. Unknown keys,
    contradictions and bad values raise :class:`ValueError`.
    """
    params = dict(params or {})
    extra = dict(extra or {})
    layers_src: list[tuple[str, dict]] = []
    if params.get("params_file") is not None:
        path = Path(params["params_file"])
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        layers_src.append((f"params_file {path}", read_params_file(path)))
    if params.get("ps") is not None:
        layers_src.append((f"ps {params['ps']!r}", parse_ps(params["ps"])))
    layers_src.append(("params", {k: v for k, v in params.items() if k not in _SOURCES}))

    given: dict = {}   # merged explicit settings
    origin: dict = {}  # key -> where it was given
    derived = False  # the given elu_param came from a final_act elu-<alpha> string
    for where, src in layers_src:
        src = _normalise(src, where, extra)
        if "final_act" in src and "elu_param" not in src and derived:
            del given["elu_param"], origin["elu_param"]  # a later final_act replaces the earlier ELU too
        if "elu_param" in src:
            derived = src.pop(_DERIVED, False)
        for key, value in src.items():
            given[key], origin[key] = value, where
    p = {**OFFICIAL_DEFAULTS, **OUR_DEFAULTS, **extra, **given}
    where = "GRU4Rec params"

    # types and ranges
    layers = p["layers"]
    if isinstance(layers, str):
        layers = _typed(layers)
    if isinstance(layers, int) and not isinstance(layers, bool):
        layers = [layers]
    if not isinstance(layers, (list, tuple)) or not layers or any(
            isinstance(h, bool) or not isinstance(h, int) or h <= 0 for h in layers):
        raise ValueError(f"{where}: layers must be a non-empty list of positive ints, got {p['layers']!r}")
    p["layers"] = [int(h) for h in layers]
    if p["embedding"] == "layersize":
        p["embedding"] = p["layers"][0]
    for key in _INTS:
        v = p[key]
        if isinstance(v, bool) or not _is_number(v) or int(v) != v:
            raise ValueError(f"{where}: {key} must be an integer, got {v!r} ({origin.get(key, 'default')})")
        p[key] = int(v)
    for key in _FLOATS:
        if not _is_number(p[key]):
            raise ValueError(f"{where}: {key} must be a number, got {p[key]!r} ({origin.get(key, 'default')})")
        p[key] = float(p[key])
    for key in _BOOLS:
        p[key] = _as_bool(p[key], key, f"{where} ({origin.get(key, 'default')})")
    if p["loss"] not in LOSSES:
        raise ValueError(f"{where}: loss {p['loss']!r} is not one of {LOSSES}")
    if p["onehot_dropout"] not in ONEHOT_DROPOUT:
        raise ValueError(f"{where}: onehot_dropout {p['onehot_dropout']!r} is not one of {ONEHOT_DROPOUT}")
    if p["batch_size"] < 1 or p["eval_batch_size"] < 1:
        raise ValueError(f"{where}: batch_size and eval_batch_size must be >= 1")
    if p["n_sample"] < 0 or p["embedding"] < 0 or p["n_epochs"] < 0 or p["sample_store_size"] < 1:
        raise ValueError(f"{where}: n_sample, embedding and n_epochs must be >= 0, sample_store_size >= 1")
    for key in ("dropout_p_embed", "dropout_p_hidden"):
        if not 0.0 <= p[key] < 1.0:
            raise ValueError(f"{where}: {key} must be in [0, 1), got {p[key]}")
    if p["learning_rate"] <= 0 or p["momentum"] < 0 or p["elu_param"] < 0:
        raise ValueError(f"{where}: learning_rate must be > 0, momentum and elu_param >= 0")

    # the final activation (module docstring)
    act, alpha = given.get("final_act"), p["elu_param"]
    alpha_given = "elu_param" in given

    def both(msg):
        return ValueError(f"{where}: final_act={act!r} ({origin['final_act']}) and elu_param={alpha!r} "
                          f"({origin['elu_param']}) contradict each other: {msg}")

    if act is not None and act != "elu":
        if alpha_given and alpha > 0:
            raise both(f"{act} output has no ELU; leave elu_param out (or 0) or use final_act elu")
        p["final_act"], p["elu_param"] = act, 0.0
    elif act == "elu":
        if alpha_given and alpha == 0:
            raise both("ELU with alpha 0 is no ELU; give elu_param > 0 or final_act linear")
        p["final_act"] = "elu"
    elif p["loss"] == "bpr-max":
        p["final_act"] = "elu" if alpha > 0 else "linear"
        p["elu_param"] = alpha if alpha > 0 else 0.0
    else:
        if alpha_given and alpha > 0 and p["loss"] != "cross-entropy":
            raise ValueError(f"{where}: elu_param={alpha!r} ({origin['elu_param']}) has no effect on loss "
                             f"{p['loss']!r} without final_act elu; give final_act elu or leave elu_param out")
        p["final_act"], p["elu_param"] = "linear", 0.0
    return p


def dropout_rates(p: dict) -> dict[str, float]:
    """Dropout probability of each site of resolved settings ``p``, in the
    order the sites are applied: ``embed`` (the input embedding) and
    ``hidden<i>`` (the output of GRU layer i). Both GRU4Rec implementations
    read their dropout from here (GRU4REC_API.md).

    With one-hot input there is no embedding. ``onehot_dropout: embed`` (the
    official PyTorch code) drops out the first layer's output with
    ``dropout_p_embed`` and the later layers' with ``dropout_p_hidden``;
    ``onehot_dropout: hidden`` (the Theano original) uses ``dropout_p_hidden``
    after every layer.
    """
    one_hot = not p["constrained_embedding"] and p["embedding"] == 0
    rates = {} if one_hot else {"embed": p["dropout_p_embed"]}
    for i in range(len(p["layers"])):
        embed_rule = one_hot and i == 0 and p["onehot_dropout"] == "embed"
        rates[f"hidden{i}"] = p["dropout_p_embed"] if embed_rule else p["dropout_p_hidden"]
    return rates


def describe(params: dict) -> str:
    """One line for a table note: final activation, dropout rule, session order."""
    known = set(known_keys())
    p = resolve({k: v for k, v in params.items() if k in known})  # idempotent on resolved settings
    act = f"ELU({p['elu_param']:g})" if p["final_act"] == "elu" else p["final_act"]
    parts = [f"{p['loss']}, final activation {act}"]
    if not p["constrained_embedding"] and p["embedding"] == 0:
        if p["onehot_dropout"] == "embed":
            parts.append(f"one-hot input: GRU output dropout = dropout_p_embed {p['dropout_p_embed']:g} "
                         "(official PyTorch rule)")
        else:
            parts.append(f"one-hot input: GRU output dropout = dropout_p_hidden {p['dropout_p_hidden']:g} "
                         "(Theano rule)")
    parts.append("sessions by first-event time" if p["time_sort"] else "sessions in SessionId order")
    return "; ".join(parts)
