"""Class text embeddings, computed once per (vocabulary, template) and reused.

The frozen CLIP text encoder is the only thing that depends on the vocabulary; running it in
every forward pass (hundreds of prompts for ADE20K-847) would dominate inference time.
"""
import torch

__all__ = ["TextEmbeddingCache"]


class TextEmbeddingCache:
    """Maps (template, synonyms) -> [S, D] embeddings. Not a module: nothing here is saved."""

    def __init__(self, encode_text, max_entries=8):
        """
        Args:
            encode_text: ``list[str] -> [S, D]`` (the frozen CLIP text encoder, unnormalised).
            max_entries: vocabularies kept (oldest dropped first).
        """
        self._encode = encode_text
        self._store = {}
        self._max = max_entries
        self.misses = 0

    def __call__(self, synonyms, template, device):
        key = (template, tuple(synonyms))
        hit = self._store.get(key)
        if hit is None:
            self.misses += 1
            with torch.no_grad():
                hit = self._encode([template.format(s) for s in synonyms]).float()
            if len(self._store) >= self._max:
                self._store.pop(next(iter(self._store)))
            self._store[key] = hit
        return hit.to(device)
