"""A PyTorch Lightning callback that logs a training's losses to losscast
(``pip install 'losscast[lightning]'``)::

    from losscast.lightning import LosscastCallback

    trainer = lightning.Trainer(max_steps=24000, callbacks=[LosscastCallback(
        "http://127.0.0.1:8000", name="gpt-small", schedule={"type": "cosine", ...})])

After each optimizer step it logs the training step's loss (``training_step``'s returned
``loss``) at ``trainer.global_step - 1``, the index of the update that produced it (the first
update is step 0), with the first optimizer's ``lr`` at that update; after each validation, the
``val_loss`` (``monitor=``) of ``trainer.callback_metrics`` as the run ``<name>/val_loss`` of
the same group. Lightning does not declare its schedules; pass ``schedule=`` to declare one,
else the logged ``lr`` is the rate. Only the global zero process logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from lightning.pytorch import Callback

from losscast.client import Client, Run


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if hasattr(value, "detach"):
        value = value.detach()
        if value.numel() != 1:
            return None
        value = value.item()
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class LosscastCallback(Callback):
    """Log the training loss and ``monitor`` (default ``val_loss``) to the losscast service at
    ``url`` (or to ``client``)."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        client: Client | None = None,
        name: str | None = None,
        group: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        schedule: Mapping[str, Any] | None = None,
        monitor: str = "val_loss",
        **run_options: Any,
    ):
        if client is None:
            url = url or os.environ.get("LOSSCAST_URL")
            if not url:
                raise ValueError("LosscastCallback needs url= (or $LOSSCAST_URL) or client=")
            client = Client(url, api_key)
        self.client = client
        self._name, self._group, self._metadata = name, group, dict(metadata or {})
        self._schedule = dict(schedule) if schedule is not None else None
        self._monitor = monitor
        self._options = run_options
        self._last_step = -1
        self._update_lr: float | None = None
        self.run: Run | None = None

    def on_train_start(self, trainer, pl_module):
        name = self._name or getattr(trainer.logger, "name", None) or type(pl_module).__name__
        metadata = {
            "source": "lightning.Trainer",
            "model_class": type(pl_module).__name__,
            "accumulate_grad_batches": trainer.accumulate_grad_batches,
            **self._metadata,
        }
        self.run = self.client.run(
            str(name),
            schedule=self._schedule,
            group=self._group or str(name),
            metadata=metadata,
            enabled=bool(trainer.is_global_zero),
            **self._options,
        )

    def _lr(self, trainer) -> float | None:
        try:
            return float(trainer.optimizers[0].param_groups[0]["lr"])
        except (IndexError, KeyError, AttributeError, TypeError):
            return None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        # The rate this update uses: a scheduler stepping per step has moved on by
        # on_train_batch_end.
        self._update_lr = self._lr(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step - 1  # the update this batch's optimizer step made
        if self.run is None or step <= self._last_step:
            return  # gradient accumulation: no optimizer step yet
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        value = _number(loss)
        if value is None:
            return
        self._last_step = step
        self.run.log(step, value, lr=self._update_lr)

    def on_validation_end(self, trainer, pl_module):
        if self.run is None or trainer.sanity_checking:
            return
        value = _number(trainer.callback_metrics.get(self._monitor))
        if value is not None:
            step = max(trainer.global_step - 1, 0)
            self.run.log(step, None, lr=self._update_lr, **{self._monitor: value})

    def on_train_end(self, trainer, pl_module):
        if self.run is not None:
            self.run.close()

    def on_exception(self, trainer, pl_module, exception):
        self.on_train_end(trainer, pl_module)
