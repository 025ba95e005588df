"""Embedders for the local memory store: text in, fixed-size vectors out.

``LocalEmbedder`` is the offline default (all-MiniLM-L6-v2 through a numpy
forward pass; no torch); ``OpenAIEmbedder``, ``OllamaEmbedder`` and
``WorkersAIEmbedder`` call remote services. ``get_embedder`` builds one from a
config value. See ``EMBEDDERS.md`` for the measurements behind the default.
"""

from jetpack.cass.embedders._base import Embedder, EmbedderError
from jetpack.cass.embedders._factory import EMBEDDER_SPECS, get_embedder
from jetpack.cass.embedders._http import HTTPEmbedder
from jetpack.cass.embedders._local import (
    DEFAULT_LOCAL_MODEL,
    MODEL_DIR_ENV,
    WEIGHTS_DISTRIBUTION,
    LocalEmbedder,
    find_model_dir,
)
from jetpack.cass.embedders._ollama import OllamaEmbedder
from jetpack.cass.embedders._openai import OpenAIEmbedder
from jetpack.cass.embedders._workers_ai import WorkersAIEmbedder

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
