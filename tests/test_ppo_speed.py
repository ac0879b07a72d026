"""Each speed-up of the PPO loop gives the same results as the plain way, within numerical tolerance."""
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from minirlhf.paths import base_model_dir
from minirlhf.models import GELUTanh, fuse_activations
from minirlhf.ppo import _positions, compiled_passes, logprobs_of, response_mask, rollout, values_of


def _model_and_tokenizer():
    from minirlhf.generation import load_model
    return load_model(base_model_dir("tiny"))


PROMPTS = ["What is Ada's job?", "Tell me three colours.", "Hello, how are you today?", "Add 2 and 3."]


def test_rollout_logprobs_equal_a_full_forward_pass():
    """The sampling distribution's log-probs, kept from the KV-cache rollout, equal a fresh full
    pass with logits_to_keep (so PPO can skip recomputing them on CPU/fp32)."""
    model, tok = _model_and_tokenizer()
    batch = rollout(model, tok, PROMPTS, 24, 0.7, torch.Generator().manual_seed(0))
    mask, _ = response_mask(batch["response_ids"], tok.eos_token_id)
    again, entropy = logprobs_of(model, batch, mask, 0.7, with_entropy=True)
    assert torch.allclose(batch["logprobs"] * mask, again * mask, atol=1e-4)
    assert torch.allclose(batch["entropy"] * mask, entropy * mask, atol=1e-4)


def test_inductor_compiled_passes_equal_the_eager_ones():
    """`PPOConfig(compile=True)`'s passes, with inductor's generated kernels (~20 s to compile on
    a CPU): log-probs, entropies, values and their gradients as in eager mode."""
    from transformers import GPT2ForSequenceClassification
    model, tok = _model_and_tokenizer()
    torch.manual_seed(0)
    value = GPT2ForSequenceClassification(GPT2Config(**{**model.config.to_dict(), "num_labels": 1})).eval()
    batch = rollout(model, tok, PROMPTS, 16, 0.7, torch.Generator().manual_seed(0))
    mask, _ = response_mask(batch["response_ids"], tok.eos_token_id)
    torch._dynamo.reset()
    outs = []
    for logprobs, values in (compiled_passes(False), compiled_passes(True)):
        model.zero_grad()
        logp, entropy = logprobs(model, batch, mask, 0.7, with_entropy=True)
        v = values(value, batch, mask)
        (logp * mask).sum().backward()
        outs.append((logp * mask, entropy * mask, v * mask, model.transformer.h[0].attn.c_attn.weight.grad.clone()))
    for eager, compiled in zip(*outs):
        assert torch.allclose(eager, compiled, atol=1e-4, rtol=1e-4)


def test_logits_to_keep_matches_the_whole_lm_head():
    """logprobs_of asks for the LM head at the response positions only, and leaves the final
    token out of the pass: the same log-probs as the whole sequence through the whole head."""
    model, tok = _model_and_tokenizer()
    batch = rollout(model, tok, PROMPTS, 16, 1.0, torch.Generator().manual_seed(1))
    mask, _ = response_mask(batch["response_ids"], tok.eos_token_id)
    ids = torch.cat([batch["prompt_ids"], batch["response_ids"]], 1)
    attn = torch.cat([batch["prompt_mask"], mask], 1)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn, position_ids=_positions(attn)).logits
    P = batch["prompt_ids"].shape[1]
    full = torch.log_softmax(logits[:, P - 1:-1], -1).gather(-1, batch["response_ids"][..., None]).squeeze(-1)
    with torch.no_grad():
        kept = logprobs_of(model, batch, mask, 1.0)
    assert torch.allclose(full * mask, kept * mask, atol=1e-5)


def test_inverse_cdf_sampling_draws_from_softmax():
    """rollout's one-uniform-per-row sampler has the distribution of softmax(logits / T)."""
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=6, n_positions=8, n_layer=1, n_embd=8, n_head=1, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg).eval()

    class Tok:                       # a two-token "prompt" for every row
        pad_token_id, eos_token_id = 5, 0

        def __call__(self, texts, **kw):
            n = len(texts)
            return {"input_ids": torch.tensor([[1, 2]] * n), "attention_mask": torch.ones(n, 2, dtype=torch.long)}

    n = 20000
    batch = rollout(model, Tok(), ["x"] * n, 1, 0.5, torch.Generator().manual_seed(3), format_prompts=False)
    counts = torch.bincount(batch["response_ids"][:, 0], minlength=6).float() / n
    with torch.no_grad():
        want = torch.softmax(model(input_ids=torch.tensor([[1, 2]])).logits[0, -1] / 0.5, -1)
    assert torch.allclose(counts, want, atol=0.015), (counts, want)
    assert torch.allclose(batch["logprobs"][0].exp(), want[batch["response_ids"][0]], atol=1e-5)


def test_batched_reward_encoding_equals_one_by_one():
    from minirlhf.reward import encode
    _, tok = _model_and_tokenizer()
    prompts, responses = PROMPTS, ["A baker.", "red, blue", "Fine, thanks!", "5"]
    together = encode(tok, prompts, responses, 64)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        alone = encode(tok, [p], [r], 64)
        n = int(alone["attention_mask"].sum())
        assert together["input_ids"][i, :n].tolist() == alone["input_ids"][0, :n].tolist()


def test_ppos_fused_adamw_trains_as_the_plain_one():
    """PPO's optimizer is fused on CPU (fewer passes over the weights); it must train the same."""
    from minirlhf.ppo import ppo_optimizer
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=32, n_positions=16, n_layer=1, n_embd=16, n_head=2)
    a = GPT2LMHeadModel(cfg)
    b = GPT2LMHeadModel(cfg)
    b.load_state_dict(a.state_dict())
    b.transformer.wte.requires_grad_(False)                 # frozen weights stay out of the optimizer
    ids = torch.randint(32, (4, 8))
    fused = ppo_optimizer([a], 1e-3, torch.device("cpu"))
    assert fused.defaults["fused"] and fused.defaults["eps"] == 1e-5
    assert len(ppo_optimizer([b], 1e-3, torch.device("cpu")).param_groups[0]["params"]) == len(list(b.parameters())) - 1
    b.transformer.wte.requires_grad_(True)
    for model, opt in ((a, fused), (b, torch.optim.AdamW(b.parameters(), lr=1e-3, eps=1e-5, fused=False))):
        for _ in range(3):
            opt.zero_grad()
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
    # parameters whose gradient is ~0 can differ by up to lr (Adam divides by sqrt(v) + eps), so
    # compare what matters: the loss after the steps
    with torch.no_grad():
        la, lb = a(input_ids=ids, labels=ids).loss.item(), b(input_ids=ids, labels=ids).loss.item()
    assert abs(la - lb) < 1e-3 * abs(lb), (la, lb)   # measured: 1.6e-4 relative


def test_values_leave_out_the_final_token():
    """values_of runs the value model without the final token: V at every position before a
    response token is the same as from a pass over the whole sequence."""
    from transformers import GPT2ForSequenceClassification
    model, tok = _model_and_tokenizer()
    batch = rollout(model, tok, PROMPTS, 12, 1.0, torch.Generator().manual_seed(2))
    mask, _ = response_mask(batch["response_ids"], tok.eos_token_id)
    torch.manual_seed(0)
    value = GPT2ForSequenceClassification(GPT2Config(**{**model.config.to_dict(), "num_labels": 1})).eval()
    ids = torch.cat([batch["prompt_ids"], batch["response_ids"]], 1)
    attn = torch.cat([batch["prompt_mask"], mask], 1)
    P, T = batch["prompt_ids"].shape[1], batch["response_ids"].shape[1]
    with torch.no_grad():
        hidden = value.transformer(input_ids=ids, attention_mask=attn, position_ids=_positions(attn)).last_hidden_state
        whole = value.score(hidden[:, P - 1:P - 1 + T]).squeeze(-1)
        trimmed = values_of(value, batch, mask)
    assert trimmed.shape == whole.shape == (len(PROMPTS), T)
    assert torch.allclose(whole * mask, trimmed * mask, atol=1e-5)


def test_fused_gelu_matches_gpt2s_gelu_new(tmp_path):
    """fuse_activations swaps gelu_new for one kernel: same outputs and gradients (to 1e-5),
    and a checkpoint saved afterwards still says gelu_new."""
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=32, n_positions=16, n_layer=2, n_embd=16, n_head=2, activation_function="gelu_new")
    a = GPT2LMHeadModel(cfg)
    b = GPT2LMHeadModel(cfg)
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()                                                     # no dropout; gradients still flow
    assert fuse_activations(b) is b and fuse_activations(b) is b          # idempotent
    assert sum(isinstance(m, GELUTanh) for m in b.modules()) == 2
    assert not any(isinstance(m, GELUTanh) for m in a.modules())
    ids = torch.randint(32, (3, 10))
    la, lb = a(input_ids=ids, labels=ids).loss, b(input_ids=ids, labels=ids).loss
    la.backward()
    lb.backward()
    assert abs(la.item() - lb.item()) < 1e-5
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-5), name
    b.save_pretrained(tmp_path)
    assert GPT2Config.from_pretrained(tmp_path).activation_function == "gelu_new"


def test_static_cache_rollout_equals_transformers_loop():
    """The static-cache sampler (a CUDA graph on a GPU) draws the same tokens as the plain loop
    through transformers' cache, with the same log-probs and entropies: same uniforms, same maths.
    Prompts of different lengths test the left padding; 16 steps at T=0.7 let some rows end."""
    from minirlhf import static_decoding
    model, tok = _model_and_tokenizer()
    assert static_decoding.supports(model)
    prompts = PROMPTS * 3
    plain = rollout(model, tok, prompts, 16, 0.7, torch.Generator().manual_seed(4), static=False)
    static = rollout(model, tok, prompts, 16, 0.7, torch.Generator().manual_seed(4))
    assert torch.equal(plain["response_ids"], static["response_ids"])
    assert torch.equal(plain["prompt_ids"], static["prompt_ids"])
    for key in ("logprobs", "entropy"):
        assert torch.allclose(plain[key], static[key], atol=1e-5), key
    again = rollout(model, tok, prompts, 16, 0.7, torch.Generator().manual_seed(4))   # the kept decoder, reused
    assert torch.equal(again["response_ids"], static["response_ids"])


def test_static_decoding_only_for_plain_gpt2_attention():
    from minirlhf import static_decoding
    cfg = GPT2Config(vocab_size=32, n_positions=16, n_layer=1, n_embd=16, n_head=2)
    assert static_decoding.supports(GPT2LMHeadModel(cfg))
    cfg.scale_attn_by_inverse_layer_idx = True
    assert not static_decoding.supports(GPT2LMHeadModel(cfg))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("compile", [False, True])
def test_cuda_graph_rollout_equals_the_same_steps_run_eagerly(compile):
    """On a GPU each decoding step is a replayed CUDA graph; replaying must give exactly what the
    same step gives run op by op (bf16 autocast, as in PPO). With compile=True the graph records
    inductor's kernels, and must give what the compiled step gives called step by step."""
    from minirlhf import static_decoding
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=512, n_positions=128, n_layer=4, n_embd=256, n_head=4)).cuda().eval()
    ids = torch.randint(3, 512, (8, 16), device="cuda")
    attn = torch.ones_like(ids)
    attn[:3, :5] = 0
    out = []
    for graph in (True, False):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            dec = static_decoding.StaticDecoder(model, 8, 16, 24, 1.0, 0, 1, torch.bfloat16, graph=graph,
                                                compile=compile)
            out.append(dec.sample(ids, attn, torch.Generator(device="cuda").manual_seed(0)))
    assert torch.equal(out[0]["response_ids"], out[1]["response_ids"])
    assert torch.allclose(out[0]["logprobs"], out[1]["logprobs"], atol=1e-6)


def test_gpt2_passes_equal_transformers_forward_pass():
    """PPO's scoring and training passes run GPT-2's blocks through ``static_decoding.hidden_states``
    (no host round trip): the same hidden states and gradients as transformers' forward pass,
    with left-padded prompts and answers that end early."""
    from minirlhf import static_decoding
    model, tok = _model_and_tokenizer()
    batch = rollout(model, tok, PROMPTS * 2, 16, 0.7, torch.Generator().manual_seed(2))
    mask, _ = response_mask(batch["response_ids"], tok.eos_token_id)
    ids = torch.cat([batch["prompt_ids"], batch["response_ids"]], 1)
    attn = torch.cat([batch["prompt_mask"], mask], 1)
    assert not attn.bool().all()                                    # padding on both sides is tested
    pos = _positions(attn)
    tr = model.transformer
    outs = []
    for ours in (True, False):
        model.zero_grad()
        h = tr.ln_f(static_decoding.hidden_states(tr, ids, attn, pos)) if ours else \
            tr(input_ids=ids, attention_mask=attn, position_ids=pos).last_hidden_state
        (h * attn[..., None]).square().sum().backward()
        outs.append((h * attn[..., None], tr.h[0].attn.c_attn.weight.grad.clone(), tr.wpe.weight.grad.clone()))
    for a, b in zip(*outs):
        assert torch.allclose(a, b, atol=1e-5)
    assert static_decoding.plain_gpt2(model)


def test_gpt2_passes_only_where_they_compute_what_transformers_does():
    from minirlhf import static_decoding
    from minirlhf.models import dropout_off
    model = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_positions=16, n_layer=1, n_embd=16, n_head=2))
    assert static_decoding.plain_gpt2(model.eval())
    assert not static_decoding.plain_gpt2(model.train())            # dropout in training: transformers' pass
    dropout_off(model)
    assert static_decoding.plain_gpt2(model)
    model.gradient_checkpointing_enable()
    assert not static_decoding.plain_gpt2(model)


def test_compiled_decoding_step_draws_the_same_tokens():
    """`PPOConfig(compile=True)` also compiles the static decoder's step (inductor; about 12 s on a
    CPU): the same tokens as the eager step, log-probs and entropies to 1e-4."""
    model, tok = _model_and_tokenizer()
    torch._dynamo.reset()
    eager, compiled = (rollout(model, tok, PROMPTS * 2, 16, 0.7, torch.Generator().manual_seed(3), compile=c)
                       for c in (False, True))
    assert torch.equal(eager["response_ids"], compiled["response_ids"])
    for key in ("logprobs", "entropy"):
        assert torch.allclose(eager[key], compiled[key], atol=1e-4), key


def _update_setup(device: str):
    """A policy and value model (GPT-2, 2 layers), their fused AdamW and one batch of PPO inputs."""
    from transformers import GPT2ForSequenceClassification
    from minirlhf.ppo import PPOConfig, ppo_optimizer
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=64, n_positions=64, n_layer=2, n_embd=32, n_head=4, attn_pdrop=0.0, resid_pdrop=0.0,
                     embd_pdrop=0.0)
    policy = GPT2LMHeadModel(cfg).to(device)
    value = GPT2ForSequenceClassification(GPT2Config(**{**cfg.to_dict(), "num_labels": 1})).to(device)
    optimizer = ppo_optimizer([policy, value], 1e-3, torch.device(device))
    B, P, T = 8, 16, 12
    mask = (torch.arange(T)[None] < torch.randint(4, T + 1, (B, 1))).long()
    source = {"prompt_ids": torch.randint(64, (B, P)), "prompt_mask": torch.ones(B, P, dtype=torch.long),
              "response_ids": torch.randint(64, (B, T)), "mask": mask, "maskf": mask.float(),
              "old_logp": -4 + torch.randn(B, T) * 0.1, "old_values": torch.randn(B, T),
              "advantages": torch.randn(B, T), "returns": torch.randn(B, T)}
    source["prompt_mask"][:2, :5] = 0
    return policy, value, optimizer, {k: v.to(device) for k, v in source.items()}, PPOConfig(temperature=0.7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("bf16", [False, True])
def test_minibatch_update_replayed_as_a_cuda_graph_equals_it_run_eagerly(bf16):
    """`step_graph.StepGraph` records PPO's whole minibatch update (passes, losses, backward, clip,
    fused AdamW) once and replays it: the same weights and statistics as the same updates run
    eagerly (in fp32 and under bf16 autocast, as PPO runs on a GPU), and its NaN warm-up runs
    change nothing."""
    from minirlhf.models import grad_scaler
    from minirlhf.ppo import _update, logprobs_of, values_of
    from minirlhf.step_graph import StepGraph
    runs, config_lr = [], 1e-3                    # _update_setup's learning rate
    for graph in (True, False):
        policy, value, optimizer, source, config = _update_setup("cuda")
        scaler = grad_scaler("cuda", None)

        def amp():
            return torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16, cache_enabled=False)

        def update(mb, scale):
            return _update(policy, value, optimizer, (logprobs_of, values_of), mb, config, amp, scaler, True, scale)

        start = [p.detach().clone() for p in policy.parameters()]
        step = StepGraph(update, {k: v[:4] for k, v in source.items()}, optimizer, graph=graph)
        outs = [step(source, rows) for rows in (torch.arange(4), torch.arange(4, 8), torch.arange(2, 6))
                for rows in [rows.cuda()]]
        assert (step.graph is not None) == graph
        runs.append((outs, [(p.detach() - p0) for p, p0 in zip(policy.parameters(), start)]))
    (g_outs, g_moves), (e_outs, e_moves) = runs
    # attention's and the embeddings' backward passes add with atomics (not bit-reproducible), and
    # AdamW's first steps are about lr * sign(gradient): a weight whose gradient is near 0 can move
    # either way, so each weight agrees to 2 lr per step, and the moves agree on average
    for a, b in zip(g_moves, e_moves):
        assert torch.allclose(a, b, atol=6 * config_lr)
        assert abs(a.abs().mean() - b.abs().mean()) <= 0.05 * b.abs().mean() + 1e-7
    tol = 1e-2 if bf16 else 1e-4
    for a, b in zip(g_outs, e_outs):
        for k in ("pg_loss", "vf_loss", "entropy", "stepped"):
            assert torch.allclose(a[k].float(), b[k].float(), atol=tol, rtol=tol), k


def test_minibatch_update_over_fixed_buffers_equals_the_plain_update():
    """On a CPU `StepGraph` runs the update eagerly over its fixed buffers: the same weights as
    `_update` on the sliced minibatch; a NaN loss scale (the warm-up runs) changes no weight."""
    import contextlib
    from minirlhf.models import grad_scaler
    from minirlhf.ppo import _update, logprobs_of, values_of
    from minirlhf.step_graph import StepGraph
    weights = []
    for buffered in (True, False):
        policy, value, optimizer, source, config = _update_setup("cpu")
        scaler = grad_scaler("cpu", None)

        def update(mb, scale=None):
            return _update(policy, value, optimizer, (logprobs_of, values_of), mb, config, contextlib.nullcontext,
                           scaler, True, scale)

        step = StepGraph(update, {k: v[:4] for k, v in source.items()}, optimizer, graph=False)
        before = [p.detach().clone() for p in policy.parameters()]
        step.scale.fill_(float("nan"))
        assert not bool(step(source, torch.arange(4))["stepped"])
        assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters()))
        step.scale.fill_(1.0)
        for rows in (torch.arange(4), torch.arange(4, 8)):
            if buffered:
                assert bool(step(source, rows)["stepped"])
            else:
                update({k: v[rows] for k, v in source.items()})
        weights.append([p.detach().clone() for p in policy.parameters()])
    for a, b in zip(*weights):
        assert torch.equal(a, b)


def test_rollout_padding_for_graphs_keeps_every_token_and_mask():
    """Padding the rollout to max_new_tokens (the answers all ended before it) keeps every mask."""
    from minirlhf.ppo import _pad_for_graphs
    model, tok = _model_and_tokenizer()
    batch = rollout(model, tok, PROMPTS, 40, 0.7, torch.Generator().manual_seed(0))
    P, T = batch["prompt_ids"].shape[1], batch["response_ids"].shape[1]
    assert T < 40                                                   # the answers ended: there is padding to add
    padded = _pad_for_graphs(dict(batch), tok, 40)
    assert padded["prompt_ids"].shape[1] % 16 == 0 and padded["response_ids"].shape[1] == 40
    assert torch.equal(padded["prompt_ids"][:, -P:], batch["prompt_ids"])
    assert torch.equal(padded["prompt_mask"].sum(1), batch["prompt_mask"].sum(1))
    assert torch.equal(padded["response_ids"][:, :T], batch["response_ids"])
    mask, padded_mask = (response_mask(b["response_ids"], tok.eos_token_id)[0] for b in (batch, padded))
    assert torch.equal(padded_mask[:, :T], mask) and not padded_mask[:, T:].any()
