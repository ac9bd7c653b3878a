"""Train R independent copies of a small network together, as one batched network.

A sweep over seeds, code lengths or ablation rows trains many small, same-shaped networks one after the other; on
a CPU or a GPU each of them is too small to keep the hardware busy, and the Python overhead of every step is paid
R times. Here the R copies are one network whose every parameter has a leading run axis (``(R, *shape)``,
:func:`stack_params`), every linear layer is one batched matrix product (:func:`linear`, ``torch.baddbmm``), and
one optimiser steps all of them at once.

Why the R runs stay independent — and give the same numbers as R separate fits:

- the loss is the sum over runs of each run's loss, so the gradient of run r's slice is run r's gradient;
- Adam / SGD update every parameter element by element, so one optimiser on the stacked tensors is R optimisers;
- gradient clipping is the one non-elementwise step: :func:`clip_grad_norm_per_run` clips each run by its own norm;
- each run keeps its own data order (a ``torch.Generator`` per run, :func:`stacked_randperm`) and its own dropout
  masks (:class:`RunRNG` replays each run's global RNG stream, so the masks are those the run draws alone);
- ``torch.baddbmm`` computes each run's slice like ``F.linear`` (``addmm``), and :func:`linear`'s backward pass
  forms the gradients as ``addmm``'s does (the weight's as ``gᵀ x``, in the weight's own layout, so no transposed
  copy of every weight's gradient at every step): at the sizes of chapter 3's networks
  on the CPU the forward and backward passes agree with the one-by-one fit bit for bit (measured; for tiny
  matrices the kernels may differ by rounding, ~1e-7 relative) (``torch.func.vmap`` over ``F.linear``
  reorders the bias addition and drifts by ~1e-6 relative, which over a few hundred Adam steps can flip a code bit;
  :func:`vmap_forward` is the generic path for modules with other layers, exact only up to such rounding).

:func:`train_classifier_runs` is the plain supervised case (an MLP classifier; the test and the benchmark use it),
with ``batched=False`` as the one-by-one reference; a method with its own training step (e.g. the alternating
passes of chapter 3's hashing) builds its batched step from :func:`linear`, :func:`apply_module`, :class:`RunRNG`,
:func:`stacked_randperm` and :func:`clip_grad_norm_per_run`.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from xmr_lib.core.setup import resolve_device
from xmr_lib.train import loop

__all__ = [
    "stack_params",
    "unstack_params",
    "linear",
    "apply_module",
    "vmap_forward",
    "RunRNG",
    "stacked_randperm",
    "take_rows",
    "clip_grad_norm_per_run",
    "train_classifier_runs",
]


# ---------------------------------------------------------------------------------------------------------------
# parameters with a run axis


def stack_params(modules: Sequence[nn.Module]) -> dict[str, nn.Parameter]:
    """The parameters of R same-shaped modules stacked on a new leading run axis: ``{name: (R, *shape)}``, each a
    fresh leaf ``nn.Parameter`` (the modules are not changed; :func:`unstack_params` writes back).

    Raises ValueError when the modules differ in parameter names or shapes."""
    if not modules:
        raise ValueError("modules: expected at least one module, got none")
    names = [n for n, _ in modules[0].named_parameters()]
    for i, m in enumerate(modules[1:], 1):
        got = [(n, tuple(p.shape)) for n, p in m.named_parameters()]
        want = [(n, tuple(p.shape)) for n, p in modules[0].named_parameters()]
        if got != want:
            raise ValueError(
                f"modules[{i}]: parameters {got} differ from modules[0]'s {want}; runs must be same-shaped"
            )
    from torch.func import stack_module_state  # lazy: torch.func is only needed here

    stacked, _ = stack_module_state(list(modules))
    return {n: nn.Parameter(stacked[n].detach().clone()) for n in names}


@torch.no_grad()
def unstack_params(stacked: Mapping[str, torch.Tensor], modules: Sequence[nn.Module]) -> None:
    """Copy run r's slice of every stacked parameter into ``modules[r]`` (in place)."""
    for r, m in enumerate(modules):
        for n, p in m.named_parameters():
            p.copy_(stacked[n][r])


class _Linear(torch.autograd.Function):
    """R linear layers with the backward pass of ``F.linear`` (``addmm``) run by run: the output's gradient made
    contiguous, the weight's gradient formed as ``gᵀ x`` straight in the weight's (R, out, in) layout (autograd
    through ``baddbmm(b, x, Wᵀ)`` forms ``xᵀ g`` (R, in, out) and then copies it, transposed, into ``W.grad`` — a
    slow strided copy of every weight at every step), the bias's as the sum of the gradient's rows."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        g = g.contiguous()
        gx = torch.bmm(g, weight) if ctx.needs_input_grad[0] else None
        gw = torch.bmm(g.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        gb = g.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """R linear layers at once: ``x`` (R, n, in), ``weight`` (R, out, in), ``bias`` (R, out) → (R, n, out).

    ``torch.baddbmm`` gives each run's slice the numbers of ``F.linear(x[r], weight[r], bias[r])``, and the backward
    pass (:class:`_Linear`) forms each gradient as ``addmm``'s backward does (bit for bit at chapter 3's sizes on the
    CPU, to rounding for tiny matrices); the output's gradient is made contiguous before the bias sums it, as in
    the lone fit (a gradient laid out per run column-major, e.g. from a product with the output on the right,
    would otherwise be summed in another order)."""
    if x.ndim != 3 or weight.ndim != 3 or x.shape[0] != weight.shape[0] or x.shape[2] != weight.shape[2]:
        raise ValueError(
            f"x, weight: expected (R, n, in) and (R, out, in), got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    return _Linear.apply(x, weight, bias)


class RunRNG:
    """The global torch random stream of each of R runs, replayed one run at a time, so that what a batched step
    draws (dropout masks) is what each run draws when it trains alone.

    Capture each run's state right where its lone fit would start drawing (after ``torch.manual_seed(seed)`` and
    building its model): ``RunRNG([state_0, …], device)``. The caller's own global state is left as it was."""

    def __init__(self, states: Sequence[torch.Tensor], device: Any = "cpu"):
        if not states:
            raise ValueError("states: expected one RNG state per run, got none")
        self.states = [s.clone() for s in states]
        self.cuda = torch.device(device).type == "cuda"

    def _get(self) -> torch.Tensor:
        return torch.cuda.get_rng_state() if self.cuda else torch.get_rng_state()

    def _set(self, s: torch.Tensor) -> None:
        torch.cuda.set_rng_state(s) if self.cuda else torch.set_rng_state(s)

    def draw(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``fn()`` called once per run inside that run's stream, stacked: (R, …)."""
        saved, out = self._get(), []
        try:
            for r, s in enumerate(self.states):
                self._set(s)
                out.append(fn())
                self.states[r] = self._get()
        finally:
            self._set(saved)
        return torch.stack(out)

    def dropout(self, x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
        """``F.dropout`` of each run's slice of ``x`` (R, …) with the mask that run draws alone."""
        if not training or p == 0:
            return x
        ones = torch.ones(x.shape[1:], dtype=x.dtype, device=x.device)
        return x * self.draw(lambda: F.dropout(ones, p, True))


def apply_module(
    module: nn.Module, params: Mapping[str, torch.Tensor], prefix: str, x: torch.Tensor, rng: RunRNG, training: bool
) -> torch.Tensor:
    """Run ``module`` (an ``nn.Sequential`` of ``Linear`` / ``ReLU`` / ``Tanh`` / ``Sigmoid`` / ``Dropout`` /
    ``Identity``) with the stacked parameters ``params[prefix + name]`` on ``x`` (R, n, d)."""
    if isinstance(module, nn.Sequential):
        for i, m in enumerate(module):
            x = apply_module(m, params, f"{prefix}{i}.", x, rng, training)
        return x
    if isinstance(module, nn.Linear):
        return linear(x, params[prefix + "weight"], params.get(prefix + "bias"))
    if isinstance(module, nn.ReLU):
        return F.relu(x)
    if isinstance(module, nn.Tanh):
        return torch.tanh(x)
    if isinstance(module, nn.Sigmoid):
        return torch.sigmoid(x)
    if isinstance(module, nn.Dropout):
        return rng.dropout(x, module.p, training)
    if isinstance(module, nn.Identity):
        return x
    raise ValueError(
        f"module {prefix.rstrip('.') or '(root)'}: {type(module).__name__} has no batched form here; use "
        "vmap_forward, or write its batched forward from linear / RunRNG"
    )


def vmap_forward(module: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Any module without random layers, R copies at once: ``torch.func.vmap`` of ``functional_call`` over the run
    axis of ``params`` and ``x`` (R, n, …). Equal to the one-by-one forward up to rounding (not bit for bit)."""
    from torch.func import functional_call, vmap  # lazy: torch.func is only needed here

    return vmap(lambda p, xi: functional_call(module, p, (xi,)))(dict(params), x)


def stacked_randperm(n: int, generators: Sequence[torch.Generator], device: Any = "cpu") -> torch.Tensor:
    """One ``torch.randperm(n, generator=g)`` per run's generator, stacked: (R, n) on ``device``."""
    return torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)


def take_rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Run r's rows ``idx[r]`` of its own slice ``t[r]``: ``t`` (R, n, …), ``idx`` (R, b) → (R, b, …)."""
    return t[torch.arange(t.shape[0], device=t.device)[:, None], idx]


@torch.no_grad()
def clip_grad_norm_per_run(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` applied to each run separately: the norm of run r is taken over the r-th
    slices of every parameter's gradient, and only run r's slices are scaled. Returns the (R,) norms before
    clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(0)
    R = grads[0].shape[0]
    # each run's norm exactly as clip_grad_norm_ takes it: a norm per (whole) parameter, then the norm of those
    per = torch.stack([torch.linalg.vector_norm(g[r], 2) for r in range(R) for g in grads]).view(R, len(grads))
    total = torch.stack([torch.linalg.vector_norm(per[r], 2) for r in range(R)])
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *[1] * (g.ndim - 1)).to(g.dtype))
    return total


# ---------------------------------------------------------------------------------------------------------------
# the plain supervised case


def _check_xy(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y)
    if x.ndim != 2:
        raise ValueError(f"x: expected a 2-D array (n, d), got shape {tuple(x.shape)}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y: expected shape ({x.shape[0]},) (one class per row of x), got {tuple(y.shape)}")
    return x, y.long()


class _ClassifierRuns(loop.Task):
    """R classifier fits (one-by-one when R = 1 and ``batched=False``) as a :class:`xmr_lib.train.loop.Task`."""

    def __init__(self, make_model, x, y, seeds, batch_size, lr, optimizer, batched, device):
        self.models, states = [], []
        for s in seeds:  # each run: seed, build its model, then draw its dropout from the same stream
            torch.manual_seed(int(s))
            self.models.append(make_model().to(device))
            states.append(torch.cuda.get_rng_state() if device.type == "cuda" else torch.get_rng_state())
        self.batched, self.x, self.y, self.bs = batched, x.to(device), y.to(device), min(batch_size, x.shape[0])
        self.gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.rng = RunRNG(states, device)
        self.params = stack_params(self.models) if batched else None
        make_opt = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer]
        groups = [list(self.params.values())] if batched else [list(m.parameters()) for m in self.models]
        self.opts = [make_opt(g, lr=lr) for g in groups]
        self.history: list[list[float]] = [[] for _ in seeds]
        self._sum = torch.zeros(len(seeds), device=device)
        self._n = 0

    def batches(self, trainer, epoch):
        n = self.x.shape[0]
        perm = stacked_randperm(n, self.gens, self.x.device)
        for b in range(max(1, n // self.bs)):
            yield perm[:, b * self.bs : (b + 1) * self.bs]

    def training_step(self, trainer, idx):
        if self.batched:
            logits = apply_module(self.models[0], self.params, "", self.x[idx], self.rng, True)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), self.y[idx].flatten(), reduction="none")
            per_run = loss.view(idx.shape).mean(1)
        else:  # the reference: one run alone, drawing its dropout from the global stream it seeded
            per_run = F.cross_entropy(self.models[0](self.x[idx[0]]).float(), self.y[idx[0]]).reshape(1)
        self._sum += per_run.detach().float()
        self._n += 1
        return per_run.sum()

    def optimizers(self, trainer, batch):
        return self.opts

    def on_epoch_end(self, trainer, epoch):
        for r, v in enumerate((self._sum / max(self._n, 1)).cpu().tolist()):
            self.history[r].append(v)
        self._sum.zero_()
        self._n = 0


def train_classifier_runs(
    make_model: Callable[[], nn.Module],
    x: Any,
    y: Any,
    seeds: Sequence[int],
    *,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 1e-3,
    optimizer: str = "adam",
    batched: bool = True,
    device: str = "auto",
    amp: bool | str = False,
) -> tuple[list[nn.Module], dict[str, Any]]:
    """Train one classifier per seed on ``(x, y)`` with cross-entropy: run r seeds torch with ``seeds[r]``, builds
    ``make_model()`` (an ``nn.Sequential`` of the layers :func:`apply_module` knows), and draws its batch order from
    ``torch.Generator().manual_seed(seeds[r])``.

    ``batched=True`` trains the R runs as one stacked network; ``batched=False`` trains them one after the other
    (the reference). Both give each run the same numbers.

    Args:
        x: (n, d) inputs; y: (n,) class indices. optimizer: ``"adam"`` or ``"sgd"``. amp: the loop's mixed
            precision (CUDA only; off by default so that both modes are bit-comparable).
    Returns:
        ``(models, info)``: the R trained models (eval mode) and ``{"loss": [per-epoch mean loss per run],
        "seconds": wall time of the fit}``.
    """
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer: expected 'adam' or 'sgd', got {optimizer!r}")
    if not len(seeds):
        raise ValueError("seeds: expected at least one seed, got none")
    x, y = _check_xy(x, y)
    dev = torch.device(resolve_device(device))
    t0 = time.perf_counter()
    if batched:
        task = _ClassifierRuns(make_model, x, y, seeds, batch_size, lr, optimizer, True, dev)
        loop.Trainer(max_epochs=epochs, device=dev, amp=amp, progress=False).fit(task)
        unstack_params(task.params, task.models)
        models, hist = task.models, task.history
    else:
        models, hist = [], []
        for s in seeds:
            task = _ClassifierRuns(make_model, x, y, [s], batch_size, lr, optimizer, False, dev)
            loop.Trainer(max_epochs=epochs, device=dev, amp=amp, progress=False).fit(task)
            models += task.models
            hist += task.history
    for m in models:
        m.eval()
    return models, {"loss": hist, "seconds": time.perf_counter() - t0}
