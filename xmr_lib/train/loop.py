"""One training loop with hooks: the device, the step iteration, AMP, progress, checkpoints, resume, early stop.

Every method of the course trains with the same skeleton — pick a device, draw batches, compute a loss, step the
optimisers, record, checkpoint — and differs only in *what* happens at a few points. :class:`Trainer` owns the
skeleton; a method describes its differences as a :class:`Task` (the "LightningModule" of a small Lightning, or
the "trainer + hooks" of pytorch-metric-learning), and extra behaviour that is not the method's own (early stop, a
user's per-epoch evaluation) is a :class:`Hook`.

One fit::

    on_fit_start(trainer)                                   # build the model and optimisers on trainer.device
    [resume: task.load_state_dict, hooks' states, every RNG state, epoch and global step from the last checkpoint]
    for epoch in range(start, max_epochs):                  # or one endless "epoch" of max_steps steps
        on_epoch_start(trainer, epoch)
        for batch in task.batches(trainer, epoch):
            on_step_start(trainer, batch)
            out = task.training_step(trainer, batch)        # under autocast when AMP is on
            loss = out (a tensor) | out["loss"] (a mapping) | None (the step optimised by itself)
            zero_grad → backward → task.clip_gradients → step, on task.optimizers(trainer, batch)
            trainer.global_step += 1
            on_step_end(trainer, batch, out)
            [step mode: checkpoint every `checkpoint_every` steps]
        on_epoch_end(trainer, epoch)
        [epoch mode: checkpoint every `checkpoint_every` epochs]
    on_fit_end(trainer)

The task's hook runs first, then each :class:`Hook` in order (so a hook sees what the task recorded).

Checkpoints (:class:`xmr_lib.core.checkpoint.Checkpoint`, one file per point, ``epoch_<e>`` or ``step_<s>``) hold
the task's ``state_dict()``, the hooks' states, the AMP scaler, the epoch and global step, and EVERY random state:
Python's, NumPy's global one, torch's CPU and CUDA generators and the task's own generators
(:meth:`Task.generators`). A resumed fit therefore goes on bit for bit as the uninterrupted one — provided the
task's ``state_dict`` holds everything else that changes during a fit (the model, the optimisers, schedulers, the
history, and in step mode the position of the batch stream). In epoch mode a checkpoint is written only at the end
of an epoch, so ``batches(trainer, epoch)`` starts each epoch afresh; in step mode ``batches(trainer, 0)`` is an
endless stream whose position must live in the task (drawn lazily, from the task's attributes).

The loop itself draws no random number: a task ported onto it consumes its generators in the same order as its
hand-written loop did, and gives the same numbers.
"""

from __future__ import annotations

import math
import random
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from xmr_lib.core.setup import resolve_device

__all__ = ["Hook", "Task", "Trainer", "EarlyStopping", "rng_state", "set_rng_state", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "xmr_lib.train.loop/1"


class Hook:
    """Behaviour added to a fit from outside the method: override any of the methods (each gets the
    :class:`Trainer`; ``trainer.task`` is the task). ``state_dict`` / ``load_state_dict`` travel with checkpoints."""

    def on_fit_start(self, trainer: "Trainer") -> None:
        pass

    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None:
        pass

    def on_step_start(self, trainer: "Trainer", batch: Any) -> None:
        pass

    def on_step_end(self, trainer: "Trainer", batch: Any, output: Any) -> None:
        pass

    def on_epoch_end(self, trainer: "Trainer", epoch: int) -> None:
        pass

    def on_fit_end(self, trainer: "Trainer") -> None:
        pass

    def state_dict(self) -> Any:
        return None

    def load_state_dict(self, state: Any) -> None:
        pass


def _nothing(*args, **kwargs) -> None:
    return None


class Task(Hook):
    """What a method defines: override the methods in a subclass, or pass them as functions,
    ``Task(batches=..., training_step=..., optimizers=..., on_epoch_end=...)`` (each function takes the same
    arguments as the method it replaces, without ``self``).

    Methods (beyond the :class:`Hook` ones):
        batches(trainer, epoch): an iterable of batches (anything: indices, tensors, tuples). Endless in step mode.
        training_step(trainer, batch): the loss to minimise as a scalar tensor, or a mapping with a ``"loss"`` entry
            (and anything the task's ``on_step_end`` wants back), or ``None`` when the step optimised by itself.
        optimizers(trainer, batch): the optimisers this step's loss updates (default: none, an error if a loss
            comes back). Zeroed before the backward pass, stepped after it.
        clip_gradients(trainer, batch): called between backward and the optimiser step, on unscaled gradients.
        generators(): ``{name: torch.Generator | numpy.random.Generator}`` the task draws from; their states are
            checkpointed with the global ones.
        state_dict() / load_state_dict(state): everything else that a fit changes.
    """

    _FUNCTIONS = (
        "on_fit_start",
        "on_epoch_start",
        "on_step_start",
        "on_step_end",
        "on_epoch_end",
        "on_fit_end",
        "batches",
        "training_step",
        "optimizers",
        "clip_gradients",
        "generators",
        "state_dict",
        "load_state_dict",
    )

    def __init__(self, **functions: Callable):
        unknown = sorted(set(functions) - set(self._FUNCTIONS))
        if unknown:
            raise ValueError(f"Task: unknown hook(s) {unknown}; expected some of {list(self._FUNCTIONS)}")
        for name, fn in functions.items():
            if fn is not None:
                if not callable(fn):
                    raise ValueError(f"Task: {name} must be callable, got {type(fn).__name__}")
                setattr(self, name, fn)

    def batches(self, trainer: "Trainer", epoch: int) -> Iterable:
        raise NotImplementedError("Task.batches: a task must say which batches an epoch draws")

    def training_step(self, trainer: "Trainer", batch: Any) -> Any:
        raise NotImplementedError("Task.training_step: a task must compute a step's loss")

    def optimizers(self, trainer: "Trainer", batch: Any) -> Sequence[torch.optim.Optimizer]:
        return ()

    def clip_gradients(self, trainer: "Trainer", batch: Any) -> None:
        pass

    def generators(self) -> Mapping[str, Any]:
        return {}

    def state_dict(self) -> Any:
        return None


# ---------------------------------------------------------------------------------------------------------------
# random states


def rng_state(generators: Mapping[str, Any] | None = None) -> dict:
    """Every random state a fit may draw from: Python's, NumPy's global one, torch's CPU (and CUDA) generators, and
    the named ``generators`` (``torch.Generator`` or ``numpy.random.Generator``)."""
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(), "generators": {}}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    for name, g in (generators or {}).items():
        if isinstance(g, torch.Generator):
            st["generators"][name] = g.get_state()
        elif isinstance(g, np.random.Generator):
            st["generators"][name] = g.bit_generator.state
        else:
            raise ValueError(
                f"generators[{name!r}]: expected a torch.Generator or numpy.random.Generator, got {type(g).__name__}"
            )
    return st


def set_rng_state(st: Mapping, generators: Mapping[str, Any] | None = None) -> None:
    """Restore what :func:`rng_state` saved (the named ``generators`` in place)."""
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    saved = st.get("generators", {})
    for name, g in (generators or {}).items():
        if name not in saved:
            raise ValueError(f"checkpoint: holds no state for generator {name!r} (has {sorted(saved)})")
        if isinstance(g, torch.Generator):
            g.set_state(saved[name])
        else:
            g.bit_generator.state = saved[name]


# ---------------------------------------------------------------------------------------------------------------
# early stop


class EarlyStopping(Hook):
    """Stop when ``trainer.metrics[monitor]`` has not improved by more than ``min_delta`` for ``patience`` checks.

    Checked at the end of every epoch (``every="epoch"``) or after every step (``every="step"``); the task puts the
    value in ``trainer.metrics`` before (in its own ``on_epoch_end`` / ``on_step_end``). A missing or NaN value
    counts as no improvement.
    """

    def __init__(
        self, monitor: str = "loss", patience: int = 3, mode: str = "min", min_delta: float = 0.0, every: str = "epoch"
    ):
        if mode not in ("min", "max"):
            raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
        if every not in ("epoch", "step"):
            raise ValueError(f"every: expected 'epoch' or 'step', got {every!r}")
        if int(patience) != patience or patience < 1:
            raise ValueError(f"patience: expected an int >= 1, got {patience!r}")
        self.monitor, self.patience, self.mode, self.min_delta, self.every = (
            monitor,
            int(patience),
            mode,
            float(min_delta),
            every,
        )
        self.best, self.bad = math.nan, 0

    def _check(self, trainer: "Trainer") -> None:
        v = trainer.metrics.get(self.monitor, math.nan)
        v = float(v)
        sign = 1.0 if self.mode == "min" else -1.0
        if not math.isnan(v) and (math.isnan(self.best) or sign * (self.best - v) > self.min_delta):
            self.best, self.bad = v, 0
        else:
            self.bad += 1
        if self.bad >= self.patience:
            trainer.should_stop = True

    def on_epoch_end(self, trainer: "Trainer", epoch: int) -> None:
        if self.every == "epoch":
            self._check(trainer)

    def on_step_end(self, trainer: "Trainer", batch: Any, output: Any) -> None:
        if self.every == "step":
            self._check(trainer)

    def state_dict(self) -> dict:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: Mapping) -> None:
        self.best, self.bad = float(state["best"]), int(state["bad"])


# ---------------------------------------------------------------------------------------------------------------
# the loop


class Trainer:
    """Runs a :class:`Task`: ``Trainer(max_epochs=10, device="auto").fit(task)``.

    Args:
        max_epochs: epochs to run (epoch mode: ``task.batches(trainer, epoch)`` once per epoch).
        max_steps: optimiser steps to run; alone, step mode (one endless batch stream); with ``max_epochs``, a cap.
        device: ``"auto"`` (:func:`xmr_lib.core.setup.resolve_device`), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a
            ``torch.device``; the task builds its model on ``trainer.device``.
        amp: mixed precision around ``training_step``, on CUDA only (a no-op elsewhere; ``trainer.amp`` says whether
            it is on): ``True`` / ``"bf16"`` — bfloat16 autocast, no gradient scaler (bfloat16 has float32's range,
            so no loss scale and none of the scaler's host synchronisations); ``"fp16"`` — float16 autocast with a
            gradient scaler (GPUs without bfloat16).
        channels_last: on CUDA, :meth:`prepare` puts 4-d convolution models and :meth:`to_device` 4-d float inputs in
            the ``channels_last`` memory format (NHWC, what tensor-core convolutions want); a no-op elsewhere.
        progress: a tqdm bar (over epochs, or steps in step mode); ``desc`` labels it.
        checkpoint: an :class:`xmr_lib.core.checkpoint.Checkpoint`; a fit resumes from its last loadable point.
        checkpoint_every: epochs (epoch mode, default 1) or steps (step mode, default: only at the end) between
            checkpoints.
        hooks: :class:`Hook` objects, called after the task's own hook of the same name.
        dist: an :class:`xmr_lib.train.distributed.DistContext` under ``torchrun``: only the main process shows
            progress and writes checkpoints, all wait for it; :meth:`prepare` wraps the model in DDP (BatchNorm on
            the global batch), :meth:`shard` / :meth:`gather` split a global batch and put outputs back together.
            ``None``: one process.

    GPU throughput (CUDA only; nothing changes on the CPU): bfloat16 AMP, ``channels_last``, :meth:`to_device`'s
    pinned-memory, non-blocking copies, and no host synchronisation inside the loop — a task keeps per-step values
    on the device (:meth:`accumulate`) and reads them at its logging points.

    Attributes during a fit: ``device``, ``task``, ``epoch``, ``global_step`` (finished optimiser steps),
    ``metrics`` (a dict the task fills for hooks such as :class:`EarlyStopping`), ``should_stop`` (set to end the
    fit after the current step), ``resumed_from`` (the checkpoint point a fit resumed from, or None).
    """

    def __init__(
        self,
        *,
        max_epochs: int | None = None,
        max_steps: int | None = None,
        device: Any = "auto",
        amp: bool | str = False,
        channels_last: bool = True,
        progress: bool = True,
        desc: str = "training",
        checkpoint=None,
        checkpoint_every: int | None = None,
        hooks: Sequence[Hook] = (),
        dist=None,
    ):
        for name, v in (("max_epochs", max_epochs), ("max_steps", max_steps)):
            if v is not None and (isinstance(v, bool) or int(v) != v or int(v) < 0):
                raise ValueError(f"{name}: expected an int >= 0 or None, got {v!r}")
        if max_epochs is None and max_steps is None:
            raise ValueError("max_epochs, max_steps: give at least one")
        if checkpoint_every is not None and (int(checkpoint_every) != checkpoint_every or checkpoint_every < 1):
            raise ValueError(f"checkpoint_every: expected an int >= 1 or None, got {checkpoint_every!r}")
        for h in hooks:
            if not isinstance(h, Hook):
                raise ValueError(f"hooks: expected Hook objects, got {type(h).__name__}")
        self.max_epochs = None if max_epochs is None else int(max_epochs)
        self.max_steps = None if max_steps is None else int(max_steps)
        self.device = device if isinstance(device, torch.device) else torch.device(resolve_device(device))
        if amp not in (False, True, None, "bf16", "fp16"):
            raise ValueError(f"amp: expected False, True, 'bf16' or 'fp16', got {amp!r}")
        self.amp = bool(amp) and self.device.type == "cuda"
        self.amp_dtype = torch.float16 if amp == "fp16" else torch.bfloat16
        self.channels_last = bool(channels_last) and self.device.type == "cuda"
        self.progress, self.desc = bool(progress), desc
        self.checkpoint, self.checkpoint_every = checkpoint, checkpoint_every
        self.hooks = list(hooks)
        self.dist = dist
        self.scaler = torch.amp.GradScaler("cuda") if self.amp and self.amp_dtype == torch.float16 else None
        self.task: Task | None = None
        self.epoch, self.global_step = 0, 0
        self.metrics: dict[str, Any] = {}
        self.should_stop = False
        self.resumed_from: str | None = None
        self._bar = None

    # ------------------------------------------------------------------------------------------ mode, checkpoints
    @property
    def step_mode(self) -> bool:
        """True when the fit counts steps only (one endless batch stream, checkpoints every k steps)."""
        return self.max_epochs is None

    @property
    def is_main(self) -> bool:
        return self.dist is None or self.dist.is_main

    def _point(self) -> str:
        return f"step_{self.global_step}" if self.step_mode else f"epoch_{self.epoch}"

    def _state(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "should_stop": self.should_stop,
            "metrics": dict(self.metrics),
            "task": self.task.state_dict(),
            "hooks": [h.state_dict() for h in self.hooks],
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng_state(self.task.generators()),
        }

    def save_checkpoint(self) -> None:
        """Write the current point (main process only; every process waits for it)."""
        if self.checkpoint is not None and self.is_main:
            self.checkpoint.save(self._point(), self._state())
        if self.dist is not None:
            self.dist.barrier()

    def _resume(self) -> int:
        """Load the last loadable checkpoint point; return the first epoch still to run."""
        prefix = "step_" if self.step_mode else "epoch_"
        points = sorted(
            (int(m.group(1)) for s in self.checkpoint.steps() if (m := re.fullmatch(re.escape(prefix) + r"(\d+)", s))),
            reverse=True,
        )
        for p in points:
            state = self.checkpoint.load(f"{prefix}{p}")
            if state is None:
                continue
            if not isinstance(state, Mapping) or state.get("format") != CHECKPOINT_FORMAT:
                warnings.warn(
                    f"checkpoint {self.checkpoint.path(prefix + str(p))} was not written by "
                    f"{__name__}.Trainer; ignoring it"
                )
                continue
            self.task.load_state_dict(state["task"])
            for h, s in zip(self.hooks, state["hooks"]):
                h.load_state_dict(s)
            if self.scaler is not None and state.get("scaler") is not None:
                self.scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"], self.task.generators())
            self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
            self.should_stop = bool(state.get("should_stop", False))
            self.metrics = dict(state.get("metrics", {}))
            self.resumed_from = f"{prefix}{p}"
            return self.epoch if self.step_mode else self.epoch + 1
        return 0

    # ------------------------------------------------------------------------------------------------ hooks
    def _call(self, name: str, *args) -> None:
        getattr(self.task, name)(self, *args)
        for h in self.hooks:
            getattr(h, name)(self, *args)

    def set_postfix(self, **values) -> None:
        """Show ``values`` next to the progress bar (a no-op without one)."""
        if self._bar is not None:
            self._bar.set_postfix(**values)

    # ------------------------------------------------------------------------------------------------ data, model
    @property
    def world(self) -> int:
        """Number of ranks (1 in one process)."""
        return 1 if self.dist is None else self.dist.world

    def to_device(self, x: Any) -> Any:
        """``x`` (a tensor, or tuples / lists / dicts of them) on the trainer's device. On CUDA: CPU tensors are copied
        from pinned memory without blocking the host, and 4-d float tensors become ``channels_last``; on the CPU
        the tensors come back as they are."""
        if isinstance(x, torch.Tensor):
            if self.device.type != "cuda":
                return x.to(self.device)
            if x.device.type == "cpu" and not x.is_pinned():
                x = x.pin_memory()
            x = x.to(self.device, non_blocking=True)
            if self.channels_last and x.ndim == 4 and x.is_floating_point():
                x = x.contiguous(memory_format=torch.channels_last)
            return x
        if isinstance(x, Mapping):
            return type(x)({k: self.to_device(v) for k, v in x.items()})
        if isinstance(x, tuple) and hasattr(x, "_fields"):  # a namedtuple
            return type(x)(*(self.to_device(v) for v in x))
        if isinstance(x, (list, tuple)):
            return type(x)(self.to_device(v) for v in x)
        return x

    def prepare(self, model: torch.nn.Module, sync_batchnorm: bool = True) -> torch.nn.Module:
        """``model`` ready to train: on the device, ``channels_last`` on CUDA when it has 2-d convolutions, and under
        ``torchrun`` its BatchNorm layers synchronised over the global batch (``sync_batchnorm``; leave False for a
        model whose BatchNorm is frozen) and wrapped in ``DistributedDataParallel``. Returns what to call in the
        training step (the wrapper, or ``model`` itself in one process); ``model``'s parameters are the ones
        trained, so optimisers, checkpoints and teachers keep using ``model``."""
        model.to(self.device)
        if self.channels_last and any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
            model.to(memory_format=torch.channels_last)
        if self.dist is None or not self.dist.enabled:
            return model
        if sync_batchnorm:
            model = self.dist.sync_batchnorm(model, self.device)
        return self.dist.wrap(model, self.device)

    def shard(self, items: Any) -> Any:
        """This rank's part of a global batch (every ``world``-th item; everything in one process)."""
        if self.dist is None or not self.dist.enabled:
            return items
        if isinstance(items, torch.Tensor):
            return items[self.dist.rank :: self.dist.world]
        return self.dist.shard(items)

    def gather(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """The global batch of ``n`` rows from this rank's :meth:`shard` of it, in the original order, differentiably
        (see :meth:`xmr_lib.train.distributed.DistContext.gather`); ``x`` in one process."""
        if self.dist is None or not self.dist.enabled:
            return x
        return self.dist.gather(x, n)

    def accumulate(self, total: torch.Tensor | float | None, value: torch.Tensor) -> torch.Tensor | float:
        """``total + value`` without a host synchronisation on CUDA (a float64 tensor on the device; read it with
        ``float()`` at a logging point); on the CPU the Python float ``total + float(value)``, as a hand-written loop
        adds it (so the recorded numbers do not change)."""
        if self.device.type != "cuda":
            return (0.0 if total is None else total) + float(value)
        v = value.detach().to(torch.float64)
        return v if total is None else total + v

    # ------------------------------------------------------------------------------------------------ a step
    def optimize(
        self, loss: torch.Tensor, optimizers: Sequence[torch.optim.Optimizer], clip: Callable[[], None] | None = None
    ) -> None:
        """``zero_grad → backward → clip → step`` on ``optimizers`` (scaled and unscaled under AMP). Tasks may call
        it for extra updates of their own (e.g. a discriminator step in ``on_step_end``); under AMP each call then
        updates the loss scale once."""
        optimizers = [o for o in optimizers if o is not None]
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            if clip is not None:
                clip()
            for o in optimizers:
                o.step()
            return
        self.scaler.scale(loss).backward()
        if clip is not None:
            for o in optimizers:
                self.scaler.unscale_(o)
            clip()
        for o in optimizers:
            self.scaler.step(o)
        self.scaler.update()

    def _step(self, batch: Any) -> Any:
        task = self.task
        self._call("on_step_start", batch)
        if self.amp:
            with torch.autocast(device_type="cuda", dtype=self.amp_dtype):
                out = task.training_step(self, batch)
        else:
            out = task.training_step(self, batch)
        loss = out.get("loss") if isinstance(out, Mapping) else out
        if loss is not None:
            if not isinstance(loss, torch.Tensor):
                raise TypeError(
                    f"training_step: expected a loss tensor, a mapping with 'loss' or None, got {type(loss).__name__}"
                )
            opts = list(task.optimizers(self, batch))
            if not opts:
                raise ValueError("optimizers: training_step returned a loss but the task names no optimiser")
            self.optimize(loss, opts, clip=lambda: task.clip_gradients(self, batch))
        self.global_step += 1
        self._call("on_step_end", batch, out)
        return out

    def _steps_left(self) -> bool:
        return self.max_steps is None or self.global_step < self.max_steps

    # ------------------------------------------------------------------------------------------------ a fit
    def fit(self, task: Task) -> Task:
        """Run ``task`` (resuming from the checkpoint when there is one) and return it."""
        from tqdm.auto import tqdm

        if not isinstance(task, Task):
            raise ValueError(f"task: expected a xmr_lib.train.loop.Task, got {type(task).__name__}")
        self.task, self.epoch, self.global_step, self.should_stop, self.resumed_from = task, 0, 0, False, None
        self.metrics = {}
        self._call("on_fit_start")
        start = self._resume() if self.checkpoint is not None else 0
        total = self.max_steps if self.step_mode else self.max_epochs
        done = self.global_step if self.step_mode else start
        self._bar = tqdm(
            total=total,
            initial=min(done, total),
            desc=self.desc,
            leave=False,
            disable=not (self.progress and self.is_main),
        )
        every = self.checkpoint_every
        try:
            if self.step_mode:
                if not self.should_stop and self._steps_left():
                    self.epoch = 0
                    self._call("on_epoch_start", 0)
                    it = iter(task.batches(self, 0))
                    while self._steps_left() and not self.should_stop:
                        try:
                            batch = next(it)
                        except StopIteration:
                            raise ValueError(
                                f"batches: the stream ended after {self.global_step} of "
                                f"{self.max_steps} steps; in step mode it must be endless"
                            ) from None
                        self._step(batch)
                        self._bar.update(1)
                        if self.checkpoint is not None and every and self.global_step % every == 0:
                            self.save_checkpoint()
                    self._call("on_epoch_end", 0)
                    if self.checkpoint is not None and (not every or self.global_step % every):
                        self.save_checkpoint()
            else:
                for epoch in range(start, self.max_epochs):
                    if self.should_stop or not self._steps_left():
                        break
                    self.epoch = epoch
                    self._call("on_epoch_start", epoch)
                    for batch in task.batches(self, epoch):
                        if not self._steps_left():
                            break
                        self._step(batch)
                        if self.should_stop:
                            break
                    self._call("on_epoch_end", epoch)
                    self._bar.update(1)
                    last = epoch + 1 == self.max_epochs or self.should_stop or not self._steps_left()
                    if self.checkpoint is not None and ((epoch + 1) % (every or 1) == 0 or last):
                        self.save_checkpoint()
            self._call("on_fit_end")
        finally:
            self._bar.close()
            self._bar = None
        return task
