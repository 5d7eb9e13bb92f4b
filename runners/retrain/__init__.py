"""Full-scale retraining of one architecture with Ray Train (``docs/retrain.md``).

``retrain(spec, config, train=..., test=..., out_dir=...)`` runs :func:`train_worker` on ``config.workers``
Ray Train workers (``TorchTrainer``: DDP over gloo on CPU, NCCL on GPU), so the same call trains on one
laptop core or a GPU cluster. What it does, top-down:

* **optimisation** (papers' settings, all in :class:`RetrainConfig`): SGD momentum 0.9, lr 0.1 at batch 32
  scaled linearly with the global batch, linear warm-up, gradient clipping, step decay, weight decay 1e-6;
  optional multigrid (:mod:`runners.multigrid`: only the sampler and batch shape change);
* **data**: each rank trains on a disjoint shard of a seeded per-epoch permutation (DistributedSampler with
  ``drop_last``: never a duplicated clip) and evaluates a disjoint shard of the test split without padding;
  correct / total counts are summed across ranks, so every test clip counts exactly once;
* **SRTG** ``warmup`` gates are switched per epoch (:func:`space.srtg.set_gate_epoch`);
* **checkpoints** every epoch through ``ray.train.report``: state dicts, tensors and numbers only (RNG
  states as tensors), read back with ``weights_only=True``. Data order and augmentation are functions of
  (seed, epoch, rank), so a run killed after epoch k and resumed ends bitwise equal to an uninterrupted one;
* **evaluation**: top-1 / top-5 single-view on the test split each epoch, multi-view (clips x crops,
  softmax-averaged) at the end;
* **output folder**: ``spec.yaml``, ``retrain.json`` (the config), ``model.pt`` (final weights),
  ``metrics.csv`` (one row per epoch, no wall-clock values so reruns compare bitwise), ``result.json``;
  :func:`load_model` rebuilds the trained model in one call.
"""

from runners.retrain.artifacts import CHECKPOINT_FILE, load_model, set_last_epoch_gates
from runners.retrain.config import METRICS_COLUMNS, RetrainConfig, RetrainResult
from runners.retrain.driver import retrain
from runners.retrain.schedule import epoch_plans, eval_shard, learning_rate, train_batch, train_shard
from runners.retrain.worker import evaluate, multiview_label, train_worker

__all__ = [
    "CHECKPOINT_FILE",
    "METRICS_COLUMNS",
    "RetrainConfig",
    "RetrainResult",
    "epoch_plans",
    "eval_shard",
    "evaluate",
    "learning_rate",
    "load_model",
    "multiview_label",
    "retrain",
    "set_last_epoch_gates",
    "train_batch",
    "train_shard",
    "train_worker",
]
