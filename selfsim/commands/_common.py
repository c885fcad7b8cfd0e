"""What several commands share: argument builders, their parsing, and the early checks (paths, prompts).

Commands import from here and from the library, never from each other.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfsim.errors import SelfsimError

if TYPE_CHECKING:
    from selfsim.examples import Example
    from selfsim.interp.pairs import MatchedPair
    from selfsim.models import Subject

DEFAULT_SUBJECTS = ("toy-m1", "toy-m2")


def add_model_args(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Add --model, --dtype, --device-map, --adapter and --trust-remote-code."""
    parser.add_argument("--model", required=required, help="embedded name (toy-m1, toy-m2), local HF directory or hub id")
    parser.add_argument("--dtype", default="float32", help="float32 (default), bfloat16 or float16")
    parser.add_argument(
        "--device-map", default=None, help='none (default), auto, balanced, a device (cuda:0) or a JSON {"module": device}'
    )
    parser.add_argument("--adapter", default=None, help="a peft adapter directory to apply")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow model code from the checkpoint (off by default)")
    parser.add_argument(
        "--allow-pickle-weights", action="store_true",
        help="also load pytorch_model.bin / adapter_model.bin, with torch.load(weights_only=True) (default: safetensors only)",
    )
    parser.add_argument("--build-toy", action="store_true", help="pretrain a toy model (toy-m3, ...) now if it is not built yet")


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The load_subject options the shared model arguments give (all but the model and adapter)."""
    return {
        "dtype": args.dtype,
        "device_map": parse_device_map(args.device_map),
        "trust_remote_code": args.trust_remote_code,
        "allow_pickle_weights": getattr(args, "allow_pickle_weights", False),
        "build_toy": getattr(args, "build_toy", False),
    }


def check_out(path: str | Path, *, kind: str = "dir", flag: str = "--out", reads: Iterable[Any] = (), **file_checks: Any) -> Path:
    """Claim `path` as this command's output directory (kind "dir", created with selfsim's marker) or file
    (kind "file", nothing created) through the write guard (`selfsim.guard`); raise on any clash."""
    from selfsim import guard

    reads = [r for r in reads if r]
    if kind == "file":
        return guard.claim_file(path, flag=flag, reads=reads, **file_checks)
    return guard.claim_dir(path, flag=flag, reads=reads)


def parse_device_map(value: str | None) -> object:
    """--device-map's value as load_subject takes it (JSON objects are parsed)."""
    if value is None or value.lower() == "none":
        return None
    if value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise SelfsimError(f"--device-map is not valid JSON ({exc.msg})") from None
    return value


def subject_from_args(args: argparse.Namespace, **kwargs: Any) -> Subject:
    """Load the subject named by the shared model arguments."""
    from selfsim.models import load_subject

    return load_subject(args.model, adapter=args.adapter, **model_options(args), **kwargs)


def add_generation_args(p: argparse.ArgumentParser) -> None:
    """Add the model arguments, --examples, --out and the decoding options collect and predict share."""
    add_model_args(p)
    p.add_argument("--examples", required=True, help="examples JSONL (selfsim.examples.save_examples format)")
    p.add_argument("--out", required=True, help="output directory; rerunning with the same DIR resumes from DIR/cache")
    p.add_argument("--samples", type=int, default=0, help="sampled answers per prompt at --temperature, besides the greedy one (default 0)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature for --samples (default 1.0)")
    p.add_argument("--batch-size", type=int, default=16, help="generations per forward pass (default 16)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="token budget for every prompt (default: per-task table)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def check_tasks(path: str | Path, examples: list[Example]) -> list[Example]:
    """The examples of file `path`; a task name no loaded module registers is a SelfsimError naming file and line."""
    from selfsim.io import iter_jsonl
    from selfsim.tasks import get_task

    for task in dict.fromkeys(e.task for e in examples):
        try:
            get_task(task)
        except SelfsimError as exc:
            line = next((n for n, row in iter_jsonl(path) if isinstance(row, dict) and row.get("task") == task), "?")
            raise SelfsimError(f"{path}:{line}: not a selfsim example ({exc})") from None
    return examples


def generation_inputs(args: argparse.Namespace) -> tuple[list[Example], dict[str, Any]]:
    """Check the decoding options, --out and the examples (no model loaded); the examples and collect/predict's options."""
    from selfsim import behavior
    from selfsim.examples import load_examples
    from selfsim.generation import GenerationConfig

    if not math.isfinite(args.temperature) or args.temperature < 0:
        raise SelfsimError(f"--temperature must be a finite number >= 0, got {args.temperature}")
    GenerationConfig(args.samples, args.temperature, args.max_new_tokens, args.seed, args.batch_size).check()
    check_out(args.out, reads=[args.examples, args.adapter])
    examples = check_tasks(args.examples, load_examples(args.examples))
    behavior.check_examples(examples)
    behavior.check_cache(args.out)
    options = {"out_dir": args.out, "samples": args.samples, "temperature": args.temperature, "batch_size": args.batch_size,
               "max_new_tokens": args.max_new_tokens, "seed": args.seed, "progress": not args.no_progress}
    return examples, options


def add_subject_args(p: argparse.ArgumentParser) -> None:
    """--subject (repeatable) or --model, plus the shared model-loading options."""
    add_model_args(p, required=False)
    p.add_argument("--subject", action="append", default=[], metavar="LABEL=SPEC[@ADAPTER]",
                   help="a model to analyse, with a label and an optional peft adapter; repeat for untrained/self/cross "
                        "(default without --model: toy-m1 and toy-m2)")


def add_readout_args(p: argparse.ArgumentParser) -> None:
    """Where probe and sae read the residual stream (--position) and the held-out share of prompts (--test-fraction)."""
    p.add_argument("--position", default="final", help="where to read the residual stream: final (default) or copy_end (end of P's copy)")
    p.add_argument("--test-fraction", type=float, default=0.25, help="share of object prompts held out (default 0.25)")


def add_example_args(p: argparse.ArgumentParser, *, labels: bool = True) -> None:
    """Examples (--examples, or generated from --task, --property, --n, --seed, --dialect), M1's --labels, --layers,
    --budget-mib, --backend, --out and --no-progress: the options probe, sae and cache share."""
    p.add_argument("--property", default="first_word", help="property of the examples (default first_word)")
    p.add_argument("--task", default="animals_long", help="task of the generated examples (default animals_long)")
    p.add_argument("--dialect", default="toy", help="dialect of the generated examples: toy (default) or paper")
    p.add_argument("--n", type=int, default=200, help="object prompts to generate (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed for generated examples and the train/test split (default 0)")
    p.add_argument("--examples", default=None, help="examples JSONL instead of generated ones")
    if labels:
        p.add_argument("--labels", default=None, help="M1's behaviour table (selfsim collect) for the m1 labels; default: the first subject's answers")
    p.add_argument("--layers", default="all", help="comma list of layers, or all (default)")
    p.add_argument("--budget-mib", type=int, default=1024, help="memory budget of the activation cache in MiB (default 1024)")
    from selfsim.interp.backends.registry import BUILTIN, DEFAULT_BACKEND

    p.add_argument("--backend", default=DEFAULT_BACKEND, help=f"tracing backend: {', '.join(BUILTIN)} (default {DEFAULT_BACKEND})")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def parse_subject(spec: str) -> tuple[str, str, str | None]:
    """`LABEL=SPEC[@ADAPTER]` -> (label, model spec, adapter or None)."""
    label, sep, rest = spec.partition("=")
    if not sep or not label or not rest:
        raise SelfsimError(f"--subject {spec!r}: expected LABEL=SPEC or LABEL=SPEC@ADAPTER, e.g. self=toy-m1@runs/s/self")
    model, _, adapter = rest.partition("@")
    return label, model, adapter or None


def subjects_from_args(args: argparse.Namespace) -> dict[str, Subject]:
    """Load every subject named by --model and --subject, in order, keyed by label (default: toy-m1 and toy-m2)."""
    from selfsim.models import load_subject

    specs = [parse_subject(s) for s in args.subject]
    if args.model:
        label = Path(args.model).name or args.model
        specs.insert(0, (f"{label}+{Path(args.adapter).name}" if args.adapter else label, args.model, args.adapter))
    specs = specs or [(name, name, None) for name in DEFAULT_SUBJECTS]
    labels = [label for label, _, _ in specs]
    if len(set(labels)) != len(labels):
        raise SelfsimError(f"subject labels must be distinct, got {labels}")
    return {label: load_subject(model, adapter=adapter, **model_options(args)) for label, model, adapter in specs}


def parse_layers(value: str) -> list[int] | None:
    """--layers: `all` (None) or a comma list of integers."""
    if value == "all":
        return None
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise SelfsimError(f"--layers {value!r}: expected all or a comma list of integers, e.g. 0,2,3") from None


def examples_from_args(args: argparse.Namespace) -> tuple[list[Example], dict[str, str] | None]:
    """The examples of --property (--examples, or generated) and the optional M1 label table (object_id -> response)."""
    from selfsim.examples import load_examples

    if args.examples:
        examples = [e for e in check_tasks(args.examples, load_examples(args.examples)) if e.property == args.property]
        if not examples:
            raise SelfsimError(f"{args.examples} holds no example of property {args.property!r}")
    else:
        from selfsim.tasks import generate

        examples = generate(args.task, args.property, n=args.n, seed=args.seed, dialect=args.dialect)
    labels = None
    if getattr(args, "labels", None):
        from selfsim.behavior import BehaviorTable

        labels = BehaviorTable.load(args.labels).responses()
    return examples, labels


def check_prompts_early(args: argparse.Namespace, examples: list[Example], *, extra_tokens: int = 0) -> list[MatchedPair]:
    """With the tokenizer alone, raise unless every prompt (plus `extra_tokens`) fits the model's context; the matched pairs."""
    from selfsim.interp.pairs import match_all
    from selfsim.models import context_length, load_tokenizer_subject

    light = load_tokenizer_subject(args.model, trust_remote_code=args.trust_remote_code, build_toy=args.build_toy)
    if not examples:
        raise SelfsimError("no examples to run: give --n >= 2 or an examples file with at least two object prompts")
    matched = match_all(light, examples)
    limit = context_length(light)
    longest = max(((max(m.object.length, m.hypothetical.length), i) for i, m in enumerate(matched)), default=(0, 0))
    if limit and longest[0] + extra_tokens > limit:
        where = args.examples or "the generated examples"
        raise SelfsimError(
            f"a prompt of {where} (example {matched[longest[1]].example.id}) is {longest[0]} tokens long, more than "
            f"{args.model}'s context of {limit} positions (max_position_embeddings) allows; shorten or drop the longer examples"
        )
    return matched
