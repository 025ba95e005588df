"""A BERT encoder forward pass in plain numpy (no torch, no onnxruntime).

Pure computation: :class:`BertWeights` holds the tensors of a Hugging Face
``BertModel`` checkpoint (as read from ``model.safetensors``) and
:func:`encode` turns token ids into mean-pooled, L2-normalised sentence vectors,
the way sentence-transformers' ``Transformer -> Pooling(mean) -> Normalize``
pipeline does. No I/O happens here; :mod:`._local` loads the files.

Shapes used below: ``B`` batch, ``T`` tokens (padded to the longest sequence
in the batch), ``H`` hidden size, ``A`` attention heads, ``D = H // A``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BertConfig", "BertWeights", "encode"]

Array = npt.NDArray[np.float32]

# Abramowitz & Stegun 7.1.26 coefficients: erf with |error| < 1.5e-7, which is
# below float32 resolution for GELU's purposes. numpy has no erf of its own.
_ERF_P = np.float32(0.3275911)
_ERF_A = tuple(
    np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)
_FFN_ROWS = 256  # rows per feed-forward slice: (256, 1536) float32 is 1.5 MB
_INV_SQRT2 = np.float32(1.0 / np.sqrt(2.0))


@dataclass(frozen=True)
class BertConfig:
    """The architecture numbers of a BERT checkpoint (from its ``config.json``)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    layer_norm_eps: float
    hidden_act: str = "gelu"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BertConfig:
        """Read the fields this encoder needs from a parsed ``config.json``."""
        act = str(data.get("hidden_act", "gelu"))
        if act != "gelu":
            raise ValueError(f"unsupported hidden_act {act!r}; only exact 'gelu' is implemented")
        return cls(
            hidden_size=int(data["hidden_size"]),
            num_hidden_layers=int(data["num_hidden_layers"]),
            num_attention_heads=int(data["num_attention_heads"]),
            intermediate_size=int(data["intermediate_size"]),
            max_position_embeddings=int(data["max_position_embeddings"]),
            layer_norm_eps=float(data.get("layer_norm_eps", 1e-12)),
            hidden_act=act,
        )


@dataclass(frozen=True)
class _Layer:
    qkv_w: Array  # (H, 3H): query, key and value projections fused, pre-transposed
    qkv_b: Array  # (3H,)
    out_w: Array  # (H, H)
    out_b: Array
    ln1_g: Array
    ln1_b: Array
    up_w: Array  # (H, I)
    up_b: Array
    down_w: Array  # (I, H)
    down_b: Array
    ln2_g: Array
    ln2_b: Array


@dataclass(frozen=True)
class BertWeights:
    """The tensors of a BERT encoder, laid out for fast numpy matmuls."""

    config: BertConfig
    word: Array
    position: Array
    token_type: Array
    emb_ln_g: Array
    emb_ln_b: Array
    layers: tuple[_Layer, ...]

    @classmethod
    def from_state_dict(cls, config: BertConfig, tensors: Mapping[str, Any]) -> BertWeights:
        """Build from a ``BertModel`` state dict (names with or without a ``bert.`` prefix).

        Linear weights are stored ``(out, in)`` in the checkpoint; they are
        transposed once here so the forward pass does ``x @ W``.
        """

        def get(name: str) -> Array:
            for key in (name, f"bert.{name}"):
                if key in tensors:
                    return np.ascontiguousarray(tensors[key], dtype=np.float32)
            raise KeyError(f"checkpoint has no tensor {name!r}")

        def linear(prefix: str) -> tuple[Array, Array]:
            return np.ascontiguousarray(get(f"{prefix}.weight").T), get(f"{prefix}.bias")

        layers = []
        for i in range(config.num_hidden_layers):
            p = f"encoder.layer.{i}"
            q_w, q_b = linear(f"{p}.attention.self.query")
            k_w, k_b = linear(f"{p}.attention.self.key")
            v_w, v_b = linear(f"{p}.attention.self.value")
            out_w, out_b = linear(f"{p}.attention.output.dense")
            up_w, up_b = linear(f"{p}.intermediate.dense")
            down_w, down_b = linear(f"{p}.output.dense")
            layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(np.concatenate([q_w, k_w, v_w], axis=1)),
                    qkv_b=np.concatenate([q_b, k_b, v_b]),
                    out_w=out_w,
                    out_b=out_b,
                    ln1_g=get(f"{p}.attention.output.LayerNorm.weight"),
                    ln1_b=get(f"{p}.attention.output.LayerNorm.bias"),
                    up_w=up_w,
                    up_b=up_b,
                    down_w=down_w,
                    down_b=down_b,
                    ln2_g=get(f"{p}.output.LayerNorm.weight"),
                    ln2_b=get(f"{p}.output.LayerNorm.bias"),
                )
            )
        return cls(
            config=config,
            word=get("embeddings.word_embeddings.weight"),
            position=get("embeddings.position_embeddings.weight"),
            token_type=get("embeddings.token_type_embeddings.weight"),
            emb_ln_g=get("embeddings.LayerNorm.weight"),
            emb_ln_b=get("embeddings.LayerNorm.bias"),
            layers=tuple(layers),
        )


def _layer_norm(x: Array, gamma: Array, beta: Array, eps: float) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    out: Array = centred / np.sqrt(var + np.float32(eps)) * gamma + beta
    return out


def _erf(x: Array) -> Array:
    """Erf to within 1.5e-7 (Abramowitz & Stegun 7.1.26)."""
    a = np.abs(x)
    out: Array = np.float32(1.0) - _erfc_tail(a) * np.exp(-a * a)
    out *= np.sign(x)
    return out


def _erfc_tail(a: Array) -> Array:
    """Evaluate the A&S polynomial in ``t = 1 / (1 + p*a)`` (``a >= 0``), in place."""
    t = a * _ERF_P
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    a1, a2, a3, a4, a5 = _ERF_A
    poly = t * a5
    for coef in (a4, a3, a2, a1):
        poly += coef
        poly *= t
    return poly


def _gelu(x: Array) -> Array:
    """Exact (erf-based) GELU, as BERT's ``hidden_act="gelu"`` specifies; overwrites ``x``.

    ``0.5 x (1 + erf(x/sqrt2))`` equals ``max(x, 0) - 0.5 |x| erfc(|x|/sqrt2)``,
    which needs no sign and fewer full-size temporaries.
    """
    a = np.abs(x)
    z = a * _INV_SQRT2
    tail = _erfc_tail(z)  # erfc(|z|) = tail * exp(-z^2)
    np.multiply(z, z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    tail *= z
    tail *= a
    tail *= np.float32(0.5)
    np.maximum(x, np.float32(0.0), out=x)
    x -= tail
    return x


def _softmax(x: Array) -> Array:
    x = x - x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


def _feed_forward(x: Array, layer: _Layer, eps: float) -> Array:
    """Run the FFN block on ``(rows, H)`` in slices small enough to stay in cache."""
    out = np.empty_like(x)
    for start in range(0, x.shape[0], _FFN_ROWS):
        rows = x[start : start + _FFN_ROWS]
        up = rows @ layer.up_w
        up += layer.up_b
        down = _gelu(up) @ layer.down_w
        down += layer.down_b
        down += rows
        out[start : start + _FFN_ROWS] = _layer_norm(down, layer.ln2_g, layer.ln2_b, eps)
    return out


def encode(
    weights: BertWeights,
    input_ids: npt.NDArray[np.int64],
    attention_mask: npt.NDArray[np.int64],
) -> Array:
    """Run the encoder and return mean-pooled, L2-normalised vectors, shape ``(B, H)``.

    ``input_ids`` and ``attention_mask`` are ``(B, T)``; padding positions have
    mask 0 and are excluded from attention and from the mean. Token type ids
    are all 0 (single-segment input).
    """
    cfg = weights.config
    batch, seq = input_ids.shape
    if seq > cfg.max_position_embeddings:
        raise ValueError(f"sequence of {seq} tokens exceeds {cfg.max_position_embeddings}")
    hidden = cfg.hidden_size
    heads = cfg.num_attention_heads
    head_dim = hidden // heads
    eps = cfg.layer_norm_eps

    x: Array = weights.word[input_ids] + weights.position[:seq][None, :, :] + weights.token_type[0]
    x = _layer_norm(x, weights.emb_ln_g, weights.emb_ln_b, eps)

    mask = attention_mask.astype(np.float32)
    # Additive bias: 0 where attended, a large negative where padded.
    bias = ((np.float32(1.0) - mask) * np.float32(-1e9))[:, None, None, :]
    scale = np.float32(1.0 / np.sqrt(head_dim))

    for layer in weights.layers:
        qkv = x @ layer.qkv_w + layer.qkv_b  # (B, T, 3H)
        qkv = qkv.reshape(batch, seq, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, A, T, D)
        scores = (q * scale) @ k.transpose(0, 1, 3, 2) + bias  # (B, A, T, T)
        probs = _softmax(scores)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
        x = _layer_norm(ctx @ layer.out_w + layer.out_b + x, layer.ln1_g, layer.ln1_b, eps)
        x = _feed_forward(x.reshape(batch * seq, hidden), layer, eps).reshape(batch, seq, hidden)

    summed = np.einsum("bth,bt->bh", x, mask)
    counts = np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
    pooled = summed / counts
    norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
    out: Array = (pooled / norms).astype(np.float32, copy=False)
    return out
