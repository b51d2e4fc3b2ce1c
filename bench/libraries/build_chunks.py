"""Load + chunk each corpus with the project's loader/chunker; pickle [(source_rel, text, context)] per corpus."""
import pickle, sys, time
from pathlib import Path
from assistant.loaders import DocumentLoader, kind_of
from assistant.chunking import Chunker
from assistant.config import Settings
s = Settings()
chunker = Chunker(s.chunk_tokens, s.chunk_overlap)
loader = DocumentLoader()
C = Path("/tmp/libexp/corpora")
SH = Path("/work/shared/data")
corpora = {
    "seeds": [Path("/work/main/seeds")],
    "debian-reference-fr": [C / "debian-reference-fr"],
    "debian-mixed-fr": [C / "gimp-help-fr", C / "debian-handbook-fr", C / "installation-guide-fr"],
    "cnil": [SH / "cnil/docs"],
    "service-public": [SH / "service-public/docs"],
}
only = sys.argv[1:] or list(corpora)
for name in only:
    t = time.time(); out = []; nd = 0; fails = 0
    for root in corpora[name]:
        for p in sorted(root.rglob("*")):
            if not p.is_file() or kind_of(p) is None:
                continue
            try:
                doc = loader.run(p)
            except Exception as e:
                fails += 1; continue
            nd += 1
            rel = str(p.relative_to(root.parent if name != "service-public" else root))
            if name == "cnil": rel = "docs/" + p.name
            if name == "service-public": rel = "docs/" + str(p.relative_to(root))
            for ch in chunker.run(doc):
                out.append((rel, ch.text, ch.context))
    pickle.dump(out, open(f"/tmp/libexp/chunks_{name}.pkl", "wb"))
    print(f"{name}: {nd} docs ({fails} failed), {len(out)} chunks, {time.time()-t:.1f}s", flush=True)
