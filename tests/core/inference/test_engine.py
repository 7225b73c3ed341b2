"""The engine end to end on a tiny model: batching, sampling, streaming, stops, routing, threads."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from core import load_adapter
from core.inference import (
    AdapterKey,
    AdapterNotFoundError,
    Engine,
    EngineClosedError,
    GenerationRequest,
    read_serving_adapter,
)
from core.jobs import JobSpec
from core.models import resolve_model
from core.trainer import train
from core.trainer.evaluate import generate_greedy
from core.trainer.state import checkpoint_dir
from tests.core.inference.conftest import ADAPTERS, TENANT, key, make_adapter
from tests.core.trainer.conftest import job, write_examples
from tests.support import save_tiny_model

BLOCK = {
    m: "mlp" if m in ("up_proj", "down_proj") else "self_attn"
    for m in ("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj")
}
PROMPTS = ["What is two plus two?", "hello world", "Paris is the capital of", "the quick brown fox"]


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def greedy(adapter: str | None, prompt: int = 0, max_tokens: int = 10, **kw: object) -> GenerationRequest:
    return GenerationRequest(
        messages=chat(PROMPTS[prompt]),
        adapter_key=key(adapter) if adapter else None,
        max_tokens=max_tokens,
        temperature=0.0,
        **kw,
    )


def test_a_mixed_batch_gives_every_row_what_its_adapter_gives_alone(engine) -> None:
    requests = [
        greedy("moe-a", 0),
        greedy("moe-b", 1),
        greedy(None, 2),
        greedy("lora", 3),
        greedy("moe-dense", 0),
        greedy("moe-a", 1),
        greedy(None, 0),
    ]
    batched = engine.generate(requests)
    alone = [engine.generate([r])[0] for r in requests]
    for b, a in zip(batched, alone, strict=True):
        assert b.choices[0].token_ids == a.choices[0].token_ids
        assert b.choices[0].text == a.choices[0].text
    # the adapters matter: the same prompt gives different tokens under each
    assert len({tuple(r.choices[0].token_ids) for r in (batched[0], batched[4], batched[6])}) == 3


@pytest.mark.parametrize("adapter", ["moe-a", "lora"])
def test_greedy_output_equals_load_adapter_and_transformers_generate(
    engine, model_dir, adapter_dirs, adapter
) -> None:
    loaded = resolve_model(str(model_dir), device="cpu", dtype="float32")
    model = load_adapter(loaded.model, adapter_dirs[adapter])
    prompt = loaded.tokenizer.apply_chat_template(
        chat(PROMPTS[1]), add_generation_prompt=True, tokenize=False
    )
    ids = loaded.tokenizer(prompt, add_special_tokens=False).input_ids
    [expected] = generate_greedy(model, loaded.tokenizer, [ids], 12, torch.device("cpu"))
    [result] = engine.generate([greedy(adapter, 1, max_tokens=12)])
    assert result.choices[0].text == expected
    assert result.usage.prompt_tokens == len(ids)


def test_streamed_deltas_concatenate_to_the_result(engine) -> None:
    request = GenerationRequest(prompt="hello world", adapter_key=key("moe-b"), max_tokens=20, seed=1)
    stream = engine.stream(request)
    deltas = list(stream)
    [choice] = stream.result().choices
    assert "".join(d.text for d in deltas) == choice.text
    assert [t for d in deltas for t in d.token_ids] == choice.token_ids
    assert [d.finish_reason for d in deltas[:-1]] == [None] * (len(deltas) - 1)
    assert deltas[-1].finish_reason == choice.finish_reason
    if choice.finish_reason == "length":
        assert choice.text == engine.tokenizer.decode(choice.token_ids, skip_special_tokens=True)


def test_a_stop_string_cuts_the_text_and_ends_the_choice(engine) -> None:
    [full] = engine.generate([greedy("moe-a", 2, max_tokens=16)])
    text = full.choices[0].text
    start = next(
        i for i in range(2, len(text) - 2) if "\ufffd" not in text[i : i + 2] and text[i : i + 2].strip()
    )
    stop = text[start : start + 2]
    cut = text.find(stop)
    stream = engine.stream(greedy("moe-a", 2, max_tokens=16, stop=[stop, "never-seen"]))
    deltas = list(stream)
    [choice] = stream.result().choices
    assert choice.text == text[:cut] == "".join(d.text for d in deltas)
    assert choice.finish_reason == "stop" and len(choice.token_ids) < len(full.choices[0].token_ids)
    assert choice.token_ids == full.choices[0].token_ids[: len(choice.token_ids)]


def test_a_seed_makes_sampling_reproducible_whatever_shares_the_batch(engine) -> None:
    def sampled(seed: int) -> GenerationRequest:
        return GenerationRequest(
            prompt=PROMPTS[0], adapter_key=key("moe-a"), max_tokens=16, temperature=1.0, top_p=0.9, seed=seed
        )

    [first] = engine.generate([sampled(11)])
    batch = engine.generate([greedy("lora", 1), sampled(11), sampled(12), greedy(None, 3)])
    assert batch[1].choices[0].token_ids == first.choices[0].token_ids
    assert batch[2].choices[0].token_ids != first.choices[0].token_ids


def test_n_choices_sample_differently_and_count_their_tokens(engine) -> None:
    request = GenerationRequest(prompt=PROMPTS[3], adapter_key=key("moe-dense"), max_tokens=8, n=3, seed=5)
    [result] = engine.generate([request])
    assert [c.index for c in result.choices] == [0, 1, 2]
    assert len({tuple(c.token_ids) for c in result.choices}) == 3
    assert result.usage.completion_tokens == sum(len(c.token_ids) for c in result.choices)
    [again] = engine.generate([request])
    assert [c.token_ids for c in again.choices] == [c.token_ids for c in result.choices]


def test_abandoning_a_stream_cancels_the_generation(engine) -> None:
    stream = engine.stream(greedy("moe-b", 1, max_tokens=150))
    for i, _ in enumerate(stream):
        if i == 2:
            break
    result = stream.result()
    assert result.choices[0].finish_reason == "cancelled"
    assert 3 <= len(result.choices[0].token_ids) < 150


def test_a_cancel_probe_stops_the_generation_at_the_next_step(engine) -> None:
    gone = threading.Event()
    stream = engine.stream(greedy("lora", 2, max_tokens=150), cancel=gone.is_set)
    deltas = []
    for delta in stream:
        deltas.append(delta)
        if len(deltas) == 3:
            gone.set()
    assert deltas[-1].finish_reason == "cancelled" and len(deltas) <= 5
    assert engine.stats().requests_cancelled >= 1


@pytest.mark.parametrize("adapter", ["moe-a", "moe-dense", "moe-b"])
def test_routing_gives_k_experts_per_token_and_layer_with_gates_summing_to_one(engine, adapter) -> None:
    config = ADAPTERS[adapter]
    [result] = engine.generate([greedy(adapter, 0, max_tokens=5, return_routing="all")])
    [choice] = result.choices
    assert choice.routing is not None and len(choice.routing) == len(choice.token_ids)
    modules = {f"model.layers.{i}.{BLOCK[m]}.{m}" for i in range(2) for m in config.target_modules}
    for token in choice.routing:
        assert set(token) == modules
        for layer in token.values():
            assert len(layer.experts) == len(set(layer.experts)) == config.top_k
            assert all(0 <= e < config.num_experts for e in layer.experts)
            assert sum(layer.gates) == pytest.approx(1.0, abs=1e-6)
            assert layer.gates == sorted(layer.gates, reverse=True)


def test_routing_of_one_layer_and_in_stream_deltas(engine) -> None:
    name = "model.layers.1.self_attn.v_proj"
    deltas = list(engine.stream(greedy("moe-a", 3, max_tokens=4, return_routing=name)))
    assert all(d.routing is not None and set(d.routing) == {name} for d in deltas)
    [plain] = engine.generate([greedy("lora", 3, max_tokens=3, return_routing="all")])
    assert plain.choices[0].routing == [{}, {}, {}]  # a plain LoRA routes nothing
    with pytest.raises(ValueError, match="return_routing: adapter 'moe-a' routes no tokens"):
        engine.generate([greedy("moe-a", 3, return_routing="model.layers.0.mlp.up_proj")])
    with pytest.raises(ValueError, match="return_routing: the model has no linear module"):
        engine.generate([greedy("moe-a", 3, return_routing="model.layers.0.nothing")])
    with pytest.raises(ValueError, match="return_routing: the base model"):
        engine.generate([greedy(None, 3, return_routing="all")])


def test_concurrent_requests_from_threads_all_complete_with_their_solo_output(engine) -> None:
    names = [None, *ADAPTERS]
    requests = [greedy(names[i % len(names)], i % len(PROMPTS), max_tokens=6 + i % 5) for i in range(16)]
    alone = [engine.generate([r])[0].choices[0].token_ids for r in requests]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda r: engine.generate([r])[0], requests))
    assert [r.choices[0].token_ids for r in results] == alone


def test_asyncio_streams_run_concurrently(engine) -> None:
    requests = [greedy(n, i, max_tokens=8) for i, n in enumerate(["moe-a", "lora", None])]
    alone = [engine.generate([r])[0].choices[0].text for r in requests]

    async def consume(request: GenerationRequest) -> str:
        return "".join([d.text async for d in engine.astream(request)])

    async def main() -> list[str]:
        return list(await asyncio.gather(*(consume(r) for r in requests)))

    assert asyncio.run(main()) == alone


def test_a_request_joins_a_running_batch_mid_flight(engine) -> None:
    long, short = greedy("moe-a", 0, max_tokens=60), greedy("moe-b", 1, max_tokens=5)
    long_alone, short_alone = (engine.generate([r])[0].choices[0].token_ids for r in (long, short))
    assert len(long_alone) == 60  # no EOS: the long request is still running when the short one ends
    stream = engine.stream(long)
    iterator = iter(stream)
    next(iterator)
    [joined] = engine.generate([short])
    assert engine.stats().running_rows == 1  # the long request is still decoding
    list(iterator)
    assert joined.choices[0].token_ids == short_alone
    assert stream.result().choices[0].token_ids == long_alone


def test_chat_messages_go_through_the_chat_template(engine) -> None:
    template = engine.tokenizer.apply_chat_template(
        chat(PROMPTS[2]), add_generation_prompt=True, tokenize=False
    )
    ids = engine.tokenizer(template, add_special_tokens=False).input_ids
    by_ids = GenerationRequest(prompt_ids=ids, adapter_key=key("moe-b"), max_tokens=6, temperature=0)
    [a], [b] = engine.generate([greedy("moe-b", 2, max_tokens=6)]), engine.generate([by_ids])
    assert a.choices[0].token_ids == b.choices[0].token_ids and a.usage == b.usage


def test_another_tenants_adapter_is_not_found(engine) -> None:
    request = GenerationRequest(prompt="hi", adapter_key=AdapterKey("tenant-b", "moe-a"))
    with pytest.raises(AdapterNotFoundError, match="tenant-b"):
        engine.generate([request])
    assert AdapterKey(TENANT, "moe-a") != AdapterKey("tenant-b", "moe-a")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"n": 0}, "n"),
        ({"stop": "x"}, "stop"),
        ({"prompt_ids": [1, 2]}, "prompt"),  # two prompts given
    ],
)
def test_invalid_requests_name_the_field(fields, field) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        GenerationRequest(prompt="hi", **fields)


def test_a_prompt_that_leaves_no_room_is_refused_at_submit(engine) -> None:
    with pytest.raises(ValueError, match="^max_tokens: the prompt"):
        engine.generate([GenerationRequest(prompt_ids=[5] * 200, max_tokens=100)])
    with pytest.raises(ValueError, match="^n: at most"):
        engine.generate([GenerationRequest(prompt="hi", n=9)])


def test_the_cache_evicts_least_recently_used_adapters_and_waits_for_pinned_ones(
    model_dir, adapter_dirs
) -> None:
    with Engine(str(model_dir), device="cpu", dtype="float32", cache_budget_bytes=1) as probe:
        sizes = {
            name: read_serving_adapter(
                adapter_dirs[name], probe.model, torch.float32, torch.device("cpu")
            ).nbytes
            for name in ("moe-a", "moe-b", "lora")
        }
    budget = sizes["moe-a"] + sizes["moe-b"]
    assert sizes["lora"] > 0 and max(sizes.values()) <= budget
    with Engine(str(model_dir), device="cpu", dtype="float32", cache_budget_bytes=budget) as eng:
        for name in ("moe-a", "moe-b", "lora"):
            eng.register_adapter(key(name), adapter_dirs[name])
        first = [
            eng.generate([greedy(n, 0, max_tokens=4)])[0].choices[0].token_ids for n in ("moe-a", "moe-b")
        ]
        eng.generate([greedy("lora", 0, max_tokens=4)])
        assert key("moe-a") not in eng.cache  # least recently used
        stats = eng.stats().cache
        assert (stats.misses, stats.evictions, stats.pinned) == (3, 1, 0) and stats.bytes_used <= budget
        # All three at once: they cannot all be pinned, so one waits for a batch to release its adapter.
        results = eng.generate([greedy(n, 0, max_tokens=4) for n in ("moe-a", "moe-b", "lora")])
        assert [r.choices[0].token_ids for r in results[:2]] == first
        assert eng.stats().cache.bytes_used <= budget and eng.stats().cache.pinned == 0


def test_an_adapter_that_does_not_fit_the_model_fails_its_request_only(engine, tmp_path) -> None:
    wide = save_tiny_model(tmp_path / "wide", hidden=48)
    engine.register_adapter(key("wide"), make_adapter(wide, ADAPTERS["moe-a"], tmp_path / "wide-adapter", 0))
    failures = engine.stats().cache.load_failures
    with pytest.raises(ValueError, match=r"lora_A\.weight: shape"):
        engine.generate([greedy("wide", 0)])
    assert engine.stats().cache.load_failures == failures + 1
    assert engine.generate([greedy("moe-a", 0, max_tokens=3)])[0].choices[0].finish_reason == "length"
    assert engine.unregister_adapter(key("wide")) and not engine.unregister_adapter(key("wide"))


def test_closing_the_engine_fails_what_is_in_flight_and_refuses_new_work(model_dir) -> None:
    eng = Engine(str(model_dir), device="cpu", dtype="float32")
    stream = eng.stream(greedy(None, 0, max_tokens=150))
    iterator = iter(stream)
    next(iterator)
    eng.close()
    with pytest.raises(EngineClosedError):
        list(iterator)
    with pytest.raises(EngineClosedError):
        eng.generate([greedy(None, 0)])


def test_a_trained_adapter_and_one_of_its_checkpoints_are_served_like_load_adapter(
    engine, model_dir, tmp_path
) -> None:
    out = tmp_path / "run"
    spec = JobSpec.from_dict(job(model_dir))
    train(spec, write_examples(tmp_path / "train.jsonl", 12), out)
    served = {
        "ft-final": out / "adapter",
        "ft-final:ckpt-step-3": checkpoint_dir(out, 3) / "adapter",  # a checkpoint id names its directory
    }
    loaded = resolve_model(str(model_dir), device="cpu", dtype="float32")
    prompt = loaded.tokenizer("Is the movie great?").input_ids
    for adapter_id, directory in served.items():
        engine.register_adapter(key(adapter_id), directory)
        model = load_adapter(resolve_model(str(model_dir), device="cpu", dtype="float32").model, directory)
        [expected] = generate_greedy(model, loaded.tokenizer, [prompt], 8, torch.device("cpu"))
        request = GenerationRequest(
            prompt_ids=prompt, adapter_key=key(adapter_id), max_tokens=8, temperature=0
        )
        assert engine.generate([request])[0].choices[0].text == expected


def test_cancelling_the_task_that_consumes_an_async_stream_cancels_the_generation(engine) -> None:
    before = engine.stats().requests_cancelled

    async def main() -> int:
        seen = asyncio.Event()
        count = 0

        async def consume() -> None:
            nonlocal count
            async for _ in engine.astream(greedy("moe-a", 1, max_tokens=150)):
                count += 1
                if count == 2:
                    seen.set()

        task = asyncio.create_task(consume())
        await seen.wait()
        task.cancel()  # what the web server does when the client disconnects
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):  # the engine notices at its next step
            if engine.stats().requests_cancelled > before:
                break
            await asyncio.sleep(0.01)
        return count

    assert asyncio.run(main()) < 150
    assert engine.stats().requests_cancelled == before + 1


def test_agenerate_returns_results_in_request_order(engine) -> None:
    requests = [greedy("lora", 0, max_tokens=3), greedy(None, 1, max_tokens=5)]
    results = asyncio.run(engine.agenerate(requests))
    assert [len(r.choices[0].token_ids) for r in results] == [3, 5]
