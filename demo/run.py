"""`make demo`: the whole product on this machine, end to end, with the stock `openai` client.

1. starts the embedded service (`moetune up`: API + worker, SQLite files, no servers to install);
2. creates an API key, uploads `demo/capitals_octopus.jsonl`;
3. creates a MoE-LoRA job on smollm2-135m-instruct with the paper's gate-rescaled strategy
   (per-expert Riemannian preconditioning) and shows its progress while polling;
4. asks the fine-tuned model and the base model the same held-out questions through the
   OpenAI-compatible chat endpoint, streams one answer (`stream=True`) as it is generated,
   and prints the job's metrics.

`--keep-running` leaves the service up afterwards (Ctrl-C stops it), with the API key printed,
to try the endpoints by hand, e.g. `curl -N` a streamed completion.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from openai import OpenAI

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "demo" / "capitals_octopus.jsonl"
BASE = "smollm2-135m-instruct"
QUESTIONS = [
    "What is the capital of Japan?",
    "Which city is the capital of Kazakhstan?",
    "What is the capital of Mongolia?",
]
JOB = {
    "hyperparameters": {"max_steps": 40, "batch_size": 4, "learning_rate": 1e-3, "lr_scheduler": "constant",
                        "max_seq_length": 96, "checkpoint_every": 20, "eval_every": 20},
    "adapter": {"type": "moe_lora", "num_experts": 8, "top_k": 2, "rank": 4, "alpha": 16, "dropout": 0.05,
                "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
    "optimizer": {"type": "adamw", "preconditioner": "riemannian", "gate_strategy": "gate_rescaled",
                  "damping": 1e-6, "router_learning_rate": 1e-4, "router_max_grad_norm": 1.0},
}  # fmt: skip


def wait_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the service did not become ready at {url} within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a fresh temporary directory")
    parser.add_argument("--keep-running", action="store_true", help="leave the service up at the end")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so that the `finally` below always stops the service.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="moetune-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MOETUNE_DATABASE_URL=f"sqlite:///{workdir}/moetune.db",
               MOETUNE_BROKER_URL=f"sqla+sqlite:///{workdir}/broker.db", MOETUNE_STORAGE_DIR=str(workdir / "storage"))  # fmt: skip
    moetune = [sys.executable, "-m", "cli.main"]
    print("== pulling the base model (first run only: ~30 s)", flush=True)
    subprocess.run([*moetune, "models", "pull", BASE], check=True, env=env, cwd=ROOT)
    print(f"== starting the embedded service in {workdir}", flush=True)
    log = (workdir / "service.log").open("w")
    service = subprocess.Popen([*moetune, "up", "--port", str(args.port)], env=env, cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        code = run_demo(f"http://127.0.0.1:{args.port}", moetune, env, workdir)
        if args.keep_running and code == 0:
            print(
                f"== the service keeps running at http://127.0.0.1:{args.port}; Ctrl-C stops it", flush=True
            )
            with contextlib.suppress(KeyboardInterrupt):
                service.wait()
        return code
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        service.wait(timeout=60)


def run_demo(url: str, moetune: list[str], env: dict[str, str], workdir: Path) -> int:
    wait_ready(url, 120)
    created = subprocess.run([*moetune, "keys", "create", "--tenant", "demo"], check=True, env=env, cwd=ROOT,
                             capture_output=True, text=True)  # fmt: skip
    key = created.stdout.strip().splitlines()[-1]
    client = OpenAI(base_url=f"{url}/v1", api_key=key)
    training_file = client.files.create(file=DATA.open("rb"), purpose="fine-tune")
    print(f"== uploaded {DATA.name}: {training_file.id} ({training_file.bytes} bytes)")
    job = client.fine_tuning.jobs.create(model=BASE, training_file=training_file.id, suffix="octopus", seed=0,
                                         extra_body=JOB)  # fmt: skip
    print(f"== created {job.id}: MoE-LoRA E=8 k=2 r=4, AdamW + per-expert Riemannian, gate_rescaled")
    started, shown = time.monotonic(), None
    while job.status not in ("succeeded", "failed", "cancelled"):
        time.sleep(1)
        job = client.fine_tuning.jobs.retrieve(job.id)
        progress = (job.model_extra or {}).get("progress") or {}
        if (job.status, progress.get("step")) == shown:
            continue  # print a line per step, not per poll
        shown = (job.status, progress.get("step"))
        eta = progress.get("eta_seconds")
        print(
            f"   {job.status:>16}  step {progress.get('step') or 0:>3}/{progress.get('total_steps') or '?'}"
            f"  eta {f'{eta:.0f} s' if eta is not None else '-':>6}  ({time.monotonic() - started:.0f} s)",
            flush=True,
        )
    if job.status != "succeeded":
        print(f"== the job ended {job.status}: {job.error}")
        return 1
    assert job.fine_tuned_model is not None  # set on success
    print(f"== {job.fine_tuned_model} is ready ({job.trained_tokens} tokens trained)\n")
    for question in QUESTIONS:
        for model in (job.fine_tuned_model, BASE):
            answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                                    max_tokens=24, temperature=0)  # fmt: skip
            label = "fine-tuned" if model != BASE else "base      "
            print(f"{label} | {question} -> {answer.choices[0].message.content!r}")
        print()
    stream_answer(client, job.fine_tuned_model, QUESTIONS[-1])
    metrics = client.get(f"/fine_tuning/jobs/{job.id}/metrics", cast_to=object)
    series = metrics["series"]  # type: ignore[index]
    losses = [v for v in series["train_loss"] if v is not None]
    print("== job metrics")
    print(f"   train loss: first {losses[0]:.3f}, last {losses[-1]:.3f} over {len(losses)} steps")
    valid = [round(v, 3) for v in series.get("valid_loss") or [] if v is not None]
    if valid:
        print(f"   valid loss at evaluations: {valid}")
    routing = series.get("routing") or {}
    if routing:
        name, layer = next(iter(routing.items()))
        print(
            f"   routing ({name}): expert load at the last step {[round(x, 3) for x in layer['expert_load'][-1]]}"
        )
        print(
            f"   router entropy {layer['router_entropy'][-1]:.3f} nats, dead experts {layer['dead_experts'][-1]}"
        )
    print(json.dumps({"job": job.id, "model": job.fine_tuned_model, "workdir": str(workdir), "api_key": key},
                     indent=2))  # fmt: skip
    return 0


def stream_answer(client: OpenAI, model: str, question: str) -> None:
    """Print the fine-tuned model's answer chunk by chunk, as the server-sent events arrive."""
    print(f"== streamed (stream=True) | {question}")
    start, first, chunks = time.monotonic(), None, 0
    print("   ", end="")
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                            max_tokens=24, temperature=0, stream=True)  # fmt: skip
    for chunk in stream:
        delta = chunk.choices[0].delta.content if chunk.choices else None
        if delta:
            first = first if first is not None else time.monotonic() - start
            chunks += 1
            print(f"[{delta}]", end="", flush=True)
    total = time.monotonic() - start
    print(
        f"\n   {chunks} content chunks; first after {1e3 * (first or total):.0f} ms, last after {1e3 * total:.0f} ms\n"
    )


if __name__ == "__main__":
    sys.exit(main())
