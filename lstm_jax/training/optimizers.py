"""The optimiser a config asks for: optax's SGD, momentum, Adam or AdamW, a learning-rate schedule,
and Pascanu et al.'s (2013) global-norm clipping."""

from __future__ import annotations

from collections.abc import Callable

import optax

from lstm_jax.training.schema import Config, OptimizerName, Schedule


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """The configured optimiser, schedule and (Pascanu et al. 2013) global-norm clipping (the
    section's values are checked when it is made: `schema.OptimizerConfig`).

    >>> from lstm_jax.training.config import from_dict
    >>> optimizer = make_optimizer(from_dict({"task": {"name": "adding"}}))
    """
    opt = config.optimizer
    schedules: dict[Schedule, Callable[[], optax.Schedule]] = {
        Schedule.CONSTANT: lambda: optax.constant_schedule(opt.learning_rate),
        Schedule.COSINE: lambda: optax.warmup_cosine_decay_schedule(
            0.0,
            opt.learning_rate,
            opt.warmup_steps,
            max(config.training.steps, 1),
            opt.min_learning_rate,
        ),
        Schedule.EXPONENTIAL: lambda: optax.exponential_decay(
            opt.learning_rate, opt.decay_steps, opt.decay_rate
        ),
    }
    optimizers: dict[OptimizerName, Callable[[optax.Schedule], optax.GradientTransformation]] = {
        OptimizerName.SGD: optax.sgd,
        OptimizerName.MOMENTUM: lambda lr: optax.sgd(lr, momentum=opt.momentum),
        OptimizerName.ADAM: lambda lr: optax.adam(lr, b2=opt.beta2),
        OptimizerName.ADAMW: lambda lr: optax.adamw(
            lr, b2=opt.beta2, weight_decay=opt.weight_decay
        ),
    }
    schedule = schedules[opt.schedule]()
    if opt.warmup_steps and opt.schedule is not Schedule.COSINE:
        schedule = optax.join_schedules(
            [optax.linear_schedule(0.0, opt.learning_rate, opt.warmup_steps), schedule],
            [opt.warmup_steps],
        )
    clip = optax.identity() if opt.clip_norm is None else optax.clip_by_global_norm(opt.clip_norm)
    return optax.chain(clip, optimizers[opt.name](schedule))
