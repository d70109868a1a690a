"""The memorization guard: train to the best checkpoint that does not copy (`sigdiff train
--guard`), optionally moving the timestep sampler when memorization rises (the controller), and
filter near-copies at sampling (`sigdiff sample --reject-copies`).

- `sigdiff.guard.config`: `GuardConfig`, `ControllerConfig` (embedded in `TrainConfig.guard`);
- `sigdiff.guard.decision`: the copying tests and the decision on a trace (pure functions);
- `sigdiff.guard.monitor`: the evaluation inside the training loop, guard.json, guard.png;
- `sigdiff.guard.copies`: the near-copy filter at sampling.
"""

from sigdiff.guard.config import ControllerConfig, GuardConfig, GuardConfigError
from sigdiff.guard.decision import Decision, GuardEval, decide

__all__ = ["ControllerConfig", "Decision", "GuardConfig", "GuardConfigError", "GuardEval", "decide"]
