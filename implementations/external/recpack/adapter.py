"""RecPack's GRU4Rec (recpack==0.3.6) under the project's contract.

Run by the environment of ``requirements.txt`` beside this file (RecPack pins
numpy 1 and pandas 2, so it has its own numpy and pandas there)::

    python adapter.py --train TRAIN.tsv --test TEST.tsv --params PARAMS.json --seed S --out DIR

What it does, in RecPack's own idiom:

1. the training split becomes an ``InteractionMatrix`` (a session plays
   RecPack's user; users are numbered in the order the run serves sessions:
   by the time of their first event, or by SessionId with ``time_sort:
   false``; items in the project's order, ascending ItemId);
2. ``GRU4RecCrossEntropy`` (loss cross-entropy) or ``GRU4RecNegSampling``
   (bpr, top1, bpr-max, top1-max) is built with the run's parameters
   translated (``translate``) and trained by RecPack's own epoch,
   ``GRU4Rec._train_epoch`` (recpack/algorithms/gru4rec.py:235-293), in the
   loop ``TorchMLAlgorithm.fit`` runs (algorithms/base.py:697-701). The
   adapter runs that loop itself because ``fit`` also evaluates a validation
   split after every epoch (base.py:705-711), which GRU4Rec's protocol does
   not have; with ``keep_last`` that evaluation only costs time;
3. every test session is fed through the model's own forward pass,
   ``GRU4RecTorch.forward`` (gru4rec.py:777-810), in column chunks with the
   hidden state carried, as RecPack's ``_predict`` does (gru4rec.py:
   320-364); its output holds the scores of all items (plus the padding
   token, dropped, as ``_predict`` drops it at line 361) after EVERY event,
   so every prefix is scored, not only the last one ``_predict`` keeps.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

# adapter_common lives in the parent folder; appended (not prepended) so that
# this folder's name never shadows the ``recpack`` package itself
sys.path.append(str(Path(__file__).resolve().parent.parent))
import adapter_common as ac  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

LIBRARY = "recpack"
#: GRU4RecNegSampling's losses (recpack/algorithms/gru4rec.py:687-692)
RANKING_LOSSES = ("top1", "top1-max", "bpr", "bpr-max")
#: floats of model output held at once while scoring (about 400 MB)
SCORE_BUDGET = 100_000_000


def translate(params: dict) -> tuple[dict, ac.Translation]:
    """The run's (resolved) GRU4Rec parameters -> keyword arguments of RecPack's GRU4Rec classes.

    Returns the keyword arguments (with ``"class"``: the class name) and the translation record.
    """
    tr = ac.Translation(params)
    kw: dict = {}
    loss = tr.get("loss")
    if loss == "cross-entropy":
        kw["class"] = tr.use("loss", "class", "GRU4RecCrossEntropy")
        tr.cannot("n_sample", "RecPack's cross-entropy is a full softmax over all items "
                  "(nn.CrossEntropyLoss on every output, gru4rec.py:514,524): no sampled negatives")
        tr.cannot("sample_alpha", "no sampled negatives with RecPack's cross-entropy")
        tr.no_setting("sample_store_size", "no sampled negatives with RecPack's cross-entropy")
        tr.absent("logq", "RecPack has no logQ correction (and its full softmax samples nothing to correct)",
                  why_off="no logQ correction")
    elif loss in RANKING_LOSSES:
        kw["class"] = tr.use("loss", "class", "GRU4RecNegSampling")
        kw["loss_fn"] = tr.also("loss_fn", loss)
        kw["num_negatives"] = tr.use("n_sample", "num_negatives")
        tr.cannot("sample_alpha", "RecPack draws its negatives uniformly, num_negatives per target, "
                  "not shared by the mini-batch (algorithms/samplers.py:369, np.random.randint)")
        tr.no_setting("sample_store_size", "RecPack draws negatives on the fly")
        tr.no_setting("logq", "logQ applies to cross-entropy only")
    else:
        raise ac.AdapterError(f"RecPack's GRU4Rec has no loss {loss!r}; it has cross-entropy "
                              f"(GRU4RecCrossEntropy) and {list(RANKING_LOSSES)} (GRU4RecNegSampling)")

    tr.absent("final_act", "RecPack applies no activation to the scores", off=ac.LINEAR,
              why_off="RecPack's scores are linear (nn.Linear output, gru4rec.py:770,808)")
    tr.absent("elu_param", "RecPack applies no ELU to the scores (loss_functions.py bpr_max_loss)",
              why_off="no ELU on the scores, as in RecPack")
    if loss == "bpr-max":
        tr.cannot("bpreg", "RecPack's bpr_max_loss has reg=1.0 and GRU4RecNegSampling never passes "
                  "another value (gru4rec.py:719-722)")
    else:
        tr.no_setting("bpreg", f"BPR-max score regularisation has no effect on loss {loss}")

    layers = list(tr.get("layers"))
    if len(set(layers)) != 1:
        raise ac.AdapterError(f"RecPack's GRU4Rec stacks layers of one size (torch nn.GRU, gru4rec.py:762-768); "
                              f"layers {layers} cannot be run")
    kw["hidden_size"] = tr.use("layers", "hidden_size", layers[0])
    kw["num_layers"] = tr.also("num_layers", len(layers))

    embedding, constrained = int(tr.get("embedding")), bool(tr.get("constrained_embedding"))
    if constrained:
        kw["num_components"] = tr.also("num_components", layers[-1])
        tr.cannot("constrained_embedding", "RecPack has a separate input embedding (emb) and output layer "
                  "(lin) (gru4rec.py:761,770); the input embedding gets the size the tied matrix would have")
        tr.no_setting("embedding", "the constrained embedding has the last layer's size")
    elif embedding > 0:
        kw["num_components"] = tr.use("embedding", "num_components", embedding)
        tr.no_setting("constrained_embedding", "separate input embedding, as in RecPack")
    else:
        kw["num_components"] = tr.also("num_components", layers[0])
        tr.no_setting("constrained_embedding", "not constrained, as in RecPack")
        tr.cannot("embedding", f"RecPack has no one-hot input; it always embeds items (gru4rec.py:761), "
                  f"here in {layers[0]} dimensions")
    p_embed, p_hidden = float(tr.get("dropout_p_embed")), float(tr.get("dropout_p_hidden"))
    tr.no_one_hot_input("RecPack")
    # one rate for the input embedding, the GRU output and between layers (gru4rec.py:758,766,789,806)
    kw["dropout"] = tr.also("dropout", max(p_embed, p_hidden))
    if p_embed == p_hidden:
        tr.covered("dropout_p_embed", "dropout_p_hidden")
    else:
        why = (f"RecPack has one dropout rate for the input embedding and the GRU output (gru4rec.py:758,789,806); "
               f"it gets the larger of dropout_p_embed and dropout_p_hidden ({kw['dropout']})")
        tr.cannot("dropout_p_embed" if p_embed < p_hidden else "dropout_p_hidden", why)
        tr.covered("dropout_p_embed", "dropout_p_hidden")

    kw["optimization_algorithm"] = tr.also("optimization_algorithm", "adagrad")
    kw["learning_rate"] = tr.use("learning_rate")
    tr.differs("learning_rate.adagrad_eps",
               "RecPack builds optim.Adagrad(parameters, lr) with torch's defaults (algorithms/gru4rec.py:203): "
               "eps 1e-10, where the authors' Adagrad adds 1e-6", value="eps 1e-6")
    tr.differs("init",
               "RecPack initialises every parameter, biases included, uniform in +-0.01 "
               "(algorithms/gru4rec.py:812-816, init_weights), where the authors draw uniform "
               "+-sqrt(6 / (fan_in + fan_out)) and start biases at 0",
               value="uniform +-sqrt(6/(fan_in+fan_out)), biases 0")
    tr.absent("momentum", "RecPack's adagrad is torch.optim.Adagrad without momentum (gru4rec.py:202-203; "
              "momentum only with its sgd)", why_off="torch.optim.Adagrad has no momentum")
    kw["clipnorm"] = tr.also("clipnorm", None)  # RecPack clips at 1.0 by default; the authors never clip
    kw["bptt"] = tr.also("bptt", 1)  # one step per mini-batch, the state carried and detached
    kw["batch_size"] = tr.use("batch_size")
    kw["max_epochs"] = tr.use("n_epochs", "max_epochs")
    kw["keep_last"] = tr.also("keep_last", True)
    tr.use("time_sort", "adapter.session_numbering_by_first_event_time")
    tr.use("eval_batch_size", "adapter.parallel_test_sessions")
    return kw, tr


def interaction_matrix(train: pd.DataFrame, index: ac.ItemIndex, time_sort: bool):
    """The training split as RecPack's ``InteractionMatrix``; sessions numbered in serving order."""
    from recpack.matrix import InteractionMatrix

    first = train.groupby("SessionId", sort=True)["Time"].min()
    order = first.sort_values(kind="stable").index if time_sort else first.index
    uid = pd.Series(np.arange(len(order), dtype=np.int64), index=order)
    frame = pd.DataFrame({
        "uid": uid.loc[train["SessionId"]].to_numpy(),
        "iid": index.to_index(train["ItemId"]),
        "ts": train["Time"].to_numpy(),
    })
    return InteractionMatrix(frame, item_ix="iid", user_ix="uid", timestamp_ix="ts",
                             shape=(len(order), len(index)))


def score_sessions(algo, events: ac.PredictionEvents, n_items: int, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """Every prefix of every test session through ``GRU4RecTorch.forward``; the two counts per event."""
    import torch

    model, pad, device = algo.model_, algo.pad_token, algo.device
    higher = np.zeros(len(events), np.int64)
    ties = np.zeros(len(events), np.int64)
    first, n_events = events.sessions  # each session's first event, its number of prediction events
    model.eval()
    with torch.no_grad():
        for g in range(0, len(first), lanes):
            # pack_padded_sequence wants the longest sessions first (gru4rec.py:797)
            order = np.argsort(-n_events[g:g + lanes], kind="stable")
            k0, n = first[g:g + lanes][order], n_events[g:g + lanes][order]
            # the inputs of a session are its events but the last: exactly its prediction events
            seq = np.full((len(k0), int(n[0])), pad, dtype=np.int64)
            cols = np.arange(seq.shape[1])[None, :]
            valid = cols < n[:, None]
            event_of = k0[:, None] + cols  # event index of each valid cell
            seq[valid] = events.input_idx[event_of[valid]]
            seq_t = torch.as_tensor(seq, device=device)
            hidden = model.init_hidden(len(k0)).to(device)
            width = max(1, SCORE_BUDGET // (len(k0) * (n_items + 1)))
            for c0 in range(0, seq.shape[1], width):
                chunk = seq_t[:, c0:c0 + width]
                true_rows = (chunk != pad).any(axis=1)
                out, hidden[:, true_rows, :] = model(chunk[true_rows], hidden[:, true_rows, :])
                rows = np.flatnonzero(true_rows.cpu().numpy())
                cell = valid[rows, c0:c0 + out.shape[1]]
                r, c = np.nonzero(cell)
                k = event_of[rows[r], c0 + c]
                scores = out[torch.as_tensor(r, device=device), torch.as_tensor(c, device=device), :n_items]
                higher[k], ties[k] = ac.rank_counts(scores.cpu().numpy(), events.target_idx[k])
    return higher, ties


def main(argv=None) -> None:
    args = ac.parse_args(argv, description=__doc__.splitlines()[0])
    import torch
    import recpack
    from importlib.metadata import version
    from recpack.algorithms import GRU4RecCrossEntropy, GRU4RecNegSampling

    timer = ac.Timer()
    ac.set_torch_threads(torch)
    # RecPack seeds torch and numpy's global RNG in TorchMLAlgorithm.__init__
    # (algorithms/base.py:477-478); its negatives use numpy's global RNG
    random.seed(args.seed)

    train, test, index, events = ac.read_inputs(args)
    kw, tr = translate(args.params)
    cls = {"GRU4RecCrossEntropy": GRU4RecCrossEntropy, "GRU4RecNegSampling": GRU4RecNegSampling}[kw.pop("class")]
    X = interaction_matrix(train, index, bool(tr.get("time_sort")))

    algo = cls(**kw, seed=args.seed)
    algo._init_model(X)
    for _ in range(algo.max_epochs):  # TorchMLAlgorithm.fit's loop (base.py:697-701) without its validation
        algo.model_.train()
        with timer.epoch():
            algo._train_epoch(X)

    higher, ties = score_sessions(algo, events, len(index), int(tr.get("eval_batch_size")))
    ac.finish(args.out, events, higher, ties, library=LIBRARY,
              version=getattr(recpack, "__version__", None) or version("recpack"), timer=timer, translation=tr,
              device=str(algo.device))


if __name__ == "__main__":
    ac.run_main(main, "recpack")
