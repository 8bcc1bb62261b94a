"""The text each symbol of a tokenized caption stands for (:func:`symbol_surfaces`), for any
tokenizer: read through its ``join``, with what an ``<UNK>`` symbol replaced found in the text.
The open-vocabulary likelihood spells those texts; the frequency bins count their words."""

from __future__ import annotations

from typing import Any

from capx.tokenizers.base import UNK


def symbol_surfaces(tokenizer: Any, text: str) -> list[str]:
    """The text each symbol of ``tokenizer.tokenize(text)`` stands for; they concatenate to
    ``tokenizer.normalize(text)``.

    A space between words goes with the symbol after it when no symbol is a space (the word
    tokenizer's ``dog`` is `` dog``, sentencepiece's ``▁dog`` too). A ``<UNK>`` symbol that
    stands for unseen text (a tokenizer may map it inside ``tokenize``, as bpe does for a run of
    unseen characters) gets that text. Symbols are read through ``tokenizer.join``: what a
    symbol adds to the joined text before it is its text.
    """
    symbols, text = tokenizer.tokenize(text), tokenizer.normalize(text)
    if "".join(symbols) == text:  # characters, or pieces that spell the text
        return list(symbols)
    if " ".join(symbols) == text:  # words
        return [s if i == 0 else " " + s for i, s in enumerate(symbols)]
    pieces = _pieces_by_pairs(tokenizer, symbols)
    if pieces is None:
        pieces = _pieces_by_prefixes(tokenizer, symbols)
    return _resolve_unknown(symbols, pieces, text)


def _pieces_by_pairs(tokenizer: Any, symbols: list[str]) -> list[str] | None:
    """What each symbol adds, read off joins of each symbol with the one before it: linear in
    the caption's length. None when those pieces do not make the whole join (a tokenizer whose
    join looks further back); :func:`_pieces_by_prefixes` then reads them exactly."""
    if not symbols:
        return []
    pieces = [tokenizer.join(symbols[:1])]
    for before, symbol in zip(symbols, symbols[1:]):
        alone, pair = tokenizer.join([before]), tokenizer.join([before, symbol])
        if not pair.startswith(alone):
            return None
        pieces.append(pair[len(alone):])
    return pieces if "".join(pieces) == tokenizer.join(symbols) else None


def _pieces_by_prefixes(tokenizer: Any, symbols: list[str]) -> list[str]:
    """What each symbol adds to the join of the symbols before it (quadratic in the length;
    captions are scored on at most
    :data:`capx.metrics.likelihood.MAX_SCORED_CHARS` characters)."""
    pieces, joined = [], ""
    for k in range(len(symbols)):
        longer = tokenizer.join(symbols[: k + 1])
        if not longer.startswith(joined):
            raise ValueError(f"the {tokenizer.name!r} tokenizer joins {symbols[:k + 1]} to "
                             f"{longer!r}, which does not extend {joined!r}")
        pieces.append(longer[len(joined):])
        joined = longer
    return pieces


def _resolve_unknown(symbols: list[str], pieces: list[str], text: str) -> list[str]:
    """Walk ``pieces`` along ``text``; a ``<UNK>`` piece that is not the literal there stands for
    the text up to where the next piece is found."""
    out, position = [], 0
    for k, (symbol, piece) in enumerate(zip(symbols, pieces)):
        if text.startswith(piece, position):
            end = position + len(piece)
        elif symbol == UNK and UNK in piece:
            before = piece[: piece.index(UNK)]  # e.g. the space in front of a word
            if not text.startswith(before, position) or position + len(before) >= len(text):
                raise ValueError(f"{symbols} do not spell {text!r}")
            following = next((p for p in pieces[k + 1:] if p), None)
            end = (len(text) if following is None
                   else text.find(following, position + len(before) + 1))
            if end < 0:
                raise ValueError(f"{symbols} do not spell {text!r}")
        else:
            raise ValueError(f"symbol {symbol!r} ({piece!r}) is not found at character "
                             f"{position} of {text!r}")
        out.append(text[position:end])
        position = end
    if position != len(text):
        raise ValueError(f"{symbols} spell {text[:position]!r}, not {text!r}")
    return out
