"""One LR schedule per training stage (e.g. SupCon pre-training, then the classifier).

torch's ``SequentialLR`` cannot chain two ``OneCycleLR`` on one optimiser (each writes its
``initial_lr``/``max_lr``/``min_lr`` into the shared param groups at construction, so the second
clobbers the first before it runs), and it does not rebuild the active scheduler on resume. This
wrapper builds each stage's torch scheduler when that stage starts, so every stage gets the whole
configured shape (warm-up, peak, anneal) over its own length, and a checkpoint holds the active
stage's state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

#: Builds one stage's scheduler for an optimiser and that stage's length (in scheduler steps).
StageBuilder = Callable[[torch.optim.Optimizer, int], Any]

_HYPER = ("lr", "betas", "momentum")


class StagedLR:
    """Stages run one after the other, each with its own scheduler over ``lengths[i]`` steps.

    ``step()`` advances the active stage; after ``lengths[i]`` calls the next stage's scheduler is
    built (which sets the lr to that schedule's start, as a fresh torch scheduler does).

    Example:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> s = StagedLR(opt, [2, 2], lambda o, n: torch.optim.lr_scheduler.LinearLR(o, 1.0, 0.5, n))
        >>> lrs = []
        >>> for _ in range(4):
        ...     lrs.append(opt.param_groups[0]["lr"]); s.step()
        >>> lrs
        [1.0, 0.75, 1.0, 0.75]
    """

    def __init__(self, optimizer: torch.optim.Optimizer, lengths: Sequence[int], build: StageBuilder) -> None:
        if not lengths or any(n < 1 for n in lengths):
            raise ValueError(f"StagedLR: every stage needs at least one step, got {list(lengths)}")
        self.optimizer = optimizer
        self.lengths = [int(n) for n in lengths]
        self._build = build
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]  # the configured lr of each group
        self._enter(0)

    def _enter(self, stage: int) -> None:
        self.stage, self.steps_in_stage = stage, 0
        # torch schedulers take their base lr from ``initial_lr`` once it is set (by the previous
        # stage's scheduler); each stage starts from the configured lr instead.
        for group, lr in zip(self.optimizer.param_groups, self.base_lrs):
            group.pop("initial_lr", None)
            group["lr"] = lr
        self.active = self._build(self.optimizer, self.lengths[stage])

    def step(self) -> None:
        self.steps_in_stage += 1
        if self.steps_in_stage >= self.lengths[self.stage] and self.stage + 1 < len(self.lengths):
            self._enter(self.stage + 1)
        elif self.steps_in_stage <= self.lengths[self.stage]:
            self.active.step()

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "steps_in_stage": self.steps_in_stage, "lengths": self.lengths,
                "active": self.active.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rebuild the saved stage's scheduler; the optimiser's restored lr/momentum are kept."""
        if list(state["lengths"]) != self.lengths:
            raise ValueError(f"StagedLR: saved stage lengths {state['lengths']} != {self.lengths}")
        restored = [{k: g[k] for k in _HYPER if k in g} for g in self.optimizer.param_groups]
        self._enter(int(state["stage"]))
        self.steps_in_stage = int(state["steps_in_stage"])
        self.active.load_state_dict(state["active"])
        for group, values in zip(self.optimizer.param_groups, restored):
            group.update(values)
