"""Data files shipped with minirlhf (the offline world and the base model)."""
