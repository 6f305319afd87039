"""Model compositions speaking the protocol of ARCHITECTURE.md."""

from .base import MODELS, LatentVariableModel, VAEOutput
from .build import build_model, build_net
from .hierarchical import HierarchicalVAE, StackedPosterior, StackedPrior, build_hvae  # registers model type 'hvae'
from .vae import VAE
from .conditional import ConditionalVAE, MaskedPredictor
from .conditions import ConditionError
from .m2 import M2, M1M2, Classifier, classification_error
from .text import LanguageModel, TextVAE, build_text_lm, build_text_vae  # registers 'text_vae', 'text_lm'
from .stein import SteinVAE, build_stein_vae  # registers 'stein_vae'
from .sequential import SequentialVAE, build_sequential_vae  # registers 'sequential_vae'
from .acn import ACN, CodeTable, build_acn
from .sets import HomoEncoder, NeuralStatistician  # registers 'neural_statistician', 'homoencoder'
from .convdraw import ConvDRAW, build_convdraw  # registers 'convdraw'
from .build_conditional import build_classifier, build_cvae, build_from_spec, build_m2, build_masked_predictor  # noqa: E501 registers 'cvae', 'm2'

__all__ = ["MODELS", "VAEOutput", "LatentVariableModel", "VAE", "HierarchicalVAE", "StackedPosterior",
           "StackedPrior", "build_model", "build_net", "build_hvae", "ConditionalVAE",
           "MaskedPredictor", "ConditionError", "M2", "M1M2", "classification_error", "build_cvae", "build_m2",
           "build_masked_predictor", "Classifier", "build_classifier", "build_from_spec", "TextVAE", "LanguageModel",
           "build_text_vae", "build_text_lm", "NeuralStatistician", "HomoEncoder", "SteinVAE", "build_stein_vae",
           "ACN", "CodeTable", "build_acn", "SequentialVAE", "build_sequential_vae", "ConvDRAW", "build_convdraw"]
