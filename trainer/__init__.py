"""The trainer: model, optimizers, schedules, data loaders, loop, checkpoints, generation and fine-tuning.

MKL may otherwise run a matrix product on fewer threads when the machine is busy, which changes the order
of its sums: losses then differ in the last bits from run to run, and a resumed run no longer reproduces an
uninterrupted one. A fixed thread count keeps CPU training bit-for-bit repeatable (set before torch first
uses MKL; a user's own MKL_DYNAMIC wins).
"""

import os

os.environ.setdefault("MKL_DYNAMIC", "FALSE")
