"""Tokenizers small enough to read: characters for real text, words for the synthetic tasks."""

import re

import torch

from lcviz.validate import check_int

# Fixed vocabulary: tab, newline and printable ASCII; anything else becomes "?". A fixed list
# (not one read off the corpus) keeps checkpoints valid on any machine's Python sources.
CHAR_VOCAB = ["\t", "\n"] + [chr(c) for c in range(32, 127)] + ["\N{REPLACEMENT CHARACTER}"]

WORD_PATTERN = re.compile(r"\d|[A-Za-z]+|[^\sA-Za-z\d]")  # digits one by one, words, punctuation


class CharTokenizer:
    """One id per character of CHAR_VOCAB (98 ids); unknown characters map to the last id."""

    def __init__(self):
        self.vocab = list(CHAR_VOCAB)
        self.unknown_id = len(self.vocab) - 1
        self._ids = {ch: i for i, ch in enumerate(self.vocab)}

    @property
    def vocab_size(self):
        return len(self.vocab)

    def encode(self, text):
        """str -> LongTensor (len(text),)."""
        return torch.tensor([self._ids.get(ch, self.unknown_id) for ch in text], dtype=torch.long)

    def decode(self, ids):
        """Sequence of ids -> str."""
        return "".join(self.vocab[check_int("token id", int(i), minimum=0,
                                            maximum=self.vocab_size - 1)] for i in ids)


class WordTokenizer:
    """Word-level ids over a fixed word list: words, single digits and punctuation are tokens.

    A vocabulary is built once from the task's text (`WordTokenizer.from_texts`); an unknown word
    raises ValueError rather than mapping silently to <unk>, because the synthetic tasks control
    their vocabulary completely.
    """

    def __init__(self, words):
        words = list(dict.fromkeys(words))  # keep order, drop repeats
        if not words:
            raise ValueError("words must be a non-empty list of tokens")
        self.vocab = words
        self._ids = {w: i for i, w in enumerate(words)}

    @classmethod
    def from_texts(cls, texts, extra=()):
        """Vocabulary of every token in `texts` plus `extra` (for example the digits 0-9)."""
        tokens = list(extra)
        for text in texts:
            tokens.extend(split_words(text))
        return cls(tokens)

    @property
    def vocab_size(self):
        return len(self.vocab)

    def encode(self, text):
        ids = []
        for token in split_words(text):
            if token not in self._ids:
                raise ValueError(f"token {token!r} is not in this WordTokenizer's vocabulary of "
                                 f"{self.vocab_size} tokens")
            ids.append(self._ids[token])
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids):
        """ids -> text with spaces between words and none before punctuation or between digits."""
        out = ""
        for i in ids:
            token = self.vocab[check_int("token id", int(i), minimum=0, maximum=self.vocab_size - 1)]
            glue = not out or token in ".,?!:;" or (token.isdigit() and out[-1].isdigit())
            out += token if glue else " " + token
        return out


def split_words(text):
    """'Key 123.' -> ['Key', '1', '2', '3', '.']"""
    return WORD_PATTERN.findall(text)
