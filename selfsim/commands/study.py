"""`selfsim study`: the paper's four experiments end to end, on the toy models or real ones.

The config is a preset (`--preset`, default `demo`; `--quick` is `--preset quick`), then a TOML or JSON file
(`--config`), then one flag per `StudyConfig` field (generated from the dataclass, so every field is
reachable), each overriding the one before.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any

from selfsim.commands._common import check_out
from selfsim.study.config import PRESETS, StudyConfig

# Help for generated flags; fields without an entry get their type's description.
HELP = {
    "name": "run name (default runs/<name>; a non-zero --seed appends -seed<N> unless --name is given)",
    "models": "the primary pair M1 M2: toy names, fetchable names (smollm2-135m-instruct, smollm2-135m-instruct-m2) or directories",
    "pairs": "model pairs (extra toy models are pretrained on demand and cached)",
    "dialect": "prompt wording: toy (the embedded models' language) or paper (English, for real models)",
    "device_map": "where the models go: none (CPU), auto, cuda, cuda:0",
    "interp_layers": "layers per model in the interp battery: 0 = every layer, k = k evenly spaced",
    "plugins": "modules to import first: their registered experiments join the run",
}
METAVARS = {"models": ("M1", "M2")}


def flag(name: str) -> str:
    """The command-line flag of a config field."""
    return "--" + name.replace("_", "-")


def add_config_flags(p: argparse.ArgumentParser, cls: type = StudyConfig) -> None:
    """One flag per dataclass field (lists take several values); absent flags leave the field alone."""
    from selfsim.configs import describe, field_types

    group = p.add_argument_group(f"{cls.__name__} fields (override the preset and the --config file)")
    for name, tp in field_types(cls).items():
        is_list = typing.get_origin(tp) in (tuple, list)
        kwargs: dict[str, Any] = {"dest": f"cfg_{name}", "default": argparse.SUPPRESS, "help": HELP.get(name, describe(tp))}
        if name in METAVARS:
            kwargs.update(nargs=len(METAVARS[name]), metavar=METAVARS[name])
        elif is_list:
            kwargs.update(nargs="+", metavar=name.upper().rstrip("S") or "X")
        else:
            kwargs["metavar"] = name.upper()
        group.add_argument(flag(name), **kwargs)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `study` subcommand."""
    p = sub.add_parser(
        "study", help="run the whole self/cross-prediction study and write runs/<name>/report.html",
        description="Run the whole self/cross-prediction study. Config: --preset, then --config FILE, then field flags.",
    )
    p.add_argument("--preset", default=None, choices=list(PRESETS),
                   help="a named config: demo (default, `make demo`), quick (CI), smollm2 (2 CPU cores), smollm2-gpu")
    p.add_argument("--quick", action="store_true", help="same as --preset quick: few prompts, short finetunes")
    p.add_argument("--config", type=Path, default=None, help="a TOML or JSON file of StudyConfig fields (over the preset)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<name>)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--workers", type=int, default=1, help="processes running model pairs side by side (results do not "
                   "change; make demo uses 2 on CPU)")
    add_config_flags(p)
    p.set_defaults(func=run)


def resolve_config(args: argparse.Namespace) -> StudyConfig:
    """Preset < file < flags; every value checked by its field's type (one line per problem)."""
    from selfsim import configs
    from selfsim.errors import SelfsimError
    from selfsim.study.config import preset

    if args.quick and args.preset not in (None, "quick"):
        raise SelfsimError(f"--quick is the quick preset; it cannot be combined with --preset {args.preset}")
    base = preset("quick" if args.quick else args.preset or "demo")
    data = configs.to_dict(base)
    if args.config is not None:
        data.update(configs.read(args.config))
    flags = {f.name: configs.parse_flag(StudyConfig, f.name, getattr(args, f"cfg_{f.name}"), flag(f.name))
             for f in dataclasses.fields(StudyConfig) if hasattr(args, f"cfg_{f.name}")}
    data.update(flags)
    if flags.get("seed") and "name" not in flags and (args.config is None or "name" not in configs.read(args.config)):
        data["name"] = f"{data['name']}-seed{flags['seed']}"
    return configs.from_dict(StudyConfig, data, source=str(args.config) if args.config else None)


def run(args: argparse.Namespace) -> int:
    """Resolve the config, run every check that can fail, run the whole study and print where it went."""
    import json

    from selfsim.study import Study
    from selfsim.study.preflight import preflight

    config = resolve_config(args)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    paths = preflight(config, log=lambda line: print(f"[selfsim study] {line}", flush=True))
    out = check_out(args.out or Path("runs") / config.name, reads=list(paths.values()))
    Study(config, out, workers=args.workers).run()
    print(f"selfsim study: results in {out}/results.json, report in {out}/report.html")
    return 0
