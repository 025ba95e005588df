"""Embedders of the memory stores: text in, fixed-size vectors out.

Needs ``pip install "jetpack-shared[embedders]"`` (numpy, tokenizers,
safetensors, threadpoolctl, httpx). Both memory stores use them, jetpack-cass
and jetpack-cf-cass, so local and edge vectors share one space; neither
backend imports the other.

``LocalEmbedder`` is the offline default (all-MiniLM-L6-v2 through a numpy
forward pass; no torch); ``OpenAIEmbedder``, ``OllamaEmbedder`` and
``WorkersAIEmbedder`` call remote services. ``get_embedder`` builds one from a
config value. See ``EMBEDDERS.md`` for the measurements behind the default.
"""

from jetpack.shared.embedders._base import Embedder, EmbedderError
from jetpack.shared.embedders._factory import EMBEDDER_SPECS, get_embedder
from jetpack.shared.embedders._http import HTTPEmbedder
from jetpack.shared.embedders._local import (
    DEFAULT_LOCAL_MODEL,
    MODEL_DIR_ENV,
    WEIGHTS_DISTRIBUTION,
    LocalEmbedder,
    find_model_dir,
)
from jetpack.shared.embedders._ollama import OllamaEmbedder
from jetpack.shared.embedders._openai import OpenAIEmbedder
from jetpack.shared.embedders._workers_ai import WorkersAIEmbedder

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "EMBEDDER_SPECS",
    "MODEL_DIR_ENV",
    "WEIGHTS_DISTRIBUTION",
    "Embedder",
    "EmbedderError",
    "HTTPEmbedder",
    "LocalEmbedder",
    "OllamaEmbedder",
    "OpenAIEmbedder",
    "WorkersAIEmbedder",
    "find_model_dir",
    "get_embedder",
]
