"""RecBole's GRU4Rec (recbole==1.2.1) under the project's contract.

Run by the environment of ``requirements.txt`` beside this file::

    python adapter.py --train TRAIN.tsv --test TEST.tsv --params PARAMS.json --seed S --out DIR

What it does, in RecBole's own idiom (the way a RecBole user runs GRU4Rec):

1. the training split becomes a RecBole atomic file ``split.inter``
   (``session_id:token item_id:token timestamp:float``; the session plays
   RecBole's user); RecBole's ``SequentialDataset`` turns every session into
   its prefixes (``<i1> -> i2``, ``<i1, i2> -> i3``, ...; at most
   ``MAX_ITEM_LIST_LENGTH`` items of history);
2. RecBole's ``GRU4Rec`` is trained by RecBole's ``Trainer.fit`` (no
   validation data, so no early stopping) with the run's parameters
   translated (``Translation`` below says which became what and which cannot
   be expressed);
3. every test prefix (the session so far, its last ``MAX_ITEM_LIST_LENGTH``
   items) is scored by the model's own ``full_sort_predict``; the scores of
   the training items give the contract's two counts.

RecBole has no notion of session-parallel mini-batches, sampled negatives or
logQ: see ``features.yaml`` for where its code shows each difference.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# adapter_common lives in the parent folder; appended (not prepended) so that
# this folder's name never shadows the ``recbole`` package itself
sys.path.append(str(Path(__file__).resolve().parent.parent))
import adapter_common as ac  # noqa: E402

import numpy as np  # noqa: E402

#: RecBole's default history length (properties/dataset/sample.yaml), kept as users run it.
MAX_ITEM_LIST_LENGTH = 50
#: torch anomaly detection, which RecBole 1.2.1 switches on at import (see main()).
ANOMALY_DETECTION = os.environ.get("RECBOLE_ANOMALY_DETECTION", "0") == "1"
LIBRARY = "recbole"


def translate(params: dict, seed: int, use_gpu: bool) -> tuple[dict, ac.Translation]:
    """The run's (resolved) GRU4Rec parameters -> RecBole's config dict."""
    tr = ac.Translation(params)
    cfg: dict = {}
    loss = tr.get("loss")
    if loss == "cross-entropy":
        cfg["loss_type"] = tr.use("loss", "loss_type", "CE")
        # RecBole refuses negative sampling with CE (config/configurator.py)
        cfg["train_neg_sample_args"] = tr.also("train_neg_sample_args", None)
    elif loss == "bpr":
        cfg["loss_type"] = tr.use("loss", "loss_type", "BPR")
        alpha = float(tr.get("sample_alpha"))
        cfg["train_neg_sample_args"] = tr.use("sample_alpha", "train_neg_sample_args", {
            "distribution": "popularity" if alpha > 0 else "uniform", "sample_num": 1, "alpha": alpha,
            "dynamic": False, "candidate_num": 0})
    else:
        raise ac.AdapterError(
            f"RecBole's GRU4Rec has the losses CE and BPR only (model/sequential_recommender/gru4rec.py:61-66); "
            f"loss {loss!r} cannot be run")

    tr.absent("final_act", "RecBole applies no activation to the scores", off=ac.LINEAR,
              why_off="RecBole's scores are linear (dot product with the item embedding)")
    tr.absent("elu_param", "RecBole applies no ELU to the scores", why_off="no ELU on the scores, as in RecBole")
    tr.no_setting("bpreg", f"BPR-max score regularisation has no effect on loss {loss}")

    layers = list(tr.get("layers"))
    if len(set(layers)) != 1:
        raise ac.AdapterError(f"RecBole's GRU4Rec stacks layers of one size (torch nn.GRU); layers {layers} cannot be run")
    cfg["hidden_size"] = tr.use("layers", "hidden_size", layers[0])
    cfg["num_layers"] = tr.also("num_layers", len(layers))

    embedding, constrained = int(tr.get("embedding")), bool(tr.get("constrained_embedding"))
    if constrained:
        # RecBole's item_embedding is both the input embedding and the output
        # item matrix, as in the constrained mode; a dense layer maps the GRU
        # output to it (the official code has none)
        cfg["embedding_size"] = tr.use("constrained_embedding", "embedding_size", layers[-1])
        tr.no_setting("embedding", "the constrained embedding has the last layer's size")
    else:
        tr.cannot("constrained_embedding",
                  "RecBole always ties the input embedding to the output item matrix")
        if embedding > 0:
            cfg["embedding_size"] = tr.use("embedding", "embedding_size", embedding)
        else:
            cfg["embedding_size"] = layers[0]
            tr.cannot("embedding", f"RecBole has no one-hot input; it embeds items in {layers[0]} dimensions")
    tr.no_one_hot_input("RecBole")

    cfg["dropout_prob"] = tr.use("dropout_p_embed", "dropout_prob")
    tr.absent("dropout_p_hidden", "RecBole's GRU4Rec has dropout on the input embedding only",
              why_off="no dropout after the GRU, as in RecBole")

    cfg["learner"] = tr.also("learner", "adagrad")
    cfg["learning_rate"] = tr.use("learning_rate")
    cfg["weight_decay"] = tr.also("weight_decay", 0.0)
    tr.absent("momentum", "RecBole's adagrad learner is torch.optim.Adagrad, without momentum",
              why_off="torch.optim.Adagrad has no momentum")
    cfg["train_batch_size"] = tr.use(
        "batch_size", "train_batch_size")  # prefixes per step: as many targets per step as session-parallel lanes
    cfg["epochs"] = tr.use("n_epochs", "epochs")
    cfg["eval_batch_size"] = tr.use("eval_batch_size")

    if loss == "cross-entropy":
        tr.cannot("n_sample", "RecBole's CE is a full softmax over all items (no sampled negatives)")
        tr.cannot("sample_alpha", "no sampled negatives with RecBole's CE")
        tr.no_setting("sample_store_size", "no sampled negatives with RecBole's CE")
    else:
        tr.cannot("n_sample", "RecBole's BPR draws one negative per training example")
        tr.no_setting("sample_store_size", "RecBole draws negatives on the fly")
    tr.absent("logq", "RecBole has no logQ correction", why_off="no logQ correction")
    tr.cannot("time_sort", "RecBole shuffles the prefix examples every epoch (no session-parallel order)")

    cfg["MAX_ITEM_LIST_LENGTH"] = tr.also("MAX_ITEM_LIST_LENGTH", MAX_ITEM_LIST_LENGTH)
    cfg["shuffle"] = tr.also("shuffle", True)
    cfg["eval_args"] = tr.also("eval_args", {"split": {"RS": [1.0, 0.0, 0.0]}, "order": "TO",
                                             "group_by": "none", "mode": "full"})
    cfg.update(seed=seed, reproducibility=True, use_gpu=use_gpu, repeatable=True, show_progress=False,
               state="WARNING", eval_step=0)
    return cfg, tr


def truncation(train, events: ac.PredictionEvents, max_len: int = MAX_ITEM_LIST_LENGTH) -> dict:
    """How many examples MAX_ITEM_LIST_LENGTH cuts, on the data this run sees.

    RecBole keeps the last ``max_len`` items of a history (data/dataset/sequential_dataset.py:109-110)
    and the adapter cuts the test prefixes the same way; GRU4Rec's state carries the whole session.
    A test event is truncated when its session so far (input included) is longer than ``max_len``;
    a training example (every event of a session but the first, its history the events before it)
    when its history is.
    """
    lengths = train.groupby("SessionId", sort=False).size().to_numpy(np.int64)
    histories = events.lengths
    return {
        "max_item_list_length": int(max_len),
        "test_events": int(len(events)),
        "test_events_truncated": int((histories > max_len).sum()),
        "longest_test_history": int(histories.max()) if len(events) else 0,
        "training_examples": int((lengths - 1).sum()),
        "training_examples_truncated": int(np.maximum(lengths - 1 - max_len, 0).sum()),
        "longest_training_session": int(lengths.max()) if len(lengths) else 0,
    }


def write_atomic_file(train, folder: Path) -> None:
    """The training split as RecBole's atomic ``.inter`` file (ItemId and SessionId as tokens)."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic = train.rename(columns={"SessionId": "session_id:token", "ItemId": "item_id:token",
                                   "Time": "timestamp:float"})
    atomic.to_csv(folder / "split.inter", sep="\t", index=False)


def main(argv=None) -> None:
    args = ac.parse_args(argv, description=__doc__.splitlines()[0])
    # RecBole's Trainer opens a tensorboard SummaryWriter, and tensorboard loads
    # TensorFlow when it can: the project's TensorFlow, seen through the system
    # site packages, which RecBole never uses (observed once, 2026-11-27, on the
    # project's shared 2-core machine: about 17 s of CPU per run)
    sys.modules["tensorflow"] = None
    import torch
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset
    from recbole.data.interaction import Interaction
    from recbole.data.utils import create_samplers, get_dataloader
    from recbole.model.sequential_recommender import GRU4Rec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    # Importing recbole.model.sequential_recommender runs
    # model/sequential_recommender/sine.py:25, torch.autograd.set_detect_anomaly(True),
    # for the whole process: every autograd op then records a Python stack
    # (measured: most of an epoch's time). It changes no number, only time, so
    # it is switched off here; adapter_info.json says so.
    anomaly_on_import = torch.is_anomaly_enabled()
    torch.autograd.set_detect_anomaly(ANOMALY_DETECTION)

    timer = ac.Timer()
    ac.set_torch_threads(torch)
    train, test, index, events = ac.read_inputs(args)

    work = args.out / "recbole"
    write_atomic_file(train, work / "data" / "split")
    cfg, tr = translate(args.params, args.seed, use_gpu=torch.cuda.is_available())
    cut = truncation(train, events)
    tr.differs("history_length",
               f"RecBole keeps the last {cut['max_item_list_length']} items of a history (MAX_ITEM_LIST_LENGTH, "
               "default of properties/dataset/sample.yaml:44; data/dataset/sequential_dataset.py:109-110), the "
               "test prefixes cut the same way; on this split that truncates "
               f"{cut['test_events_truncated']} of {cut['test_events']} test events (longest history "
               f"{cut['longest_test_history']}) and {cut['training_examples_truncated']} of "
               f"{cut['training_examples']} training examples (longest session {cut['longest_training_session']})",
               value="the whole session")
    print(f"recbole adapter: MAX_ITEM_LIST_LENGTH {cut['max_item_list_length']} truncates the history of "
          f"{cut['test_events_truncated']} of {cut['test_events']} test events and of "
          f"{cut['training_examples_truncated']} of {cut['training_examples']} training examples", flush=True)
    cfg.update(
        data_path=str(work / "data"), checkpoint_dir=str(work / "saved"),
        USER_ID_FIELD="session_id", ITEM_ID_FIELD="item_id", TIME_FIELD="timestamp",
        load_col={"inter": ["session_id", "item_id", "timestamp"]},
    )
    sys.argv = sys.argv[:1]  # RecBole's Config also reads --key=value from the command line
    config = Config(model="GRU4Rec", dataset="split", config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    # build(): RecBole's SequentialDataset turns every session into its prefix
    # examples; the split puts them all into training (the test is ours)
    built = dataset.build()
    train_set = built[0]
    if len(train_set) != len(train) - train["SessionId"].nunique():
        raise ac.AdapterError(f"RecBole made {len(train_set)} training examples of {len(train)} events in "
                              f"{train['SessionId'].nunique()} sessions; expected one per event but each session's first")
    train_sampler, _, _ = create_samplers(config, dataset, built)
    train_data = get_dataloader(config, "train")(config, train_set, train_sampler, shuffle=config["shuffle"])

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = GRU4Rec(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    run_epoch = trainer._train_epoch

    def timed_epoch(*a, **k):  # seconds per epoch of RecBole's own loop
        with timer.epoch():
            return run_epoch(*a, **k)

    trainer._train_epoch = timed_epoch
    trainer.fit(train_data, valid_data=None, saved=False, show_progress=False, verbose=False)

    # scoring: our item index -> RecBole's internal item ids (0 is its padding)
    rb_ids = dataset.token2id(dataset.iid_field, [str(i) for i in index.item_ids]).astype(np.int64)
    lookup = np.concatenate([[0], rb_ids])  # our index + 1 -> RecBole id; 0 -> padding
    columns = torch.as_tensor(rb_ids, device=config["device"])

    def full_sort_scores(rows):  # RecBole's item_id_list of each test prefix, scored by the model
        seq, lengths = events.padded(rows, MAX_ITEM_LIST_LENGTH, pad=0, offset=1, align="left")
        batch = Interaction({model.ITEM_SEQ: torch.as_tensor(lookup[seq]),
                             model.ITEM_SEQ_LEN: torch.as_tensor(lengths)}).to(config["device"])
        return model.full_sort_predict(batch)[:, columns].float().cpu().numpy()

    model.eval()
    with torch.no_grad():
        higher, ties = ac.rank_blocks(events, config["eval_batch_size"], full_sort_scores)
    ac.finish(
        args.out, events, higher, ties, library=LIBRARY, version=recbole.__version__, timer=timer,
        translation=tr,
        train_loss=[float(v) for _, v in sorted(trainer.train_loss_dict.items())],
        train_loss_note="RecBole's epoch loss: the sum over the epoch's batches of the batch-mean loss",
        device=str(config["device"]),
        history_truncation=cut,
        torch_anomaly_detection={
            "on_after_import": anomaly_on_import, "used": ANOMALY_DETECTION,
            "note": "recbole 1.2.1 model/sequential_recommender/sine.py:25 switches it on for the process; "
                    "set RECBOLE_ANOMALY_DETECTION=1 to train as shipped"},
    )


if __name__ == "__main__":
    ac.run_main(main, "recbole")
