"""Answer token budgets: how many new tokens an answer may take (a task's own lives on `selfsim.tasks.Task`).

A paper-dialect object prompt gets its task's budget (`Task.max_new_tokens`, default `DEFAULT_MAX_NEW_TOKENS`);
a toy-dialect prompt (answers of a few words) gets `TOY_MAX_NEW_TOKENS` and a hypothetical prompt (a short
value) `META_MAX_NEW_TOKENS`. `selfsim.tasks.token_budget` picks the one for a prompt.
"""

TOY_MAX_NEW_TOKENS = 8
META_MAX_NEW_TOKENS = 8
DEFAULT_MAX_NEW_TOKENS = 32
