"""Build /tmp/libexp/sentences_gold.jsonl: paragraphs picked by their opening words, true sentence starts given by the
opening words of every sentence after the first (marked by hand after reading each paragraph)."""
import json, pickle, re, glob
def paras_of(t): return [p.strip() for p in re.split(r"\n\s*\n", t) if p.strip()]
pool = {}
for n in ("debian-reference-fr", "debian-mixed-fr"):
    for s, t, c in pickle.load(open(f"/tmp/libexp/chunks_{n}.pkl", "rb")):
        for p in paras_of(t): pool.setdefault(p, s)
seeds = paras_of(open(glob.glob("/work/main/seeds/*.txt")[0]).read())
for p in seeds: pool.setdefault(p, "seeds")
for f in ["README.md", "bench/questions/README.md", "bench/questions/SPLITS.md"] + sorted(glob.glob("/work/main/docs/*.md")):
    f = f if f.startswith("/") else "/work/main/" + f
    t = re.sub(r"```.*?```", "", open(f).read(), flags=re.S)
    for p in paras_of(t): pool.setdefault(p, f.replace("/work/main/", ""))
FR = [
 ("Ces rencontres s’inscrivent", []),
 ("Mme Seghrouchni a souligné", []),
 ("Dans ce cadre, elle a présenté", None),
 ("11\\. Filtres Artistiques", ["Chapitre 17.", "11. Filtres Artistiques", "11.1. Introduction", "Les filtres Artistiques donnent"]),
 ("La taille maximum de segment", ["La relation entre"]),
 ("Sur certains systèmes UEFI", ["Dans ce cas, il est"]),
 ("L’Éditeur de carte d’orientation", ["Vous y accédez", "Il vous sert"]),
 ("C’était « Réduire depuis", ["Cette option ne concerne", "Si c’est le cas"]),
 ("Avec cette option vous pouvez choisir la longueur", ["Dans l’exemple ci-dessus"]),
 ("Les pointillés mobiles", ["Le terme anglais"]),
 ("Vous pouvez effectuer une mise à niveau", []),
 ("Rend possible d’accélérer", ["C’est particulièrement", "Souvenez-vous"]),
 ("Les meilleures façons de faire", ["Vous devriez"]),
 ("La plupart des BIOS et des UEFI", ["Si cette option est disponible"]),
 ("Son extension est .gih.", ["Elles sont indiquées", "Il serait possible"]),
 ("Si vous avez programmé dans d’autres langages", []),
 ("« -name » correspond", []),
 ("Le bouton Sélection vers chemin.", ["Si vous appuyez", "Voir la section"]),
 ("Vous pouvez voir à quoi ressemblent les polices", ["Ces méthodes rendront", "Si vous voulez que tous"]),
 ("Sur un système 64 bits", []),
 ("Barre de titre : la barre", ["Si une image est présente", "La barre de titre est gérée"]),
 ("Choisissez une partition que vous voulez", ["Si vous aviez choisi", "N'oubliez pas", "Pour des informations détaillées", "Des informations plus générales"]),
 ("Cela peut sembler compliqué", ["Si vous regardez"]),
 ("Pour les périphériques similaires à PCI", []),
 ("apt doit être configuré pour qu'il sache", ["Les résultats de cette"]),
 ("C’est la célèbre phrase de Richard M. Stallman en bas de l’ancienne page\ninfo su. Ne", ["Ne pas s’inquiéter"]),
 ("La mise en œuvre d’Annuler", ["Beaucoup d’opérations", "Certaines sont compactées", "Mais d’autres opérations"]),
 ("où les variables sont déclarées entre parenthèses", []),
 ("La place nécessaire dépend énormément", ["Si vous envisagez", "Si vous préférez"]),
 ("Cette section explique comment installer Debian GNU/Linux sur un ordinateur, sans carte", ["La passerelle doit"]),
]
EN = [
 ("The sentence in its chunk's context helps", ["So `encode` stays", "Making the stored"]),
 ("Measured 2026-12-03 with", ["The machine was"]),
 ("1. a curated `.examples` file", ["2. the questions", "3. when those"]),
 ("The default embedder is **multilingual-e5-small**", ["On first use"]),
 ("Text found in documents is data", ["Sentences that address"]),
 ("`sentence_vectors=pool` keeps the index fast", ["Measured on the question"]),
 ("`HF_HUB_OFFLINE=0` is required", ["Alternatively, use"]),
 ("**Untrusted documents.**", ["Document text, quotes", "Gradio's own sanitizer", "The browser tests"]),
 ("**The rules' own threshold**", ["The\nshare passed", "No value is better"]),
 ("Overall, versus the dense-only baseline", ["Retrieval costs"]),
 ("Do the corpus priors transfer?", ["Trained on one", "Between these two"]),
 ("Ablation (`python scripts/ablation.py", ["`dev.jsonl`: the 11"]),
 ("The repository folder works unchanged", ["The Space needs"]),
 ("Built indexes, corpus subsets", ["Before each measurement"]),
 ("`torch==2.13.0` is installed first", ["`.ci/run` runs"]),
 ("At 1,518 chunks under the same cap", ["The 1.69×", "What costs the ratio", "- the stored", "- the first run", "- the fixed costs"]),
 ("A Space's disk is reset", ["Set\n`ASSISTANT_AUTH`"]),
 ("`--config NAME=SETTINGS` (repeatable)", ["SETTINGS is a", "An empty list", "Names are letters"]),
 ("How fast the assistant indexes and answers", ["Full results, plots"]),
 ("Screen mode inverts the values", ["(That is, it subtracts", "Then it multiplies", "The resulting image", "The exceptions to this", "Darker colors"]),
 ("Path segments can be either straight", ["A path is called", "A new path segment"]),
 ("With this file browser, you can edit", ["We repeat that", "You must also", "You can create"]),
 ("The most common modifications of the /boot/grub", ["To add entries", "For more complex"]),
 ("After you learn basics of vim(1)", []),
 ("The default display format of time and date", ["The \"$LANG\"", "The actual default", "I.e., different"]),
 ("Answers are short facts that appear verbatim", ["The 32 answerable", "Some chapters are"]),
 ("The 8 unanswerable cases:", []),
 ("The pages were extracted with", ["`check.py`\nverifies"]),
 ("It checks the format (exact keys", ["With `--chunks` it also", "It prints the counts"]),
 ("**The rule for test:**", ["Run it, report", "If a figure on test", "`tests/test_splits.py`", "(The cases I wrote"]),
]
out = []
for lang, spec in (("fr", FR), ("en", EN)):
    for prefix, starts in spec:
        cands = [p for p in pool if p.replace('\xa0', ' ').startswith(prefix)]
        assert cands, prefix
        p = max(cands, key=len)
        if starts is None:
            print("SHOW:", repr(p)); starts = []
        bounds, pos = [], 0
        for s in starts:
            i = p.replace('\xa0', ' ').find(s, pos + 1); assert i > 0, (prefix, s)
            bounds.append(i); pos = i
        out.append(dict(lang=lang, source=pool[p], text=p, starts=bounds))
with open("/tmp/libexp/sentences_gold.jsonl", "w") as fh:
    for o in out: fh.write(json.dumps(o, ensure_ascii=False) + "\n")
for o in out:
    t = o["text"]; m = ""; last = 0
    for b in o["starts"]: m += t[last:b] + "‖"; last = b
    print(f"--- {o['lang']} {o['source']}\n{m + t[last:]}")
print(len(out), sum(len(o["starts"]) for o in out))
