"""Torch-RecHub's GRU4Rec (torch-rechub==0.9.0) under the project's contract.

Run by the environment of ``requirements.txt`` beside this file::

    python adapter.py --train TRAIN.tsv --test TEST.tsv --params PARAMS.json --seed S --out DIR

Torch-RecHub's ``GRU4Rec`` (torch_rechub/models/matching/gru4rec.py) is not
the session model of the paper: it is a two-tower retrieval model. The user
tower embeds a padded item history, runs a 2-layer bias-free ``nn.GRU`` over
it from a zero state, concatenates the last layer's final state with the
user's own features, passes that through an MLP (Linear, BatchNorm, ReLU,
Dropout) and L2-normalises it; the item tower is the L2-normalised item
embedding (the same table the history uses); the score is their dot product,
a cosine. What the adapter does, in the library's idiom:

1. every prefix of every training session becomes one training example
   (history = the session so far, target = the next item), the shape
   ``utils/match.py:generate_seq_feature_match`` gives (lines 207-232); the
   adapter builds them itself because that function holds each session's
   last prefix out as a test example (line 237). Histories are padded with
   the library's ``pad_sequences`` (utils/data.py:245, padding 'pre', the
   default of ``gen_model_input``), 0 is the padding token, item ``i`` of the
   project's index is token ``i + 1``. A session has no user features, so the
   user tower gets one constant feature (vocabulary 1), which the model
   requires;
2. it is trained by the library's ``MatchTrainer.train_one_epoch``
   (trainers/match_trainer.py:105-176), in the loop ``MatchTrainer.fit`` runs
   (lines 182-184; fit would also write model.pth), with in-batch negatives
   (``in_batch_neg=True``, lines 118-138): a softmax cross-entropy over the
   positive and the other B-1 targets of the mini-batch (loss
   cross-entropy), or BPR against them (loss bpr). The list-wise path with
   sampled negatives (mode 2 without in_batch_neg) is NOT used, because
   there ``GRU4Rec.forward`` sums the products over the candidate axis
   (models/matching/gru4rec.py:52, ``.sum(dim=1)`` of a [B, 1+n, D] tensor)
   and returns [B, D] embedding coordinates instead of [B, 1+n] item scores,
   so the softmax is taken over coordinates, not items;
3. every test prefix goes through the user tower (``mode = "user"``) and
   every training item through the item tower (``mode = "item"``), as the
   library's ``MatchTrainer.inference_embedding`` does (lines 250-264); the
   score of every item is the dot product, computed exactly (the library's
   examples query an approximate Annoy index instead).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # the trainer's per-batch progress bars

# adapter_common lives in the parent folder; appended (not prepended) so that
# this folder's name never shadows the ``torch_rechub`` package itself
sys.path.append(str(Path(__file__).resolve().parent.parent))
import adapter_common as ac  # noqa: E402

import numpy as np  # noqa: E402

LIBRARY = "torch-rechub"
#: training modes of MatchTrainer (trainers/match_trainer.py:84-92) for our losses, with in-batch negatives
MODES = {"cross-entropy": 2, "bpr": 1}
#: the GRU's depth: GRU4Rec reads user_params['num_layers'] (gru4rec.py:40) but also passes every
#: user_params key to MLP (line 41), which has no num_layers argument, so only the default 2 works
GRU_LAYERS = 2


def translate(params: dict, device: str) -> tuple[dict, ac.Translation]:
    """The run's (resolved) GRU4Rec parameters -> Torch-RecHub settings (model, trainer, data)."""
    tr = ac.Translation(params)
    s: dict = {}
    loss = tr.get("loss")
    if loss not in MODES:
        raise ac.AdapterError(
            f"Torch-RecHub's MatchTrainer has softmax cross-entropy (mode 2) and BPR (mode 1) with in-batch "
            f"negatives (trainers/match_trainer.py:84-92,118-138); loss {loss!r} cannot be run")
    s["mode"] = tr.use("loss", "mode", MODES[loss])
    s["in_batch_neg"] = tr.also("in_batch_neg", True)
    tr.cannot("n_sample", "only in-batch negatives: the sampled-negative path goes through GRU4Rec.forward, "
              "which sums over the candidate axis (models/matching/gru4rec.py:52) and scores no items")
    tr.cannot("sample_alpha", "no sampled negatives (see n_sample)")
    tr.no_setting("sample_store_size", "no sampled negatives (see n_sample)")
    tr.absent("logq", "Torch-RecHub has no logQ correction", why_off="no logQ correction")

    tr.absent("final_act", "no activation on the scores (cosine of the two towers)", off=ac.LINEAR,
              why_off="the scores are the dot products of the two towers (a cosine), no activation")
    tr.absent("elu_param", "no ELU on the scores")
    tr.no_setting("bpreg", f"BPR-max score regularisation has no effect on loss {loss}")

    layers = list(tr.get("layers"))
    if len(set(layers)) != 1:
        raise ac.AdapterError(f"Torch-RecHub's GRU4Rec stacks GRU layers of one size (the embedding size, "
                              f"gru4rec.py:40); layers {layers} cannot be run")
    s["embed_dim"] = tr.use("layers", "embed_dim", layers[0])  # = the GRU's hidden size (gru4rec.py:40)
    s["gru_layers"] = tr.also("gru_layers", GRU_LAYERS)
    if len(layers) != GRU_LAYERS:
        tr.not_expressed["layers.depth"] = (
            f"the GRU always has {GRU_LAYERS} layers: user_params['num_layers'] is read at gru4rec.py:40 but "
            f"also passed to MLP (line 41), which refuses it (run's value: {len(layers)} layer(s), {layers})")
    s["mlp_dims"] = tr.also("user_params.dims", [layers[0]])  # the MLP must end in the item embedding size
    embedding, constrained = int(tr.get("embedding")), bool(tr.get("constrained_embedding"))
    if constrained:
        tr.no_setting("constrained_embedding", "the history and the item tower share one embedding table "
                      "(shared_with), as a constrained embedding does")
        tr.no_setting("embedding", "one shared table of the GRU's size")
    else:
        tr.cannot("constrained_embedding", "the history always shares the item tower's table (shared_with)")
        if embedding == 0:
            tr.cannot("embedding", f"no one-hot input: items are always embedded, in the GRU's size ({layers[0]})")
        elif embedding != layers[0]:
            tr.cannot("embedding", f"the item embedding has the GRU's size ({layers[0]}, gru4rec.py:40)")
        else:
            tr.no_setting("embedding", "the item embedding has the GRU's size")
    tr.no_one_hot_input("Torch-RecHub")
    tr.absent("dropout_p_embed", "no dropout on the history embeddings (only in the user MLP)",
              why_off="no embedding dropout")
    s["mlp_dropout"] = tr.use("dropout_p_hidden", "user_params.dropout")  # after the MLP on the GRU state
    tr.differs("dropout_p_hidden.site",
               "the rate is applied inside the user MLP, after its Linear, BatchNorm and ReLU "
               "(basic/layers.py:282-285), not on the GRU's output: the nn.GRU has no dropout "
               "(models/matching/gru4rec.py:40) and its final state goes straight into the MLP (lines 63-68)")

    s["optimizer"] = tr.also("optimizer_fn", "torch.optim.Adagrad")
    s["lr"] = tr.use("learning_rate", "optimizer_params.lr")
    s["eps"] = tr.also("optimizer_params.eps", 1e-6)  # the authors' Adagrad epsilon
    s["weight_decay"] = tr.also("optimizer_params.weight_decay", 0.0)  # MatchTrainer's default is 1e-5
    tr.absent("momentum", "torch.optim.Adagrad has no momentum")
    s["batch_size"] = tr.use("batch_size")
    s["n_epochs"] = tr.use("n_epochs", "n_epoch")
    tr.cannot("time_sort", "the examples are shuffled every epoch (utils/data.py:51, DataLoader shuffle=True); "
              "no session-parallel order")
    s["eval_batch_size"] = tr.use("eval_batch_size", "adapter.test_prefixes_per_batch")
    s["device"] = tr.also("device", device)
    return s, tr


def sessions_as_prefixes(train, index: ac.ItemIndex):
    """(history token lists, target tokens): every prefix of every training session, in split order."""
    sid = train["SessionId"].to_numpy()
    tokens = index.to_index(train["ItemId"]) + 1
    hists, targets = [], []
    bounds = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        s = tokens[a:b].tolist()
        for i in range(1, len(s)):
            hists.append(s[:i])
            targets.append(s[i])
    return hists, np.asarray(targets, np.int64)


def last_batch_of_one(n_examples: int, batch_size: int) -> bool:
    """Whether an epoch of ``n_examples`` in batches of ``batch_size`` ends in a batch of one example
    (dropped by the adapter: see main). Fewer than two examples cannot be trained at all."""
    if n_examples < 2:
        raise ac.AdapterError(f"{n_examples} training example(s) (training events - sessions): Torch-RecHub's "
                              "in-batch negatives need at least 2 in a batch (utils/match.py:124-125)")
    return n_examples % batch_size == 1


def build_model(s: dict, n_items: int):
    from torch_rechub.basic.features import SequenceFeature, SparseFeature
    from torch_rechub.models.matching import GRU4Rec

    d, vocab = s["embed_dim"], n_items + 1  # token 0 is the padding
    user_features = [SparseFeature("session_feature", vocab_size=1, embed_dim=1)]
    history = [SequenceFeature("hist_item", vocab_size=vocab, embed_dim=d, pooling="concat", shared_with="item")]
    item = [SparseFeature("item", vocab_size=vocab, embed_dim=d)]
    negatives = [SequenceFeature("neg_items", vocab_size=vocab, embed_dim=d, pooling="concat", shared_with="item")]
    return GRU4Rec(user_features, history, item, negatives,
                   user_params={"dims": s["mlp_dims"], "dropout": s["mlp_dropout"]})


def main(argv=None) -> None:
    args = ac.parse_args(argv, description=__doc__.splitlines()[0])
    import torch
    from importlib.metadata import version
    from torch.utils.data import DataLoader
    from torch_rechub.trainers import MatchTrainer
    from torch_rechub.utils.data import MatchDataGenerator, pad_sequences

    timer = ac.Timer()
    ac.set_torch_threads(torch)
    # init, DataLoader shuffling and dropout use torch's global RNG; the in-batch
    # sampler its own generator (sampler_seed); numpy and random for completeness
    device = ac.seed_everything(torch, args.seed)

    train, test, index, events = ac.read_inputs(args)
    s, tr = translate(args.params, device)

    hists, targets = sessions_as_prefixes(train, index)
    max_len = max(len(h) for h in hists)  # no truncation: the whole session so far, as GRU4Rec sees it
    x = {
        "session_feature": np.zeros(len(targets), np.int64),
        "hist_item": pad_sequences(hists, maxlen=max_len, value=0, padding="pre", truncating="pre").astype(np.int64),
        "item": targets,
        "neg_items": np.zeros((len(targets), 0), np.int64),  # in-batch negatives only
    }
    all_items = {"item": np.arange(1, len(index) + 1, dtype=np.int64)}
    dg = MatchDataGenerator(x=x, y=np.zeros(len(targets), np.int64))
    _, _, item_dl = dg.generate_dataloader(x, all_items, batch_size=s["batch_size"], num_workers=0)
    # the training loader generate_dataloader makes (utils/data.py:51), but for a last batch of ONE
    # example, which the trainer cannot take: its BatchNorm (basic/layers.py:283) refuses one value
    # per channel in training mode and inbatch_negative_sampling (utils/match.py:124-125) needs two
    # examples. That batch is dropped (drop_last), a different example each epoch (the order is
    # shuffled); any other last batch is kept, and the loader is the library's own.
    drop_last = last_batch_of_one(len(targets), s["batch_size"])
    tr.also("train DataLoader drop_last", drop_last)
    train_dl = DataLoader(dg.dataset, batch_size=s["batch_size"], shuffle=True, num_workers=0, drop_last=drop_last)

    model = build_model(s, len(index))
    with tempfile.TemporaryDirectory() as model_path:
        trainer = MatchTrainer(model, mode=s["mode"], in_batch_neg=True, sampler_seed=args.seed,
                               optimizer_fn=torch.optim.Adagrad,
                               optimizer_params={"lr": s["lr"], "eps": s["eps"], "weight_decay": s["weight_decay"]},
                               n_epoch=s["n_epochs"], device=s["device"], model_path=model_path)
        losses = []
        for _ in range(s["n_epochs"]):  # MatchTrainer.fit's loop (match_trainer.py:182-184)
            with timer.epoch():
                losses.append(float(trainer.train_one_epoch(train_dl)))

    def user_scores(rows):  # the user tower on the test prefixes, against every item
        hist, _ = events.padded(rows, max_len, pad=0, offset=1, align="right")  # padding 'pre'
        batch = {"session_feature": torch.zeros(len(rows), dtype=torch.long, device=device),
                 "hist_item": torch.as_tensor(hist, device=device)}
        return (model(batch) @ items.T).cpu().numpy()

    model.eval()
    with torch.no_grad():
        model.mode = "item"
        items = torch.cat([model({k: v.to(device) for k, v in batch.items()}) for batch in item_dl])
        model.mode = "user"
        higher, ties = ac.rank_blocks(events, s["eval_batch_size"], user_scores)
    ac.finish(
        args.out, events, higher, ties, library=LIBRARY, version=version("torch-rechub"), timer=timer,
        translation=tr,
        train_loss=losses,
        train_loss_note="MatchTrainer's epoch loss: the mean over the epoch's batches of the batch-mean loss",
        training_examples=int(len(targets)),
        examples_dropped_per_epoch=int(drop_last),
        examples_dropped_note="a last mini-batch of one example is dropped every epoch (BatchNorm and in-batch "
                              "negatives need two); which example is dropped changes with the shuffle",
        history_length=int(max_len),
        device=device,
    )


if __name__ == "__main__":
    ac.run_main(main, "torch-rechub")
