"""The authors' official PyTorch GRU4Rec (hidasib/GRU4Rec_PyTorch_Official) under the project's contract.

The code is NOT part of this project (its licence allows research and
education use only): the user points at a checkout, which this adapter
imports as it is::

    GRU4REC_ADAPTER_OPTIONS='{"checkout": "/path/to/GRU4Rec_PyTorch_Official"}' \\
        python adapter.py --train TRAIN.tsv --test TEST.tsv --params PARAMS.json --seed S --out DIR

(the workflow sets the variable from ``external.authors.checkout`` in the
config). Training goes through the code's own classes, as its ``run.py``
does: ``GRU4Rec(device=...)``, ``set_params(**params)``, ``fit(train,
sample_cache_max_size=...)`` (compatibility-mode initialisation, its
default). Its per-epoch times are read from the lines ``fit`` prints.
Scoring walks every test session from a zero state through the trained
model's own ``forward(X, H, None, training=False)`` (as its
``evaluation.py`` does) and counts, over all training items, the items
above and tied with the next item.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import sys
from pathlib import Path

# adapter_common lives in the parent folder (appended, so nothing here shadows a package)
sys.path.append(str(Path(__file__).resolve().parent.parent))
import adapter_common as ac  # noqa: E402

import numpy as np  # noqa: E402

LIBRARY = "GRU4Rec_PyTorch_Official"
OPTIONS_ENV = "GRU4REC_ADAPTER_OPTIONS"
#: A line ``fit`` prints per epoch: "Epoch1 --> loss: 6.123456 \t(1.23s) \t[...]".
EPOCH_LINE = re.compile(r"Epoch(\d+) --> loss: ([-+0-9.eE]+|nan)\s+\(([0-9.]+)s\)")
#: The code's own parameters (GRU4Rec.__init__ of gru4rec_pytorch.py) that ours map to one to one.
SAME_NAME = ("loss", "layers", "batch_size", "dropout_p_embed", "dropout_p_hidden", "learning_rate",
             "momentum", "sample_alpha", "n_sample", "embedding", "constrained_embedding", "n_epochs",
             "bpreg", "elu_param", "logq")


def checkout_dir() -> Path:
    """The checkout named by $GRU4REC_ADAPTER_OPTIONS, checked to hold gru4rec_pytorch.py."""
    try:
        opts = json.loads(os.environ.get(OPTIONS_ENV) or "{}")
    except json.JSONDecodeError as e:
        raise ac.AdapterError(f"${OPTIONS_ENV}: not valid JSON ({e})") from None
    path = opts.get("checkout") if isinstance(opts, dict) else None
    if not path:
        raise ac.AdapterError(
            f"no checkout of the authors' code configured: set external.authors.checkout in the config "
            f"(or ${OPTIONS_ENV}='{{\"checkout\": \"/path/to/GRU4Rec_PyTorch_Official\"}}')")
    path = Path(path).expanduser().resolve()
    if not (path / "gru4rec_pytorch.py").is_file():
        raise ac.AdapterError(f"{path}: not a checkout of GRU4Rec_PyTorch_Official (no gru4rec_pytorch.py)")
    return path


def checkout_version(path: Path) -> str:
    """The checkout's git commit when it is a git work tree, else the sha256 of gru4rec_pytorch.py."""
    head = path / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return "commit " + (path / ".git" / ref[5:]).read_text().strip()[:12]
        return "commit " + ref[:12]
    except OSError:
        digest = hashlib.sha256((path / "gru4rec_pytorch.py").read_bytes()).hexdigest()[:12]
        return f"gru4rec_pytorch.py sha256 {digest}"


def translate(params: dict) -> tuple[dict, dict, ac.Translation]:
    """Our resolved GRU4Rec params -> (set_params keywords, fit keywords, record)."""
    tr = ac.Translation(params)
    loss = tr.get("loss")
    if loss not in ("cross-entropy", "bpr-max"):
        raise ac.AdapterError(f"the official PyTorch code has the losses cross-entropy and bpr-max only "
                              f"(gru4rec_pytorch.py set_loss_function); loss {loss!r} cannot be run")
    kw = {k: tr.use(k) for k in SAME_NAME}
    kw["layers"] = list(kw["layers"])
    act = tr.get("final_act")
    elu = float(tr.get("elu_param"))
    if (act == "elu" and loss == "bpr-max" and elu > 0) or (act == "linear" and elu == 0):
        tr.no_setting("final_act", "the code applies ELU(elu_param) on BPR-max when elu_param > 0, "
                                   "linear scores otherwise")
    else:
        tr.cannot("final_act", "the code has no final activation setting of its own")
    if tr.one_hot and tr.get("onehot_dropout") == "hidden":
        tr.cannot("onehot_dropout", "in one-hot mode the code drops out the GRU output with dropout_p_embed")
    else:
        tr.no_setting("onehot_dropout", "the code's own rule (dropout_p_embed in one-hot mode)")
    if tr.get("time_sort"):
        tr.no_setting("time_sort", "fit serves sessions by the time of their first event")
    else:
        tr.cannot("time_sort", "fit always serves sessions by time (session_order='time')")
    fit_kw = {"sample_cache_max_size": tr.use("sample_store_size", "sample_cache_max_size")}
    tr.use("eval_batch_size", "eval_batch_size (the adapter's test lanes)")
    return kw, fit_kw, tr


def score_sessions(gru, torch, events: ac.PredictionEvents, perm: np.ndarray, lanes: int, device):
    """Walk every test session from a zero state through gru.model.forward; (higher, ties) per event.

    Sessions run ``lanes`` at a time, one event per step; ``perm[i]`` is the
    code's column of our item ``i``.
    """
    higher = np.zeros(len(events), np.int64)
    ties = np.zeros(len(events), np.int64)
    first_row, lengths = events.sessions  # each session's first event, its number of events (inputs)
    code_idx = perm[events.item_idx]  # the code's index of every kept test event
    for b in range(0, len(first_row), lanes):
        rows0 = first_row[b:b + lanes]
        n_steps = lengths[b:b + lanes]
        H = [torch.zeros((len(rows0), h), dtype=torch.float32, device=device) for h in gru.layers]
        for t in range(int(n_steps.max())):
            active = n_steps > t
            rows = rows0 + np.minimum(t, n_steps - 1)  # inactive lanes repeat a valid row, ignored
            X = torch.as_tensor(code_idx[events.end[rows] - 1], device=device)
            with torch.no_grad():
                O = gru.model.forward(X, H, None, training=False)
            scores = O[:, torch.as_tensor(perm, device=device)].float().cpu().numpy()
            r = rows[active]
            higher[r], ties[r] = ac.rank_counts(scores[active], events.target_idx[r])
    return higher, ties


class _TorchWithSeriesTensor:
    """``torch`` as the authors' module sees it, except that ``torch.tensor`` of a pandas Series
    takes its values: gru4rec_pytorch.py:454 (the logQ set-up) passes a Series, which
    torch 2.13 refuses ("could not determine the shape of object type 'Series'"). The
    values are the same numbers; nothing else changes."""

    def __init__(self, torch):
        self._torch = torch

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def tensor(self, data, *args, **kwargs):
        if hasattr(data, "to_numpy") and hasattr(data, "index"):
            data = data.to_numpy()
        return self._torch.tensor(data, *args, **kwargs)


def main(argv=None) -> None:
    args = ac.parse_args(argv, description=__doc__.splitlines()[0])
    checkout = checkout_dir()
    sys.path.insert(0, str(checkout))
    import torch
    import gru4rec_pytorch  # the authors' code, from the user's checkout
    from gru4rec_pytorch import GRU4Rec

    gru4rec_pytorch.torch = _TorchWithSeriesTensor(torch)

    ac.set_torch_threads(torch)
    # sampling and dropout; weights: compatibility mode seeds numpy with 42
    device = torch.device("cuda:0" if ac.seed_everything(torch, args.seed) == "cuda" else "cpu")

    timer = ac.Timer()
    train, test, index, events = ac.read_inputs(args)
    kw, fit_kw, tr = translate(args.params)

    gru = GRU4Rec(device=device)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        gru.set_params(**kw)
        gru.fit(train, **fit_kw)
    sys.stderr.write(printed.getvalue())
    if getattr(gru, "error_during_train", False):
        raise ac.AdapterError("the official code stopped training on a NaN loss (error_during_train)")
    epochs = [(int(e), float(loss), float(s)) for e, loss, s in EPOCH_LINE.findall(printed.getvalue())]
    if len(epochs) != kw["n_epochs"]:
        raise ac.AdapterError(f"read {len(epochs)} epoch line(s) from fit's output, expected {kw['n_epochs']}")

    gru.model.eval()
    itemidmap = gru.data_iterator.itemidmap  # ItemId -> the code's column
    perm = itemidmap[index.item_ids].to_numpy().astype(np.int64)
    higher, ties = score_sessions(gru, torch, events, perm, int(tr.get("eval_batch_size")), device)
    # the code's own evaluation of the same model (conservative ties): a cross-check of the
    # rank record, which the project's one evaluation turns into metrics
    from evaluation import batch_eval

    # (its iterator needs at least batch_size test sessions)
    n_sessions = test.loc[index.contains(test["ItemId"].to_numpy()), "SessionId"].nunique()
    lanes = min(int(tr.get("eval_batch_size")), int(n_sessions))
    recall, mrr = batch_eval(gru, test, cutoff=[20], batch_size=lanes, mode="conservative")
    ac.finish(
        args.out, events, higher, ties, library=LIBRARY, version=checkout_version(checkout), timer=timer,
        translation=tr, seconds_per_epoch=[s for _, _, s in epochs],
        train_loss=[loss for _, loss, _ in epochs],
        train_loss_note="fit's printed epoch loss: mean loss per training event",
        checkout=str(checkout),
        device=str(device),
        init="compatibility mode (fit's default: np.random.seed(42)); the run's seed drives sampling and dropout",
        own_evaluation={"protocol": "evaluation.batch_eval, mode conservative",
                        "recall@20": float(recall[20]), "mrr@20": float(mrr[20])},
        compatibility_shims=["torch.tensor(pandas.Series) -> torch.tensor(Series.to_numpy()) inside "
                             "gru4rec_pytorch (line 454 of the logQ set-up fails on torch 2.13 otherwise)"],
    )


if __name__ == "__main__":
    ac.run_main(main, "authors")
