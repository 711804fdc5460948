"""Optimizer and learning-rate schedule specs, torch.optim's algorithms and defaults.

    from traind import optim
    opt = optim.SGD(lr=0.1, momentum=0.9)
    opt = optim.AdamW(lr=3e-4, weight_decay=0.05, grad_clip_norm=1.0,
                      schedule=optim.CosineAnnealingLR(T_max=1000, warmup=100))

There is no params argument: the optimizer applies to every parameter of the
model it is created with. Schedules advance once per step (not per epoch)
and are computed in closed form on the server, so a resumed session
continues at the right LR. `warmup=N` on any schedule (or optim.Warmup(N)
alone, then a constant LR) ramps the LR linearly from
warmup_start_factor (default 1/3, torch's LinearLR) to the base over N steps.
`grad_clip_norm` clips the global L2 norm of the gradients before each step
(torch.nn.utils.clip_grad_norm_).
"""
from .v1 import trainer_pb2 as pb

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad",
           "Schedule", "StepLR", "MultiStepLR", "CosineAnnealingLR", "Warmup"]


class Schedule:
    """A learning-rate schedule (advanced once per step), optionally after a warm-up."""

    def __init__(self, warmup=0, warmup_start_factor=None):
        self.warmup, self.warmup_start_factor = warmup, warmup_start_factor

    def to_proto(self):
        msg = pb.LRSchedule()
        self._fill(msg)
        if self.warmup:
            msg.warmup_steps = self.warmup
        if self.warmup_start_factor is not None:
            msg.warmup_start_factor = self.warmup_start_factor
        return msg

    def _fill(self, msg):
        pass

    def __repr__(self):
        args = {k: v for k, v in vars(self).items() if v is not None}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


class Warmup(Schedule):
    """Linear warm-up over `steps` steps, then the constant base LR."""

    def __init__(self, steps, start_factor=None):
        super().__init__(steps, start_factor)


class StepLR(Schedule):
    """base * gamma ** (step // step_size)."""

    def __init__(self, step_size, gamma=0.1, warmup=0, warmup_start_factor=None):
        super().__init__(warmup, warmup_start_factor)
        self.step_size, self.gamma = step_size, gamma

    def _fill(self, msg):
        msg.step.step_size, msg.step.gamma = self.step_size, self.gamma


class MultiStepLR(Schedule):
    """base * gamma ** (number of milestones passed)."""

    def __init__(self, milestones, gamma=0.1, warmup=0, warmup_start_factor=None):
        super().__init__(warmup, warmup_start_factor)
        self.milestones, self.gamma = list(milestones), gamma

    def _fill(self, msg):
        msg.multistep.SetInParent()
        msg.multistep.milestones.extend(self.milestones)
        msg.multistep.gamma = self.gamma


class CosineAnnealingLR(Schedule):
    """torch.optim.lr_scheduler.CosineAnnealingLR over T_max steps."""

    def __init__(self, T_max, eta_min=0.0, warmup=0, warmup_start_factor=None):
        super().__init__(warmup, warmup_start_factor)
        self.T_max, self.eta_min = T_max, eta_min

    def _fill(self, msg):
        msg.cosine.t_max, msg.cosine.eta_min = self.T_max, self.eta_min


class Optimizer:
    """Base of the optimizer specs: `field` is the OptimizerSpec oneof member,
    `_hyper` the hyperparameters set on its message."""

    field = None

    def __init__(self, grad_clip_norm=None, schedule=None):
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"schedule: expected a traind.optim schedule, got "
                            f"{type(schedule).__name__}")
        self.grad_clip_norm, self.schedule = grad_clip_norm, schedule
        self._hyper = {}

    def to_proto(self):
        msg = pb.OptimizerSpec()
        sub = getattr(msg, self.field)
        sub.SetInParent()
        for k, v in self._hyper.items():
            setattr(sub, k, v)
        if self.grad_clip_norm:
            msg.grad_clip_norm = self.grad_clip_norm
        if self.schedule is not None:
            msg.schedule.CopyFrom(self.schedule.to_proto())
        return msg

    def __repr__(self):
        args = dict(self._hyper)
        if self.grad_clip_norm:
            args["grad_clip_norm"] = self.grad_clip_norm
        if self.schedule is not None:
            args["schedule"] = self.schedule
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


class SGD(Optimizer):
    field = "sgd"

    def __init__(self, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 grad_clip_norm=None, schedule=None):
        super().__init__(grad_clip_norm, schedule)
        self._hyper = dict(lr=lr, momentum=momentum, dampening=dampening,
                           weight_decay=weight_decay, nesterov=bool(nesterov))


class Adam(Optimizer):
    field = "adam"
    _default_weight_decay = 0.0

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=None, amsgrad=False,
                 grad_clip_norm=None, schedule=None):
        super().__init__(grad_clip_norm, schedule)
        if weight_decay is None:
            weight_decay = self._default_weight_decay
        beta1, beta2 = betas
        self._hyper = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                           amsgrad=bool(amsgrad))


class AdamW(Adam):
    """Adam with decoupled weight decay (default 1e-2, torch's)."""
    field = "adamw"
    _default_weight_decay = 1e-2


class RMSprop(Optimizer):
    field = "rmsprop"

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, grad_clip_norm=None, schedule=None):
        super().__init__(grad_clip_norm, schedule)
        self._hyper = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                           momentum=momentum, centered=bool(centered))


class Adagrad(Optimizer):
    field = "adagrad"

    def __init__(self, lr=1e-2, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                 initial_accumulator_value=0.0, grad_clip_norm=None, schedule=None):
        super().__init__(grad_clip_norm, schedule)
        self._hyper = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                           initial_accumulator_value=initial_accumulator_value)
