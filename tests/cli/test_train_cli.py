"""`moetune train`, `eval`, `generate` and `models` on a tiny local model."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from core.trainer import read_jsonl
from tests.core.trainer.conftest import job, write_examples
from tests.support import save_tiny_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cli")
    model_dir = save_tiny_model(root / "model")
    train_file = write_examples(root / "train.jsonl", 12)
    valid_file = write_examples(root / "valid.jsonl", 4, offset=1)
    config = root / "job.json"
    config.write_text(
        json.dumps(job(model_dir, hyperparameters={"max_steps": 4, "checkpoint_every": 2, "eval_every": 2}))
    )
    out = root / "run"
    code = main(["train", "--config", str(config), "--train-file", str(train_file), "--valid-file",
                 str(valid_file), "--output-dir", str(out)])  # fmt: skip
    assert code == 0
    return {
        "root": root,
        "model": model_dir,
        "config": config,
        "train": train_file,
        "valid": valid_file,
        "out": out,
    }


def test_train_writes_adapter_metrics_and_resolved_config(trained, capsys) -> None:
    out = trained["out"]
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    assert json.loads((out / "job.json").read_text())["optimizer"]["gate_strategy"] == "gate_rescaled"
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "train_loss" in r] == [1, 2, 3, 4]


def test_train_refuses_to_overwrite_a_run_without_resume(trained, capsys) -> None:
    args = ["train", "--config", str(trained["config"]), "--train-file", str(trained["train"]),
            "--output-dir", str(trained["out"])]  # fmt: skip
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0  # already complete: resumes at the last step and finishes
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "succeeded" and summary["steps"] == 4


def test_invalid_config_is_rejected_naming_the_field(trained, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hyperparameters": {"batch_size": 0}}))
    code = main(
        [
            "train",
            "--config",
            str(bad),
            "--train-file",
            str(trained["train"]),
            "--output-dir",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "hyperparameters.batch_size" in capsys.readouterr().err


def test_bad_data_fails_with_the_line_number(trained, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "completion": "y"}\nnot json\n')
    code = main(
        [
            "train",
            "--config",
            str(trained["config"]),
            "--train-file",
            str(bad),
            "--output-dir",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "bad_data" in err and "line 2" in err


def test_eval_and_generate_use_the_adapter(trained, capsys) -> None:
    assert (
        main(["eval", "--adapter", str(trained["out"] / "adapter"), "--valid-file", str(trained["valid"])])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 4 and 0 <= result["valid_exact_match"] <= 1 and result["valid_loss"] > 0
    assert main(["generate", "--adapter", str(trained["out"] / "adapter"), "--prompt", "Is the movie great?",
                 "--max-new-tokens", "5"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    from cli.generate import load
    from core.trainer.evaluate import generate_greedy

    model, tokenizer = load(trained["out"] / "adapter", None, "cpu")
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Is the movie great?"}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    assert printed == generate_greedy(model, tokenizer, [list(ids)], 5, model.device)[0] + "\n"


def test_models_list_names_the_builtin(capsys) -> None:
    assert main(["models", "list"]) == 0
    assert "smollm2-135m-instruct" in capsys.readouterr().out
    assert main(["models", "pull", "gpt-17"]) == 2
