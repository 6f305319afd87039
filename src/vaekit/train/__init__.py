"""The training loop (single process or DDP under torchrun), checkpoints, logging and schedules."""

from .check import build_training, check_config
from .checkpoint import CheckpointError, load_checkpoint, model_record, read_checkpoint, save_checkpoint
from .data import PreparedData, prepare_data
from .ddp import DistInfo, init_distributed, shutdown_distributed
from .init import init_output_bias, init_weights, output_layer
from .logging import RunLogger, read_metrics
from .loop import (FitResult, LostPeerError, ObjectiveModule, TrainingError, TrainingInterrupted, TrainState,
                   build_optimizer, compiled_objective, fit, resolve_device, selection_metric, train_step, validate,
                   validate_objective)
from .outputs import OutputError, check_folder, plan_output, write_output
from .run import LoadedRun, load_run
from .schedules import SCHEDULES, build_schedule
from .seeding import derive_seed, seed_everything

__all__ = ["fit", "TrainingError", "TrainingInterrupted", "LostPeerError", "compiled_objective", "check_config", "build_training", "train_step", "FitResult", "TrainState", "ObjectiveModule",
           "PreparedData", "prepare_data", "build_optimizer", "validate", "validate_objective", "selection_metric", "resolve_device", "CheckpointError",
           "save_checkpoint", "load_checkpoint", "read_checkpoint", "model_record", "DistInfo", "init_distributed",
           "shutdown_distributed", "init_output_bias", "init_weights", "output_layer", "RunLogger", "read_metrics", "LoadedRun",
           "load_run", "OutputError", "plan_output", "check_folder", "write_output", "SCHEDULES", "build_schedule", "derive_seed", "seed_everything"]
