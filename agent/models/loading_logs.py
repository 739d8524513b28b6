"""Keeping transformers quiet while a model loads or saves: its notices and per-file progress bars."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_transformers(logs: bool = True, progress_bars: bool = True) -> Iterator[None]:
    """Within the block, transformers logs only errors (`logs`) and draws no progress bars
    (`progress_bars`); on leaving, what was silenced is put back as it was.

    The notices (its PIL fallback for image processors without torchvision, a question tokenised past
    the model's length before it is cut) are harmless, and its "Loading weights" bars would
    interleave with our own progress output or clutter a training log.
    """
    from transformers.utils import logging as hf_logging  # heavy: imported only when a model loads

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    if logs:
        hf_logging.set_verbosity_error()
    if progress_bars:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if logs:
            hf_logging.set_verbosity(verbosity)
        if progress_bars and bars:
            hf_logging.enable_progress_bar()
