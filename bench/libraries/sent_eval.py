import json, time, warnings, re
import pysbd
from assistant.text import sentence_spans
warnings.filterwarnings("ignore")
gold = [json.loads(l) for l in open("/tmp/libexp/sentences_gold.jsonl")]
SEG = {l: pysbd.Segmenter(language=l, clean=False) for l in ("fr", "en")}
def proj(t): return [a for a, b in sentence_spans(t)][1:]
def sbd(t, lang):
    starts, pos = [], 0
    for s in SEG[lang].segment(t):
        s = s.strip()
        if not s: continue
        i = t.find(s, pos)
        if i < 0: i = pos  # should not happen with clean=False
        starts.append(i); pos = i + len(s)
    return starts[1:]
def prf(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else 1.0; r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0
res = {}; errs = []
systems = {"project sentence_spans": lambda o: proj(o["text"]),
           "pysbd (lang of paragraph)": lambda o: sbd(o["text"], o["lang"]),
           "pysbd, single line breaks -> spaces": lambda o: sbd(re.sub(r"(?<!\n)\n(?!\n)", " ", o["text"]), o["lang"])}
for name, f in systems.items():
    for lang in ("fr", "en", "all"):
        tp = fp = fn = 0
        for o in gold:
            if lang != "all" and o["lang"] != lang: continue
            g, p = set(o["starts"]), set(f(o))
            tp += len(g & p); fp += len(p - g); fn += len(g - p)
            if lang == "all" and g != p:
                t = o["text"]
                errs.append((name, o["lang"], [("FP", t[max(0, i-25):i] + "‖" + t[i:i+15]) for i in sorted(p - g)] + [("FN", t[max(0, i-25):i] + "‖" + t[i:i+15]) for i in sorted(g - p)]))
        res[(name, lang)] = (tp, fp, fn) + prf(tp, fp, fn)
print("| system | lang | gold boundaries | TP | FP | FN | precision | recall | F1 |\n|---|---|---|---|---|---|---|---|---|")
for (name, lang), (tp, fp, fn, p, r, f1) in res.items():
    print(f"| {name} | {lang} | {tp+fn} | {tp} | {fp} | {fn} | {p:.3f} | {r:.3f} | {f1:.3f} |")
nch = sum(len(o["text"]) for o in gold)
for name, f in systems.items():
    t = time.perf_counter()
    for _ in range(5):
        for o in gold: f(o)
    dt = (time.perf_counter() - t) / 5
    print(f"speed {name}: {dt/len(gold)*1e6:.0f} us/paragraph, {nch/dt/1e3:.0f} k chars/s")
print("\nERRORS")
for name, lang, e in errs:
    for kind, ctx in e: print(f"[{name[:7]}] {lang} {kind}: {ctx!r}")
