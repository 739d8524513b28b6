"""Generating: diffusers pipeline loading under the device policy, and the samplers that run them."""
