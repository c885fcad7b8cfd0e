import torch

from selfsim.batching import left_pad


def test_rows_end_in_the_last_column_and_the_mask_marks_them():
    values, mask = left_pad([(5, 6, 7), (8,), ()], pad_value=-1)
    assert values.tolist() == [[5, 6, 7], [-1, -1, 8], [-1, -1, -1]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 0, 0]]
    assert values.dtype == mask.dtype == torch.long


def test_no_rows_give_an_empty_batch():
    values, mask = left_pad([], pad_value=0)
    assert values.shape == mask.shape == (0, 0)
