"""Load a subject model (embedded toy name, local HF directory or hub id) and say where its parts live.

A `Subject` is the model under study plus what every later stage needs: its tokenizer with a chat
template, its depth and width, a fingerprint of weights + adapter, and the HF module path of each
hook site. Sites are named by HF module path (`model.layers.3`, `model.layers.3.self_attn`,
`model.layers.3.mlp`) relative to the bare causal-LM (under a peft wrapper too), so nnsight,
TransformerLens bridges and sae-lens all understand them.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard, cast

from selfsim.errors import SelfsimError

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedModel

SUPPORTED_MODEL_TYPES: dict[str, str] = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
}
DTYPES = ("float32", "bfloat16", "float16")
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
COMPONENTS: dict[str, str] = {"resid": "", "attn": ".self_attn", "mlp": ".mlp"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_FULL_HASH_LIMIT = 256 * 2**20


@dataclass
class Subject:
    """A loaded model under study, with its tokenizer and hook-site names."""

    name: str
    path: Path
    model: Any
    tokenizer: Any
    fingerprint: str
    adapter: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> PreTrainedModel:
        """The causal LM itself (inside a peft wrapper, the base model with adapters injected)."""
        get_base = getattr(self.model, "get_base_model", None)
        return cast("PreTrainedModel", get_base() if callable(get_base) else self.model)

    @property
    def config(self) -> Any:
        return self.base.config

    @property
    def n_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        return int(self.config.vocab_size)

    @property
    def input_device(self) -> torch.device:
        """Where input ids must live: the device of the embedding layer."""
        return cast("nn.Embedding", self.base.get_input_embeddings()).weight.device

    def check_layer(self, layer: int) -> int:
        """Return `layer` (negative counts from the end) or raise naming the valid range."""
        return check_layer_index(layer, self.n_layers, self.name)

    def site(self, layer: int, component: str = "resid") -> str:
        """HF module path of a hook site: component is one of resid (layer output), attn, mlp."""
        if component not in COMPONENTS:
            raise SelfsimError(f"unknown component {component!r}; valid components are {', '.join(COMPONENTS)}")
        return f"model.layers.{self.check_layer(layer)}{COMPONENTS[component]}"

    def module(self, site: str) -> nn.Module:
        """The module at an HF module path, relative to the bare causal LM."""
        try:
            return self.base.get_submodule(site)
        except AttributeError:
            raise SelfsimError(f"{self.name} has no module {site!r}") from None

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Apply the tokenizer's chat template to a list of {role, content} messages."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise SelfsimError(f"the tokenizer of {self.name} has no chat template")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: name, path, fingerprint, size and options."""
        return {
            "name": self.name,
            "path": str(self.path),
            "adapter": str(self.adapter) if self.adapter else None,
            "fingerprint": self.fingerprint,
            "architecture": type(self.base).__name__,
            "n_layers": self.n_layers,
            "hidden_size": self.hidden_size,
            **self.options,
        }


def resolve_path(spec: str, *, build_toy: bool = True) -> Path:
    """Turn an embedded name, a local directory or a hub id into a local model directory.

    A toy name not yet built (toy-m3, ...) is pretrained on the spot only with `build_toy`.
    """
    if not spec:
        raise SelfsimError("no model given: pass an embedded name (toy-m1, toy-m2), a local directory or a hub id")
    path = Path(spec).expanduser()
    if spec.startswith("toy-") and not path.exists():
        from selfsim.toy.registry import EMBEDDED, default_path, is_built, resolve

        if not build_toy and spec not in EMBEDDED and not is_built(default_path(spec)):
            raise SelfsimError(
                f"{spec} is not built (pretraining it takes minutes): run `selfsim toy build --only {spec}` first, "
                "or pass --build-toy to pretrain it now"
            )
        return resolve(spec, build_missing=spec not in EMBEDDED)
    import selfsim.zoo.catalog as zoo

    if zoo.is_known(spec) and not path.exists():
        return zoo.resolve(spec)
    if path.exists():
        if not path.is_dir():
            raise SelfsimError(f"{spec} is a file, not a model directory")
        return path
    if _HUB_ID.match(spec) and not spec.startswith((".", "~")):
        return _from_hub_cache(spec)
    raise SelfsimError(
        f"model {spec!r} not found: no such directory, and not an embedded name (toy-m1, toy-m2, toy-mN) or a hub id (org/name)"
    )


def _from_hub_cache(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
    try:
        return Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=patterns))
    except Exception:
        pass
    home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise SelfsimError(
            f"{repo_id} is not in the local Hugging Face cache ({home}) and HF_HUB_OFFLINE is set: "
            "download it on a connected machine or pass a local directory"
        )
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:
        raise SelfsimError(
            f"{repo_id} is not in the local Hugging Face cache ({home}) and could not be downloaded "
            f"({type(exc).__name__}): pass a local directory instead"
        ) from None


def check_layer_index(layer: int, n_layers: int, name: str) -> int:
    """Return `layer` (negative counts from the end) or raise naming the valid range of `name`'s `n_layers`."""
    if not isinstance(layer, int) or isinstance(layer, bool) or not -n_layers <= layer < n_layers:
        raise SelfsimError(f"layer {layer} is out of range: {name} has {n_layers} layers, valid layers are 0..{n_layers - 1}")
    return layer % n_layers


def layer_count(spec: str) -> int:
    """Layers of model `spec` from its config.json (an unbuilt toy model's planned config), loading no weights."""
    if spec.startswith("toy-") and not Path(spec).exists():
        from selfsim.toy.registry import config_for, default_path, is_built

        path = default_path(spec)
        return read_model_config(path)["num_hidden_layers"] if is_built(path) else config_for(spec).num_layers
    return read_model_config(resolve_path(spec, build_toy=False))["num_hidden_layers"]


def check_architecture(path: Path) -> str:
    """Read config.json and return its model_type, or raise naming the supported architectures."""
    return read_model_config(path)["model_type"]


def _read_json_object(config_file: Path, what: str) -> dict[str, Any]:
    """A JSON file that must hold one object (`what` names it in the error), or a one-line SelfsimError."""
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SelfsimError(f"{config_file}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    except UnicodeDecodeError:
        raise SelfsimError(f"{config_file}: not UTF-8 text; expected a JSON object {what}") from None
    if not isinstance(config, dict):
        raise SelfsimError(f"{config_file}: expected a JSON object {what}, got a JSON {_json_type(config)}")
    return config


def read_model_config(path: Path) -> dict[str, Any]:
    """config.json of a model directory, checked: a JSON object, a supported model_type, sane sizes."""
    config_file = path / "config.json"
    if not config_file.is_file():
        raise SelfsimError(f"{path} holds no config.json: not a Hugging Face model directory")
    config = _read_json_object(config_file, "of model settings")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in SUPPORTED_MODEL_TYPES:
        supported = ", ".join(f"{v} ({k})" for k, v in SUPPORTED_MODEL_TYPES.items())
        raise SelfsimError(f"{path}: model_type {model_type!r} is not supported; selfsim supports {supported}")
    for key in _POSITIVE_INTS:
        value = config.get(key)
        if key in _OPTIONAL_INTS and value is None:
            continue
        if not _is_int(value) or value < 1:
            raise SelfsimError(f"{config_file}: {key} must be a positive integer, got {value!r}")
    heads, kv = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    head_dim = config.get("head_dim")
    if config["hidden_size"] % heads and head_dim is None:
        raise SelfsimError(f"{config_file}: hidden_size {config['hidden_size']} is not a multiple of num_attention_heads {heads}")
    if heads % kv:
        raise SelfsimError(f"{config_file}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}")
    for key in ("rms_norm_eps", "rope_theta"):
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf")):
            raise SelfsimError(f"{config_file}: {key} must be a positive number, got {value!r}")
    for key in ("tie_word_embeddings", "attention_bias", "mlp_bias"):
        if key in config and not isinstance(config[key], bool):
            raise SelfsimError(f"{config_file}: {key} must be true or false, got {config[key]!r}")
    for key in ("hidden_act", "torch_dtype", "dtype"):
        if config.get(key) is not None and not isinstance(config[key], str):
            raise SelfsimError(f"{config_file}: {key} must be a string, got {config[key]!r}")
    if config.get("rope_scaling") is not None and not isinstance(config["rope_scaling"], dict):
        raise SelfsimError(f"{config_file}: rope_scaling must be null or a JSON object, got {config['rope_scaling']!r}")
    return config


_POSITIVE_INTS = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "vocab_size",
                  "num_key_value_heads", "max_position_embeddings", "head_dim")
_OPTIONAL_INTS = ("num_key_value_heads", "max_position_embeddings", "head_dim")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype for a name in DTYPES, or a clear error."""
    if name not in DTYPES:
        raise SelfsimError(f"unknown dtype {name!r}; valid dtypes are {', '.join(DTYPES)}")
    import torch

    return getattr(torch, name)


def check_device_map(device_map: Any) -> Any:
    """Validate a device_map: None, a strategy name, a device string, or a {module: device} dict."""
    if device_map is None:
        return device_map
    if isinstance(device_map, dict):
        if not device_map:
            raise SelfsimError('--device-map is an empty JSON object; map module names to devices, e.g. {"": "cpu"}')
        for key, value in device_map.items():
            if isinstance(value, bool) or not (isinstance(value, int) and value >= 0 or isinstance(value, str) and _DEVICE.match(value)):
                raise SelfsimError(
                    f"--device-map: module {key!r} is mapped to {value!r}, not a device; valid devices are cpu, disk, "
                    "cuda:N (or N), mps, xpu:N"
                )
        return device_map
    if isinstance(device_map, str):
        if device_map in DEVICE_MAP_STRATEGIES or re.match(r"^(cpu|cuda(:\d+)?|mps|xpu(:\d+)?|\d+)$", device_map):
            return device_map
    raise SelfsimError(
        f"unknown device_map {device_map!r}; use one of {', '.join(DEVICE_MAP_STRATEGIES)}, a device (cpu, cuda:0) "
        "or a JSON object mapping module names to devices"
    )


_DEVICE = re.compile(r"^(cpu|disk|cuda(:\d+)?|mps|xpu(:\d+)?|\d+)$")


def check_devices_available(device_map: Any) -> None:
    """Raise if a device map names an accelerator this torch build or machine does not have."""
    values = list(device_map.values()) if isinstance(device_map, dict) else [device_map]
    wanted = [str(v) for v in values if v is not None and str(v) not in DEVICE_MAP_STRATEGIES]
    if not wanted:
        return
    import torch

    for device in wanted:
        kind, _, index = device.partition(":")
        if kind.isdigit():
            kind, index = "cuda", kind
        if kind == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if int(index or 0) >= count:
                have = f"this machine has {count} CUDA device(s)" if count else "this torch build or machine has no CUDA"
                raise SelfsimError(f"--device-map {device!r}: {have}; use cpu, auto or a device that exists")
        elif kind == "mps" and not torch.backends.mps.is_available():
            raise SelfsimError(f"--device-map {device!r}: MPS is not available here; use cpu or auto")
        elif kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
            raise SelfsimError(f"--device-map {device!r}: no XPU is available here; use cpu or auto")


def fingerprint_files(paths: list[Path]) -> str:
    """A hash of weight files: whole contents up to 256 MiB, else size + first and last MiB each.

    A safetensors file is hashed by content: its header as canonical JSON (the writer's key order of
    `__metadata__` varies from run to run), then its data section.
    """
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda q: q.name):
        size = p.stat().st_size
        h.update(f"{p.name}:{size}".encode())
        with open(p, "rb") as fh:
            start = 0
            if p.suffix == ".safetensors" and size >= 8:
                n = int.from_bytes(fh.read(8), "little")
                try:
                    header = json.loads(fh.read(n)) if 8 + n <= size else None
                except ValueError:
                    header = None
                if isinstance(header, dict):
                    h.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
                    start = 8 + n
                fh.seek(start)
            size -= start
            if size <= _FULL_HASH_LIMIT:
                for chunk in iter(lambda: fh.read(2**20), b""):
                    h.update(chunk)
            else:
                h.update(fh.read(2**20))
                fh.seek(start + size - 2**20)
                h.update(fh.read(2**20))
    return h.hexdigest()[:16]


PICKLE_POLICY = (
    "selfsim loads safetensors only: convert the weights to safetensors, or pass --allow-pickle-weights "
    "to load them with torch.load(weights_only=True)"
)


def _weight_files(path: Path, allow_pickle: bool = False) -> list[Path]:
    files = sorted(path.glob("*.safetensors"))
    if files:
        for f in files:
            check_safetensors(f)
        return files
    pickles = sorted(path.glob("*.bin"))
    if pickles and not allow_pickle:
        raise SelfsimError(f"{path} holds only pickle weights ({', '.join(p.name for p in pickles)}); {PICKLE_POLICY}")
    return pickles


def check_safetensors(path: Path) -> None:
    """Raise unless `path` is a complete safetensors file: its header parses and its tensors fit the file."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or 8 + n > size:
            raise SelfsimError(f"{path}: truncated or not a safetensors file ({size} bytes; the header does not fit)")
        try:
            header = json.loads(fh.read(n))
            ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            raise SelfsimError(f"{path}: not a safetensors file (its header is not a tensor table)") from None
    if 8 + n + max(ends, default=0) != size:
        raise SelfsimError(
            f"{path}: truncated or padded safetensors file: {size} bytes, the header describes {8 + n + max(ends, default=0)}"
        )


def load_subject(
    spec: str,
    *,
    dtype: str = "float32",
    device_map: Any = None,
    adapter: str | Path | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle_weights: bool = False,
    build_toy: bool = True,
) -> Subject:
    """Load a model and tokenizer; see the module docstring. Errors are one-line SelfsimErrors.

    Weights load from safetensors only, unless `allow_pickle_weights` (torch.load(weights_only=True)).
    """
    torch_type = torch_dtype(dtype)
    device_map = check_device_map(device_map)
    check_devices_available(device_map)
    path = resolve_path(str(spec), build_toy=build_toy)
    check_architecture(path)
    weights = _weight_files(path, allow_pickle_weights)
    if not weights:
        raise SelfsimError(f"{path} holds no weights (*.safetensors)")
    adapter_path = _check_adapter(adapter, allow_pickle_weights)
    if adapter_path is not None or isinstance(device_map, dict):
        skeleton = _meta_model(path, trust_remote_code)
        if isinstance(device_map, dict):
            _check_device_map_modules(device_map, skeleton, path)
        if adapter_path is not None:
            _check_adapter_fits(adapter_path, skeleton, path)
            _check_adapter_base(adapter_path, weights, str(spec))

    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": torch_type, "trust_remote_code": trust_remote_code}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if any(w.suffix == ".safetensors" for w in weights):
        kwargs["use_safetensors"] = True
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except _LOAD_ERRORS as exc:
        raise SelfsimError(f"could not load {spec} from {path}: {_first_line(exc)}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if adapter_path is not None:
        import warnings

        from peft import PeftModel

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            try:
                model = PeftModel.from_pretrained(model, str(adapter_path))
            except _LOAD_ERRORS as exc:
                raise SelfsimError(f"adapter {adapter_path} does not load onto {spec}: {_first_line(exc)}") from None
    model.eval()
    fp_files = weights + (sorted(adapter_path.glob("adapter_model.*")) if adapter_path else [])
    return Subject(
        name=str(spec),
        path=path,
        model=model,
        tokenizer=tokenizer,
        fingerprint=fingerprint_files(fp_files),
        adapter=adapter_path,
        options={"dtype": dtype, "device_map": device_map if not isinstance(device_map, dict) else "custom"},
    )


def load_tokenizer_subject(spec: str, *, trust_remote_code: bool = False, build_toy: bool = True) -> Subject:
    """A Subject with the tokenizer and config only (no weights): for checking prompts before the model loads."""
    from types import SimpleNamespace

    path = resolve_path(str(spec), build_toy=build_toy)
    config = read_model_config(path)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except _LOAD_ERRORS as exc:
        raise SelfsimError(f"could not load the tokenizer of {spec} from {path}: {_first_line(exc)}") from None
    model = SimpleNamespace(config=SimpleNamespace(**config))
    return Subject(name=str(spec), path=path, model=model, tokenizer=tokenizer, fingerprint="")


def context_length(subject: Subject) -> int | None:
    """The most positions the model was built for (max_position_embeddings), if its config says."""
    value = getattr(subject.config, "max_position_embeddings", None)
    return int(value) if value else None


def _check_adapter(adapter: str | Path | None, allow_pickle: bool = False) -> Path | None:
    """The adapter directory, checked without loading: a JSON-object config and complete weights."""
    if adapter is None:
        return None
    path = Path(adapter).expanduser()
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise SelfsimError(f"{adapter} is not a peft adapter directory (no adapter_config.json)")
    config = _read_json_object(config_file, "(a peft adapter config)")
    if config.get("peft_type") != "LORA":
        raise SelfsimError(f"{config_file}: peft_type {config.get('peft_type')!r} is not supported; selfsim loads LORA adapters")
    targets = config.get("target_modules")
    if not (isinstance(targets, str) or isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets)):
        raise SelfsimError(f"{config_file}: target_modules must be a non-empty list of module names (or a regex), got {targets!r}")
    rank = config.get("r", 8)
    if not _is_int(rank) or rank < 1:
        raise SelfsimError(f"{config_file}: r must be a positive integer, got {rank!r}")
    tensors = path / "adapter_model.safetensors"
    if tensors.is_file():
        check_safetensors(tensors)
    elif (path / "adapter_model.bin").is_file():
        if not allow_pickle:
            raise SelfsimError(f"{path} holds only pickle adapter weights (adapter_model.bin); {PICKLE_POLICY}")
    else:
        raise SelfsimError(f"{path} holds adapter_config.json but no adapter weights (adapter_model.safetensors)")
    return path


_LOAD_ERRORS = (OSError, ValueError, TypeError, KeyError, RuntimeError, AttributeError, IndexError, ImportError,
                pickle.UnpicklingError, EOFError)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if "Weights only load failed" in str(exc):
        why = next((line for line in lines if line.startswith(("Trying to load", "Unsupported"))), lines[-1] if lines else "")
        return f"a pickle file was refused by torch.load(weights_only=True), it holds more than tensors ({why.rstrip('.')})"
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _meta_model(path: Path, trust_remote_code: bool) -> nn.Module:
    """The model's module tree on the meta device (no weights, no memory) for checks before loading."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except _LOAD_ERRORS as exc:
        raise SelfsimError(f"{path}/config.json does not describe a loadable model: {_first_line(exc)}") from None


def _check_device_map_modules(device_map: dict[str, Any], model: nn.Module, path: Path) -> None:
    """Every key of a device map must be a module of the model, and every parameter must get a device."""
    names = {name for name, _ in model.named_modules()}
    unknown = [key for key in device_map if key not in names]
    if unknown:
        top = ", ".join(name for name, _ in model.named_children())
        raise SelfsimError(
            f"--device-map names module(s) {', '.join(map(repr, unknown[:3]))} that {path.name} does not have; "
            f"use module paths such as '' (the whole model), {top}, model.layers.0"
        )
    uncovered = [p for p, _ in model.named_parameters() if not any(k == "" or p == k or p.startswith(k + ".") for k in device_map)]
    if uncovered:
        raise SelfsimError(f"--device-map gives no device to {uncovered[0]} ({len(uncovered)} parameter(s) in all); map every module")


def _check_adapter_fits(adapter: Path, model: nn.Module, path: Path) -> None:
    """The adapter's target modules exist in the base model and its LoRA matrices have the base's shapes."""
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    modules = dict(model.named_modules())
    targets = config["target_modules"]
    if isinstance(targets, str):
        hits = [n for n in modules if re.fullmatch(targets, n)]
    else:
        hits = [n for n in modules if any(n == t or n.endswith("." + t) for t in targets)]
    if not hits:
        leaves = sorted({n.rsplit(".", 1)[-1] for n, m in modules.items() if not list(m.children()) and "." in n})
        raise SelfsimError(
            f"adapter {adapter} targets {targets!r}, which {path.name} does not have; its module names are {', '.join(leaves)}"
        )
    tensors = adapter / "adapter_model.safetensors"
    if not tensors.is_file():
        return
    with open(tensors, "rb") as fh:
        header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
    sites = set()
    for key in header:
        match = re.match(r"^(?:base_model\.model\.)?(.+)\.lora_(?:embedding_)?[AB](?:\.[^.]+)?(?:\.weight)?$", key)
        if match:
            sites.add(match[1])
    stray = sorted(sites - set(hits))
    if stray:
        raise SelfsimError(
            f"adapter {adapter} holds weights for {stray[0]} ({len(stray)} module(s) in all), which its target_modules "
            f"{targets!r} do not name: peft would drop them and apply the adapter as nothing; fix target_modules in adapter_config.json"
        )
    narrowed = config.get("layers_to_transform") is not None or config.get("exclude_modules")
    empty = sorted(set(hits) - sites) if not narrowed else []
    if empty:
        raise SelfsimError(
            f"adapter {adapter} targets {empty[0]} ({len(empty)} module(s) in all) but holds no weights for it: "
            "peft would apply fresh zero LoRA there; its target_modules and its weights disagree"
        )
    for key, entry in header.items():
        match = re.match(r"^(?:base_model\.model\.)?(.+)\.(lora_[AB])(?:\.[^.]+)?\.weight$", key)
        if key == "__metadata__" or not match:
            continue
        site, which = match.groups()
        module = modules.get(site)
        if module is None:
            raise SelfsimError(f"adapter {adapter} has weights for {site}, which {path.name} does not have")
        dims = getattr(module, "in_features", None), getattr(module, "out_features", None)
        shape = list(entry.get("shape", []))
        want, axis = (dims[0], 1) if which == "lora_A" else (dims[1], 0)
        if want is not None and len(shape) == 2 and shape[axis] != want:
            raise SelfsimError(
                f"adapter {adapter} does not fit {path.name}: {site}.{which} has shape {shape}, "
                f"but the base module has {dims[0]} inputs and {dims[1]} outputs (an adapter trained on another model?)"
            )


ADAPTER_RECORD = "finetune.json"  # written beside every adapter selfsim trains (selfsim.finetune), with base_fingerprint


def _check_adapter_base(adapter: Path, weights: list[Path], spec: str) -> None:
    """Refuse an adapter selfsim trained on another base model (its recorded fingerprint differs from this base's);
    an adapter without the record (not trained by selfsim) loads with one warning line."""
    record_file = adapter / ADAPTER_RECORD
    record = _read_json_object(record_file, "(selfsim's finetune record)") if record_file.is_file() else {}
    recorded = record.get("base_fingerprint")
    if not isinstance(recorded, str) or not recorded:
        print(
            f"selfsim: warning: adapter {adapter} records no base-model fingerprint (not trained by selfsim); "
            f"cannot check that it was trained on {spec}",
            file=sys.stderr,
        )
        return
    if record.get("start_adapter"):
        return  # trained on base + another adapter: the record's fingerprint covers both
    actual = fingerprint_files(weights)
    if actual != recorded:
        raise SelfsimError(
            f"adapter {adapter} was trained on another base model ({record.get('base_model', '?')}, weights fingerprint "
            f"{recorded}), not on {spec} (fingerprint {actual}); load it onto the model it was trained on"
        )
