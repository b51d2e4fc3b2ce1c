import json, glob, time, random, pickle, sys, collections
from pathlib import Path
import py3langid
from py3langid.langid import LanguageIdentifier, MODEL_FILE
from assistant.text import detect_language
LI = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
LI.set_languages(["fr", "en"])
def lib(t): return LI.classify(t)[0]

def jl(p): return [json.loads(l) for l in open(p) if l.strip()]
items = []  # (source, lang, question, print_ok)
for p in sorted(glob.glob("/work/main/bench/questions/*.jsonl")):
    for c in jl(p):
        lang = "en" if c["id"].split("-")[1] == "en" else "fr"
        assert c["id"].split("-")[1] in ("en", "fr")
        items.append((f"bench/{Path(p).name}", lang, c["question"], True))
for c in jl("/work/main/bench/questions/derived/translations_en.jsonl"):
    items.append(("bench/derived/translations_en", "en", c["question"], True))
for f in ("followups", "unanswerables"):
    for c in jl(f"/work/main/bench/questions/derived/{f}.jsonl"):
        items.append((f"bench/derived/{f}", c["lang_q"], c["question"], True))
for split in ("train", "dev", "test"):
    for p in sorted(glob.glob(f"/tmp/libexp/splits/{split}.*.jsonl")):
        for c in jl(p):
            items.append((f"splits/{split}", c["lang_q"], c["question"], split != "test"))
for c in jl("/work/main/eval/dev.jsonl"):
    lang = c["id"].rsplit("-", 1)[1]; assert lang in ("en", "fr")
    items.append(("eval/dev.jsonl", lang, c["question"], True))
for d in ("service-public", "cnil"):
    for c in jl(f"/work/shared/data/{d}/questions.jsonl"):
        items.append((f"shared/{d}", "fr", c["question"], True))

res = collections.defaultdict(lambda: collections.Counter())
errs = {"proj": [], "lib": []}
for src, lang, q, ok in items:
    p, l = detect_language(q), lib(q)
    short = len(q.split()) <= 5
    for key in (src, "ALL(with dups)"):
        r = res[key]; r[f"n_{lang}"] += 1; r[f"proj_ok_{lang}"] += p == lang; r[f"lib_ok_{lang}"] += l == lang
    if short:
        r = res["short<=5w"]; r[f"n_{lang}"] += 1; r[f"proj_ok_{lang}"] += p == lang; r[f"lib_ok_{lang}"] += l == lang
        r[f"proj_{lang}->{p}"] += 1; r[f"lib_{lang}->{l}"] += 1
    if ok:
        if p != lang: errs["proj"].append((src, lang, q))
        if l != lang: errs["lib"].append((src, lang, q))
# unique questions (dedupe by text+lang), excluding test
uniq = {(lang, q) for src, lang, q, ok in items}
r = res["UNIQUE(all sources)"]; rs = res["UNIQUE short<=5w"]
for lang, q in uniq:
    p, l = detect_language(q), lib(q)
    for rr in ([r, rs] if len(q.split()) <= 5 else [r]):
        rr[f"n_{lang}"] += 1; rr[f"proj_ok_{lang}"] += p == lang; rr[f"lib_ok_{lang}"] += l == lang
        rr[f"proj_{lang}->{p}"] += 1; rr[f"lib_{lang}->{l}"] += 1

def acc(r, who, lang):
    n = r[f"n_{lang}"]; return f"{r[f'{who}_ok_{lang}']/n:.3f} ({r[f'{who}_ok_{lang}']}/{n})" if n else "-"
print("| source | n fr | n en | project fr | py3langid fr | project en | py3langid en |")
print("|---|---|---|---|---|---|---|")
for k, r in res.items():
    print(f"| {k} | {r['n_fr']} | {r['n_en']} | {acc(r,'proj','fr')} | {acc(r,'lib','fr')} | {acc(r,'proj','en')} | {acc(r,'lib','en')} |")
for k in ("short<=5w", "UNIQUE short<=5w"):
    print(k, "confusion:", {x: v for x, v in res[k].items() if "->" in x})
# timing on unique questions
qs = [q for _, q in sorted(uniq)]
for name, fn in (("project", detect_language), ("py3langid", lib)):
    for _ in range(2):
        t = time.perf_counter()
        for q in qs: fn(q)
        dt = time.perf_counter() - t
    print(f"time/call {name}: {dt/len(qs)*1e6:.1f} us over {len(qs)} questions (mean len {sum(map(len,qs))/len(qs):.0f} chars)")
print("\nERRORS (train/dev/non-split only, deduped):")
for who in errs:
    seen = set()
    for src, lang, q in errs[who]:
        if (lang, q) in seen: continue
        seen.add((lang, q)); print(f"  [{who}] {lang} {src}: {q}")
# chunks
print("\nCHUNKS")
ch_seeds = pickle.load(open("/tmp/libexp/chunks_seeds.pkl", "rb"))
print("seeds chunks (truth fr, the file is a French article):", len(ch_seeds),
      "project fr:", sum(detect_language(t) == "fr" for _, t, _ in ch_seeds), "py3langid fr:", sum(lib(t) == "fr" for _, t, _ in ch_seeds))
pool = []
for n in ("debian-reference-fr", "debian-mixed-fr"):
    try: pool += [(n, s, t) for s, t, _ in pickle.load(open(f"/tmp/libexp/chunks_{n}.pkl", "rb"))]
    except FileNotFoundError: pass
random.seed(0); sample = random.sample(pool, min(2000, len(pool)))
agree = 0; dis = []; cnt = collections.Counter()
tp = tl = 0
for n, s, t in sample:
    a = time.perf_counter(); p = detect_language(t); b = time.perf_counter(); l = lib(t); c = time.perf_counter()
    tp += b - a; tl += c - b
    cnt[(p, l)] += 1
    if p == l: agree += 1
    else: dis.append((n, s, p, l, t))
print(f"debian chunks sample: {len(sample)} of {len(pool)}; agreement {agree/len(sample):.3f}; (proj,lib) counts {dict(cnt)}")
print(f"time/call on chunks: project {tp/len(sample)*1e6:.0f} us, py3langid {tl/len(sample)*1e6:.0f} us; mean chunk {sum(len(x[2]) for x in sample)/len(sample):.0f} chars")
random.seed(1)
json.dump([dict(corpus=n, source=s, project=p, py3langid=l, text=t) for n, s, p, l, t in dis],
          open("/tmp/libexp/langid_chunk_disagreements.json", "w"), ensure_ascii=False, indent=1)
