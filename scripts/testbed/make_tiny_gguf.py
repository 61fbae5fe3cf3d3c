#!/usr/bin/env python3
"""Write a tiny random-weight llama-architecture GGUF model for the real-server test bed.

Usage: python3 make_tiny_gguf.py OUT.gguf

Needs only the `gguf` package (0.19.0) and numpy. The output is byte-identical on
every run (fixed seed, numpy's legacy RandomState stream, which numpy keeps stable
across versions), about 0.4 MB.

The model: llama architecture, n_embd 64, 2 layers, 4 heads (head_dim 16), n_ff 128,
trained context 2048; 2-D weights F16, norms F32. The vocabulary is SentencePiece-style
("llama" tokenizer model): `<unk>`, `<s>`, `</s>`, the ChatML control tokens
`<|im_start|>` and `<|im_end|>` (EOS), 256 byte-fallback tokens `<0x00>`..`<0xFF>` so any
UTF-8 text tokenizes, printable ASCII characters, and every `▁`-prefix of the English
words below (so whole words merge into one token). The chat template is ChatML.

Its output is word salad, but every server path is real: templating, tokenization,
sampling, streaming, usage accounting and context limits. Three residual channels, which
the layers write only as described here, shape the output so that tests can rely on it:

- channel 0 is a constant on every token; the output matrix uses it to favour whole
  words and to suppress byte, control and partial-word tokens, so generated text is
  readable words (valid UTF-8) rather than random bytes;
- channel 1 is non-zero only on the tokens `▁done` and `done`; the output matrix turns
  it into a very strong preference for EOS (`<|im_end|>`): right after "done" the turn ends;
- channel 2 is written only by head 0 of layer 0, which attends to any earlier `▁done` or
  `done` token (its query reads channel 0, its key channel 1, on the slowest RoPE pair so
  the distance hardly matters); the output matrix turns it into a strong preference for
  `▁done`.

So a prompt containing the lowercase word "done" ("we are done", a message that starts
with "done", also the tail of "undone"; not "Done") gets the reply " done" followed by
EOS: a deterministic natural stop (finish_reason "stop", Anthropic "end_turn") on every
API. It also fires when an earlier turn of the conversation contains "done". Any other
prompt, at temperature 0, gives deterministic word salad until max_tokens.

Bump GENERATOR_VERSION whenever the output bytes change: setup.sh keys the cached
file name by it (tiny-v<GENERATOR_VERSION>.gguf).
"""

import sys

import numpy as np

import gguf

GENERATOR_VERSION = 1

SEED = 20261124
N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 4
N_FF = 128
N_CTX_TRAIN = 2048
HEAD_DIM = N_EMBD // N_HEAD
RMS_EPS = 1e-5
ROPE_FREQ_BASE = 10000.0

SPACE = "\u2581"  # SentencePiece's word-boundary marker

WORDS = """
the a an and or but if then else of to in on at by for with from as is are was were be been
it its this that these those there here what which who when where why how not no yes ok
i you he she we they me him her us them my your our their
hello world quick brown fox jumps over lazy dog cat bird fish tree house car road city
model models token tokens request requests response responses server client gateway proxy
stream streaming chat message messages tool tools call calls function result error errors
test tests data text word words line lines file files code time day night good bad new old
big small fast slow first last next more most some any all one two three four five ten
up down out into about after before again only also just very well can will would should
could may might must do does did done make made get got go went see saw say said know
think want need use used work works like love help ask tell give take find keep let
system user assistant content input output context limit size usage count reply answer
""".split()

CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- elif message['content'] -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- endif -%}"
)


def build_vocab():
    """Returns (tokens, scores, types, ids) for the SentencePiece-style vocabulary."""
    tokens, scores, types = [], [], []

    def add(text, score, ttype):
        tokens.append(text)
        scores.append(float(score))
        types.append(int(ttype))
        return len(tokens) - 1

    ids = {}
    ids["unk"] = add("<unk>", 0.0, gguf.TokenType.UNKNOWN)
    ids["bos"] = add("<s>", 0.0, gguf.TokenType.CONTROL)
    ids["eos_sp"] = add("</s>", 0.0, gguf.TokenType.CONTROL)
    ids["im_start"] = add("<|im_start|>", 0.0, gguf.TokenType.CONTROL)
    ids["im_end"] = add("<|im_end|>", 0.0, gguf.TokenType.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", 0.0, gguf.TokenType.BYTE)

    seen = set()
    # Single characters: the word marker and printable ASCII (space is written as ▁).
    # In SentencePiece merging, a higher score merges first: longer pieces score higher.
    for ch in [SPACE] + [chr(c) for c in range(0x21, 0x7F)]:
        seen.add(ch)
        add(ch, -1000.0, gguf.TokenType.NORMAL)
    whole_words = set()
    for word in WORDS:
        piece = SPACE + word
        whole_words.add(piece)
        for n in range(2, len(piece) + 1):
            prefix = piece[:n]
            if prefix not in seen:
                seen.add(prefix)
                add(prefix, -1000.0 + 10.0 * n, gguf.TokenType.NORMAL)
    # "done" right after a newline (start of a message) has no word marker: add those pieces too.
    for n in range(2, len("done") + 1):
        add("done"[:n], -1000.0 + 10.0 * n, gguf.TokenType.NORMAL)
    ids["whole_words"] = sorted(tokens.index(w) for w in whole_words)
    ids["done"] = tokens.index(SPACE + "done")
    ids["done_bare"] = tokens.index("done")
    return tokens, scores, types, ids


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    out = argv[1]

    tokens, scores, types, ids = build_vocab()
    n_vocab = len(tokens)
    rng = np.random.RandomState(SEED)

    def randn(*shape, std):
        return (rng.standard_normal(size=shape) * std).astype(np.float32)

    # numpy shapes are the reverse of ggml's ne: a matrix with ne = [n_in, n_out]
    # is a numpy array of shape (n_out, n_in), used as y = W @ x.
    # token_embd.weight: ne [n_embd, n_vocab] -> numpy (n_vocab, n_embd).
    embd = randn(n_vocab, N_EMBD, std=0.5)
    embd[:, 0] = 4.0          # channel 0: constant on every token
    embd[:, 1] = 0.0          # channel 1: marks the token "done"
    embd[ids["done"], 1] = 8.0
    embd[ids["done_bare"], 1] = 8.0
    embd[:, 2] = 0.0          # channel 2: "done" was seen earlier (written by layer 0, head 0)

    # output.weight: ne [n_embd, n_vocab] -> numpy (n_vocab, n_embd).
    out_w = randn(n_vocab, N_EMBD, std=0.3)
    out_w[:, 0] = -2.0                        # partial words and single characters
    out_w[ids["whole_words"], 0] = 1.5        # whole words are favoured
    out_w[: 5 + 256, 0] = -4.0                # control and byte tokens are suppressed
    out_w[:, 1] = -2.0
    out_w[ids["im_end"], 1] = 20.0            # right after "done", end the turn
    out_w[:, 2] = 0.0
    out_w[ids["done"], 2] = 6.0               # "done" in the prompt: answer "done"
    w = gguf.GGUFWriter(out, "llama")  # writes general.architecture itself
    w.add_name("hearth-tiny")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_rope_freq_base(ROPE_FREQ_BASE)
    w.add_vocab_size(n_vocab)

    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(ids["bos"])
    w.add_eos_token_id(ids["im_end"])
    w.add_unk_token_id(ids["unk"])
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHATML_TEMPLATE)

    w.add_tensor("token_embd.weight", embd.astype(np.float16))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    w.add_tensor("output.weight", out_w.astype(np.float16))
    # The slowest RoPE pair of a head (dims 14 and 15 of 16 in llama's NORM mode) turns by
    # pos * 10000^(-14/16) rad, under 0.2 rad across a 512-token context.
    slow = HEAD_DIM - 2
    for i in range(N_LAYER):
        p = f"blk.{i}."
        wq = randn(N_HEAD * HEAD_DIM, N_EMBD, std=0.2)
        wk = randn(N_HEAD_KV * HEAD_DIM, N_EMBD, std=0.2)
        wv = randn(N_HEAD_KV * HEAD_DIM, N_EMBD, std=0.2)
        attn_out = randn(N_EMBD, N_EMBD, std=0.1)
        ffn_down = randn(N_EMBD, N_FF, std=0.1)
        # Residual channels 0..2 are written only as set up below.
        attn_out[:3, :] = 0.0
        ffn_down[:3, :] = 0.0
        if i == 0:
            # Head 0: a "was done said?" detector. Query = channel 0 (constant), key =
            # channel 1 (the done marker): every query attends to the done tokens, or
            # evenly to all tokens, whose value (channel 1) is then exactly 0.
            wq[:HEAD_DIM, :] = 0.0
            wk[:HEAD_DIM, :] = 0.0
            wv[:HEAD_DIM, :] = 0.0
            wq[slow, 0] = 2.0
            wk[slow, 1] = 2.0
            wv[0, 1] = 1.0
            attn_out[:, :HEAD_DIM] = 0.0
            attn_out[2, 0] = 1.0              # head 0's value lands in channel 2
        w.add_tensor(p + "attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", wq.astype(np.float16))
        w.add_tensor(p + "attn_k.weight", wk.astype(np.float16))
        w.add_tensor(p + "attn_v.weight", wv.astype(np.float16))
        w.add_tensor(p + "attn_output.weight", attn_out.astype(np.float16))
        w.add_tensor(p + "ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        # ffn_gate/up: ne [n_embd, n_ff] -> numpy (n_ff, n_embd); ffn_down: numpy (n_embd, n_ff).
        w.add_tensor(p + "ffn_gate.weight", randn(N_FF, N_EMBD, std=0.2).astype(np.float16))
        w.add_tensor(p + "ffn_up.weight", randn(N_FF, N_EMBD, std=0.2).astype(np.float16))
        w.add_tensor(p + "ffn_down.weight", ffn_down.astype(np.float16))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {out}: {n_vocab} tokens, {N_LAYER} layers, n_embd {N_EMBD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
