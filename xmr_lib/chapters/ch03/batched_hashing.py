"""Chapter 3's hashing model trained for R seeds at once (:mod:`xmr_lib.train.batched`).

:func:`train_cross_modal_hashing_batched` gives each seed the model that
:func:`xmr_lib.chapters.ch03.hashing.train_cross_modal_hashing` trains alone — the same initialisation, batch order,
dropout masks, alternating passes, buffers, adversarial domain steps and per-epoch history — computed as one
network whose parameters carry a leading run axis. :class:`BatchedHashingTask` mirrors
:class:`~xmr_lib.chapters.ch03.hashing.HashingTask` step for step; every per-run quantity of that task gets a run
axis here (features (R, n, N), buffers (R, n_train, N), losses (R,)).

Less work than R lone fits, same numbers: each pair product ``F Gᵀ`` (R, B, n) is formed once for both pair terms
(:class:`_Product`; the lone loss forms it twice), the terms' graphs are built in the lone loss's order so that
every gradient accumulates in the same order, and :func:`xmr_lib.train.batched.linear` differentiates as
``F.linear`` does. ``fast=True`` also sums both pair terms' gradients in closed form before one backward product
(:class:`_PairTerms`) and steps one fused Adam: less arithmetic, equal to the autograd fits only to rounding (a code
bit flips now and then), but an arithmetic of its own whose one-by-one form is
:func:`train_cross_modal_hashing_closed_form` (:class:`ClosedFormHashingTask`, the chapter's per-run trainer with
those two changes): each seed trained alone that way gets the run that the batched ``fast=True`` gives it.

What batching buys on a CPU (profiled at notebook 03's default size, 2 threads, R = 5): the step is dominated by
products that are compute-bound already (≈ 50 % of a one-by-one fit, ≈ 60 % of a batched one) and by elementwise
passes over (B, n) pair matrices and parameter-sized tensors (softplus, dropout masks, Adam), whose work per
element batching does not change; it removes only the per-operation overhead of the small operations (the domain
and label heads, the bias and norm passes), so the batched fit is ≈ 1.0–1.6× the one-by-one fits of the same
arithmetic (2 threads: autograd 1.14× at R = 5, 1.24–1.37× at R = 10; closed form 1.17–1.38× and 1.52–1.58×; one
thread ≈ 1.0–1.1×), not the ≥ 5× a GPU can give (``python -m benchmarks.batched_training``; ``benchmarks/README.md``).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from xmr_lib.chapters.ch03 import hashing as H
from xmr_lib.core.setup import resolve_device
from xmr_lib.train import batched as B
from xmr_lib.train import loop

__all__ = [
    "BatchedHashingTask",
    "ClosedFormHashingTask",
    "train_cross_modal_hashing_batched",
    "train_cross_modal_hashing_closed_form",
]

_DOMAIN_ID = {"image": 0, "text": 1}


def _sum(x: torch.Tensor) -> torch.Tensor:
    """Per-run sum over everything but the run axis: (R, …) → (R,)."""
    return x.flatten(1).sum(1)


class _PairTerms(torch.autograd.Function):
    """Both pair terms of one feature pair ``(u, v)`` from one product, with their analytic gradient.

    ``P = u vᵀ`` (R, n, m) is formed once per stacked batch; the pairwise likelihood (Eqs. 3.4–3.5) uses
    ``Θ = ½ P`` (``Σ softplus(Θ) − S∘Θ``, times ``sign``) and the multi-level term (Eq. 3.3, only when ``w`` is
    given) ``Σ (σ(P) − W)²``. The backward pass sums both terms' gradients on ``P`` first,
    ``∂P = ½ sign g₁ (σ(Θ) − S) + 2 g₂ (σ(P) − W) σ(P) (1 − σ(P))``, and multiplies by the other side once
    (``∂u = ∂P v``, ``∂v = ∂Pᵀ u``) — one product each way instead of autograd's two through two graphs. The forward
    values are those of the separate terms bit for bit (½ is exact); the gradient differs only by rounding
    (tested against autograd)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, u, v, s, w, sign: float):
        P = torch.bmm(u, v.transpose(1, 2))
        theta = 0.5 * P
        pairs = _sum(F.softplus(theta) - s * theta)
        if sign != 1.0:
            pairs = sign * pairs
        ml, sp = None, None
        if w is not None:
            sp = torch.sigmoid(P)
            ml = _sum((sp - w).pow(2))
        ctx.sign = sign
        ctx.save_for_backward(u, v, s, w, theta, sp)
        return pairs, (ml if ml is not None else pairs.new_zeros(pairs.shape))

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, g_pairs, g_ml):
        u, v, s, w, theta, sp = ctx.saved_tensors
        R = u.shape[0]
        dP = torch.sigmoid(theta).sub_(s).mul_((0.5 * ctx.sign) * g_pairs.view(R, 1, 1))
        if sp is not None and g_ml is not None:
            dP.add_((sp - w).mul_(sp).mul_(1 - sp).mul_(2 * g_ml.view(R, 1, 1)))
        gu = torch.bmm(dP, v) if ctx.needs_input_grad[0] else None
        gv = torch.bmm(dP.transpose(1, 2), u) if ctx.needs_input_grad[1] else None
        return gu, gv, None, None, None


class _Product(torch.autograd.Function):
    """``u vᵀ`` (R, n, m) whose value ``P`` was formed beforehand, with ``torch.bmm``'s backward pass: the pair
    terms' graphs share one forward product yet differentiate exactly as the one-by-one fit's two products do."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, u, v, P):
        ctx.save_for_backward(u, v)
        return P

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, g):
        u, v = ctx.saved_tensors
        gu = torch.bmm(g, v) if ctx.needs_input_grad[0] else None
        gv = torch.bmm(u.transpose(1, 2), g).transpose(1, 2) if ctx.needs_input_grad[1] else None
        return gu, gv, None


def _pairs(u, v, P, s, sign: float) -> torch.Tensor:
    """Per run: the pairwise likelihood (Eqs. 3.4–3.5) of ``u`` (R, n, d) against ``v`` (R, m, d), ``P = u vᵀ``."""
    theta = 0.5 * _Product.apply(u, v, P)
    nll = F.softplus(theta) - s * theta
    return _sum(nll if sign == 1.0 else -nll)


def _ml(u, v, P, w) -> torch.Tensor:
    """Per run: the multi-level similarity term (Eq. 3.3) of ``u`` against ``v``, ``P = u vᵀ``."""
    return _sum((torch.sigmoid(_Product.apply(u, v, P)) - w).pow(2))


class _Forward:
    """The batched forward passes of a :class:`~xmr_lib.chapters.ch03.hashing.CrossModalHashingModel`'s parts, on the
    stacked parameters ``P`` (names of ``model.named_parameters()``)."""

    def __init__(self, model: H.CrossModalHashingModel, P: dict, rng: B.RunRNG):
        self.m, self.P, self.rng = model, P, rng

    def _head(self, prefix: str, head: H._HashHead, f: torch.Tensor, training: bool) -> torch.Tensor:
        z = B.apply_module(head.drop, self.P, prefix + "drop.", F.relu(f), self.rng, training)
        return torch.tanh(B.linear(z, self.P[prefix + "fc.weight"], self.P[prefix + "fc.bias"]))

    def _fusion(self, y: torch.Tensor) -> torch.Tensor:
        ms, R, n, T = self.m.text_net.ms, *y.shape
        x = y.reshape(R * n, 1, T)
        scale = self.P["text_net.ms.scale"]  # (R, levels)
        maps = [y]
        for i, k in enumerate(ms.kernels):
            p = F.avg_pool1d(x, kernel_size=k, stride=k, ceil_mode=True)
            p = F.relu(scale[:, i].view(R, 1, 1, 1) * p.view(R, n, 1, -1)).view(R * n, 1, -1)
            kw = {"align_corners": False} if ms.mode == "linear" else {}
            maps.append(F.interpolate(p, size=T, mode=ms.mode, **kw).view(R, n, T))
        return torch.cat(maps, dim=2)

    def branch(self, mod: str, x: torch.Tensor, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(F or G, H)`` of modality ``mod`` for ``x`` (R, n, d)."""
        net, pre = (self.m.image_net, "image_net.") if mod == "image" else (self.m.text_net, "text_net.")
        if mod == "text" and net.ms is not None:
            x = self._fusion(x)
        z = B.apply_module(net.body, self.P, pre + "body.", x, self.rng, training)
        f = B.linear(z, self.P[pre + "common.weight"], self.P[pre + "common.bias"])
        if net.relu_feat:
            f = F.relu(f)
        return f, self._head(pre + "hash.", net.hash, f, training)

    def label(self, f: torch.Tensor, training: bool) -> torch.Tensor:
        return B.apply_module(self.m.label_predictor.net, self.P, "label_predictor.net.", f, self.rng, training)

    def domain(self, which: str, z: torch.Tensor) -> torch.Tensor:
        m = getattr(self.m, f"domain_{which}")
        return B.apply_module(m.net, self.P, f"domain_{which}.net.", z, self.rng, True)

    def buffers(self, mod: str, x: torch.Tensor, bs: int = 2048) -> list[torch.Tensor]:
        """Eval-mode (F, H) of the whole set ``x`` (n, d) for every run, in the chunks of ``hashing._batched``."""
        R = len(self.rng.states)
        fs, hs = [], []
        with torch.no_grad():
            for i in range(0, len(x), bs):
                chunk = x[i : i + bs]
                f, h = self.branch(mod, chunk.unsqueeze(0).expand(R, *chunk.shape), training=False)
                fs.append(f)
                hs.append(h)
        return [torch.cat(fs, 1), torch.cat(hs, 1)]


class BatchedHashingTask(loop.Task):
    """:class:`~xmr_lib.chapters.ch03.hashing.HashingTask` for R runs of one configuration (one model per seed,
    ``models``; same config) trained together. ``gens``: each run's batch-order generator; ``rng``: each run's
    global random stream (its dropout masks); ``fast``: as in :func:`train_cross_modal_hashing_batched`."""

    def __init__(
        self,
        models: Sequence[H.CrossModalHashingModel],
        X: torch.Tensor,
        Y: torch.Tensor,
        L: torch.Tensor,
        gens: Sequence[torch.Generator],
        rng: B.RunRNG,
        probe_every: int = 1,
        fast: bool = False,
    ):
        c = self.c = models[0].config
        self.fast = fast
        self.models, self.R = list(models), len(models)
        self.P = B.stack_params(self.models)
        self.fw = _Forward(self.models[0], self.P, rng)
        self.X, self.Y, self.L, self.gens, self.rng, self.probe_every = X, Y, L, list(gens), rng, probe_every
        self.n, self.bs, self.wts = X.shape[0], min(c.batch_size, X.shape[0]), c.weights()
        group = lambda *pre: [p for k, p in self.P.items() if k.startswith(pre)]  # noqa: E731
        self.enc_params = {"image": group("image_net."), "text": group("text_net.")}
        lab_params = group("label_predictor.")
        dom_params = group("domain_real.", "domain_binary.")
        adam = lambda ps, lr, wd=0.0: torch.optim.Adam(ps, lr=lr, weight_decay=wd, fused=fast or None)  # noqa: E731
        self.opt = {k: adam(v, c.lr_start, c.weight_decay) for k, v in self.enc_params.items()}
        head_params = lab_params + (dom_params if c.entropy_mode == "literal" else [])
        self.opt_heads = adam(head_params, c.lr_start, c.weight_decay) if head_params else None
        self.opt_d = adam(dom_params, c.d_lr) if dom_params and c.entropy_mode == "adversarial" else None
        self.buf = {"image": self.fw.buffers("image", X), "text": self.fw.buffers("text", Y)}
        self.shared_b = H.sign_codes(self.buf["image"][1] + self.buf["text"][1])
        self.inputs = {"image": X, "text": Y}
        self.S_full = self.W_full = None
        if c.pair_scope == "buffer":
            self.S_full = H.binary_similarity(L, L)
            self.W_full = H.multilevel_similarity(L, L, c.multilevel_norm) if c.eta > 0 else None
        self.t0, self.n_seen = time.perf_counter(), 0
        self.lr, self.sums, self.probe_now = c.lr_start, {}, False

    def _acc(self, key: str, vals: Sequence[float]) -> None:
        s = self.sums.setdefault(key, [[0.0] * self.R, 0])
        for r, v in enumerate(vals):
            s[0][r] += float(v)
        s[1] += 1

    def on_epoch_start(self, trainer: loop.Trainer, epoch: int) -> None:
        c = self.c
        self.lr = H._lr_at(c, epoch)
        for o in [*self.opt.values(), self.opt_heads]:
            for g in o.param_groups if o is not None else []:
                g["lr"] = self.lr
        self.sums = {}
        self.probe_now = self.probe_every > 0 and (epoch % self.probe_every == 0 or epoch == c.epochs - 1)

    def batches(self, trainer: loop.Trainer, epoch: int):
        for mod in ("image", "text"):
            perm = B.stacked_randperm(self.n, self.gens, self.X.device)
            for b in range(max(1, self.n // self.bs)):
                yield mod, b, perm[:, b * self.bs : (b + 1) * self.bs]

    def _terms(self, mod, f, h, of, oh, S, W, lab, shared_b) -> dict[str, torch.Tensor]:
        """:func:`hashing._loss_terms` per run: each term (R,)."""
        c = self.c
        u_r, v_r, u_b, v_b = (f, of, h, oh) if mod == "image" else (of, f, oh, h)
        s = S if mod == "image" else S.transpose(1, 2)

        w = (W if mod == "image" else W.transpose(1, 2)) if c.eta > 0 else None
        sign = 1.0 if c.pairwise_sign == "nll" else -1.0

        def quant(hh, b):
            b = H.sign_codes(hh.detach()) if b is None else b
            return _sum((hh - b.detach()).pow(2))

        if self.fast:
            p_r, ml_r = _PairTerms.apply(u_r, v_r, s, w, sign)
            p_b, ml_b = _PairTerms.apply(u_b, v_b, s, w, sign)
            terms = {"pairs": p_r + p_b, "quant": quant(h, shared_b if c.quant_target == "shared" else None)}
            if c.eta > 0:
                terms["multilevel"] = ml_r + ml_b
        else:
            with torch.no_grad():
                # each product once for both terms (the one-by-one loss forms it twice); the graph's order of
                # creation is the one-by-one loss's, so every gradient accumulates in the same order
                P_r, P_b = torch.bmm(u_r, v_r.transpose(1, 2)), torch.bmm(u_b, v_b.transpose(1, 2))
            terms = {
                "pairs": _pairs(u_r, v_r, P_r, s, sign) + _pairs(u_b, v_b, P_b, s, sign),
                "quant": quant(h, shared_b if c.quant_target == "shared" else None),
            }
            if c.eta > 0:
                terms["multilevel"] = _ml(u_r, v_r, P_r, w) + _ml(u_b, v_b, P_b, w)
        if self.models[0].label_predictor is not None:
            logits = self.fw.label(f, True)
            terms["label"] = _sum(F.binary_cross_entropy_with_logits(logits, lab.float(), reduction="none"))
        if c.alpha > 0:
            d = f.new_zeros(self.R)
            for which, z in (("real", f), ("binary", h)):
                if getattr(self.models[0], f"domain_{which}") is not None:
                    logp = F.log_softmax(self.fw.domain(which, z), dim=2)
                    entropy = -(logp.exp() * logp).sum(dim=2)  # modality_entropy per item
                    d = d + _sum(-entropy)
            terms["domain"] = d
        if c.balance_weight > 0:
            terms["balance"] = h.sum(1).pow(2).sum(1)
        return terms

    def training_step(self, trainer: loop.Trainer, batch) -> dict:
        c, wts = self.c, self.wts
        mod, b, ind = batch
        other = "text" if mod == "image" else "image"
        f, h = self.fw.branch(mod, self.inputs[mod][ind], training=True)
        if c.pair_scope == "buffer":
            of, oh = self.buf[other][0], self.buf[other][1]
            S = self.S_full[ind]
            W = self.W_full[ind] if self.W_full is not None else None
        else:
            with torch.no_grad():
                of, oh = self.fw.branch(other, self.inputs[other][ind], training=True)
            Li = self.L[ind]  # (R, b, c)
            S = (torch.bmm(Li, Li.transpose(1, 2)) > 0).float()
            W = torch.stack([H.multilevel_similarity(x, x, c.multilevel_norm) for x in Li]) if c.eta > 0 else None
        n_part = of.shape[1]
        terms = self._terms(mod, f, h, of, oh, S, W, self.L[ind], B.take_rows(self.shared_b, ind))
        terms = {k: v / H._normaliser(k, c.loss_reduction, ind.shape[1], n_part) for k, v in terms.items()}
        total = H.total_loss(terms, **wts)
        if self.probe_now and b == 0:
            weighted = {k: wts[H._WEIGHT_OF[k]] * v for k, v in terms.items() if wts[H._WEIGHT_OF[k]] > 0}
            for name, wrt in (("grad_F", f), ("grad_H", h)):
                for k, v in weighted.items():
                    g = None
                    if v.requires_grad:
                        (g,) = torch.autograd.grad(v.sum(), wrt, retain_graph=True, allow_unused=True)
                    self._acc(f"{mod}/{name}/{k}", [0.0] * self.R if g is None else g.flatten(1).norm(dim=1).tolist())
        return {"loss": total.sum(), "total": total, "terms": terms, "f": f, "h": h, "of": of, "oh": oh}

    def optimizers(self, trainer: loop.Trainer, batch) -> list:
        return [self.opt[batch[0]], self.opt_heads]

    def clip_gradients(self, trainer: loop.Trainer, batch) -> None:
        if self.c.grad_clip > 0:
            B.clip_grad_norm_per_run(self.enc_params[batch[0]], self.c.grad_clip)

    def _domain_loss(self, f, h, of, oh, dom: int) -> torch.Tensor:
        loss = f.new_zeros(self.R)
        for which, (a, b) in (("real", (f, of)), ("binary", (h, oh))):
            if getattr(self.models[0], f"domain_{which}") is None:
                continue
            for z, d in ((a, dom), (b, 1 - dom)):
                logits = self.fw.domain(which, z)
                tgt = torch.full(logits.shape[:2], d, dtype=torch.long, device=logits.device)
                ce = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), reduction="none").view(tgt.shape)
                loss = loss + ce.mean(1)
        return loss

    def on_step_end(self, trainer: loop.Trainer, batch, out: dict) -> None:
        c, buf = self.c, self.buf
        mod, _, ind = batch
        other = "text" if mod == "image" else "image"
        self.n_seen += ind.shape[1]
        for k, v in out["terms"].items():
            self._acc(f"{mod}/{k}", v.detach().cpu().tolist())
        self._acc(f"{mod}/total", out["total"].detach().cpu().tolist())
        rows = torch.arange(self.R, device=ind.device)[:, None]
        with torch.no_grad():
            fd, hd = out["f"].detach(), out["h"].detach()
            if c.pair_scope == "buffer":
                buf[mod][0][rows, ind], buf[mod][1][rows, ind] = fd, hd
            if self.opt_d is not None:
                ofd, ohd = (
                    (B.take_rows(buf[other][0], ind), B.take_rows(buf[other][1], ind))
                    if c.pair_scope == "buffer"
                    else (out["of"], out["oh"])
                )
        for _ in range(c.d_steps if self.opt_d is not None else 0):
            dl = self._domain_loss(fd, hd, ofd, ohd, _DOMAIN_ID[mod])
            trainer.optimize(dl.sum(), [self.opt_d])
            self._acc("domain_ce", dl.detach().cpu().tolist())

    @torch.no_grad()
    def _diagnostics(self) -> list[dict[str, float]]:
        """:func:`hashing._domain_diagnostics` of every run."""
        out = [{} for _ in range(self.R)]
        for name, i in (("real", 0), ("binary", 1)):
            if getattr(self.models[0], f"domain_{name}") is None:
                continue
            li_all, lt_all = self.fw.domain(name, self.buf["image"][i]), self.fw.domain(name, self.buf["text"][i])
            for r, (li, lt) in enumerate(zip(li_all, lt_all)):
                ent = torch.cat([H.modality_entropy(li), H.modality_entropy(lt)]).mean() / math.log(2)
                accu = torch.cat([(li.argmax(1) == 0), (lt.argmax(1) == 1)]).float().mean()
                out[r][f"D_{name}/entropy_bits"] = float(ent)
                out[r][f"D_{name}/accuracy"] = float(accu)
        return out

    def on_epoch_end(self, trainer: loop.Trainer, epoch: int) -> None:
        c = self.c
        if c.pair_scope == "in_batch" or c.quant_target == "shared" or epoch == c.epochs - 1:
            self.buf = {"image": self.fw.buffers("image", self.X), "text": self.fw.buffers("text", self.Y)}
        buf = self.buf
        self.shared_b = H.sign_codes(buf["image"][1] + buf["text"][1])
        secs = time.perf_counter() - self.t0
        diag = self._diagnostics()
        for r, m in enumerate(self.models):
            stats = {k: s[r] / n for k, (s, n) in self.sums.items()}
            stats.update(epoch=epoch, lr=self.lr, seconds=secs, pairs_per_s=self.R * self.n_seen / max(secs, 1e-9))
            stats.update(diag[r])
            bb = H.bit_balance(torch.cat([buf["image"][1][r], buf["text"][1][r]]))
            stats["bit_balance_min"] = float(np.minimum(bb, 1 - bb).min())
            m.history.append(stats)


def train_cross_modal_hashing_batched(
    image_x,
    text_y,
    labels,
    config: H.HashingConfig | None = None,
    seeds: Sequence[int] = (0,),
    device: str = "auto",
    progress: bool = False,
    probe_every: int = 1,
    amp: bool | str = False,
    on_fit: Callable[[BatchedHashingTask], None] | None = None,
    fast: bool = False,
) -> list[H.CrossModalHashingModel]:
    """:func:`~xmr_lib.chapters.ch03.hashing.train_cross_modal_hashing` for every seed of ``seeds`` at once: one
    trained model per seed, each the model the one-by-one call returns for that seed (equal to ~1e-6 and,
    on the CPU, bit for bit).

    Args:
        image_x, text_y, labels, config, device, progress, probe_every: as in ``train_cross_modal_hashing``.
        seeds: one run per seed (distinct or not).
        amp: the training loop's mixed precision on CUDA (off: the same numbers as the one-by-one runs).
        fast: both pair terms' gradient in closed form from one product (:class:`_PairTerms`) and one fused Adam
            step over the stacked parameters: less work, but the gradients and updates differ from autograd's by
            rounding, which over a training can flip a few code bits (mAP differences ~1e-5–1e-4); each run is
            the one :func:`train_cross_modal_hashing_closed_form` trains alone. Off (default): every run's numbers
            are those of its one-by-one fit with ``train_cross_modal_hashing``.
    Returns:
        the R trained models (eval mode), each with its ``history``.
    """
    c = config or H.HashingConfig()
    X = H._as_tensor("image_x", image_x)
    n = X.shape[0]
    Y = H._as_tensor("text_y", text_y, n)
    L = H._as_tensor("labels", labels, n)
    if n < 2:
        raise ValueError(f"image_x: need at least 2 training pairs, got {n}")
    if not len(seeds):
        raise ValueError("seeds: expected at least one seed, got none")
    dev = torch.device(resolve_device(device))
    models, states = [], []
    for s in seeds:  # as the lone fit: seed torch, build the model, then its dropout draws from that stream
        torch.manual_seed(int(s))
        models.append(H.CrossModalHashingModel(X.shape[1], Y.shape[1], L.shape[1], c).to(dev))
        states.append(torch.cuda.get_rng_state(dev) if dev.type == "cuda" else torch.get_rng_state())
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    task = BatchedHashingTask(models, X.to(dev), Y.to(dev), L.to(dev), gens, B.RunRNG(states, dev), probe_every, fast)
    desc = f"hashing {c.n_bits} bits × {len(seeds)} runs"
    loop.Trainer(max_epochs=c.epochs, device=dev, amp=amp, progress=progress, desc=desc).fit(task)
    B.unstack_params(task.P, task.models)
    if on_fit is not None:
        on_fit(task)
    for m in task.models:
        m.eval()
    return task.models


# ---------------------------------------------------------------------------------------------------------------
# one seed alone in the closed-form arithmetic (the one-by-one reference of fast=True)


def _closed_form_terms(
    model: H.CrossModalHashingModel, c: H.HashingConfig, f, h, of, oh, S, W, lab, mod: str, shared_b
):
    """:func:`hashing._loss_terms` with both pair terms from :class:`_PairTerms` (one product, closed-form gradient):
    the arithmetic of ``fast=True`` for one run (2-D features; every other term as the chapter's loss)."""
    u_r, v_r, u_b, v_b = (f, of, h, oh) if mod == "image" else (of, f, oh, h)
    s = (S if mod == "image" else S.T).unsqueeze(0)
    w = (W if mod == "image" else W.T).unsqueeze(0) if c.eta > 0 else None
    sign = 1.0 if c.pairwise_sign == "nll" else -1.0
    p_r, ml_r = _PairTerms.apply(u_r.unsqueeze(0), v_r.unsqueeze(0), s, w, sign)
    p_b, ml_b = _PairTerms.apply(u_b.unsqueeze(0), v_b.unsqueeze(0), s, w, sign)
    terms = {
        "pairs": (p_r + p_b).squeeze(0),
        "quant": H.quantization_loss(h, shared_b if c.quant_target == "shared" else None),
    }
    if c.eta > 0:
        terms["multilevel"] = (ml_r + ml_b).squeeze(0)
    if model.label_predictor is not None:
        terms["label"] = H.label_prediction_loss(model.label_predictor(f), lab)
    if c.alpha > 0:
        d = f.new_zeros(())
        if model.domain_real is not None:
            d = d + H.negative_entropy_loss(model.domain_real(f))
        if model.domain_binary is not None:
            d = d + H.negative_entropy_loss(model.domain_binary(h))
        terms["domain"] = d
    if c.balance_weight > 0:
        terms["balance"] = H.balance_loss(h)
    return terms


class ClosedFormHashingTask(H.HashingTask):
    """:class:`~xmr_lib.chapters.ch03.hashing.HashingTask` (one run, the chapter's own per-run trainer) in the
    arithmetic of ``fast=True``: both pair terms through :class:`_PairTerms` and fused Adam steps. Each seed trained
    alone this way is the run that :func:`train_cross_modal_hashing_batched` with ``fast=True`` gives it (the same
    arithmetic, one run at a time): the one-by-one reference against which the batched closed form is timed."""

    def __init__(self, model, X, Y, L, gen, probe_every=1, on_epoch=None):
        super().__init__(model, X, Y, L, gen, probe_every, on_epoch)
        c = self.c
        adam = lambda ps, lr, wd=0.0: torch.optim.Adam(ps, lr=lr, weight_decay=wd, fused=True)  # noqa: E731
        params = lambda o: [p for g in o.param_groups for p in g["params"]]  # noqa: E731
        self.opt = {k: adam(v, c.lr_start, c.weight_decay) for k, v in self.enc_params.items()}
        if self.opt_heads is not None:
            self.opt_heads = adam(params(self.opt_heads), c.lr_start, c.weight_decay)
        if self.opt_d is not None:
            self.opt_d = adam(params(self.opt_d), c.d_lr)

    def loss_terms(self, f, h, of, oh, S, W, lab, mod: str, shared_b) -> dict[str, torch.Tensor]:
        return _closed_form_terms(self.model, self.c, f, h, of, oh, S, W, lab, mod, shared_b)


def train_cross_modal_hashing_closed_form(
    image_x,
    text_y,
    labels,
    config: H.HashingConfig | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    probe_every: int = 1,
) -> H.CrossModalHashingModel:
    """:func:`~xmr_lib.chapters.ch03.hashing.train_cross_modal_hashing` for one seed in the arithmetic of
    ``train_cross_modal_hashing_batched(..., fast=True)`` (:class:`ClosedFormHashingTask`): the model that call
    gives this seed, trained alone (equal to ~1e-7; at chapter 3's default size on the CPU, the same codes).
    Arguments as in ``train_cross_modal_hashing``; the image branch takes features (no fine-tuned trunk)."""
    c = config or H.HashingConfig()
    if c.image_trunk != "none":
        raise ValueError(f"config.image_trunk: the closed-form trainer takes image features, got {c.image_trunk!r}")
    X = H._as_tensor("image_x", image_x)
    n = X.shape[0]
    Y = H._as_tensor("text_y", text_y, n)
    L = H._as_tensor("labels", labels, n)
    if n < 2:
        raise ValueError(f"image_x: need at least 2 training pairs, got {n}")
    dev = torch.device(resolve_device(device))
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    model = H.CrossModalHashingModel(X.shape[1], Y.shape[1], L.shape[1], c).to(dev)
    trainer = loop.Trainer(max_epochs=c.epochs, device=dev, progress=progress, desc=f"hashing {c.n_bits} bits")
    trainer.fit(ClosedFormHashingTask(model, X.to(dev), Y.to(dev), L.to(dev), gen, probe_every))
    model.eval()
    return model
