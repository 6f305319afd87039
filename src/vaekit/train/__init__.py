"""The training loop (single process or DDP under torchrun), checkpoints, logging and schedules."""

from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from .ddp import DistInfo, init_distributed, shutdown_distributed
from .init import init_output_bias, last_linear
from .logging import RunLogger, read_metrics
from .loop import (FitResult, ObjectiveModule, PreparedData, TrainState, build_optimizer, fit, prepare_data,
                   resolve_device, train_step, validate)
from .run import LoadedRun, load_run
from .schedules import SCHEDULES, build_schedule
from .seeding import derive_seed, seed_everything

__all__ = ["fit", "train_step", "FitResult", "TrainState", "ObjectiveModule", "PreparedData", "prepare_data",
           "build_optimizer", "validate", "resolve_device", "CheckpointError", "save_checkpoint", "load_checkpoint",
           "read_checkpoint", "DistInfo", "init_distributed", "shutdown_distributed", "init_output_bias",
           "last_linear", "RunLogger", "read_metrics", "LoadedRun", "load_run", "SCHEDULES", "build_schedule",
           "derive_seed", "seed_everything"]
