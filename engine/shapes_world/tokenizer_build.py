"""Builds a CLIP BPE tokenizer from a word list, offline.

Each word becomes one token: merges are added per word after simulating the merges already present,
so a later word never changes how an earlier one splits. Every part of every merge is in the vocab.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

SPECIAL = ["<|startoftext|>", "<|endoftext|>"]


def _apply(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    while len(pieces) > 1:
        pairs = [(ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(pieces, pieces[1:]))]
        rank, i = min(pairs)
        if rank == 1 << 30:
            break
        pieces = [*pieces[:i], pieces[i] + pieces[i + 1], *pieces[i + 2 :]]
    return pieces


def build_vocab(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    tokens: list[str] = list(string.ascii_lowercase + string.digits + "!,.'-")
    tokens += [c + "</w>" for c in tokens]
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        pieces = _apply([*word[:-1], word[-1] + "</w>"], ranks)
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
            if pieces[0] not in tokens:
                tokens.append(pieces[0])
    vocab = {t: i for i, t in enumerate(tokens + SPECIAL)}
    return vocab, merges


def write_clip_tokenizer(words: list[str], folder: str | Path, max_length: int = 77) -> Path:
    """Write `vocab.json`, `merges.txt` and configs that `CLIPTokenizer.from_pretrained` loads offline."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_vocab(words)
    (folder / "vocab.json").write_text(json.dumps(vocab, indent=0))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    return folder
