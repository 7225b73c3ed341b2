"""Reproduce the paper's comparison at small scale: build the datasets, write the comparison
documents, run `moetune compare` on each group, and summarise the claims.

    python -m benchmarks.replicate.run --profile cpu --output-dir runs/replicate-cpu
    python -m benchmarks.replicate.run --profile gpu --output-dir runs/replicate-gpu
    python -m benchmarks.replicate.run --profile cpu --output-dir /tmp/smoke --smoke

Profiles are `profiles/<name>.json` (see README.md). Rerunning on the same output directory
resumes: finished runs are reused, interrupted ones resume from their last checkpoint.
`--smoke` checks the pipeline end to end in a few minutes: the first task and group, the
classic and gate_rescaled variants, one seed, 3 steps, 24 training and 8 validation examples.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.replicate.grid import compare_document, group_name, group_runs_task
from benchmarks.replicate.summary import write_summary
from benchmarks.replicate.tasks import TASKS

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
FIGURES = ("report.md", "loss_curves.png", "expert_load.png")


def load_profile(name: str) -> dict[str, Any]:
    path = Path(name) if name.endswith(".json") else HERE / "profiles" / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (HERE / "profiles").glob("*.json")))
        raise SystemExit(f"error: --profile: no profile {name!r} (known: {known}, or a path to a .json file)")
    return dict(json.loads(path.read_text()))


def smoke(profile: dict[str, Any]) -> dict[str, Any]:
    """The profile cut down to a minutes-long end-to-end check."""
    first_task = next(iter(profile["tasks"]))
    group = {k: v for k, v in profile["groups"][0].items() if k != "tasks"}
    group["variants"] = [v for v in group["variants"] if v in ("classic", "gate_rescaled")] or group[
        "variants"
    ][:2]
    hp = {"max_steps": 3, "eval_every": 3, "checkpoint_every": 3, "eval_max_examples": 8}
    return profile | {
        "seeds": profile["seeds"][:1],
        "tasks": {first_task: {"train_examples": 24, "valid_examples": 8}},
        "groups": [group],
        "job": profile["job"] | {"hyperparameters": profile["job"]["hyperparameters"] | hp},
    }


def plan(profile: dict[str, Any], tasks: list[str], groups: list[str]) -> list[tuple[str, dict[str, Any]]]:
    selected = [
        (t, g)
        for t in profile["tasks"]
        for g in profile["groups"]
        if t in tasks and group_name(g) in groups and group_runs_task(g, t)
    ]
    if not selected:
        raise SystemExit("error: no (task, group) left after --tasks/--groups")
    return selected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="cpu", help="cpu, gpu, or a path to a profile .json")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA, help=f"the shared/data folder (default {DEFAULT_DATA})"
    )
    parser.add_argument("--tasks", default="", help="comma-separated subset of the profile's tasks")
    parser.add_argument(
        "--groups", default="", help="comma-separated subset of groups (e.g. sgd-router_frozen)"
    )
    parser.add_argument("--smoke", action="store_true", help="a few-minute end-to-end check (see above)")
    parser.add_argument(
        "--dry-run", action="store_true", help="build the data and documents, print the plan, train nothing"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="copy reports and figures to benchmarks/replicate/results/<profile>/",
    )
    args = parser.parse_args(argv)

    profile = load_profile(args.profile)
    profile_name = Path(args.profile).stem + ("-smoke" if args.smoke else "")
    if args.smoke:
        profile = smoke(profile)
    tasks = [t for t in args.tasks.split(",") if t] or list(profile["tasks"])
    groups = [g for g in args.groups.split(",") if g] or [group_name(g) for g in profile["groups"]]
    unknown = sorted(set(tasks) - set(profile["tasks"])) + sorted(
        set(groups) - {group_name(g) for g in profile["groups"]}
    )
    if unknown:
        parser.error(f"not in profile {profile_name!r}: {', '.join(unknown)}")
    work = plan(profile, tasks, groups)

    from core.compare import CompareConfig, run_comparison

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out: Path = args.output_dir
    data: dict[str, tuple[Path, Path]] = {}
    for task in dict.fromkeys(t for t, _ in work):
        sizes = profile["tasks"][task]
        data[task] = TASKS[task].build(
            args.data_dir, out / task / "data", sizes["train_examples"], sizes["valid_examples"]
        )
    documents: dict[tuple[str, str], dict[str, Any]] = {}
    for task, spec in work:
        document = compare_document(profile, spec, list(profile["seeds"]), task)
        target = out / task / group_name(spec)
        target.mkdir(parents=True, exist_ok=True)
        (target / "compare.json").write_text(json.dumps(document, indent=2))
        documents[(task, group_name(spec))] = document
    runs = sum(len(d["seeds"]) * len(d["variants"]) for d in documents.values())
    steps = sum(
        len(d["seeds"]) * len(d["variants"]) * d["base"]["hyperparameters"]["max_steps"]
        for d in documents.values()
    )
    print(
        f"profile {profile_name}: {len(work)} comparisons, {runs} runs, {steps} optimizer steps -> {out}",
        file=sys.stderr,
    )
    if args.dry_run:
        for (task, group), document in documents.items():
            print(
                f"  {task}/{group}: {', '.join(document['variants'])} x seeds {document['seeds']}",
                file=sys.stderr,
            )
        return 0

    results: dict[str, dict[str, dict[str, Any]]] = {}
    seconds: dict[str, float] = {}
    failed = False
    for (task, group), document in documents.items():
        started = time.perf_counter()
        train_file, valid_file = data[task]
        share_untrained_scores(out / task, group)
        print(f"== {task} / {group}", file=sys.stderr)
        result = run_comparison(
            CompareConfig.from_dict(document), train_file, valid_file, out / task / group, device=args.device
        )
        seconds[f"{task}/{group}"] = time.perf_counter() - started
        results.setdefault(task, {})[group] = json.loads(result.results.read_text())
        failed |= bool(result.failed_runs)
    summary = write_summary(out / "summary.md", profile_name, results, seconds)
    print(f"summary: {summary}", file=sys.stderr)
    if args.publish:
        publish(out, HERE / "results" / profile_name, list(documents))
    return 1 if failed else 0


def share_untrained_scores(task_dir: Path, group: str) -> None:
    """Groups of a task score the same model on the same examples: reuse one group's cached untrained scores.

    The comparison tool checks the cache key (model, evaluation settings, validation file hash)
    and evaluates again if anything differs.
    """
    target = task_dir / group / "base_model.json"
    found = sorted(task_dir.glob("*/base_model.json"))
    if not target.exists() and found:
        shutil.copy2(found[0], target)


def publish(out: Path, target: Path, comparisons: list[tuple[str, str]]) -> None:
    """Copy the summary, each group's report and figures (small files only) into the repository."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(out / "summary.md", target / "summary.md")
    for task, group in comparisons:
        dest = target / task / group
        dest.mkdir(parents=True, exist_ok=True)
        for name in FIGURES:
            if (out / task / group / name).is_file():
                shutil.copy2(out / task / group / name, dest / name)
    print(f"published: {target}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
