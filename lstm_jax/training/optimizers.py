"""The optimiser a config asks for: optax's SGD, momentum, Adam or AdamW, a learning-rate schedule,
and Pascanu et al.'s (2013) global-norm clipping."""

from __future__ import annotations

import math
from collections.abc import Callable

import optax

from lstm_jax.training.config import Config, ConfigError


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """The configured optimiser, schedule and (Pascanu et al. 2013) global-norm clipping."""
    opt = config.optimizer
    ranges = {  # name: (value, lowest, highest, lowest included); a negative rate ascends
        "learning_rate": (opt.learning_rate, 0.0, math.inf, True),  # 0: frozen weights
        "min_learning_rate": (opt.min_learning_rate, 0.0, opt.learning_rate, True),
        "weight_decay": (opt.weight_decay, 0.0, math.inf, True),
        "beta2": (opt.beta2, 0.0, 1.0, True),
        "momentum": (opt.momentum, 0.0, 1.0, True),
    }
    for name, (value, low, high, closed) in ranges.items():
        if not ((value >= low if closed else value > low) and value <= high):
            bound = f"{'>=' if closed else '>'} {low}" + (
                f" and <= {high}" if high < math.inf else ""
            )
            raise ConfigError(f"optimizer.{name} must be {bound}, got {value}")
    if opt.clip_norm is not None and not opt.clip_norm > 0:  # NaN fails `> 0` too
        # a negative bound flips every gradient (ascent), zero would zero them
        raise ConfigError(
            f"optimizer.clip_norm must be > 0, or null for no clipping; got {opt.clip_norm}"
        )
    schedules: dict[str, Callable[[], optax.Schedule]] = {
        "constant": lambda: optax.constant_schedule(opt.learning_rate),
        "cosine": lambda: optax.warmup_cosine_decay_schedule(
            0.0,
            opt.learning_rate,
            opt.warmup_steps,
            max(config.training.steps, 1),
            opt.min_learning_rate,
        ),
        "exponential": lambda: optax.exponential_decay(
            opt.learning_rate, opt.decay_steps, opt.decay_rate
        ),
    }
    optimizers: dict[str, Callable[[optax.Schedule], optax.GradientTransformation]] = {
        "sgd": optax.sgd,
        "momentum": lambda lr: optax.sgd(lr, momentum=opt.momentum),
        "adam": lambda lr: optax.adam(lr, b2=opt.beta2),
        "adamw": lambda lr: optax.adamw(lr, b2=opt.beta2, weight_decay=opt.weight_decay),
    }
    if opt.schedule not in schedules:
        raise ConfigError(
            f"optimizer.schedule must be one of {list(schedules)}, got {opt.schedule!r}"
        )
    if opt.name not in optimizers:
        raise ConfigError(f"optimizer.name must be one of {list(optimizers)}, got {opt.name!r}")
    schedule = schedules[opt.schedule]()
    if opt.warmup_steps and opt.schedule != "cosine":
        schedule = optax.join_schedules(
            [optax.linear_schedule(0.0, opt.learning_rate, opt.warmup_steps), schedule],
            [opt.warmup_steps],
        )
    clip = optax.identity() if opt.clip_norm is None else optax.clip_by_global_norm(opt.clip_norm)
    return optax.chain(clip, optimizers[opt.name](schedule))
