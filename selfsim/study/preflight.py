"""Every check of a study that can fail, run before its first finetune: tasks, properties and wording, models
(fetched or derived when missing, one line each), the same weights twice, chat templates and layers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from selfsim.errors import SelfsimError
from selfsim.results import load_plugins
from selfsim.study.config import StudyConfig


def check_tasks(config: StudyConfig) -> None:
    """Every task can be generated in the config's dialect with every property (one prompt each, no model)."""
    from selfsim.tasks import generate

    for task in (*config.train_tasks, *config.test_tasks):
        generate(task, config.properties, 1, seed=config.seed, dialect=config.dialect)


def model_path(spec: str, log: Callable[[str], None] = print) -> Path:
    """The local directory of a study model; zoo and derived models are fetched / derived first when missing."""
    from selfsim import zoo
    from selfsim.models import resolve_path

    if zoo.is_known(spec) and not Path(spec).expanduser().exists():
        return zoo.ensure(spec, log=log)
    return resolve_path(spec, build_toy=True)


def weights_fingerprint(path: Path) -> str:
    """A content fingerprint of a model directory's weight files (the one `Subject.fingerprint` uses)."""
    from selfsim.models import fingerprint_files

    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    if not files:
        raise SelfsimError(f"{path} holds no weights (*.safetensors)")
    return fingerprint_files(files)


def check_distinct(pairs: list[tuple[str, str]], paths: dict[str, Path]) -> None:
    """Refuse a pair whose two models are the same weights (by name, by another path, or by content)."""
    prints = {name: weights_fingerprint(path) for name, path in paths.items()}
    for a, b in pairs:
        if a == b or paths[a].resolve() == paths[b].resolve() or prints[a] == prints[b]:
            same = "the same name" if a == b else f"the same weights (fingerprint {prints[a]})"
            raise SelfsimError(
                f"models {a} and {b} are {same}: cross-prediction needs two different models (M1 M2)"
            )


def check_models(config: StudyConfig, paths: dict[str, Path]) -> None:
    """Each model loads its config and tokenizer, renders a chat prompt, and has the interp battery's layers."""
    from selfsim.models import load_tokenizer_subject, read_model_config
    from selfsim.tasks import generate

    example = generate(config.test_tasks[0], config.properties[0], 1, seed=config.seed, dialect=config.dialect)[0]
    for name, path in paths.items():
        n_layers = read_model_config(path).get("num_hidden_layers")
        if not isinstance(n_layers, int) or n_layers < 1:
            raise SelfsimError(f"{name} ({path}): its config.json gives no num_hidden_layers; selfsim studies Llama-architecture models")
        subject = load_tokenizer_subject(str(path))
        try:
            subject.render_chat(example.hypothetical_messages)
        except SelfsimError:
            raise
        except Exception as exc:  # a tokenizer without a usable chat template fails in many ways
            raise SelfsimError(f"{name} ({path}): its tokenizer cannot render a chat prompt: {exc}") from None
        for layer in config.layers_for(n_layers) or ():
            if not 0 <= layer < n_layers:
                raise SelfsimError(f"{name} has {n_layers} layers; interp layer {layer} is out of range 0..{n_layers - 1}")


def preflight(config: StudyConfig, log: Callable[[str], None] = print) -> dict[str, Path]:
    """Run every check of `config` that can fail before the first finetune; return {model: local directory}."""
    load_plugins(config.plugins)  # they may register the tasks and properties checked next
    check_tasks(config)
    pairs = config.model_pairs()
    names = list(dict.fromkeys(m for pair in pairs for m in pair))
    for a, b in pairs:
        if a == b:
            raise SelfsimError(f"models {a} and {b} are the same name: cross-prediction needs two different models (M1 M2)")
    paths = {name: model_path(name, log) for name in names}
    check_distinct(pairs, paths)
    check_models(config, paths)
    return paths
