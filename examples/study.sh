#!/usr/bin/env bash
# The char / subword / word study, chunk by chunk (docs/char_vs_word.md, "The re-run (issue 24)").
# Every chunk is a Hydra sweep that skips the jobs already FINISHED in ./mlflow.db or in the
# committed export, so this script can be stopped (Ctrl-C ends the running sweep: its job KILLED,
# the jobs after it not started) and started again, on this machine or a fresh
# clone, and each chunk's export committed as it lands:
#
#   bash examples/study.sh            # all chunks, in order (about 7 hours on 2 quiet cores)
#   bash examples/study.sh main       # one chunk: tune, tune1m, main, main_blind, seeds,
#                                     # min_count, budget1m, budget1m_blind, blind, size,
#                                     # hidden128, hidden128_blind
#
# One commit runs every chunk. Its id is in docs/study/COMMIT (written after tune and tune1m,
# see below); the script refuses a checkout of another commit or with changes, because every
# run records the commit that ran it and `capx report` will not mix commits. To go on from a
# later checkout, run a clean checkout of that commit and send the exports to this one:
#
#   git worktree add ../capx-study "$(cat docs/study/COMMIT)"
#   (cd ../capx-study && STUDY_DOCS="$OLDPWD/docs/study" bash examples/study.sh main)
#
# The reports it writes then come from the study commit's `capx report`; make them again with
# this checkout's, whose tables may have moved on since (the numbers they read do not):
#
#   python -m capx report --from docs/study/coco_mini/runs.jsonl --out docs/study/coco_mini
#
# tune and tune1m score dev only; read their tables (capx report --from the lr export) and write
# the chosen learning rates and dropout into conf/experiment/study_coco_mini.yaml and
# study_coco_mini_1m.yaml (study.learning_rate, study.dropout), commit, and write that commit's
# id into docs/study/COMMIT, BEFORE any other chunk: those maps are part of every job's
# configuration, so changing them later makes the finished jobs count as other jobs. Write the
# machine's arithmetic (OPENBLAS_NUM_THREADS=1 python -m capx.tracking.arithmetic) into
# docs/study/ARITHMETIC beside it: later chunks must compute on the same NumPy and BLAS.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1        # one job at a time, one BLAS thread: fastest on shared cores
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's capx, whatever is installed
DOCS=$(realpath -m "${STUDY_DOCS:-docs/study}")
COCO=$DOCS/coco_mini
BLIND=$DOCS/blind
DROPOUT=0.0,0.25,0.5
sweep() {  # sweep EXPORT OVERRIDES...: the jobs not yet FINISHED in EXPORT or in ./mlflow.db
  local export=$1; shift
  python run.py -m progress=false tracking.export="$export" "$@"
}
capx() { python -m capx "$@"; }
export_coco() { capx export --experiment study_coco_mini --out "$COCO/runs.jsonl"; }

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "study.sh: this checkout has uncommitted changes; its runs would not match any commit." >&2
  echo "Commit or stash them, or run from a clean checkout (see the top of this script)." >&2
  exit 2
fi
at_study_commit() {
  local pinned
  pinned=$(cat "$DOCS/COMMIT" 2>/dev/null || true)
  if [ -z "$pinned" ]; then
    echo "study.sh: $DOCS/COMMIT is missing: run tune and tune1m, commit the chosen settings" >&2
    echo "and write that commit's id there before the test chunks." >&2
    exit 2
  fi
  if [ "$(git rev-parse HEAD)" != "$(git rev-parse "$pinned")" ]; then
    echo "study.sh: this checkout is at $(git rev-parse --short HEAD); the study runs at $pinned" >&2
    echo "($DOCS/COMMIT). Run from a checkout of it: see the top of this script." >&2
    exit 2
  fi
  # the same arithmetic too: float32 training on other BLAS kernels, or another NumPy, rounds
  # differently, and the runs would differ from the committed ones as two seeds do
  local here
  here=$(python -m capx.tracking.arithmetic)
  if [ -f "$DOCS/ARITHMETIC" ] && [ "$here" != "$(cat "$DOCS/ARITHMETIC")" ]; then
    echo "study.sh: this machine computes with '$here'; the study's runs computed with" >&2
    echo "'$(cat "$DOCS/ARITHMETIC")' ($DOCS/ARITHMETIC). Install that NumPy, or re-run the" >&2
    echo "study's test chunks here and write this line there." >&2
    exit 2
  fi
}

chunk() {
  case "$1" in tune|tune1m) ;; *) at_study_commit ;; esac
  case "$1" in
    tune)      # learning rate x dropout at ~250k on fold 0's dev split (never scores test images)
      sweep "$COCO/lr_runs.jsonl" experiment=study_coco_mini_lr tokenizer=char solver.learning_rate=5e-3,1e-2,2e-2 \
        model.dropout=$DROPOUT
      sweep "$COCO/lr_runs.jsonl" experiment=study_coco_mini_lr tokenizer=bpe250,bpe1000 \
        solver.learning_rate=2e-3,5e-3,1e-2 model.dropout=$DROPOUT
      sweep "$COCO/lr_runs.jsonl" experiment=study_coco_mini_lr tokenizer=word cell=lstm \
        solver.learning_rate=1e-3,2e-3,5e-3 model.dropout=$DROPOUT
      sweep "$COCO/lr_runs.jsonl" experiment=study_coco_mini_lr tokenizer=word cell=rnn \
        solver.learning_rate=5e-4,1e-3,2e-3 model.dropout=$DROPOUT
      # one rate more where the best sat at the grid's top edge, at its dropout
      for setting in char:rnn:4e-2:0.0 char:lstm:4e-2:0.25 bpe250:rnn:2e-2:0.25 \
                     bpe250:lstm:2e-2:0.5 bpe1000:lstm:2e-2:0.5 word:rnn:5e-3:0.25; do
        IFS=: read -r tok cell rate dropout <<< "$setting"
        sweep "$COCO/lr_runs.jsonl" experiment=study_coco_mini_lr tokenizer="$tok" cell="$cell" \
          solver.learning_rate="$rate" model.dropout="$dropout"
      done
      capx export --experiment study_coco_mini_lr --out "$COCO/lr_runs.jsonl" ;;
    tune1m)    # ~1M: dropout 0.25 and 0.5 at each setting's ~250k rate (dropout 0 overfits there)
      for setting in char:rnn:2e-2 char:lstm:2e-2 bpe250:rnn:2e-2 bpe250:lstm:2e-2 \
                     bpe1000:rnn:5e-3 bpe1000:lstm:1e-2 word:rnn:2e-3 word:lstm:2e-3; do
        IFS=: read -r tok cell rate <<< "$setting"
        sweep "$COCO/lr_runs.jsonl" experiment=study_coco_mini_lr model.param_budget=1000000 \
          tokenizer="$tok" cell="$cell" solver.learning_rate="$rate" model.dropout=0.25,0.5
      done
      # half that rate (a grid step down) at the better of the two dropouts there, as the
      # runs above measured it, and the char RNN without dropout (its ~250k choice)
      for setting in char:rnn:1e-2:0.5 char:rnn:1e-2:0.0 char:lstm:1e-2:0.25 \
                     bpe250:rnn:1e-2:0.25 bpe250:lstm:1e-2:0.5 bpe1000:rnn:2e-3:0.25 \
                     bpe1000:lstm:5e-3:0.5 word:rnn:1e-3:0.5 word:lstm:1e-3:0.25; do
        IFS=: read -r tok cell rate dropout <<< "$setting"
        sweep "$COCO/lr_runs.jsonl" experiment=study_coco_mini_lr model.param_budget=1000000 \
          tokenizer="$tok" cell="$cell" solver.learning_rate="$rate" model.dropout="$dropout"
      done
      capx export --experiment study_coco_mini_lr --out "$COCO/lr_runs.jsonl" ;;
    main)      # ~250k parameters for every model: 4 tokenizers x 2 cells x 5 folds
      sweep "$COCO/runs.jsonl" experiment=study_coco_mini; export_coco ;;
    main_blind) # the same trained and scored without the image: what the image contributes
      sweep "$COCO/runs.jsonl" experiment=study_coco_mini model.image_features=constant; export_coco ;;
    seeds)     # the headline condition (LSTM, ~250k) with seeds 1 and 2 in every fold
      sweep "$COCO/runs.jsonl" experiment=study_coco_mini cell=lstm seed=1,2; export_coco ;;
    hidden128) # hidden size 128 for every tokenizer (the ~250k choices of rate and dropout)
      sweep "$COCO/runs.jsonl" experiment=study_coco_mini model.param_budget=null model.hidden_dim=128; export_coco ;;
    hidden128_blind)
      sweep "$COCO/runs.jsonl" experiment=study_coco_mini model.param_budget=null model.hidden_dim=128 \
        model.image_features=constant; export_coco ;;
    budget1m)  # ~1M parameters for every model, with the ~1M choices
      sweep "$COCO/runs.jsonl" experiment=study_coco_mini_1m; export_coco ;;
    budget1m_blind) # without the image, LSTM only (the char RNN at ~1M costs most)
      sweep "$COCO/runs.jsonl" experiment=study_coco_mini_1m cell=lstm model.image_features=constant; export_coco ;;
    min_count) # the word tokenizer's min_count, chosen per fold on dev from {1, 2, 3, 5} (2: main)
      sweep "$COCO/runs.jsonl" experiment=study_coco_mini tokenizer=word tokenizer.min_count=1,3,5; export_coco ;;
    size)      # learning curves: 25% and 50% of each fold's training images
      sweep "$COCO/runs.jsonl" experiment=study_coco_mini split.train_percent=25,50; export_coco ;;
    blind)     # caption-only language models on the val2017 captions, 2.5k -> 20k captions, one
               # model configuration (hidden 128) per tokenizer at every size
      sweep "$BLIND/runs.jsonl" experiment=study_blind model.param_budget=null model.hidden_dim=128
      capx export --experiment study_blind --out "$BLIND/runs.jsonl" ;;
    *) echo "unknown chunk $1" >&2; exit 2 ;;
  esac
}

if [ $# -eq 0 ]; then
  # what the README's answer rests on first; the equal-hidden-size condition last
  set -- tune tune1m main main_blind seeds min_count budget1m budget1m_blind blind size \
    hidden128 hidden128_blind
fi
for name in "$@"; do
  chunk "$name"
done
[ -f "$COCO/runs.jsonl" ] && capx report --from "$COCO/runs.jsonl" --out "$COCO" || true
[ -f "$BLIND/runs.jsonl" ] && capx report --from "$BLIND/runs.jsonl" --out "$BLIND" || true
