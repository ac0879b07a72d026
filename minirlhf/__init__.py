"""minirlhf: InstructGPT's SFT -> reward model -> PPO pipeline, small and readable."""

__version__ = "0.1.0"
