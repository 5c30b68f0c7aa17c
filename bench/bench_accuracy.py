"""Accuracy against FP32 of every quantizer at hand, same calibration tensors, same run: one table per model.

    make bench BENCH_ARGS=accuracy                              all models
    make bench BENCH_ARGS="accuracy models=yolov8n_320,centerface"
    make bench BENCH_ARGS="accuracy reuse=1"                    tables from the saved per-model results
    make bench BENCH_ARGS="accuracy rows=modelopt part=peers"   only some tools, saved beside the others
    make bench BENCH_ARGS="accuracy rows=qdqtool,max-error methods=auto part=auto2"   only qdqtool's auto rows
    make bench BENCH_ARGS="accuracy calib=12 models=yolov8n_320 rows=qdqtool,modelopt methods=auto,max"
                                                                the first-try protocol: 12 whole photos, one feed
                                                                each, none of them held out (accuracy_calib12.md)
    make bench BENCH_ARGS="accuracy stats=1"                    reuse=1, after adding per-feed components to saved
                                                                results that lack them (from their saved models)

Writes bench_out/accuracy.md and bench_out/accuracy.json (with package versions). Per row: quantize wall time and
peak RSS (one process per run), `qdqtool check`'s counts, the output error measure of qdqtool.accuracy.measure on
the held-out feeds, and the task metric against FP32's own answers (bench/accuracy_metrics.py). Under each table:
every qdqtool row against the best other tool's row, with a paired bootstrap interval over the held-out source photos
(bench/accuracy_stats.py).
"""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from bench import accuracy_data as data
from bench import accuracy_tools as tools
from bench import extra_models
from bench.accuracy_metrics import task_cell, task_scores
from bench.accuracy_models import MODELS, BenchModel, write_static_copy
from bench.accuracy_rescore import held_out_set, rescore_folder, run_model, write_json
from bench.accuracy_stats import comparison_line, comparisons, missing_components
from qdqtool.accuracy.measure import MeasureConfig, headline_error
from qdqtool.accuracy.scores import scored_measure
from qdqtool.check.predict import check_model
from qdqtool.errors import QdqError
from qdqtool.onnxgraph.prepare import load_model
from qdqtool.onnxgraph.qdqview import read_qdq
from qdqtool.runner import create_session

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench_out"
WORK = OUT / "accuracy"
EXTRA_DIR = OUT / "extra_models"
GATES = ("float-add", "requant-concat", "reformat")
# `make bench` measures these (the shared models and the extra ones most unlike them, to keep a fresh clone's run
# under 40 minutes); models=all measures every model of bench/accuracy_models.py.
DEFAULT_MODELS = ("yolov8n_320", "ppocrv4_det", "orientation_cls", "ddddocr_yolox", "centerface", "ppocr_cls")
TOOL_ORDER = ("fp32", "ort", "fix", "qdqtool", "modelopt")
INCOMPLETE = " **Incomplete: the run was stopped before the remaining rows.**"
SPLIT = ("Calibration: the same .npy feeds for every tool (9 photos + 7 crops of them, each model's own "
         "pre-processing); held out: 9 other photos + Ultralytics' bus.jpg and zidane.jpg + 25 crops of them (+ "
         "page.png turned 4 ways for orientation_cls). ")
HOW = ("ORT: quantize_static, QDQ, per-channel, symmetric int8 activations and weights (its"
       " Entropy calibrator keeps its defaults of 128 histogram bins and 128 quantized bins, which leave one"
       " candidate threshold, the whole range: ORT's Entropy gives MinMax's scales, and quantize_static has no option"
       " to change that). fix-residuals: ORT's MinMax output, `--data` the same"
       " feeds. qdqtool: `calibrate --data FEEDS --method M`, nothing else. ModelOpt: `python -m"
       " modelopt.onnx.quantization --quantize_mode int8 --calibration_method M --calibration_data_path"
       " calibration.npy --calibration_eps cpu --high_precision_dtype fp32` on a copy of the model (it rewrites its"
       " input; it raises the opset to 19; fp32 kept for the rest, no fp16 autocast). Time and peak RSS: one process"
       " per run (os.wait4), on a shared 2-core machine, so compare them within a table. Output error:"
       " qdqtool.accuracy.measure as `qdqtool compare` gives it (worst channel, lost confident scores on score"
       " outputs; 0 = identical). Task metric: against FP32's own answers.")


def as_dicts(outputs: List[List], names: Sequence[str]) -> List[Dict]:
    return [dict(zip(names, batch)) for batch in outputs]


def check_counts(path: Path) -> Dict[str, int]:
    counts = check_model(read_qdq(load_model(path))).counts()
    return {gate: counts.get(gate, 0) for gate in GATES}


def result_folders(key: str) -> List[Path]:
    """bench_out/accuracy/KEY/ and its KEY.PART/ folders that hold a result.json, in name order (KEY may end in
    .calibN: the calib=N protocol's results, kept apart from the fixed split's)."""
    return [p.parent for p in sorted(WORK.glob(f"{key}*/result.json"))
            if p.parent.name == key or (p.parent.name.startswith(f"{key}.")
                                        and ".calib" not in p.parent.name[len(key):])]


def result_key(model: BenchModel, options: Dict[str, str]) -> str:
    return model.key + (f".calib{options['calib']}" if "calib" in options else "")


def saved_results(key: str) -> Optional[Dict]:
    """A model's saved rows: bench_out/accuracy/KEY/result.json merged with the rows of KEY.PART/ runs, if any."""
    parts = [json.loads((folder / "result.json").read_text()) for folder in result_folders(key)]
    if not parts:
        return None
    merged = {**parts[0], "rows": list(parts[0]["rows"])}
    for part in parts[1:]:
        failed = {m["name"] for m in merged["rows"] if m.get("error_message")}
        redone = {r["name"] for r in part["rows"] if r["name"] in failed and not r.get("error_message")}
        merged["rows"] = [m for m in merged["rows"] if m["name"] not in redone]   # a later part's success wins
        merged["rows"] += [r for r in part["rows"] if r["name"] not in {m["name"] for m in merged["rows"]}]
        merged["partial"] = merged.get("partial", False) or part.get("partial", False)
        merged["seconds"] = merged["seconds"] + part["seconds"]
        if part.get("held_out_sources") != merged.get("held_out_sources"):   # only complete parts are compared
            merged["held_out_sources"] = None
    merged["rows"].sort(key=lambda r: TOOL_ORDER.index(r.get("tool", "fp32")))
    return merged


def bench_model(model: BenchModel, methods, has_max_error, default, peer, options: Dict[str, str],
                extra_photos: Sequence[Path] = ()) -> Dict:
    """One model's rows, kept in bench_out/accuracy/KEY/result.json (KEY.PART/ with part=PART; reuse=1 reads them
    instead of measuring; rows=ort,fix,qdqtool,modelopt,max-error picks tools)."""
    key = result_key(model, options)
    if options.get("reuse") == "1" and saved_results(key):
        return saved_results(key)
    work = WORK / (key + (f".{options['part']}" if "part" in options else ""))
    saved = work / "result.json"
    tools_wanted = options.get("rows", "ort,fix,qdqtool,max-error,modelopt").split(",")
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    calib = int(options["calib"]) if "calib" in options else None
    calibration, calibration_names, held_feeds, sources = held_out_set(model, WORK, extra_photos, calib)
    fp32 = write_static_copy(model, EXTRA_DIR, work / "fp32.onnx")
    feeds_dir = work / "calibration_feeds"
    for old in feeds_dir.glob("*.npy"):   # a folder from an earlier split or naming: its feeds are not this run's
        old.unlink()
    stacked = data.write_stacked(data.write_feeds(calibration, model.prepare, feeds_dir, calibration_names),
                                 work / "calibration.npy")
    names = [o.name for o in create_session(fp32).get_outputs()]
    measure = scored_measure(load_model(fp32), MeasureConfig())   # what `qdqtool compare` measures: lost scores count
    reference = run_model(fp32, held_feeds)
    result = {"model": model.key, "note": model.note, "shape": list(model.shape), "metric": model.metric,
              "calibration_feeds": len(list(feeds_dir.glob("*.npy"))), "held_out_feeds": len(held_feeds),
              "held_out_sources": sources,
              "rows": [{"name": "FP32", "task": task_scores(model, reference, reference), "error": 0.0}]}
    every = tools.rows(methods, has_max_error, default, peer is not None)
    wanted = [r for r in every if ("max-error" if r.extra else r.tool) in tools_wanted]
    for row in wanted:
        out = tools.output_path(row, work)
        run = tools.run_measured(tools.command(row, fp32, feeds_dir, stacked, out, peer, work),
                                 out.with_suffix(".log"))
        entry = {"name": row.name, "tool": row.tool, "seconds": round(run.seconds, 1),
                 "peak_mib": round(run.peak_mib), "error_message": run.error}
        if run.error is None:
            try:
                candidate = run_model(out, held_feeds)
            except QdqError as exc:   # a tool wrote a model ONNX Runtime refuses: that is the row's result
                entry["error_message"] = f"output does not load: {str(exc)[:300]}"
                result["rows"].append(entry)
                save(saved, result, start, partial=True)
                print(f"  {model.key:16s} {row.name:44s} {entry['error_message'][:200]}", flush=True)
                continue
            entry.update(checks=check_counts(out), task=task_scores(model, reference, candidate),
                         error=headline_error(as_dicts(reference, names), as_dicts(candidate, names), measure))
            choice = auto_choice(out.with_suffix(".ranges.json"))
            if choice:
                entry["auto_choice"] = choice
                entry["auto_clips"] = auto_clips(out.with_suffix(".ranges.json"))
        result["rows"].append(entry)
        save(saved, result, start, partial=True)   # a stopped run keeps its rows
        print(f"  {model.key:16s} {row.name:44s} {run.seconds:6.1f} s "
              f"{entry.get('error', float('nan')):8.4f} {run.error or task_cell(model, entry['task'])}", flush=True)
    return save(saved, result, start, partial=False)


def auto_choice(ranges_file: Path) -> Dict[str, int]:
    """Tensors per candidate that `--method auto` chose, from the ranges file calibrate writes beside its output."""
    if not ranges_file.is_file():
        return {}
    methods = [r["method"] for r in json.loads(ranges_file.read_text())["ranges"]]
    chosen = Counter(m.split(": ", 1)[1] for m in methods if m.startswith("auto: "))
    return dict(chosen.most_common())


def auto_clips(ranges_file: Path) -> List[str]:
    """Each tensor auto moved off max, with its cross-validated gain, from the ranges file."""
    return [f"{r['tensor']} {r['method'].split(': ', 1)[1]} {r['observed_max']:.4g} -> {r['amax']:.4g} (gain "
            f"{100 * r['cv_gain']:.1f}%, spread {100 * r['cv_spread']:.1f}%)"
            for r in json.loads(ranges_file.read_text())["ranges"] if "cv_gain" in r]


def save(path: Path, result: Dict, start: float, partial: bool) -> Dict:
    result = {**result, "seconds": round(time.perf_counter() - start, 1), "partial": partial}
    write_json(path, result)
    return result


def rescore(model: BenchModel, extra_photos: Sequence[Path]) -> List[str]:
    """Per-feed components for the model's saved results that lack them (stats=1), one line per folder."""
    folders = result_folders(model.key)
    incomplete = [f for f in folders if missing_components(json.loads((f / "result.json").read_text()))]
    if not incomplete:
        return [f"{f.name}: complete" for f in folders]
    _, _, feeds, sources = held_out_set(model, WORK, extra_photos)
    return [rescore_folder(model, folder, feeds, sources) for folder in folders]


def markdown_table(model: BenchModel, result: Dict) -> List[str]:
    lines = [f"### {model.key}", "",
             f"{result['calibration_feeds']} calibration feeds, {result['held_out_feeds']} held-out feeds, input "
             f"{'x'.join(map(str, result['shape']))}; {model.note}; {fp32_answers(result)}; "
             f"{result['seconds'] / 60:.1f} min.{INCOMPLETE if result.get('partial') else ''}", "",
             "| tool | time s | peak MiB | float-add | requant-concat | reformat | output error | task vs FP32 |",
             "|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        if row["name"] == "FP32":
            lines.append(f"| FP32 | | | | | | 0 | {task_cell(model, row['task'])} |")
        elif row.get("error_message"):
            lines.append(f"| {row['name']} | {row['seconds'] or 'n/a'} | {row['peak_mib'] or 'n/a'} | | | | | failed: "
                         f"{row['error_message'].replace('|', '/')} |")
        else:
            counts = " | ".join(str(row["checks"][g]) for g in GATES)
            lines.append(f"| {row['name']} | {row['seconds'] or 'n/a'} | {row['peak_mib'] or 'n/a'} | {counts} "
                         f"| {row['error']:.4f} "
                         f"| {task_cell(model, row['task'])} |")
    choices = [f"{row['name']}: tensors per chosen candidate: "
               + ", ".join(f"{n} {name}" for name, n in row["auto_choice"].items())
               for row in result["rows"] if row.get("auto_choice")]
    clips = [f"{row['name']}: clipped {', '.join(row['auto_clips']) or 'nothing'}" for row in result["rows"]
             if "auto_clips" in row]
    lines += ["", *choices, *clips] if choices else []
    return [*lines, "", *comparison_lines(model, result), ""]


def comparison_lines(model: BenchModel, result: Dict) -> List[str]:
    """The qdqtool rows against the best other tool, with their intervals (or why there are none)."""
    if result.get("comparisons"):
        size = sample_size(model, result)
        return ["Against the best other tool, and the default against `--method max` (task metric difference, "
                "paired bootstrap 95% interval over the held-out source photos):", "",
                *[f"- {comparison_line(c, size)}" for c in result["comparisons"]]]
    missing = missing_components(result)
    if missing:
        return [f"No intervals: no per-feed components saved for {', '.join(missing)} (`accuracy stats=1` adds "
                "them from the saved models)."]
    return ["No intervals: no successful row of another tool to compare with."]


def sample_size(model: BenchModel, result: Dict) -> str:
    task = result["rows"][0]["task"]
    if model.metric == "detection":
        return f"{task['fp32_detections']} objects"
    if model.metric == "mask":
        return f"{task['fp32_text_pixels']} text pixels"
    return f"{task['feeds']} feeds"


def fp32_answers(result: Dict) -> str:
    task = result["rows"][0]["task"]
    if "fp32_detections" in task:
        return f"FP32 finds {task['fp32_detections']} objects on them"
    if "fp32_text_pixels" in task:
        return f"FP32 marks {task['fp32_text_pixels']} text pixels"
    return f"top-1 over {task['feeds']} feeds"


def versions(peer_versions: str) -> Dict[str, str]:
    found = {"python": platform.python_version(), "machine": f"{platform.machine()}, {platform.processor()}"}
    for package in ("qdqtool", "onnxruntime", "onnx", "numpy", "pillow"):
        found[package] = version(package)
    found["peer venv"] = peer_versions
    return found


def main(argv: Sequence[str] = ()) -> List[str]:
    start = time.perf_counter()
    options = dict(arg.split("=", 1) for arg in argv)
    chosen: Optional[List[str]] = options["models"].split(",") if "models" in options else None
    keys = list(MODELS) if chosen == ["all"] else chosen or list(DEFAULT_MODELS)
    extra_photos = [EXTRA_DIR / p.file for p in extra_models.PHOTOS.values()]
    if extra_models.fetch(EXTRA_DIR) != 0:
        print("extra models and photos could not be fetched: their tables are skipped, the held-out images are the "
              "shared photos only", flush=True)
        keys, extra_photos = [k for k in keys if MODELS[k].source == "shared"], []
    methods, default, has_max_error = tools.qdqtool_options()
    if "methods" in options:   # e.g. methods=auto: only those qdqtool rows (with rows=qdqtool,max-error)
        methods = [m for m in methods if m in options["methods"].split(",")]
    peer, peer_versions = tools.peer_python()
    if options.get("stats") == "1":
        options["reuse"] = "1"
        for key in keys:
            print("\n".join(f"  {line}" for line in rescore(MODELS[key], extra_photos)), flush=True)
    results = [bench_model(MODELS[k], methods, has_max_error, default, peer, options, extra_photos) for k in keys]
    calib = options.get("calib")
    results = [{**r, "comparisons": comparisons(r)} for r in results]
    seconds = sum(r["seconds"] for r in results) if "reuse" in options else time.perf_counter() - start
    info = versions(peer_versions)
    split = SPLIT if calib is None else (
        f"Calibration (calib={calib}): the same .npy feeds for every tool, {calib} whole photos "
        f"({', '.join(data.CALIBRATION_POOL[:int(calib)])}), one feed each; held out: {', '.join(data.POOL_HELD_OUT)}"
        " + Ultralytics' bus.jpg and zidane.jpg + 25 crops of them (+ page.png turned 4 ways for orientation_cls). ")
    lines = ["## Accuracy against FP32, every tool on the same calibration tensors", "",
             f"`make bench BENCH_ARGS=accuracy`: {seconds / 60:.1f} min in all; "
             + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
             "" if peer else f"ModelOpt rows skipped: {peer_versions}.", "", split + HOW, ""]
    for model_result in results:
        lines += markdown_table(MODELS[model_result["model"]], model_result)
    OUT.mkdir(exist_ok=True)
    stem = "accuracy" if calib is None else f"accuracy_calib{calib}"
    (OUT / f"{stem}.md").write_text("\n".join(lines))
    calibration = [p.name for p in data.calibration_sources(int(calib) if calib else None)]
    (OUT / f"{stem}.json").write_text(json.dumps({"versions": info, "seconds": round(seconds, 1),
                                                  "split": {"calibration": calibration,
                                                            "held_out": [p.name for p in data.held_out_sources(
                                                                extra_photos, int(calib) if calib else None)]},
                                                  "models": results}, indent=1))
    return lines


if __name__ == "__main__":
    import sys
    print("\n".join(main(sys.argv[1:])))
