"""lcviz: long-context attention, built by hand. The shared package of the lcviz course."""

import random

import numpy as np
import torch

from lcviz.validate import check_int


def seed_everything(seed):
    """Seed Python, NumPy and torch so a run (init, batches, sampling) repeats exactly."""
    check_int("seed", seed, minimum=0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
