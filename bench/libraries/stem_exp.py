import json, pickle, time, re, collections
import numpy as np, bm25s, Stemmer
from assistant.text import (lexical_tokens, detect_language, fold_accents, STOP, _ELISION, _TOKEN)
from assistant.evaluation.metrics import relevance
from assistant.text import normalize_for_match
FR, EN = Stemmer.Stemmer("french"), Stemmer.Stemmer("english")
EN_FR = lambda w: EN.stemWord(FR.stemWord(w))
def retok(toks, f):  # stem already-folded unstemmed tokens (digits untouched as in the project)
    return [t if t[0].isdigit() else f(t) for t in toks]
def v_detect(text):
    st = FR if detect_language(text) == "fr" else EN
    return retok(lexical_tokens(text, False), st.stemWord)
def v_fr_en(text): return retok(lexical_tokens(text, False), EN_FR)
def v_fr(text): return retok(lexical_tokens(text, False), FR.stemWord)
def lexical_tokens_accented(text, stem):
    """The project's lexical_tokens(stemming=False) but stemming the accented lower-case word, then folding."""
    text = _ELISION.sub(" ", text.replace("’", "'"))
    out = []
    for tok in _TOKEN.findall(text.lower()):
        f = fold_accents(tok)
        if f in STOP or (len(f) == 1 and not f.isdigit()):
            continue
        parts = [p for p in tok.split("-") if p and fold_accents(p) not in STOP] if "-" in tok else [tok]
        out.extend(fold_accents(p if p[0].isdigit() else stem(p)) for p in parts)
    return out
def v_detect_acc(text):
    st = FR if detect_language(text) == "fr" else EN
    return lexical_tokens_accented(text, st.stemWord)
def v_fr_en_acc(text): return lexical_tokens_accented(text, EN_FR)
VARIANTS = {
    "a: project stem (lexical_tokens stemming=True)": lambda t: lexical_tokens(t, True),
    "c: no stemming (stemming=False)": lambda t: lexical_tokens(t, False),
    "b1: snowball by detect_language": v_detect,
    "b2: snowball French then English": v_fr_en,
    "b3: snowball French only": v_fr,
    "b4: b1 on accented words": v_detect_acc,
    "b5: b2 on accented words": v_fr_en_acc,
}
def jl(p): return [json.loads(l) for l in open(p) if l.strip()]
def load(name): return pickle.load(open(f"/tmp/libexp/chunks_{name}.pkl", "rb"))
# --- evaluation sets: (corpus, set name, [(query, lang, judge)]) ; judge(chunk_source, chunk_text) -> bool
def ev_judge(ev):
    needles = [normalize_for_match(e) for e in ev]
    return lambda src, txt, nt: any(n in nt for n in needles)
def src_judge(s): return lambda src, txt, nt: src == s
sets = []
for corpus, f in (("debian-reference-fr", "bench/questions/debian-reference-fr.jsonl"), ("debian-mixed-fr", "bench/questions/mixed-fr.jsonl"),
                  ("seeds", "eval/dev.jsonl")):
    cs = [c for c in jl("/work/main/" + f) if c["answerable"] and c["evidence"]]
    sets.append((corpus, f, [(c["question"], "en" if "-en" in c["id"] else "fr", ev_judge(c["evidence"])) for c in cs]))
tr = {c["of"]: c["question"] for c in jl("/work/main/bench/questions/derived/translations_en.jsonl")}
for d in ("service-public", "cnil"):
    cs = jl(f"/work/shared/data/{d}/questions.jsonl")
    sets.append((d, f"shared/{d} (hit = source page)", [(c["question"], "fr", src_judge(c["source"])) for c in cs]))
    en = [(tr[c["id"]], "en", src_judge(c["source"])) for c in cs if c["id"] in tr]
    if en: sets.append((d, f"shared/{d} EN translations (hit = source page)", en))
corpora = {c for c, _, _ in sets}
chunks = {c: load(c) for c in corpora}
norm = {c: [normalize_for_match(t) for _, t, _ in chunks[c]] for c in corpora}
rows = []; timing = collections.defaultdict(float); ntok = collections.defaultdict(int)
vocab = {}
for vname, fn in VARIANTS.items():
    for corpus in sorted(corpora):
        ch = chunks[corpus]
        texts = [f"{ctx}\n\n{t}" for _, t, ctx in ch]
        t0 = time.perf_counter(); toks = [fn(x) or ["\u2205"] for x in texts]; dt = time.perf_counter() - t0
        if corpus in ("debian-mixed-fr", "service-public"):  # timing on two big corpora (cold caches for a/b: lru per word)
            timing[vname] += dt; ntok[vname] += len(texts)
        bm = bm25s.BM25(k1=1.2, b=0.75); bm.index(toks, show_progress=False)
        vocab[(vname, corpus)] = len(bm.vocab_dict)
        for c2, sname, cases in sets:
            if c2 != corpus: continue
            h1 = h5 = mrr = 0.0
            for q, lang, judge in cases:
                qt = [t for t in fn(q) if t in bm.vocab_dict]
                ranked = []
                if qt:
                    sc = bm.get_scores(qt); order = np.argsort(-sc, kind="stable")[:10]
                    ranked = [i for i in order if sc[i] > 0]
                rel = [judge(ch[i][0], ch[i][1], norm[corpus][i]) for i in ranked]
                r = next((k + 1 for k, x in enumerate(rel) if x), None)
                h1 += r == 1; h5 += r is not None and r <= 5; mrr += 1 / r if r else 0
            n = len(cases)
            rows.append((sname, len(ch), n, vname, h1 / n, h5 / n, mrr / n))
    print("done", vname, flush=True)
print("\n| question set | chunks | n q | variant | hit@1 | hit@5 | MRR@10 |\n|---|---|---|---|---|---|---|")
for r in sorted(rows, key=lambda r: (r[0], r[3])):
    print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.3f} | {r[5]:.3f} | {r[6]:.3f} |")
# macro over the fr-question sets with >= 30 questions
print("\ntokenisation time per 1,000 chunks (debian-mixed-fr + service-public, first pass, %d chunks):" % ntok[vname])
for v in VARIANTS: print(f"  {v}: {timing[v]/ntok[v]*1000:.2f} s   vocab sizes: " + ", ".join(f"{c}={vocab[(v,c)]}" for c in sorted(corpora)))
json.dump(rows, open("/tmp/libexp/stem_rows.json", "w"))
