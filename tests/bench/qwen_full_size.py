"""Full-size Qwen3-ASR checkpoints with random weights, built offline (no model hub).

The shapes are the released models' (the config.json of Qwen/Qwen3-ASR-0.6B and
Qwen/Qwen3-ASR-1.7B, as published with the model cards and read the same way by several
independent reimplementations): layer counts, widths, heads, the audio encoder's windows
and the vocabulary. The weights are random bf16; the output layer is not tied to the
embedding (tying changes memory, not the cost of a step). A model step costs what it costs
with the real weights as long as the number of generated tokens is fixed, which the
benchmarks do (``ignore_eos``).

The tokenizer is a synthetic byte-level BPE of the real one's size: 151,643 ordinary tokens
(letter pieces built by merges) and the special tokens at the ids the real checkpoints use,
151,705 entries in all. Random generated ids decode to letter pieces that re-encode to
about as many tokens, as real text does, so forced prefixes have realistic token counts.
The embedding matrix has the config's 151,936 rows, as in the released checkpoints.

    python tests/bench/qwen_full_size.py OUT_DIR [0.6b|1.7b|tiny]
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Rows of the embedding and of the output layer (text_config.vocab_size).
VOCAB_SIZE = 151_936
#: Ordinary tokens of the tokenizer, then the special tokens up to TOKENIZER_SIZE.
BASE_VOCAB = 151_643
TOKENIZER_SIZE = 151_705
#: Special tokens at the real ids; the other ids up to TOKENIZER_SIZE get placeholders.
SPECIAL_IDS = {
    151643: "<|endoftext|>",
    151644: "<|im_start|>",
    151645: "<|im_end|>",
    151669: "<|audio_start|>",
    151670: "<|audio_end|>",
    151676: "<|audio_pad|>",
}
SPECIAL_IDS_BY_NAME = {t: i for i, t in SPECIAL_IDS.items()}
#: Written by the model as text between the language header and the transcript.
ASR_TEXT = "<asr_text>"

# The audio encoder's windows are the same for both sizes: attention in 100-frame
# (1 s) chunks (n_window 50), 8 s inference windows (n_window_infer 800).
_AUDIO_WINDOWS = {
    "num_mel_bins": 128,
    "max_source_positions": 1500,
    "n_window": 50,
    "n_window_infer": 800,
    "conv_chunksize": 500,
}


@dataclass(frozen=True)
class QwenSize:
    """One model size: the audio encoder and text decoder shapes."""

    label: str
    audio: dict[str, int]
    text: dict[str, int]
    mrope_section: tuple[int, int, int] = (24, 20, 20)  # sums to head_dim / 2
    vocab_size: int = VOCAB_SIZE


SIZES: dict[str, QwenSize] = {
    "0.6b": QwenSize(
        label="Qwen3-ASR-0.6B",
        audio={
            "d_model": 896,
            "encoder_layers": 18,
            "encoder_attention_heads": 14,
            "encoder_ffn_dim": 3584,
            "output_dim": 1024,
            "downsample_hidden_size": 480,
            **_AUDIO_WINDOWS,
        },
        text={
            "hidden_size": 1024,
            "intermediate_size": 3072,
            "num_hidden_layers": 28,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 128,
        },
    ),
    "1.7b": QwenSize(
        label="Qwen3-ASR-1.7B",
        audio={
            "d_model": 1024,
            "encoder_layers": 24,
            "encoder_attention_heads": 16,
            "encoder_ffn_dim": 4096,
            "output_dim": 2048,
            "downsample_hidden_size": 480,
            **_AUDIO_WINDOWS,
        },
        text={
            "hidden_size": 2048,
            "intermediate_size": 6144,
            "num_hidden_layers": 28,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 128,
        },
    ),
    # Same windows, vocabulary and tokenizer, tiny widths: checks the whole path on a CPU.
    "tiny": QwenSize(
        label="tiny (same windows and vocabulary, small widths)",
        audio={
            "d_model": 32,
            "encoder_layers": 2,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "output_dim": 64,
            "downsample_hidden_size": 8,
            **_AUDIO_WINDOWS,
        },
        text={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 32,
        },
        mrope_section=(8, 4, 4),
    ),
}


# ---------------------------------------------------------------------------------------
# tokenizer


def bpe_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """BASE_VOCAB byte-level tokens: the 256 byte symbols, then letter pieces of 2 to 4
    letters (optionally after a space, "Ġ"), each with the merge that builds it."""
    from tokenizers import pre_tokenizers

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    merges: list[tuple[str, str]] = []
    letters = "abcdefghijklmnopqrstuvwxyz"
    heads = ["Ġ", *letters]  # Ġ: the byte-level symbol of a space
    pairs = [h + c for h in heads for c in letters]
    letter_pairs = [a + b for a in letters for b in letters]

    def candidates() -> Any:
        for p in pairs:
            yield p[:-1], p[-1]
        for p, c in itertools.product(pairs, letters):
            yield p, c
        for q, p in itertools.product(letter_pairs, pairs):
            yield p, q

    for a, b in candidates():
        if len(vocab) == BASE_VOCAB:
            break
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append((a, b))
    if len(vocab) != BASE_VOCAB:
        raise RuntimeError(f"built {len(vocab)} tokens, need {BASE_VOCAB}")
    return vocab, merges


def build_tokenizer() -> Any:
    """A Qwen2TokenizerFast with the real tokenizer's size and special-token ids."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    from tests.qwen.make_tiny_qwen3_asr import qwen_tokenizer

    vocab, merges = bpe_vocab_and_merges()
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    # Split into words, then bytes, as Qwen's tokenizer does (a Sequence, which qwen-asr's
    # fix_mistral_regex=True load edits in place).
    words = Regex(r" ?\p{L}+| ?\p{N}| ?[^\s\p{L}\p{N}]+|\s+")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(words, behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    specials = [
        SPECIAL_IDS.get(i, f"<|reserved_{i}|>") for i in range(BASE_VOCAB, TOKENIZER_SIZE - 1)
    ]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.add_tokens([AddedToken(ASR_TEXT, special=False, normalized=False)])
    hf = qwen_tokenizer(tok)
    got = {t: hf.convert_tokens_to_ids(t) for t in SPECIAL_IDS.values()}
    if got != SPECIAL_IDS_BY_NAME or len(hf) != TOKENIZER_SIZE:
        raise RuntimeError(f"tokenizer ids are off: {got}, size {len(hf)}")
    return hf


# ---------------------------------------------------------------------------------------
# checkpoint


def config_json(size: QwenSize) -> dict[str, Any]:
    """config.json in the released checkpoints' layout (architecture, thinker_config)."""
    ids = SPECIAL_IDS_BY_NAME
    return {
        "architectures": ["Qwen3ASRForConditionalGeneration"],
        "model_type": "qwen3_asr",
        "dtype": "bfloat16",
        "support_languages": ["Chinese", "English"],
        "thinker_config": {
            "model_type": "qwen3_asr_thinker",
            "audio_token_id": ids["<|audio_pad|>"],
            "audio_start_token_id": ids["<|audio_start|>"],
            "audio_end_token_id": ids["<|audio_end|>"],
            "initializer_range": 0.02,
            "dtype": "bfloat16",
            "audio_config": {
                "model_type": "qwen3_asr_audio_encoder",
                "activation_function": "gelu",
                "dropout": 0.0,
                "attention_dropout": 0.0,
                "activation_dropout": 0.0,
                "scale_embedding": False,
                **size.audio,
            },
            "text_config": {
                "model_type": "qwen3_asr_text",
                "vocab_size": size.vocab_size,
                "hidden_act": "silu",
                "max_position_embeddings": 65536,
                "rms_norm_eps": 1e-6,
                "rope_theta": 1000000,
                "attention_bias": False,
                "attention_dropout": 0.0,
                "rope_scaling": {
                    "rope_type": "default",
                    "mrope_section": list(size.mrope_section),
                    "mrope_interleaved": True,
                },
                # Tied or not, the output layer costs the same per step.
                "tie_word_embeddings": False,
                "use_cache": True,
                **size.text,
            },
        },
    }


def write_text_side(out: Path, size: QwenSize) -> None:
    """config, generation config, tokenizer and processor files (no weights)."""
    from transformers import WhisperFeatureExtractor

    from tests.qwen.make_tiny_qwen3_asr import CHAT_TEMPLATE

    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    tok.save_pretrained(str(out))
    tc_path = out / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    tc["processor_class"] = "Qwen3ASRProcessor"
    tc["extra_special_tokens"] = {
        "audio_token": "<|audio_pad|>",
        "audio_bos_token": "<|audio_start|>",
        "audio_eos_token": "<|audio_end|>",
    }
    tc_path.write_text(json.dumps(tc, indent=2))
    fe = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400
    ).to_dict()
    fe.pop("mel_filters", None)
    fe["processor_class"] = "Qwen3ASRProcessor"
    fe["feature_extractor_type"] = "WhisperFeatureExtractor"
    (out / "preprocessor_config.json").write_text(json.dumps(fe, indent=2))
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    (out / "config.json").write_text(json.dumps(config_json(size), indent=2))
    eos = [SPECIAL_IDS_BY_NAME["<|im_end|>"], SPECIAL_IDS_BY_NAME["<|endoftext|>"]]
    gen = {"eos_token_id": eos, "pad_token_id": SPECIAL_IDS_BY_NAME["<|endoftext|>"]}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2))


def parameter_shapes(out: Path) -> dict[str, tuple[int, ...]]:
    """Every parameter of the model that config.json describes (built on the meta device:
    no memory, and the names and shapes are the model code's own)."""
    import torch
    from qwen_asr.core.transformers_backend import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        Qwen3ASRConfig,
        Qwen3ASRForConditionalGeneration,
    )

    config = Qwen3ASRConfig.from_pretrained(str(out))
    with torch.device("meta"):
        model = Qwen3ASRForConditionalGeneration(config)
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def write_weights(out: Path, device: str = "cpu", seed: int = 0) -> int:
    """Random bf16 weights (normal, std 0.02; norm scales 1) as model.safetensors.
    Returns the number of parameters."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator(device=device).manual_seed(seed)
    tensors = {}
    for name, shape in parameter_shapes(out).items():
        if "norm" in name or "ln_post" in name:
            t = torch.ones(shape, dtype=torch.bfloat16)
        else:
            w = torch.randn(shape, generator=g, device=device, dtype=torch.float32) * 0.02
            t = w.to(torch.bfloat16).cpu()
        tensors[name] = t.contiguous()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return sum(t.numel() for t in tensors.values())


def build_checkpoint(out: Path, size_name: str, device: str = "cpu", seed: int = 0) -> int:
    """A loadable checkpoint directory of the named size; returns its parameter count."""
    t0 = time.perf_counter()
    size = SIZES[size_name]
    write_text_side(out, size)
    n = write_weights(out, device=device, seed=seed)
    logger.info("%s: %.2fB parameters in %.1f s", size.label, n / 1e9, time.perf_counter() - t0)
    return n


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    logging.basicConfig(level=logging.INFO)
    n = build_checkpoint(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "tiny")
    print(f"{n} parameters")
