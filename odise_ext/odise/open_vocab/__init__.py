from .class_head import OpenVocabClassHead, VocabularyEmbedding
from .fusion import geometric_ensemble
from .grounding_loss import caption_grounding_loss, grounding_scores
from .mask_clip import mask_clip_embed
from .text_cache import TextEmbeddingCache
from .vocabulary import Vocabulary, parse_vocabulary

__all__ = ["OpenVocabClassHead", "VocabularyEmbedding", "geometric_ensemble", "caption_grounding_loss", "grounding_scores",
           "mask_clip_embed", "TextEmbeddingCache", "Vocabulary", "parse_vocabulary"]
