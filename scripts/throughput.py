#!/usr/bin/env python3
"""Tokens/s on a real text mix: what users would pick instead (sentence-transformers) beside bertc.

usage: throughput.py --model ST_FOLDER --lines LINES.txt --out TABLE.md
                     [--bertc [NAME=]ARGS ...] [--bertc-bin PATH]
                     [--systems st-torch,st-onnx,st-onnx-int8] [--int8-config avx512_vnni]
                     [--threads 2] [--rounds 3] [--first N] [--batch-size 32]
                     [--save RESULT.json] [--keep-workdir]

Systems (rows), timed in interleaved rounds (A B C ..., then again) after one untimed warm-up
run each; a cell is the median over the rounds:
  st-torch      sentence-transformers in PyTorch: `encode(lines, batch_size=32)` (it sorts the
                lines by length itself and returns them in input order)
  st-onnx       sentence-transformers' ONNX backend (`backend="onnx"`: Optimum exports the model,
                onnxruntime runs it), fp32
  st-onnx-int8  the same backend's own dynamic int8
                (`export_dynamic_quantized_onnx_model(model, --int8-config, ...)`)
  bertc ...     one row per --bertc: the arguments of a bertc command, timed as a whole process
                (start-up, model load, tokenization, the run and writing its output: what a user
                waits for). Placeholders: {lines} the text file, {lines_sorted} the same lines
                sorted by token count (its outputs are put back in input order before checking),
                {model} the --model folder, {threads} the --threads value. So any form of
                `bertc run` that exists now or later can be timed without changing this script:
                    --bertc "run out/ --file {lines} --threads {threads} --json"
                    --bertc "sorted=run out/ --file {lines_sorted} --threads {threads} --json"
                The "1 line" column times the same command on the first line alone: its fixed
                cost (start-up and load), part of every figure of that row.

Columns: tokens/s (tokens of the mix / wall seconds of a run); "after start-up": for a bertc row,
the tokens over (wall seconds − the same round's "1 line" seconds), what sentence-transformers'
rows time (`encode()` with Python started and the model loaded), for them the same figure; the
ratio of that figure to each sentence-transformers row measured; the wall and CPU seconds of a run (user + system time of this
process's threads or of the bertc process: on a shared machine the wall time also counts the time
other processes held the cores, the CPU time does not, though it counts threads that spin), the
"1 line" time, and the check.

Tokens: every line tokenized by the model's own tokenizer, truncated at its max_seq_length, special
tokens included; the same count for every system, so tokens/s compare work done, not padding.

Check: each system's embeddings (from its warm-up run) against sentence-transformers' PyTorch
embeddings of the same line, the cosine of every line; the worst line is reported. bertc's output
is read when it holds embeddings: `bertc run --json` (one document with "embeddings") or JSON
Lines (one object per input, in input order, with "embedding"); other output (the human form)
leaves the cell empty.

Threads: OMP/MKL/OpenBLAS variables are set before anything loads a thread pool, then
torch.set_num_threads(--threads) and onnxruntime's intra-op threads = --threads (inter-op 1);
bertc gets the variables too, and --threads through {threads}, and BERTC_ONNXRUNTIME_LIB naming
the onnxruntime library the ONNX backend runs (unless it is set already).

Inputs are never written to: the model folder is copied into a scratch folder and every
sentence-transformers system loads the copy (the int8 export writes into the folder it is given,
and a later version of the backend may save its ONNX export beside the model it loads); the
table goes to --out, which must not be one of the inputs.

Needs, in a virtual environment of its own (not scripts/requirements.txt: tests and CI never
run this), a set whose pins agree (sentence-transformers 6.x wants transformers 5, which the
ONNX backend's optimum-onnx 0.1 refuses):
    python3 -m venv VENV
    VENV/bin/pip install torch==2.15.0 transformers==4.57.6 "sentence-transformers[onnx]==5.7.0" \\
        "optimum[onnxruntime]==2.1.0" "optimum-onnx[onnxruntime]==0.1.0"
(torch's wheel brings CUDA packages, several GB; unused here) and run it with VENV/bin/python.
No network: models load from their folder only.
"""
import argparse
import json
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ST_SYSTEMS = ["st-torch", "st-onnx", "st-onnx-int8"]
# The rows the ratio columns divide by, when they were measured.
RATIO_TO = [("st-torch", "× ST PyTorch"), ("st-onnx", "× ST ONNX"), ("st-onnx-int8", "× ST int8")]
# Lines a text is cut to where the table names it.
SHOWN_CHARS = 50
# A failure's reason is cut to this many characters so the table stays readable.
REASON_CHARS = 200


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a sentence-transformers folder (modules.json, ...)")
    p.add_argument("--lines", required=True, help="the texts, one per line")
    p.add_argument("--out", required=True, help="where the Markdown table is written")
    p.add_argument("--bertc", action="append", default=[], metavar="[NAME=]ARGS",
                   help="arguments of a bertc command to time (placeholders: see the docstring)")
    p.add_argument("--bertc-bin", help="the bertc binary (default: target/release/bertc, else bertc on PATH)")
    p.add_argument("--systems", default=",".join(ST_SYSTEMS),
                   help=f"sentence-transformers rows, comma-separated, from {','.join(ST_SYSTEMS)} ('' for none)")
    p.add_argument("--int8-config", default="avx512_vnni",
                   help="sentence-transformers' quantization config (arm64, avx2, avx512, avx512_vnni)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--first", type=int, help="use only the first N lines")
    p.add_argument("--batch-size", type=int, default=32, help="sentence-transformers' encode batch size")
    p.add_argument("--save", help="also write every measurement as JSON here")
    p.add_argument("--keep-workdir", action="store_true", help="keep the scratch folder (exports, outputs)")
    a = p.parse_args()
    a.systems = [s for s in a.systems.split(",") if s]
    unknown = [s for s in a.systems if s not in ST_SYSTEMS]
    if unknown:
        p.error(f"unknown system {', '.join(unknown)}; known: {', '.join(ST_SYSTEMS)}")
    if a.threads < 1 or a.rounds < 1 or a.batch_size < 1 or (a.first is not None and a.first < 1):
        p.error("--threads, --rounds, --batch-size and --first must be at least 1")
    if not os.path.isfile(os.path.join(a.model, "modules.json")):
        p.error(f"{a.model} is not a sentence-transformers folder (no modules.json)")
    if not os.path.isfile(a.lines):
        p.error(f"{a.lines} is not a file")
    a.bertc_bin = a.bertc_bin or default_bertc()
    if a.bertc and not a.bertc_bin:
        p.error("no bertc binary: build it (cargo build --release) or give --bertc-bin")
    return a


def default_bertc():
    built = os.path.join(HERE, "..", "target", "release", "bertc")
    return os.path.abspath(built) if os.access(built, os.X_OK) else shutil.which("bertc")


def refuse_overwriting_inputs(a):
    """--out and --save must be none of the files this run reads."""
    model = os.path.realpath(a.model)
    inputs = [os.path.realpath(a.lines)] + ([os.path.realpath(a.bertc_bin)] if a.bertc_bin else [])
    for flag, path in (("--out", a.out), ("--save", a.save)):
        if path is None:
            continue
        real = os.path.realpath(path)
        if real in inputs or real == model or real.startswith(model + os.sep):
            sys.exit(f"{flag} {path} is an input of this run (or inside the model folder): choose another path")
        if os.path.isdir(real):
            sys.exit(f"{flag} {path} is a folder: give a file path")
    if a.out and a.save and os.path.realpath(a.out) == os.path.realpath(a.save):
        sys.exit("--out and --save are the same file")


def pin_threads(threads):
    """Before torch, onnxruntime or numpy start a thread pool: they read these once."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    # Everything is on disk: fail at once instead of waiting on a hub that cannot be reached.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def import_or_exit(module, package, why):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        sys.exit(f"throughput.py needs {package} ({why}), which {sys.executable} cannot import: {e}.\n"
                 "Install the benchmark set in a virtual environment of its own (see the docstring: "
                 "python3 scripts/throughput.py --help) and run this script with its python.")


class Deps:
    """The packages, imported once the thread variables are set; a missing one is named."""

    def __init__(self, systems):
        self.np = import_or_exit("numpy", "numpy", "the cosine check")
        self.torch = import_or_exit("torch", "torch", "sentence-transformers' reference embeddings")
        self.transformers = import_or_exit("transformers", "transformers", "the tokenizer")
        self.st = import_or_exit("sentence_transformers", "sentence-transformers", "the reference embeddings")
        self.ort = None
        if any(s.startswith("st-onnx") for s in systems):
            self.ort = import_or_exit("onnxruntime", "onnxruntime", "sentence-transformers' ONNX backend")
            import_or_exit("optimum.onnxruntime", "optimum[onnxruntime] (optimum-onnx)",
                           "sentence-transformers' ONNX export")

    def versions(self):
        import importlib.metadata as md
        out = {}
        for name in ("torch", "transformers", "sentence-transformers", "optimum", "optimum-onnx", "onnxruntime"):
            try:
                out[name] = md.version(name)
            except md.PackageNotFoundError:
                pass
        return out


def share_onnxruntime_library(deps):
    """`bertc run --runtime onnxruntime` loads the very library the ONNX backend runs, so the rows
    compare graphs and batching, not onnxruntime builds; and bertc is spared looking for it through
    `python3` on every start (through a pyenv shim that costs 0.1-0.5 s of each run's fixed cost,
    which a deployment would not pay: it sets BERTC_ONNXRUNTIME_LIB once). A variable the caller set
    wins."""
    if deps.ort is None or os.environ.get("BERTC_ONNXRUNTIME_LIB"):
        return
    capi = os.path.join(os.path.dirname(deps.ort.__file__), "capi")
    libs = sorted(f for f in os.listdir(capi) if f.startswith("libonnxruntime.so"))
    if libs:
        os.environ["BERTC_ONNXRUNTIME_LIB"] = os.path.join(capi, libs[0])


def read_lines(path, first):
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\r\n") for line in f]
    lines = lines[:first] if first else lines
    if not lines:
        sys.exit(f"{path}: no lines")
    return lines


class TextMix:
    """The lines, their token counts, and the files the bertc commands read."""

    def __init__(self, deps, st_model, lines, workdir):
        tok = st_model.tokenizer
        self.max_length = st_model.max_seq_length
        ids = tok(lines, truncation=True, max_length=self.max_length, add_special_tokens=True)["input_ids"]
        self.lines = lines
        self.counts = [len(i) for i in ids]
        self.tokens = sum(self.counts)
        np = deps.np
        # Sorted by token count (stable): `order[k]` is the input line at sorted position k.
        self.order = [int(i) for i in np.argsort(np.array(self.counts), kind="stable")]
        self.files = {
            "lines": self._write(workdir, "lines.txt", lines),
            "lines_sorted": self._write(workdir, "lines-sorted.txt", [lines[i] for i in self.order]),
        }
        self.one_line = self._write(workdir, "one-line.txt", lines[:1])

    @staticmethod
    def _write(workdir, name, lines):
        path = os.path.join(workdir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
        return path

    def padded_tokens(self, batch, order):
        """Tokens a runtime computes when `batch` lines in `order` are padded to their longest."""
        counts = [self.counts[i] for i in order]
        return sum(len(b) * max(b) for b in (counts[k:k + batch] for k in range(0, len(counts), batch)))

    def summary(self, batch):
        c = sorted(self.counts)
        at = lambda q: c[min(len(c) - 1, int(q * len(c)))]  # noqa: E731
        return {
            "lines": len(self.lines), "tokens": self.tokens, "max_length": self.max_length,
            "tokens_per_line": {"p10": at(0.1), "median": at(0.5), "p90": at(0.9), "max": c[-1]},
            "padded_input_order": self.padded_tokens(batch, range(len(self.lines))),
            "padded_sorted": self.padded_tokens(batch, self.order),
        }


class SentenceTransformers:
    """One sentence-transformers row: a loaded model and its `encode`."""

    def __init__(self, name, model, batch_size):
        self.name, self.model, self.batch_size = name, model, batch_size
        self.command = None

    def run(self, mix):
        return self.model.encode(mix.lines, batch_size=self.batch_size, convert_to_numpy=True,
                                 show_progress_bar=False)


def load_st_systems(a, deps, copy, workdir):
    """{name: SentenceTransformers or the reason it could not load}, and the PyTorch model."""
    ST = deps.st.SentenceTransformer
    deps.torch.set_num_threads(a.threads)
    reference = ST(copy, device="cpu")
    systems = {}
    if "st-torch" in a.systems:
        systems["st-torch"] = SentenceTransformers("st-torch", reference, a.batch_size)
    if not any(s.startswith("st-onnx") for s in a.systems):
        return systems, reference

    def onnx_kwargs(file_name=None):
        opts = deps.ort.SessionOptions()
        opts.intra_op_num_threads = a.threads
        opts.inter_op_num_threads = 1
        kwargs = {"provider": "CPUExecutionProvider", "session_options": opts}
        if file_name:
            kwargs["file_name"] = file_name
        return kwargs

    try:
        onnx = ST(copy, device="cpu", backend="onnx", model_kwargs=onnx_kwargs())
    except Exception as e:  # noqa: BLE001 — any failure of the export is this row's result
        reason = short_reason("cannot export to ONNX", e)
        return {**systems, **{s: reason for s in a.systems if s.startswith("st-onnx")}}, reference
    if "st-onnx" in a.systems:
        systems["st-onnx"] = SentenceTransformers("st-onnx", onnx, a.batch_size)
    if "st-onnx-int8" in a.systems:
        systems["st-onnx-int8"] = load_st_int8(a, deps, onnx, workdir, onnx_kwargs)
    return systems, reference


def load_st_int8(a, deps, onnx, workdir, onnx_kwargs):
    """The ONNX backend's own dynamic int8, as its documentation makes it: save the exported
    model, quantize it with `export_dynamic_quantized_onnx_model`, load the file it wrote."""
    folder = os.path.join(workdir, "st-onnx")
    try:
        onnx.save(folder)
        deps.st.export_dynamic_quantized_onnx_model(onnx, a.int8_config, folder, push_to_hub=False)
        written = [f for f in os.listdir(os.path.join(folder, "onnx")) if "qint8" in f or "quint8" in f]
        if len(written) != 1:
            raise RuntimeError(f"expected one quantized file in {folder}/onnx, found {written}")
        model = deps.st.SentenceTransformer(folder, device="cpu", backend="onnx",
                                            model_kwargs=onnx_kwargs(f"onnx/{written[0]}"))
    except Exception as e:  # noqa: BLE001 — any failure of the quantizer is this row's result
        return short_reason("cannot quantize", e)
    return SentenceTransformers("st-onnx-int8", model, a.batch_size)


def short_reason(kind, err):
    text = " ".join(str(err).split()) or type(err).__name__
    if len(text) > REASON_CHARS:
        text = text[: REASON_CHARS - 1] + "…"
    return f"{kind}: {text}"


class BertcCommand:
    """One --bertc row: a whole `bertc ...` process per run, its stdout kept for the check."""

    def __init__(self, spec, a, mix, workdir, index):
        m = re.match(r"^([A-Za-z][\w.+-]*)=(.*)$", spec, re.DOTALL)
        template = m.group(2) if m else spec
        self.name = m.group(1) if m else f"bertc {template}"
        self.template = template
        self.bin, self.threads = a.bertc_bin, a.threads
        self.sorted_input = "{lines_sorted}" in template
        fields = {**mix.files, "model": os.path.abspath(a.model), "threads": str(a.threads)}
        self.argv = self._argv(template, fields)
        self.one_line_argv = self._argv(template, {**fields, "lines": mix.one_line, "lines_sorted": mix.one_line})
        self.command = "bertc " + template
        self.stdout = os.path.join(workdir, f"bertc-{index}.out")
        self.stderr = os.path.join(workdir, f"bertc-{index}.err")

    def _argv(self, template, fields):
        try:
            return [self.bin] + [part.format(**fields) for part in shlex.split(template)]
        except (KeyError, IndexError, ValueError) as e:
            sys.exit(f"--bertc {template!r}: {e!r}; placeholders are {{lines}}, {{lines_sorted}}, {{model}}, "
                     "{threads} (write {{ }} for a literal brace)")

    def _spawn(self, argv):
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            code = subprocess.run(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL).returncode
        if code != 0:
            with open(self.stderr, encoding="utf-8", errors="replace") as f:
                lines = [line for line in f.read().splitlines() if line.strip()]
            raise RuntimeError(lines[-1] if lines else f"exited with status {code}")

    def run(self, mix):
        self._spawn(self.argv)
        return self

    def time_one_line(self):
        start = time.perf_counter()
        self._spawn(self.one_line_argv)
        return time.perf_counter() - start

    def embeddings(self, deps, mix):
        """The vectors of its last run in input order, None when the output holds none, or a
        string saying why they cannot be compared."""
        with open(self.stdout, encoding="utf-8", errors="replace") as f:
            text = f.read()
        vectors = parse_embeddings(text)
        if vectors is None or isinstance(vectors, str):
            return vectors
        if len(vectors) != len(mix.lines):
            return f"{len(vectors)} embeddings for {len(mix.lines)} lines"
        v = deps.np.asarray(vectors, dtype=deps.np.float64)
        if self.sorted_input:
            back = deps.np.empty_like(v)
            back[mix.order] = v
            v = back
        return v


def parse_embeddings(text):
    """bertc run's embeddings: `--json` (one document with "embeddings") or JSON Lines (one
    object per input with "embedding"); None for output of another kind."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            return None
        if "embeddings" in doc:
            return doc["embeddings"]
        if "embedding" not in doc:  # another task's document
            return None
    except json.JSONDecodeError:
        pass  # several documents: JSON Lines
    vectors = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            return f"output line {n} is not JSON: {e}"
        vector = obj.get("embedding") if isinstance(obj, dict) else None
        if not isinstance(vector, list):
            return f"output line {n} has no \"embedding\" list"
        vectors.append(vector)
    return vectors


def worst_cosine(deps, reference, vectors, mix):
    """The lowest cosine over the lines between `vectors` and the reference, and where."""
    np = deps.np
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(vectors, dtype=np.float64)
    if got.shape != ref.shape:
        return {"error": f"embeddings of shape {list(got.shape)}, reference {list(ref.shape)}"}
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    cos = np.einsum("ij,ij->i", ref, got) / np.where(norms > 0, norms, 1.0)
    i = int(np.argmin(cos))
    return {"worst": float(cos[i]), "line": i + 1, "text": mix.lines[i][:SHOWN_CHARS],
            "tokens": mix.counts[i], "median": float(np.median(cos))}


def bertc_version(a):
    if not a.bertc_bin:
        return None
    out = subprocess.run([a.bertc_bin, "--version"], capture_output=True, text=True)
    return out.stdout.strip() or None


def cpu_seconds():
    """User + system time of this process's threads and of its finished children."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def timed(system, mix):
    """Wall and CPU seconds of one run. On a shared machine the wall time also holds the time
    other processes had the cores; the CPU time does not (but counts threads that spin)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    system.run(mix)
    return time.perf_counter() - wall, cpu_seconds() - cpu


def measure(a, deps, systems, mix, reference_vectors):
    """Warm-up (the run the check reads), then the interleaved rounds."""
    rows = {}
    for name, s in systems.items():
        if isinstance(s, str):
            rows[name] = {"error": s}
            continue
        print(f"warm-up: {name}", file=sys.stderr)
        try:
            out = s.run(mix)
        except Exception as e:  # noqa: BLE001 — a failing row does not stop the others
            rows[name] = {"error": short_reason("failed", e)}
            continue
        rows[name] = {"command": s.command, "seconds": [], "cpu_seconds": [], "one_line_seconds": []}
        vectors = out.embeddings(deps, mix) if isinstance(s, BertcCommand) else out
        if isinstance(vectors, str):
            rows[name]["cosine"] = {"error": vectors}
        elif vectors is not None:
            rows[name]["cosine"] = worst_cosine(deps, reference_vectors, vectors, mix)
    live = [n for n in systems if "error" not in rows[n]]
    for r in range(a.rounds):
        for name in live:
            if "error" in rows[name]:
                continue
            print(f"round {r + 1}/{a.rounds}: {name}", file=sys.stderr)
            s = systems[name]
            try:
                wall, cpu = timed(s, mix)
                rows[name]["seconds"].append(wall)
                rows[name]["cpu_seconds"].append(cpu)
                if isinstance(s, BertcCommand):
                    rows[name]["one_line_seconds"].append(s.time_one_line())
            except Exception as e:  # noqa: BLE001
                rows[name] = {"error": short_reason(f"failed in round {r + 1}", e)}
    measured = [rows[n] for n in live if "error" not in rows[n]]
    for row in measured:
        row["tokens_per_s_rounds"] = [mix.tokens / t for t in row["seconds"]]
        row["tokens_per_s"] = statistics.median(row["tokens_per_s_rounds"])
        # sentence-transformers rows time encode() alone: Python started, the model loaded. A bertc
        # row times a whole process; less its own 1-line run of the same round (start-up, load, one
        # line) it times the same thing as encode(), and that is what the ratios compare.
        steady = row["seconds"]
        if row["one_line_seconds"]:
            steady = [max(t - one, 1e-9) for t, one in zip(row["seconds"], row["one_line_seconds"])]
        row["steady_tokens_per_s_rounds"] = [mix.tokens / t for t in steady]
        row["steady_tokens_per_s"] = statistics.median(row["steady_tokens_per_s_rounds"])
    for row in measured:
        for base, _ in RATIO_TO:
            if base in rows and "steady_tokens_per_s_rounds" in rows[base]:
                # Within each round, then the median: a busy spell slows a whole round alike.
                row[f"ratio_to_{base}"] = statistics.median(
                    x / b for x, b in zip(row["steady_tokens_per_s_rounds"], rows[base]["steady_tokens_per_s_rounds"]))
    return rows


def markdown(doc):
    def md(text):
        return str(text).replace("|", "\\|")

    mix, cpu = doc["mix"], doc["cpu"]
    flags = ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in cpu["flags"].items())
    versions = ", ".join(f"{k} {v}" for k, v in doc["versions"].items())
    t = mix["tokens_per_line"]
    lines = [
        f"Model: `{doc['model']}`. Text: `{doc['lines_file']}`, {mix['lines']:,} lines, {mix['tokens']:,} tokens "
        f"(the model's tokenizer, truncated at {mix['max_length']}; per line p10 {t['p10']}, median "
        f"{t['median']}, p90 {t['p90']}, max {t['max']}). Padded to the longest in batches of "
        f"{doc['batch_size']}: {mix['padded_input_order'] / mix['tokens']:.2f}× the real tokens in input "
        f"order, {mix['padded_sorted'] / mix['tokens']:.2f}× sorted by length.",
        "",
        f"CPU: {cpu['model']} ({cpu['cores']} logical cores; {flags}). {doc['threads']} threads; "
        f"{doc['rounds']} interleaved rounds after one warm-up per row; cells: medians over the rounds "
        f"(ratios: median of the ratios within each round). {versions}; {doc['bertc_version'] or 'no bertc'}.",
        "",
    ]
    bases = [(b, title) for b, title in RATIO_TO if "tokens_per_s" in doc["rows"].get(b, {})]
    lines += [
        "sentence-transformers rows time `encode()` alone (Python started, model loaded); a bertc row "
        "times a whole process, and its \"after start-up\" figure subtracts the same command's 1-line run "
        "of the same round (start-up, model load, one line), which times what `encode()` times: the "
        "ratios compare those.",
        "",
    ]
    lines.append("| system | tokens/s | after start-up | " + "".join(f"{title} | " for _, title in bases)
                 + "s per run | CPU s per run | 1 line (s) | worst cosine to ST PyTorch (line) |")
    lines.append("|---|---:|---:|" + "---:|" * len(bases) + "---:|---:|---:|---|")
    for name, row in doc["rows"].items():
        if "error" in row:
            lines.append(f"| {md(name)} | {md(row['error'])} |" + " |" * (len(bases) + 5))
            continue
        ratios = "".join(f"{row[f'ratio_to_{b}']:.2f}× | " for b, _ in bases)
        one = f"{statistics.median(row['one_line_seconds']):.2f}" if row["one_line_seconds"] else ""
        c = row.get("cosine")
        if c is None:
            cos = "(no embeddings in its output)"
        elif "error" in c:
            cos = md(c["error"])
        else:
            cos = f"{cosine_text(c['worst'])} (line {c['line']}, {c['tokens']} tokens)"
        lines.append(f"| {md(name)} | {row['tokens_per_s']:,.0f} | {row['steady_tokens_per_s']:,.0f} | {ratios}"
                     f"{statistics.median(row['seconds']):.2f} | {statistics.median(row['cpu_seconds']):.2f} | "
                     f"{one} | {cos} |")
    # Rows named by their command need no second mention.
    commands = [(n, r["command"]) for n, r in doc["rows"].items() if r.get("command") and r["command"] != n]
    if commands:
        lines += ["", "Commands: " + "; ".join(f"{md(n)}: `{c}`" for n, c in commands) + "."]
    return "\n".join(lines) + "\n"


def cosine_text(c):
    """Near 1 as its distance from 1 (0.99999 must be told from 0.9999999)."""
    return f"{c:.6f}" if c < 0.9999 else f"1 − {1 - c:.1e}"


def write_atomically(path, text):
    """Beside the target and renamed: no half-written table on failure."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main():
    a = parse_args()
    refuse_overwriting_inputs(a)
    pin_threads(a.threads)
    deps = Deps(a.systems)
    sys.path.insert(0, HERE)
    from runtimes import cpu_info  # noqa: E402 — after pin_threads: it loads onnxruntime

    workdir = tempfile.mkdtemp(prefix="throughput-")
    try:
        copy = os.path.join(workdir, "model")
        shutil.copytree(a.model, copy)
        systems, reference = load_st_systems(a, deps, copy, workdir)
        mix = TextMix(deps, reference, read_lines(a.lines, a.first), workdir)
        print(f"{len(mix.lines)} lines, {mix.tokens} tokens; reference embeddings", file=sys.stderr)
        reference_vectors = reference.encode(mix.lines, batch_size=a.batch_size, convert_to_numpy=True,
                                             show_progress_bar=False)
        share_onnxruntime_library(deps)
        for i, spec in enumerate(a.bertc):
            command = BertcCommand(spec, a, mix, workdir, i)
            systems[command.name] = command
        rows = measure(a, deps, systems, mix, reference_vectors)
        doc = {
            "model": a.model, "lines_file": a.lines, "batch_size": a.batch_size, "threads": a.threads,
            "rounds": a.rounds, "cpu": cpu_info(), "versions": deps.versions(), "bertc_version": bertc_version(a),
            "mix": mix.summary(a.batch_size), "rows": rows,
        }
    finally:
        if a.keep_workdir:
            print(f"scratch folder kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    table = markdown(doc)
    write_atomically(a.out, table)
    if a.save:
        write_atomically(a.save, json.dumps(doc, indent=1) + "\n")
    print(table)


if __name__ == "__main__":
    main()
