"""capx.metrics.word_list: the held-out word list that tells real invented words from non-words."""

import json

import pytest

from capx.metrics.word_list import WordListError, load_word_list


def test_a_coco_caption_json_gives_the_canonical_words_of_its_captions(tmp_path):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"images": [], "annotations": [
        {"image_id": 1, "caption": "A Zebra, grazing."}, {"image_id": 2, "caption": "two boats"}]}))
    assert load_word_list(path) == {"a", "zebra", "grazing", "two", "boats"}


def test_a_text_file_gives_the_words_of_its_lines(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("Zebra\nboat house\n")
    assert load_word_list(path) == {"zebra", "boat", "house"}


def test_a_missing_or_foreign_file_is_named(tmp_path):
    with pytest.raises(WordListError, match="does not exist"):
        load_word_list(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(WordListError, match="not a COCO caption json"):
        load_word_list(bad)


def test_the_val2017_vocabulary_when_the_data_is_there(val2017_captions):
    words = load_word_list(val2017_captions)
    assert {"zebra", "giraffe", "skateboard"} <= words and len(words) > 5000
