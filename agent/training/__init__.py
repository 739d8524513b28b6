"""Training code, kept apart from inference: the synthetic shapes world and the tiny CLIP trained on it."""
