"""Pretrain a toy Llama from scratch on the synthetic corpus and save it in Hugging Face format.

The run is a pure function of its `ToyConfig`: the batch stream comes from `random.Random(seed)`
and the weights from `torch.manual_seed(seed)`, so the same config gives the same greedy behaviour.
The loss covers the assistant's answer and `</s>` only (the prompts are random word lists).
Training uses one CPU thread (on a shared 2-core machine two OpenMP threads made a step ~4x slower
than one), and `pretrain_many` runs several models side by side. The model is trained in a
temporary directory beside `out_dir` and renamed into place at the end, so a crash never leaves a
half-written checkpoint.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, cast

from selfsim.toy.config import CONFIG_FILE, ToyConfig
from selfsim.toy.corpus import Document, iter_batches
from selfsim.toy.tokenizer import build_tokenizer, render_chat

if TYPE_CHECKING:
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

IGNORE_INDEX = -100


def build_model(config: ToyConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A randomly initialised LlamaForCausalLM of the config's size (seed it before calling)."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        initializer_range=config.init_std,
        pad_token_id=cast(int, tokenizer.pad_token_id),
        bos_token_id=cast(int, tokenizer.bos_token_id),
        eos_token_id=cast(int, tokenizer.eos_token_id),
    )
    model = LlamaForCausalLM(llama)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=8,
    )
    return model


def encode_batch(docs: list[Document], tokenizer: PreTrainedTokenizerFast) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask and labels (answer + </s> only) for a batch."""
    import torch

    texts = [render_chat(doc.messages()) for doc in docs]
    encodings = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    assistant = cast(int, tokenizer.convert_tokens_to_ids("<assistant>"))
    width = max(len(e.ids) for e in encodings)
    input_ids = torch.full((len(docs), width), cast(int, tokenizer.pad_token_id), dtype=torch.long)
    labels = torch.full((len(docs), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(docs), width), dtype=torch.long)
    for row, enc in enumerate(encodings):
        ids = torch.tensor(enc.ids)
        start = enc.ids.index(assistant) + 1
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
        labels[row, start : len(ids)] = ids[start:]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _lr_factor(step: int, config: ToyConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def pretrain(config: ToyConfig, out_dir: Path, progress: bool = True, bar_position: int = 0) -> Path:
    """Train a toy model from scratch on one CPU thread; save model, tokenizer and config to `out_dir` (replacing it)."""
    import torch
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(config.seed)
        tokenizer = build_tokenizer()
        model = build_model(config, tokenizer)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, config))
        stream = iter_batches(config.seed, config.mixture, config.batch_size, config.steps)
        bar = tqdm(
            stream, total=config.steps, desc=f"pretrain {config.name}", disable=not progress, position=bar_position,
            mininterval=1.0,
        )
        for step, docs in enumerate(bar):
            loss = model(**encode_batch(docs, tokenizer)).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            if step % 50 == 0 or step == config.steps - 1:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        model.eval()
    finally:
        torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        tmp.chmod(0o755)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        config.save(tmp / CONFIG_FILE)
        for path in tmp.iterdir():
            path.chmod(0o644)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def pretrain_many(jobs: list[tuple[ToyConfig, Path]], workers: int = 1, progress: bool = True) -> list[Path]:
    """Pretrain several toy models, up to `workers` at a time in separate processes (one thread each)."""
    if workers <= 1 or len(jobs) <= 1:
        return [pretrain(config, out, progress) for config, out in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(pretrain, config, out, progress, i % workers) for i, (config, out) in enumerate(jobs)]
        return [f.result() for f in futures]
