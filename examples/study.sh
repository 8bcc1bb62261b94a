#!/usr/bin/env bash
# The char / subword / word study, chunk by chunk (docs/char_vs_word.md). Run from the repository
# root with ../shared/data beside it. Every chunk is a Hydra sweep that skips the jobs already
# FINISHED in ./mlflow.db or in the committed export, so this script can be stopped and started
# again, on this machine or a fresh clone, and each chunk's export committed as it lands:
#
#   bash examples/study.sh            # all chunks, in order (about 4-5 hours on 2 cores)
#   bash examples/study.sh main       # one chunk: lr, main, hidden128, budget1m, min_count,
#                                     # size, blind, blind_word128, blind_seeds
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1        # one job at a time, one BLAS thread: fastest on shared cores
COCO=docs/study/coco_mini
BLIND=docs/study/blind
sweep() { python run.py -m progress=false "$@"; }

chunk() {
  case "$1" in
    lr)        # learning rates, chosen on fold 0's dev split (never scores test images)
      sweep experiment=study_coco_mini_lr
      capx export --experiment study_coco_mini_lr --out $COCO/lr_runs.jsonl ;;
    main)      # ~250k parameters for every model: 4 tokenizers x 2 cells x 5 folds
      sweep experiment=study_coco_mini
      capx export --experiment study_coco_mini --out $COCO/runs.jsonl ;;
    hidden128) # the earlier condition: hidden size 128 for every tokenizer
      sweep experiment=study_coco_mini model.param_budget=null model.hidden_dim=128
      capx export --experiment study_coco_mini --out $COCO/runs.jsonl ;;
    budget1m)  # ~1M parameters for every model
      sweep experiment=study_coco_mini model.param_budget=1000000
      capx export --experiment study_coco_mini --out $COCO/runs.jsonl ;;
    min_count) # robustness: the word tokenizer's min_count 1 (no trained <UNK>) against 2
      sweep experiment=study_coco_mini tokenizer=word tokenizer.min_count=1
      capx export --experiment study_coco_mini --out $COCO/runs.jsonl ;;
    size)      # learning curves: 25% and 50% of each fold's training images
      sweep experiment=study_coco_mini split.train_percent=25,50
      capx export --experiment study_coco_mini --out $COCO/runs.jsonl ;;
    blind)     # caption-only language models on the val2017 captions, 2.5k -> 20k captions
      sweep experiment=study_blind
      capx export --experiment study_blind --out $BLIND/runs.jsonl ;;
    blind_word128) # robustness: at 250k parameters the word model's hidden size shrinks as its
                   # vocabulary grows (4 units at 4k images); the word LSTM at hidden 128 instead
      sweep experiment=study_blind tokenizer=word model.param_budget=null model.hidden_dim=128 \
        dataset.max_train=2000,4000
      capx export --experiment study_blind --out $BLIND/runs.jsonl ;;
    blind_seeds)   # 5 seeds at the largest size for char, bpe1000 and the hidden-128 word LSTM
      sweep experiment=study_blind dataset.max_train=4000 tokenizer=char,bpe1000 seed=2,3,4
      sweep experiment=study_blind dataset.max_train=4000 tokenizer=word model.param_budget=null \
        model.hidden_dim=128 seed=2,3,4
      capx export --experiment study_blind --out $BLIND/runs.jsonl ;;
    *) echo "unknown chunk $1" >&2; exit 2 ;;
  esac
}

if [ $# -eq 0 ]; then
  set -- lr main hidden128 budget1m min_count size blind blind_word128 blind_seeds
fi
for name in "$@"; do
  chunk "$name"
done
capx report --from $COCO/runs.jsonl --out $COCO
[ -f $BLIND/runs.jsonl ] && capx report --from $BLIND/runs.jsonl --out $BLIND || true
