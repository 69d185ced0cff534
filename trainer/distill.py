"""Knowledge distillation (Hinton et al. 2015): a student learns the next-token distributions of a trained
teacher, not only the one token the data holds. The main use is a draft model for speculative decoding
(trainer/speculative.py), whose speed-up depends on how often the target accepts its proposals, which is
how closely the draft's distributions match the target's (Zhou et al. 2024, DistillSpec).

Per counted position (a target that is not ``IGNORE``), with teacher logits t, student logits s, data token y:

    loss = weight * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - weight) * cross_entropy(s, y)

The T^2 keeps the gradient's scale independent of the temperature T. Validation loss stays the plain
cross-entropy, so distilled and undistilled runs compare.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tokenizer.errors import invalid
from trainer.loss import IGNORE
from trainer.model import Transformer
from trainer.model_config import ModelConfig


@dataclass(kw_only=True)
class DistillConfig:
    teacher: str = ""  # a training checkpoint (or the out_dir holding checkpoint.pt); empty: no distillation
    weight: float = 0.9  # of the KL term; the data's cross-entropy takes the rest
    temperature: float = 1.0

    def __post_init__(self):
        if not 0 <= self.weight <= 1:
            raise invalid("weight", "must be between 0 and 1")
        if self.temperature <= 0:
            raise invalid("temperature", "must be > 0")

    def checkpoint_file(self) -> str:
        """The teacher's checkpoint file (``teacher`` may name the training run's directory, or a URL)."""
        from trainer.checkpoint import checkpoint_path

        return checkpoint_path(self.teacher)


def check_teacher(teacher: ModelConfig, student: ModelConfig) -> None:
    """Raise ``ConfigValueError`` when ``teacher`` cannot teach ``student``: another vocabulary, a shorter
    context, or a student whose mixture-of-experts balancing loss the logits path does not add."""
    if teacher.vocab_size != student.vocab_size:
        raise invalid("teacher", f"its vocabulary has {teacher.vocab_size} tokens; the model has {student.vocab_size}")
    if teacher.context_length < student.context_length:
        raise invalid(
            "teacher", f"its context ({teacher.context_length}) is shorter than the model's ({student.context_length})"
        )
    if student.n_experts and student.moe_aux_weight:
        raise invalid("teacher", "a mixture-of-experts student needs moe_aux_weight = 0 to be distilled")


def load_teacher(config: DistillConfig, student: ModelConfig, device: torch.device) -> Transformer:
    """The teacher model, checked against the student, in eval mode and without gradients."""
    from trainer.generate import load_model

    path = config.checkpoint_file()
    if not os.path.exists(path):
        raise invalid("teacher", f"no checkpoint at {path} (train the teacher first)")
    teacher, _ = load_model(path, "cpu")
    check_teacher(teacher.config, student)
    return teacher.to(device).eval().requires_grad_(False)


def distillation_loss(
    logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor, weight: float, temperature: float
) -> torch.Tensor:
    """The distillation loss summed over the positions whose target is not ``IGNORE`` (float32 whatever the
    logits' dtype); logits (..., vocab), targets (...)."""
    counted = targets != IGNORE
    s, t, y = logits[counted].float(), teacher_logits[counted].float(), targets[counted]
    loss = s.new_zeros(())
    if weight > 0:
        kl = F.kl_div(
            F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1), log_target=True, reduction="sum"
        )
        loss = loss + weight * temperature**2 * kl
    if weight < 1:
        loss = loss + (1 - weight) * F.cross_entropy(s, y, reduction="sum")
    return loss
