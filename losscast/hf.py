"""A Hugging Face ``transformers`` callback that logs a ``Trainer``'s losses to losscast
(``pip install 'losscast[hf]'``)::

    from losscast.hf import LosscastCallback

    trainer = Trainer(model, args, train_dataset=..., eval_dataset=...,
                      callbacks=[LosscastCallback("http://127.0.0.1:8000", group="gpt-small")])
    trainer.train()

On each ``on_log`` it logs ``loss`` (and ``eval_loss``, as the run ``<name>/eval_loss`` of the same
group) at step ``state.global_step - 1`` with the ``learning_rate`` of the log, through
:class:`losscast.client.Run` (never blocking the trainer). ``loss`` is the Trainer's mean over the
logging window (``logging_steps``), stored at the step it was logged at, as the importer of
``trainer_state.json`` stores it (see ``app/io/hf.py`` for what that means for the fit). The
step: Hugging Face's ``global_step`` counts the updates done (the first log of a 60-step run with
``logging_steps=5`` says 5, its last 60), losscast's step is the 0-based index of the update the
loss has seen last (4 and 59), so that a schedule of ``max_steps`` steps holds every point.

The schedule is read from the ``TrainingArguments`` when losscast has its family
(``lr_scheduler_type`` linear, cosine, cosine_with_min_lr, constant, constant_with_warmup,
warmup_stable_decay, inverse_sqrt, polynomial, cosine_with_restarts; ``learning_rate``, the warmup
steps, ``lr_scheduler_kwargs`` translated to losscast's names: :func:`schedule_of`) and
``state.max_steps``; pass ``schedule=`` to override it, ``schedule=False`` to declare none (the
rate is then the logged ``learning_rate``). A schedule the service refuses is dropped and the
logged rate used instead. Only the world's process zero logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from transformers import TrainerCallback

from losscast.client import Client, Run

#: ``lr_scheduler_type`` -> the family of losscast's schedule vocabulary (``GET /v1/schedules``).
SCHEDULES = {
    "linear": "linear",
    "cosine": "cosine",
    "cosine_with_min_lr": "cosine",
    "constant": "constant",
    "constant_with_warmup": "constant",
    "warmup_stable_decay": "wsd",
    "inverse_sqrt": "inverse_sqrt",
    "polynomial": "polynomial",
    "cosine_with_restarts": "cosine_with_restarts",
}
#: ``lr_scheduler_kwargs`` names -> losscast's.
KWARG_NAMES = {"min_lr_rate": "min_lr_ratio", "lr_end": "end_value"}
#: Keyword arguments that say nothing beyond the family at these values (HF's defaults): left
#: out. Any other value of them is a shape losscast's family does not have: no schedule.
IMPLIED = {
    "num_stable_steps": None,  # WSD: total - warmup - decay
    "warmup_type": "linear",
    "num_cycles": 0.5,  # cosine, WSD's cosine decay: half a cycle
}


def schedule_of(args, max_steps: int) -> dict[str, Any] | None:
    """The losscast schedule spec of a ``TrainingArguments`` over ``max_steps`` updates, or
    ``None`` when its scheduler has no losscast family (``reduce_lr_on_plateau``) or its
    ``lr_scheduler_kwargs`` a shape the family lacks."""
    kind = str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))
    if kind not in SCHEDULES or max_steps <= 0:
        return None
    warmup = 0 if kind == "constant" else int(args.get_warmup_steps(max_steps))
    spec: dict[str, Any] = {
        "type": SCHEDULES[kind],
        "peak_lr": float(args.learning_rate),
        "total_steps": int(max_steps),
        "num_warmup_steps": warmup,
    }
    kwargs = args.lr_scheduler_kwargs or {}
    if not isinstance(kwargs, Mapping):
        return None
    for name, value in kwargs.items():
        if name in IMPLIED and not (kind == "cosine_with_restarts" and name == "num_cycles"):
            if IMPLIED[name] is not None and value != IMPLIED[name]:
                return None
            continue
        spec[KWARG_NAMES.get(name, name)] = value
    return spec


class LosscastCallback(TrainerCallback):
    """Log the Trainer's ``loss`` and ``eval_loss`` to the losscast service at ``url`` (or to
    ``client``). ``name`` defaults to ``args.run_name`` (else the output directory's name);
    ``metadata`` gets the model's class and the Trainer's batch sizes."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        client: Client | None = None,
        name: str | None = None,
        group: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        schedule: Mapping[str, Any] | bool | None = None,
        **run_options: Any,
    ):
        if client is None:
            url = url or os.environ.get("LOSSCAST_URL")
            if not url:
                raise ValueError("LosscastCallback needs url= (or $LOSSCAST_URL) or client=")
            client = Client(url, api_key)
        self.client = client
        self._name, self._group, self._metadata = name, group, dict(metadata or {})
        self._schedule = schedule
        self._options = run_options
        self.run: Run | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        name = self._name or args.run_name or os.path.basename(os.path.normpath(args.output_dir))
        if self._schedule is None:
            schedule = schedule_of(args, state.max_steps)
        else:
            schedule = dict(self._schedule) if self._schedule else None
        metadata = {
            "source": "transformers.Trainer",
            "hf_logging_steps": args.logging_steps,
            "loss_is_window_mean": True,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            **({"model_class": type(model).__name__} if model is not None else {}),
            **self._metadata,
        }
        self.run = self.client.run(
            name,
            schedule=schedule,
            group=self._group or name,
            metadata=metadata,
            enabled=bool(state.is_world_process_zero),
            **self._options,
        )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.run is None or not logs or "train_runtime" in logs:
            return  # the summary record at the end: the whole run's mean loss, not a point
        loss, eval_loss = logs.get("loss"), logs.get("eval_loss")
        if loss is None and eval_loss is None:
            return
        self.run.log(
            state.global_step - 1,  # HF counts the updates done; losscast indexes the last one
            loss,
            lr=logs.get("learning_rate"),
            **({"eval_loss": eval_loss} if eval_loss is not None else {}),
        )

    def on_train_end(self, args, state, control, **kwargs):
        if self.run is not None:
            self.run.close()
