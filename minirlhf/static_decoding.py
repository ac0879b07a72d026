"""Sampling GPT-2-shaped models with a static KV cache, replayed as a CUDA graph on a GPU.

transformers' decoding loop grows its cache by one token per step and goes through its
Python-level module code each time: at batch 64 with 12 layers, a GPU spends most of a step
waiting for Python to launch ~200 small kernels. Here:

* the cache is allocated once for prompt + answer (``L = P + T`` slots per layer), so every
  decoding step has the same shapes; slots not yet written are masked out;
* one step (sample a token from the logits, then run it through the model at the next slot)
  reads and writes only fixed buffers, so on CUDA it is captured once as a CUDA graph and each
  token is one ``graph.replay()``;
* the model's own modules do the work (``ln_1``, ``c_attn``, ``mlp`` ...): the same weights,
  also while PPO updates them in place, and LoRA layers where there are any.

Sampling is ``ppo.rollout``'s: the inverse of softmax(logits / T)'s CDF at one uniform number
per row, drawn from the same generator in the same order, so on the CPU (fp32) the tokens equal
the plain loop's (``tests/test_ppo_speed.py``).

``hidden_states`` is the same model code for a whole sequence at once, which PPO's scoring and
training passes use (``ppo.logprobs_of``, ``ppo.values_of``): transformers' forward pass asks the
GPU whether the attention mask has padding (``mask.all()``) before every pass, so the CPU waits for
the GPU there about a dozen times per PPO iteration; here the mask is built on the device and
nothing waits.
"""
from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F

from .lora import unwrap

_DECODERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # model -> {shapes: StaticDecoder}


def supports(model) -> bool:
    """True for a GPT-2 LM whose attention is the plain kind this module re-implements."""
    core = unwrap(model)
    cfg = getattr(core, "config", None)
    return (getattr(cfg, "model_type", None) == "gpt2" and hasattr(core, "transformer") and hasattr(core, "lm_head")
            and cfg.scale_attn_weights and not cfg.scale_attn_by_inverse_layer_idx
            and not cfg.reorder_and_upcast_attn and not getattr(cfg, "add_cross_attention", False))


def plain_gpt2(model) -> bool:
    """True for a GPT-2 model (LM or with a scalar head) that ``hidden_states`` computes as
    transformers does: plain attention, no gradient checkpointing, and no dropout left on in training."""
    core = unwrap(model)
    cfg = getattr(core, "config", None)
    if getattr(cfg, "model_type", None) != "gpt2" or not hasattr(core, "transformer"):
        return False
    dropout = core.training and any(m.p > 0 for m in core.modules() if isinstance(m, torch.nn.Dropout))
    checkpointing = getattr(core, "is_activation_checkpointing", None)       # transformers' newer name
    if checkpointing is None:
        checkpointing = getattr(core, "is_gradient_checkpointing", False)
    return (cfg.scale_attn_weights and not cfg.scale_attn_by_inverse_layer_idx and not cfg.reorder_and_upcast_attn
            and not getattr(cfg, "add_cross_attention", False) and not checkpointing and not dropout)


def attention_mask(attn: torch.Tensor) -> torch.Tensor:
    """(B, 1, L, L) bool: position i sees the non-pad positions j <= i; a pad position sees itself
    too, so that no row is all masked (softmax over nothing is NaN, and NaN times a zero weight stays NaN)."""
    i = torch.arange(attn.shape[1], device=attn.device)
    causal = i[None, :] <= i[:, None]
    return ((causal[None] & attn.bool()[:, None, :]) | (i[None, :] == i[:, None])[None])[:, None]


def hidden_states(transformer, ids: torch.Tensor, attn: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """The last block's output (B, L, C) of a ``GPT2Model`` for ids (B, L) with attention mask and
    position ids, before ``ln_f``: the blocks' own modules, as transformers runs them (test: equal
    outputs and gradients), with one mask for all layers and no host round trip."""
    B, L = ids.shape
    H = transformer.config.n_head
    C = transformer.config.n_embd
    # without padding, the causal kernel, as transformers picks; asking costs a wait on a GPU, not on a CPU
    causal = attn.device.type == "cpu" and bool(attn.all())
    mask = None if causal else attention_mask(attn)
    x = transformer.wte(ids) + transformer.wpe(pos)
    for block in transformer.h:
        q, k, v = block.attn.c_attn(block.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, L, H, C // H).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        x = x + block.attn.c_proj(a.transpose(1, 2).reshape(B, L, C))
        x = x + block.mlp(block.ln_2(x))
    return x


class StaticDecoder:
    """Static-cache sampler for one (model, batch size, prompt length, answer length, temperature)."""

    def __init__(self, model, batch: int, prompt_len: int, max_new_tokens: int, temperature: float,
                 pad_id: int, eos_id: int, cache_dtype: torch.dtype, graph: bool, compile: bool = False):
        core = unwrap(model)
        cfg, device = core.config, core.lm_head.weight.device
        self._core = weakref.ref(core)          # not a strong reference: _DECODERS is keyed by the model
        self.temperature, self.pad_id, self.eos_id = temperature, pad_id, eos_id
        self.B, self.P, self.T, self.L = batch, prompt_len, max_new_tokens, prompt_len + max_new_tokens
        self.H, self.C = cfg.n_head, cfg.n_embd
        self.D = self.C // self.H
        shape = (cfg.n_layer, batch, self.H, self.L, self.D)
        self.k = torch.zeros(shape, dtype=cache_dtype, device=device)
        self.v = torch.zeros(shape, dtype=cache_dtype, device=device)
        # the step's inputs and outputs: fixed buffers a CUDA graph can read and write
        self.logits = torch.zeros(batch, core.lm_head.out_features, device=device)
        self.u = torch.zeros(batch, 1, device=device)                   # this step's uniform number per row
        self.pos = torch.zeros(batch, dtype=torch.long, device=device)  # position id of the next token
        self.slot = torch.full((1,), prompt_len, dtype=torch.long, device=device)  # its cache slot
        self.step = torch.zeros(1, dtype=torch.long, device=device)     # its index in the answer
        self.key_ok = torch.ones(batch, self.L, dtype=torch.bool, device=device)   # False on prompt pads
        self.done = torch.zeros(batch, dtype=torch.bool, device=device)
        self.tokens = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
        self.logps = torch.zeros(batch, max_new_tokens, device=device)
        self.entropy = torch.zeros(batch, max_new_tokens, device=device)
        self.arange = torch.arange(self.L, device=device)
        # compile: inductor fuses the step's element-wise work (layer norms, casts, the sampler's
        # softmax and cumsum) into fewer kernels; the CUDA graph then replays those
        self.step_fn = torch.compile(self._step) if compile else self._step
        self.graph = None
        if graph:
            self._capture(cache_dtype)

    @property
    def core(self):
        return self._core()

    # ------------------------------------------------------------------ the model, on the cache
    def _forward(self, ids: torch.Tensor, pos: torch.Tensor, slots: torch.Tensor, mask: torch.Tensor):
        """Logits after the last of n new tokens (B, n), written to cache ``slots`` (n,);
        ``mask`` (B, 1, n, L): which cache slots each new token attends to."""
        tr, B, n = self.core.transformer, ids.shape[0], ids.shape[1]
        x = tr.wte(ids) + tr.wpe(pos)
        for i, block in enumerate(tr.h):
            q, k, v = block.attn.c_attn(block.ln_1(x)).split(self.C, dim=2)
            q, k, v = (t.view(B, n, self.H, self.D).transpose(1, 2) for t in (q, k, v))
            self.k[i].index_copy_(2, slots, k.to(self.k.dtype))
            self.v[i].index_copy_(2, slots, v.to(self.v.dtype))
            a = F.scaled_dot_product_attention(q.to(self.k.dtype), self.k[i], self.v[i], attn_mask=mask)
            x = x + block.attn.c_proj(a.transpose(1, 2).reshape(B, n, self.C))
            x = x + block.mlp(block.ln_2(x))
        return self.core.lm_head(tr.ln_f(x[:, -1]))

    def _step(self) -> None:
        """Sample token ``step`` from ``logits`` (as ppo.rollout does), then run it through the model."""
        logp_all = F.log_softmax(self.logits / self.temperature, -1)
        probs = logp_all.exp()
        cdf = probs.cumsum(-1)
        nxt = torch.searchsorted(cdf, self.u * cdf[:, -1:]).squeeze(1).clamp(max=cdf.shape[1] - 1)
        nxt = torch.where(self.done, torch.full_like(nxt, self.pad_id), nxt)
        self.tokens.index_copy_(1, self.step, nxt[:, None])
        self.logps.index_copy_(1, self.step, logp_all.gather(-1, nxt[:, None]))
        self.entropy.index_copy_(1, self.step, -(probs * logp_all).sum(-1, keepdim=True))
        self.done |= nxt == self.eos_id
        mask = (self.key_ok & (self.arange <= self.slot))[:, None, None, :]
        self.logits.copy_(self._forward(nxt[:, None], self.pos[:, None], self.slot, mask))
        self.pos += 1
        self.slot += 1
        self.step += 1

    @torch.no_grad()
    def _capture(self, cache_dtype: torch.dtype) -> None:
        """Record one step as a CUDA graph (after two warm-up steps on a side stream, as CUDA
        graphs require). Autocast's weight-cast cache must be off while capturing."""
        amp = cache_dtype if cache_dtype in (torch.bfloat16, torch.float16) else None
        ctx = lambda: torch.autocast("cuda", dtype=amp, enabled=amp is not None, cache_enabled=False)  # noqa: E731
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), ctx():
            for _ in range(2):
                self.step_fn()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), ctx():
            self.step_fn()

    # ------------------------------------------------------------------ one rollout
    @torch.no_grad()
    def sample(self, ids: torch.Tensor, attn: torch.Tensor, generator: torch.Generator) -> dict:
        """Prefill the prompts (B, P), left-padded, then sample up to T tokens or until every row
        has its eos. Returns response ids, log-probs and entropies (B, n), n the steps taken."""
        P, device = self.P, ids.device
        self.key_ok[:, :P] = attn.bool()
        self.key_ok[:, P:] = True
        pos = (attn.cumsum(1) - 1).clamp(min=0)
        i = torch.arange(P, device=device)
        causal = (self.arange[None, :] <= i[:, None])[None] & self.key_ok[:, None, :]
        mask = (causal | (self.arange[None, :] == i[:, None])[None])[:, None]   # a pad row sees itself: no NaN
        self.logits.copy_(self._forward(ids, pos, i, mask))
        self.pos.copy_(attn.sum(1))
        self.slot.fill_(P)
        self.step.zero_()
        self.done.zero_()
        n = 0
        for n in range(1, self.T + 1):
            self.u.copy_(torch.rand(self.B, 1, generator=generator, device=device))
            self.graph.replay() if self.graph is not None else self.step_fn()
            if bool(self.done.all()):
                break
        return {"response_ids": self.tokens[:, :n].clone(), "logprobs": self.logps[:, :n].clone(),
                "entropy": self.entropy[:, :n].clone()}


def decoder_for(model, batch: int, prompt_len: int, max_new_tokens: int, temperature: float, pad_id: int,
                eos_id: int, compile: bool = False) -> StaticDecoder:
    """The model's decoder for these shapes, made once and kept on the model (a few at most).

    The cache holds the autocast dtype where autocast is on (bf16/fp16 on a GPU), else the
    weights' dtype; CUDA models get a CUDA graph. ``compile``: the step goes through ``torch.compile``.
    """
    core = unwrap(model)
    device = core.lm_head.weight.device
    amp = torch.is_autocast_enabled(device.type)
    dtype = torch.get_autocast_dtype(device.type) if amp else core.lm_head.weight.dtype
    key = (batch, prompt_len, max_new_tokens, float(temperature), pad_id, eos_id, dtype, core.lm_head.weight.data_ptr(),
           compile)
    cache = _DECODERS.setdefault(core, {})
    if key not in cache:
        if len(cache) >= 4:                     # prompt-length buckets and evaluation batch sizes: a few
            cache.pop(next(iter(cache)))
        cache[key] = StaticDecoder(model, batch, prompt_len, max_new_tokens, temperature, pad_id, eos_id, dtype,
                                   graph=device.type == "cuda", compile=compile)
    return cache[key]
