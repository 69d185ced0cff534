"""The trainer: model, optimizers, schedules, data loaders, loop, checkpoints, generation and fine-tuning.

CPU training is bit-for-bit repeatable (a resumed run reproduces an uninterrupted one) only if MKL sums in
a fixed order. By default it may not: it can run a product on fewer threads when the machine is busy
(``MKL_DYNAMIC``), and it may pick kernels by the memory alignment of the operands, which differs from
process to process (``MKL_CBWR``). Both are pinned here, before torch first uses MKL; a user's own
settings win. Measured cost: none beyond noise on the training matmuls.

How torch's OpenMP threads wait is set here too, since it also has to be before torch loads: they stop
spinning soon, so that a busy machine slows training by the cores it takes, not 7-20 times
(``trainer/threads.py``).
"""

import os

from trainer.threads import bound_spinning

os.environ.setdefault("MKL_DYNAMIC", "FALSE")
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
bound_spinning()
