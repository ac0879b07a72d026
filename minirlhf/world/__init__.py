"""The offline assistant world: a miniature of the InstructGPT setting.

It has a small knowledge base (`kb`), a prompt distribution over the paper's task
categories (`prompts`), a response generator that plays both "the internet" and the
labelers' demonstrations (`responses`), the hidden gold preference (`gold`) and noisy
simulated labelers (`labelers`). `build` writes the data files.
"""

USER_TAG = "User:"
ASSISTANT_TAG = "Assistant:"


def format_prompt(prompt: str) -> str:
    """The text a causal LM of the world sees before it answers.

    The corpus, SFT, RM and PPO all use this one format, so the base model has seen
    it on "the internet" (with good and bad continuations) before any alignment.
    """
    return f"{USER_TAG} {prompt.strip()}\n{ASSISTANT_TAG}"
