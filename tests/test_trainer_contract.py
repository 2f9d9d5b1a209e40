"""The Trainer's extension points: callbacks and the multi-stage step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import transferguard as tg
from transferguard.engine import StepOutput
from transferguard.errors import ConfigError
from transferguard.methods.baselines.target_only import TargetOnly


class Recorder:
    def __init__(self) -> None:
        self.logged: list[int] = []
        self.evals: list[int] = []
        self.ended = 0

    def on_log(self, trainer, method, step, row):
        self.logged.append(step)

    def on_eval(self, trainer, method, data, step):
        self.evals.append(step)
        return {"probe": float(step) / 10}

    def on_fit_end(self, trainer, method, result):
        self.ended += 1


def test_callbacks_see_every_log_and_evaluation_and_add_to_history(tiny_task):
    rec = Recorder()
    tr = tg.Trainer(iterations=6, batch_size=8, eval_every=3, log_every=2, progress=False,
                    callbacks=[rec])
    fit = tr.fit(TargetOnly(), tiny_task.train_data())
    assert rec.evals == [3, 6] and rec.ended == 1
    assert rec.logged == [2, 3, 4, 6]  # log rows and evaluation rows
    probes = {int(r["step"]): r["probe"] for r in fit.history if "probe" in r}
    assert probes == {3: 0.3, 6: 0.6}
    assert tr.with_options(iterations=2).callbacks == [rec]  # carried by with_options


def test_callbacks_do_not_change_the_result(tiny_task):
    plain = tg.Trainer(iterations=6, batch_size=8, eval_every=3, progress=False)
    a = plain.fit(m1 := TargetOnly(), tiny_task.train_data())
    b = plain.with_options().__class__(plain.config, callbacks=[Recorder()]).fit(
        m2 := TargetOnly(), tiny_task.train_data())
    assert a.best_step == b.best_step
    for p, q in zip(m1.model_.parameters(), m2.model_.parameters()):
        assert torch.equal(p, q)


class TwoStage(TargetOnly):
    """Stage "head" trains the classifier; stage "probe" trains an extra linear module."""

    stages = ("head", "probe")

    def build(self, data, trainer):
        self.extra_modules_["probe"] = nn.Linear(self.model_.feature_dim, data.num_classes)
        self.init_ = {name: {k: v.detach().clone() for k, v in m.state_dict().items()}
                      for name, m in self.modules().items()}

    def param_groups(self):
        return [{"params": list(self.model_.parameters()), "stage": "head"},
                {"params": list(self.extra_modules_["probe"].parameters()), "stage": "probe"}]

    def stage_step(self, stage, batches, progress):
        b = batches["target_labeled"]
        if stage == "head":
            return StepOutput(F.cross_entropy(self.model_(b.x), b.y))
        h = self.model_.features(b.x).detach()
        return StepOutput(F.cross_entropy(self.extra_modules_["probe"](h), b.y))


def test_each_stage_steps_its_own_parameters(tiny_task):
    tr = tg.Trainer(iterations=3, batch_size=8, progress=False, select="last")
    m = TwoStage()
    tr.fit(m, tiny_task.train_data())
    for name in ("model", "probe"):  # both stages trained their own modules
        now = m.modules()[name].state_dict()
        assert any(not torch.equal(m.init_[name][k].cpu(), now[k].cpu()) for k in now)


def test_a_stage_group_the_method_does_not_declare_is_refused(tiny_task):
    class Bad(TwoStage):
        def param_groups(self):
            return [{"params": list(self.model_.parameters()), "stage": "other"}]

    with pytest.raises(ConfigError, match="does not declare"):
        tg.Trainer(iterations=2, batch_size=8, progress=False).fit(Bad(), tiny_task.train_data())
