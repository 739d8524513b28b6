"""Seeing: the CLIP encoder, zero-shot labels, and the vision-language model with its two backends."""
