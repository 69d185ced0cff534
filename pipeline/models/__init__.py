"""What runs the trainer from refinery's files: training and fine-tuning TOML files (:mod:`~pipeline.models.configs`),
a workflow's ``[train]``, ``[sft]`` and ``[generate]`` steps (:mod:`~pipeline.models.steps`), sweeps
(:mod:`~pipeline.models.sweep_file`, run through the engine by :mod:`~pipeline.models.sweeps`), and
generation and quantization (:mod:`~pipeline.models.inference`). The model itself is :mod:`trainer`."""

import trainer  # noqa: F401 - first, before any command here loads torch: it sets how OpenMP threads wait
