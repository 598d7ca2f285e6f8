#!/usr/bin/env python3
"""The same ONNX files in tract, onnxruntime and OpenVINO: one Markdown table.

usage: runtimes.py [--batch 1] [--seq 128] [--threads 2] [--rounds 3] [--runs 5] [--warmup 2]
                   [--runtimes tract,onnxruntime,openvino,openvino-default] [--bertc PATH]
                   [--json] [--save RESULT.json] MODEL.onnx [MODEL.onnx ...]
       runtimes.py --table-from RESULT.json

Runtimes (columns):
  tract             `bertc bench FILES --json` (tract-onnx, as bertc runs it)
  onnxruntime       CPUExecutionProvider, intra-op threads = --threads, one inter-op thread
  openvino          OpenVINO CPU with INFERENCE_PRECISION_HINT=f32 (the same arithmetic as the others)
  openvino-default  OpenVINO CPU with its default hint (bf16 on CPUs with AVX512-BF16 or AMX:
                    faster, but outputs move by ~1e-3); not measured unless asked for

The machine this runs on is usually shared and noisy, so the files are measured in
interleaved rounds: each round runs, for every runtime in turn, every file --warmup
times and then --runs times taking turns (A B C A B C ...), and keeps each file's
median of that round. A cell is the median over the rounds of those medians, with its
ratio to the first file that runs in that runtime (the median over rounds of the
ratio within each round, which a busy spell affects less). Only one runtime's sessions are
loaded at a time (BERT-base is 440 MB per file per runtime).

Inputs: the same for every runtime — bertc's realistic inputs (scripts/ort_latency.py):
B rows of S tokens, row 0 full, later rows padded, token ids drawn from the model's own
vocabulary. tract makes its own from the same rule (values differ, speed does not).

A file a runtime cannot load or run shows the reason in its cell ("cannot load: ...")
and does not stop the others. --json prints one JSON object instead of the table;
--save writes it to a file as well, and --table-from prints a saved one's table again.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# The input rule and the percentile are ort_latency.py's, so both scripts agree.
from ort_latency import embedding_rows, percentile, realistic_inputs  # noqa: E402

RUNTIMES = ["tract", "onnxruntime", "openvino", "openvino-default"]
DEFAULT_RUNTIMES = "tract,onnxruntime,openvino"
# The CPU features that decide which int8 / bf16 kernels the runtimes pick.
CPU_FLAGS = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16"]
# A reason is cut to this many characters so the table stays readable.
REASON_CHARS = 160


class Unavailable(Exception):
    """A file this runtime cannot load or run; the message goes into the cell."""


def cpu_info():
    """The CPU's model name and which of CPU_FLAGS it has (from /proc/cpuinfo on Linux)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                if key == "" and flags:  # end of the first processor's block
                    break
    except OSError:
        pass
    return {"model": model, "cores": os.cpu_count(), "flags": {f: f in flags for f in CPU_FLAGS}}


def short_reason(kind, err, path=None):
    text = " ".join(str(err).split())
    text = re.sub(r"^error: ", "", text, flags=re.IGNORECASE)
    if path:  # the row already names the file
        text = text.replace(f"cannot load the ONNX model {path}: ", "").replace(path, "it")
    if len(text) > REASON_CHARS:
        text = text[: REASON_CHARS - 1] + "…"
    return f"{kind}: {text}"


def tract_version():
    """tract-onnx's version from the Cargo.lock next to this script, if there is one."""
    try:
        with open(os.path.join(HERE, "..", "Cargo.lock")) as f:
            m = re.search(r'name = "tract-onnx"\nversion = "([^"]+)"', f.read())
        return m.group(1) if m else None
    except OSError:
        return None


class Tract:
    """tract through `bertc bench`: one process per round runs every loadable file interleaved."""

    name = "tract"

    def __init__(self, a):
        self.a = a
        self.version = tract_version()
        self.failed = {}  # path -> reason, found once and kept for every round

    def _bench(self, paths, runs, warmup):
        a = self.a
        cmd = [a.bertc, "bench", *paths, "--threads", str(a.threads), "--runs", str(runs),
               "--warmup", str(warmup), "--batch", str(a.batch), "--seq", str(a.seq), "--no-peak", "--json"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            lines = [line for line in out.stderr.splitlines() if line.strip()]
            raise Unavailable(lines[-1] if lines else f"bertc bench exited {out.returncode}")
        return json.loads(out.stdout)

    def round(self, paths):
        """{path: [ms, ...]} for every file tract runs; the others are in self.failed."""
        ok = [p for p in paths if p not in self.failed]
        if not ok:
            return {}
        try:
            report = self._bench(ok, self.a.runs, self.a.warmup)
        except Unavailable:
            # bertc bench stops at the first file it cannot load: find which, by
            # loading each alone once, and leave those out of every round.
            for p in ok:
                try:
                    self._bench([p], 1, 0)
                except Unavailable as e:
                    self.failed[p] = short_reason("cannot load", e, p)
            ok = [p for p in ok if p not in self.failed]
            if not ok:
                return {}
            report = self._bench(ok, self.a.runs, self.a.warmup)
        # bertc bench reports the median of its runs, not the runs: a round gives one value per file.
        return {p: [r["p50_ms"]] for p, r in zip(ok, report["results"])}


class InProcess:
    """A Python runtime: loads every file, warms up, then times runs taking turns."""

    def __init__(self, a):
        self.a = a
        self.failed = {}

    def round(self, paths):
        sessions = {}
        for p in paths:
            if p in self.failed:
                continue
            try:
                sessions[p] = self.load(p)
            except Exception as e:  # any refusal of the runtime is this file's cell, not a crash
                self.failed[p] = short_reason("cannot load", e, p)
        feeds = {}
        for p, s in sessions.items():
            vocab, types = embedding_rows(p)
            tensors = realistic_inputs(vocab, types, self.a.batch, self.a.seq)
            try:
                feeds[p] = self.feeds(s, tensors)
                for _ in range(self.a.warmup):
                    self.run(s, feeds[p])
            except Exception as e:
                self.failed[p] = short_reason("cannot run", e, p)
        live = [p for p in sessions if p not in self.failed]
        times = {p: [] for p in live}
        for _ in range(self.a.runs):
            for p in live:
                t = time.perf_counter()
                self.run(sessions[p], feeds[p])
                times[p].append((time.perf_counter() - t) * 1e3)
        sessions.clear()  # free this runtime's copies of the weights before the next runtime loads
        return times


class OnnxRuntime(InProcess):
    name = "onnxruntime"

    def __init__(self, a):
        super().__init__(a)
        import onnxruntime as ort

        self.ort = ort
        self.version = ort.__version__

    def load(self, path):
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = self.a.threads
        so.inter_op_num_threads = 1
        # Sessions take turns: an idle session's spinning threads would steal the
        # running one's cores (measured: 82-88 ms instead of 45-49 ms for an int8 BERT-base).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return self.ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def feeds(self, session, tensors):
        return {i.name: tensors[i.name] for i in session.get_inputs()}

    def run(self, session, feeds):
        session.run(None, feeds)


class OpenVino(InProcess):
    def __init__(self, a, hint):
        super().__init__(a)
        import openvino

        self.core = openvino.Core()
        self.version = openvino.__version__.split("-")[0]
        self.hint = hint  # None: OpenVINO's default precision for this CPU
        self.name = "openvino" if hint else "openvino-default"

    def load(self, path):
        config = {"INFERENCE_NUM_THREADS": self.a.threads}
        if self.hint:
            config["INFERENCE_PRECISION_HINT"] = self.hint
        compiled = self.core.compile_model(path, "CPU", config)
        return compiled.create_infer_request(), compiled

    def feeds(self, session, tensors):
        _, compiled = session
        return {i.get_any_name(): tensors[i.get_any_name()] for i in compiled.inputs}

    def run(self, session, feeds):
        session[0].infer(feeds)


def make_runtime(name, a):
    if name == "tract":
        return Tract(a)
    if name == "onnxruntime":
        return OnnxRuntime(a)
    if name == "openvino":
        return OpenVino(a, "f32")
    return OpenVino(a, None)


def paired_ratio(rounds, first_rounds):
    """Median over rounds of this file's p50 / the first file's p50 in the same round.

    A busy spell on the shared machine slows one round of every file alike, so the
    ratio within a round is steadier than the ratio of the two medians."""
    return statistics.median(x / f for x, f in zip(rounds, first_rounds))


def measure(a, runtimes):
    """{runtime: {path: {"p50_ms", "round_p50_ms"} or {"error"}}}."""
    per_round = {r.name: {p: [] for p in a.models} for r in runtimes}
    for i in range(a.rounds):
        for r in runtimes:
            print(f"round {i + 1}/{a.rounds}: {r.name}", file=sys.stderr)
            for p, ms in r.round(a.models).items():
                per_round[r.name][p].append(statistics.median(ms))
    cells = {}
    for r in runtimes:
        cells[r.name] = {}
        first = None
        for p in a.models:
            if p in r.failed:
                cells[r.name][p] = {"error": r.failed[p]}
                continue
            rounds = per_round[r.name][p]
            first = first or rounds
            cells[r.name][p] = {"p50_ms": statistics.median(rounds),
                                "ratio_to_first": paired_ratio(rounds, first), "round_p50_ms": rounds}
    return cells


def header_lines(doc):
    flags = ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in doc["cpu"]["flags"].items())
    versions = ", ".join(f"{r['name']} {r['version'] or '?'}" for r in doc["runtimes"])
    return [
        f"CPU: {doc['cpu']['model']} ({doc['cpu']['cores']} logical cores); {flags}",
        f"B={doc['batch']}, S={doc['seq']}, {doc['threads']} threads; {versions}; {doc['rounds']} interleaved "
        f"rounds of {doc['runs']} runs (+{doc['warmup']} warm-up) per file and runtime; cell: median over "
        f"rounds of each round's p50; ratio: median over rounds of the ratio to the first file that runs "
        f"in that runtime, in the same round",
    ]


def markdown(doc):
    """The table from a --json document (so a saved run can be printed again)."""
    def md(text):
        return text.replace("|", "\\|")

    def cell(c):
        if "error" in c:
            return md(c["error"])
        return f"{c['p50_ms']:.{1 if c['p50_ms'] >= 10 else 2}f} ms ({c['ratio_to_first']:.2f}×)"

    names = [r["name"] for r in doc["runtimes"]]
    lines = header_lines(doc) + [""]
    lines.append("| file | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for p in doc["files"]:
        lines.append(f"| {md(p)} | " + " | ".join(cell(doc["cells"][n][p]) for n in names) + " |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runtimes", default=DEFAULT_RUNTIMES)
    p.add_argument("--bertc", default=os.path.join(HERE, "..", "target", "release", "bertc"))
    p.add_argument("--json", action="store_true", help="print the JSON document instead of the table")
    p.add_argument("--save", metavar="FILE.json", help="also write the JSON document to FILE.json")
    p.add_argument("--table-from", metavar="FILE.json", help="print the table of a saved JSON document, measure nothing")
    a = p.parse_args()
    if a.table_from:
        with open(a.table_from) as f:
            print(markdown(json.load(f)))
        return
    if not a.models:
        p.error("give the ONNX files to measure")
    for name, v in [("--batch", a.batch), ("--seq", a.seq), ("--threads", a.threads), ("--rounds", a.rounds),
                    ("--runs", a.runs)]:
        if v < 1:
            p.error(f"{name} {v}: must be at least 1")
    if a.warmup < 0:
        p.error(f"--warmup {a.warmup}: must be at least 0")
    names = [n.strip() for n in a.runtimes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown or not names:
        p.error(f"--runtimes {a.runtimes}: unknown {unknown}; valid: {', '.join(RUNTIMES)}")
    for m in a.models:
        if not os.path.isfile(m):
            p.error(f"{m}: no such file")
    if "tract" in names and not os.path.isfile(a.bertc):
        p.error(f"{a.bertc}: no bertc binary (cargo build --release, or give --bertc)")

    runtimes = [make_runtime(n, a) for n in names]
    cpu = cpu_info()
    cells = measure(a, runtimes)
    doc = {
        "cpu": cpu, "batch": a.batch, "seq": a.seq, "threads": a.threads, "rounds": a.rounds,
        "runs": a.runs, "warmup": a.warmup,
        "runtimes": [{"name": r.name, "version": r.version} for r in runtimes],
        "files": a.models, "cells": cells,
    }
    if a.save:
        with open(a.save, "w") as f:
            json.dump(doc, f, indent=2)
    print(json.dumps(doc, indent=2) if a.json else markdown(doc))


if __name__ == "__main__":
    main()
