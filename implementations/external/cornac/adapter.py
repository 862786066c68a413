"""Cornac's GRU4Rec (cornac==3.0.1) under the project's contract.

Run by the environment of ``requirements.txt`` beside this file::

    python adapter.py --train TRAIN.tsv --test TEST.tsv --params PARAMS.json --seed S --out DIR

What it does, in Cornac's own idiom (the way a Cornac user runs GRU4Rec):

1. the training split becomes Cornac's ``SequentialDataset`` (format ``SIT``:
   session, item, time), with the item index fixed to the project's
   (ascending ItemId, implementations/GRU4REC_API.md), so Cornac's item ``i``
   is our item ``i``;
2. ``cornac.models.GRU4Rec.fit`` trains it with the run's parameters
   translated (``translate`` says which became what and which cannot be
   expressed). Cornac's model is a port of the authors' PyTorch code:
   session-parallel mini-batches, shared popularity-sampled negatives,
   cross-entropy with logQ, BPR-max, constrained embedding and Adagrad with
   momentum and sparse updates all exist; it differs in the order of
   sessions (shuffled every epoch) and in the loss normalisation (see
   features.yaml);
3. every test session is walked from a zero hidden state through the
   model's own ``GRU4RecModel.forward`` with ``Y=None`` (models/gru4rec/
   gru4rec.py:275-283, scores against the whole output matrix), many
   sessions in parallel; the scores of the training items give the
   contract's two counts. That is what ``GRU4Rec.score`` (recom_gru4rec.py:
   296-307, via gru4rec.py:286-307) computes one session at a time.

Seconds per epoch: Cornac's ``fit`` runs its epochs inside one call; the
adapter times them by wrapping the ``trange`` the fit loop iterates over
(recom_gru4rec.py:234-235), which changes nothing in what is computed.
"""
from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

# adapter_common lives in the parent folder; appended (not prepended) so that
# this folder's name never shadows the ``cornac`` package itself
sys.path.append(str(Path(__file__).resolve().parent.parent))
import adapter_common as ac  # noqa: E402

import numpy as np  # noqa: E402

LIBRARY = "cornac"
#: losses of cornac/models/gru4rec/recom_gru4rec.py:26-35 that are GRU4Rec's own
LOSSES = {"cross-entropy": "cross-entropy", "bpr-max": "bpr-max", "bpr": "bpr", "top1": "top1"}


def translate(params: dict, device: str) -> tuple[dict, ac.Translation]:
    """The run's (resolved) GRU4Rec parameters -> keyword arguments of ``cornac.models.GRU4Rec``."""
    tr = ac.Translation(params)
    kw: dict = {}
    loss = tr.get("loss")
    if loss not in LOSSES:
        raise ac.AdapterError(
            f"Cornac's GRU4Rec has no loss {loss!r} (cornac/models/gru4rec/recom_gru4rec.py:26-35 lists "
            f"cross-entropy, bpr, bpr-max, top1, bce, ce); GRU4Rec losses it can run: {sorted(LOSSES)}")
    kw["loss"] = tr.use("loss", "loss", LOSSES[loss])

    act = tr.get("final_act")
    elu = float(tr.get("elu_param"))
    if loss == "bpr-max":
        # seq_utils/losses.py:79-80: ELU(elu_param) whenever elu_param > 0, the official rule
        kw["elu_param"] = tr.use("elu_param")
        tr.covered("final_act")
    else:
        kw["elu_param"] = tr.also("elu_param", 0.0)
        if act in ac.LINEAR and elu == 0:
            tr.no_setting("final_act", "Cornac's scores are linear for this loss")
            tr.no_setting("elu_param", f"no ELU with loss {loss}, as in Cornac (losses.py only applies it in BPR-max)")
        else:
            tr.cannot("final_act", f"Cornac applies no final activation with loss {loss} (seq_utils/losses.py)")
            tr.covered("elu_param")
    if loss == "bpr-max":
        kw["bpreg"] = tr.use("bpreg")
    else:
        kw["bpreg"] = tr.also("bpreg", 1.0)
        tr.no_setting("bpreg", f"BPR-max score regularisation has no effect on loss {loss}")

    kw["layers"] = tr.use("layers", "layers", list(tr.get("layers")))
    kw["embedding"] = tr.use("embedding", "embedding", int(tr.get("embedding")))
    kw["constrained_embedding"] = tr.use("constrained_embedding", "constrained_embedding",
                                         bool(tr.get("constrained_embedding")))
    onehot = tr.one_hot
    kw["dropout_p_embed"] = tr.use("dropout_p_embed")
    kw["dropout_p_hidden"] = tr.use("dropout_p_hidden")
    if onehot and tr.get("onehot_dropout") == "hidden":
        tr.cannot("onehot_dropout", "in one-hot mode Cornac drops out the first layer's output with "
                  "dropout_p_embed (models/gru4rec/gru4rec.py:276-280), the official PyTorch rule; the "
                  "Theano rule (dropout_p_hidden there) cannot be chosen")
    else:
        tr.no_setting("onehot_dropout", "Cornac follows the official PyTorch rule (dropout_p_embed on the "
                      "one-hot layer's output, gru4rec.py:276-280)" if onehot else "applies to one-hot input only")

    kw["learning_rate"] = tr.use("learning_rate")
    kw["momentum"] = tr.use("momentum")  # IndexedAdagradM: Adagrad with momentum, sparse rows
    kw["batch_size"] = tr.use("batch_size")
    tr.differs("batch_size.loss_divisor",
               "Cornac divides each step's summed loss by the CURRENT number of lanes (recom_gru4rec.py:267 "
               "batch_size=len(in_iids); seq_utils/losses.py:74 cross-entropy and :87 BPR-max divide by "
               "item_scores.size(0)), the authors' code by the nominal batch_size, so the shrinking last "
               "steps of an epoch weigh more")
    kw["n_sample"] = tr.use("n_sample")
    kw["sample_alpha"] = tr.use("sample_alpha")
    tr.cannot("sample_store_size", "Cornac draws the extra negatives of every mini-batch with "
              "rng.choice (seq_utils/iterators.py:91,130), no pre-drawn store")
    kw["logq"] = tr.use("logq")
    kw["n_epochs"] = tr.use("n_epochs")
    tr.cannot("time_sort", "Cornac shuffles the session order every epoch (recom_gru4rec.py:256, "
              "shuffle=True; data/dataset.py:433-435), and fills free lanes from the end of each batch "
              "of sessions (seq_utils/iterators.py:101, l_pool.pop())")
    tr.use("eval_batch_size", "adapter.parallel_test_sessions")
    kw["device"] = tr.also("device", device)
    kw["model_selection"] = tr.also("model_selection", "last")
    return kw, tr


class EpochClock:
    """Wraps the progress bar Cornac's fit loop iterates over: one lap of ``timer`` per epoch."""

    def __init__(self, bar, timer: ac.Timer):
        self.bar = bar
        self.timer = timer

    def __iter__(self):
        self.timer.start()
        started = False
        for epoch in self.bar:
            if started:
                self.timer.lap()
            started = True
            yield epoch
        if started:
            self.timer.lap()

    def __getattr__(self, name):  # set_postfix and the rest go to the real bar
        return getattr(self.bar, name)


def score_sessions(model, layers: list, events: ac.PredictionEvents, n_items: int, lanes: int,
                   device: str) -> tuple[np.ndarray, np.ndarray]:
    """Walk every test session from a zero state through ``model.forward``; the two counts per event."""
    import torch

    higher = np.zeros(len(events), np.int64)
    ties = np.zeros(len(events), np.int64)
    first, n_events = events.sessions  # each session's first event, its number of prediction events
    inputs = events.input_idx
    model.eval()
    with torch.no_grad():
        for g in range(0, len(first), lanes):
            # longest sessions first: the sessions still running are always the first rows
            order = np.argsort(-n_events[g:g + lanes], kind="stable")
            k0 = first[g:g + lanes][order]
            n = n_events[g:g + lanes][order]
            H = [torch.zeros((len(k0), h), dtype=torch.float32, device=device) for h in layers]
            for t in range(int(n[0])):
                active = int(np.count_nonzero(n > t))
                H = [h[:active] for h in H]
                rows = k0[:active] + t
                x = torch.as_tensor(inputs[rows], device=device)
                scores = model.forward(x, H, None, training=False)[:, :n_items]  # drop the padding row
                higher[rows], ties[rows] = ac.rank_counts(scores.cpu().numpy(), events.target_idx[rows])
    return higher, ties


def main(argv=None) -> None:
    args = ac.parse_args(argv, description=__doc__.splitlines()[0])
    import torch
    import cornac
    from cornac.data import SequentialDataset
    from cornac.models import GRU4Rec
    from cornac.models.gru4rec import recom_gru4rec

    timer = ac.Timer()
    ac.set_torch_threads(torch)
    # every RNG Cornac's GRU4Rec touches: its own RandomState (negatives), the
    # dataset's (session order), torch's (dropout); numpy's global one is
    # re-seeded with 42 by the weight init (gru4rec.py:154), as the authors do
    device = ac.seed_everything(torch, args.seed)

    train, test, index, events = ac.read_inputs(args)
    kw, tr = translate(args.params, device)

    iid_map = OrderedDict((int(i), k) for k, i in enumerate(index.item_ids))  # Cornac index = ours
    triples = zip(train["SessionId"].tolist(), train["ItemId"].tolist(), train["Time"].tolist())
    train_set = SequentialDataset.build(list(triples), fmt="SIT", global_iid_map=iid_map, seed=args.seed)
    if train_set.num_items != len(index):
        raise ac.AdapterError(f"Cornac indexed {train_set.num_items} items, the split has {len(index)}")

    model = GRU4Rec(**kw, seed=args.seed, verbose=False)
    real_trange = recom_gru4rec.trange
    recom_gru4rec.trange = lambda *a, **k: EpochClock(real_trange(*a, **k), timer)
    try:
        model.fit(train_set)
    finally:
        recom_gru4rec.trange = real_trange

    higher, ties = score_sessions(model.model, kw["layers"], events, len(index),
                                  int(tr.get("eval_batch_size")), device)
    ac.finish(args.out, events, higher, ties, library=LIBRARY, version=cornac.__version__, timer=timer,
              translation=tr, device=device)


if __name__ == "__main__":
    ac.run_main(main, "cornac")
