"""xmr_lib.encoders.text: the Bi-LSTM text branch (vocabulary, token ids, padding masked, it trains)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xmr_lib.encoders import text as T


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_vocab_and_tokenize_by_hand():
    vocab = T.build_vocab(["A red circle.", "a blue circle", "red square"], min_count=2)
    assert vocab == ["a", "circle", "red"]  # most frequent first, ties alphabetical; "blue", "square" once
    ids = T.tokenize(["red circle", "a green thing here", ""], vocab, max_len=3)
    assert ids.dtype == np.int64 and ids.tolist() == [[4, 3, 0], [2, 1, 1], [1, 0, 0]]  # pad 0, unknown 1
    with pytest.raises(ValueError, match="max_len"):
        T.tokenize(["a"], vocab, max_len=0)


def test_shapes_and_padding_is_masked():
    torch.manual_seed(0)
    enc = T.BiLSTMTextEncoder(vocab_size=10, word_dim=8, hidden=6, dropout=0.3).eval()
    ids = torch.tensor([[2, 3, 4, 0], [5, 6, 0, 0]])
    out = enc(ids)
    assert out.shape == (2, 12) and enc.out_dim == 12 and torch.isfinite(out).all()
    # more padding, or being batched with a longer caption, does not change a caption's feature
    padded = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], 1)
    assert torch.allclose(enc(padded), out, atol=1e-6)
    assert torch.allclose(enc(ids[1:, :2]), out[1:], atol=1e-6)
    # ... while changing a real word does
    assert not torch.allclose(enc(torch.tensor([[2, 3, 7, 0]])), out[:1])


def test_word_vectors_initialise_the_embedding_and_bad_input_is_named():
    vecs = np.arange(12, dtype=np.float32).reshape(3, 4)
    enc = T.BiLSTMTextEncoder(3, word_dim=4, hidden=2, vectors=vecs)
    assert torch.equal(enc.embedding.weight[2:].detach(), torch.as_tensor(vecs))
    assert torch.equal(enc.embedding.weight[0].detach(), torch.zeros(4))  # padding row
    with pytest.raises(ValueError, match="vectors"):
        T.BiLSTMTextEncoder(3, word_dim=5, vectors=vecs)
    with pytest.raises(ValueError, match="tokens"):
        enc(torch.tensor([[2, 9]]))
    with pytest.raises(ValueError, match="tokens"):
        enc(torch.zeros(2, 3))


def test_a_classification_loss_decreases():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 12, (16, 5), generator=g)
    ids[::2, 3:] = T.PAD
    y = (ids[:, 0] % 2 == 0).long()  # the class is in the first word
    enc = T.BiLSTMTextEncoder(10, word_dim=8, hidden=8, dropout=0.0)
    head = torch.nn.Linear(16, 2)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=1e-2)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(head(enc(ids)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
