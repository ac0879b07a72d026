"""Sampling answers from a causal LM of the world, plus loading and sizing models."""

from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from minirlhf.models import context_length, load_causal_lm, prompt_text


def load_model(path: str | Path, device: str = "cpu",
               trust_remote_code: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a model and its tokenizer: a local folder offline, else a hub name (`load_causal_lm`)."""
    return load_causal_lm(path, device, trust_remote_code=trust_remote_code)


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters; tied weights (GPT-2's embedding = LM head) count once."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str | list[dict]],
    max_new_tokens: int = 48,
    temperature: float = 0.7,
    batch_size: int = 64,
    seed: int = 0,
    format: bool = True,
) -> list[str]:
    """Answer each prompt; returns one stripped string per prompt, cut at the first eos.

    Prompts are wrapped with `prompt_text` (the world's `format_prompt`, or the tokenizer's
    chat template; a prompt may be a chat) unless `format=False`, left-padded so every
    answer starts right after its prompt, and sampled with plain temperature sampling
    (no top-k/top-p) by PPO's own KV-cache loop (`ppo.rollout`: 1.2-1.3x faster than
    `model.generate` on a CPU, `benchmarks/sampling_speed.py`), or greedily with
    `model.generate` when `temperature == 0`. Seeded, so deterministic on CPU. The model
    runs in eval mode on its own device; its mode is restored afterwards.
    """
    from minirlhf.ppo import decode_responses, require_prompt_list, require_room, response_mask, rollout
    require_prompt_list(prompts)
    if not prompts:                            # nothing to answer (e.g. SFTConfig.n_samples=0)
        return []
    texts = [prompt_text(tokenizer, p) for p in prompts] if format else list(prompts)
    if context_length(model):                  # learned positions: name a prompt that cannot fit before any runs
        require_room(model, prompts, [len(t) for t in tokenizer(texts, add_special_tokens=False)["input_ids"]],
                     max_new_tokens)
    was_training, padding_side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    torch.manual_seed(seed)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    answers = []
    try:
        for i in range(0, len(texts), batch_size):
            if temperature > 0:
                batch = rollout(model, tokenizer, texts[i : i + batch_size], max_new_tokens, temperature, generator,
                                format_prompts=False)
                mask, _ = response_mask(batch["response_ids"], tokenizer.eos_token_id)
                answers += decode_responses(tokenizer, batch["response_ids"], mask)   # cut at eos, stripped
                continue
            enc = tokenizer(texts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = enc.to(model.device)  # input_ids, attention_mask: (B, T_prompt), pads on the left
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            for row in out[:, enc["input_ids"].shape[1] :].tolist():  # (B, T_new)
                if tokenizer.eos_token_id in row:
                    row = row[: row.index(tokenizer.eos_token_id)]
                answers.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    finally:
        model.train(was_training)
        tokenizer.padding_side = padding_side
    return answers
