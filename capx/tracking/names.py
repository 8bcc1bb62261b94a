"""The names capx gives things in MLflow: tags, metric names and prefixes, artifact paths.

Writers (:mod:`capx.run.recorder`, :mod:`capx.run.scoring`, :mod:`capx.tracking.tracker`) and
readers (:mod:`capx.study.export`, :mod:`capx.study.report`, :mod:`capx.study.tables`, :mod:`capx.tracking.finished`,
:mod:`capx.run.resume`) import them from here. A study export and its report depend on these
strings: renaming one orphans every run recorded before.
"""

from __future__ import annotations

# -- metric prefixes and the metrics read back by name --------------------------------------------

TRAIN = "train/"   # training loss every few iterations and per epoch
VAL = "val/"       # per epoch, on the dev split
TEST = "test/"     # once at the end, on the test split (or val, see TEST_SPLIT)
PARAMS = "params/"  # parameter counts (per name and per group), logged at step 0
DATA = "data/"     # vocabulary and caption statistics, logged at step 0
TIME = "time/"
SPEED = "speed/"

TRAIN_LOSS = TRAIN + "loss"
TRAIN_LOSS_EPOCH = TRAIN + "loss_epoch"
VAL_LOSS = VAL + "loss"
VAL_BEST_LOSS = VAL + "best_loss"
VAL_BEST_EPOCH = VAL + "best_epoch"
VAL_BITS_PER_CHAR = VAL + "bits_per_char"
VAL_BITS_PER_CHAR_CLOSED = VAL + "bits_per_char_closed"
TEST_BITS_PER_CHAR = TEST + "bits_per_char"
TEST_HIT_EPOCH_CAP = TEST + "hit_epoch_cap"
EPOCH_SECONDS = TIME + "epoch_seconds"
TRAIN_SECONDS = TIME + "train_seconds"
JOB_WALL_SECONDS = TIME + "job_wall_seconds"  # process start (or the sweep's previous job) to end
TOKENS_PER_SECOND = SPEED + "tokens_per_second"
LEARNING_RATE = "learning_rate"
OBJECTIVE = "objective"            # the sweep objective's value (its name: OBJECTIVE_NAME)
EPOCH = "epoch"

# -- tags ---------------------------------------------------------------------------------------

PARENT_RUN = "mlflow.parentRunId"       # MLflow's own: nests a job's run under its sweep's
SOURCE_COMMIT = "mlflow.source.git.commit"
SOURCE_CLEAN = "capx.source.git.clean"  # "true": capx's checkout had no changes when the run began
SOURCE_NAME = "mlflow.source.name"
ARITHMETIC = "capx.arithmetic"          # NumPy and its BLAS (capx.tracking.arithmetic)
FINGERPRINT = "capx.fingerprint"        # a config hash (capx.tracking.finished): same job, same value
TEST_SPLIT = "capx.test_split"          # "test", or "val" when the split scheme made no test set
SWEEP_ID = "capx.sweep_id"              # on a sweep's parent run: its folder (absolute)
SWEEP_CHILD = SWEEP_ID + ".child"       # on a job's run: the folder of the sweep it belongs to
SWEEP_DIR = "capx.sweep_dir"
SWEEP_OVERRIDES = "capx.sweep_overrides"
RESUMED = "capx.resumed"
RESUMED_FROM = "capx.resumed_from"
RESUME_ERROR = "capx.resume_error"      # a resume that could not start (the run keeps its status)
RESUMES = "capx.resumes"                # how many times the run was resumed
RESUMED_SETTING = "capx.resumed."       # + a key: its value now, where a resume changed it
OBJECTIVE_NAME = "capx.objective"       # which metric the run's `objective` is
BEST_TRIAL = "capx.best_trial"          # on a sweep's parent: the child with the best objective
STOPPED_BY = "capx.stopped_by"          # the signal or interrupt that stopped training
LOCAL_CHECKPOINT = "capx.checkpoint.local"   # the newest sitting's last.npz on its machine
CHECKPOINT_ITERATION = "capx.checkpoint.iteration"  # the iteration of the newest last.npz written
RECORD_INCOMPLETE = "capx.record.incomplete"  # what the run's record lacks (writes that failed)
ERROR = "error"
ERROR_TYPE = "error_type"
#: the tags that label a run in an export (which setting, fold and seed it is)
LABELS = ("dataset", "tokenizer", "cell", "seed", "split", "fold", "preset", "experiment",
          TEST_SPLIT)

# -- artifact paths -----------------------------------------------------------------------------

CONFIG_YAML = "config/config.yaml"
OVERRIDES_TXT = "config/overrides.txt"
HYDRA_CONFIG = "config/hydra"
CHECKPOINTS = "checkpoints"
MODEL = "model"  # the run's logged model: mlflow.pyfunc.load_model("runs:/<id>/model")
LAST_CHECKPOINT = CHECKPOINTS + "/last.npz"
LOSS_CURVE = "plots/loss_curve.png"
SAMPLE_GRID = "samples/grid.png"
EVALUATION_CAPTIONS = "evaluation/captions.txt"
EVALUATION_TABLE = "evaluation/captions.json"   # every test caption, references, scores
PER_IMAGE = "evaluation/per_image.json"  # per-image test scores: what the bootstrap resamples
ERROR_TXT = "error.txt"
REPORT = "report"                        # a sweep's report, on its parent run


def resume_folder(number: int) -> str:
    """The artifacts of a run's ``number``-th resume (its overrides and config)."""
    return f"resumes/{number}"


def epoch_samples(epoch: int) -> str:
    """The artifact with an epoch's sample captions."""
    return f"samples/epoch_{epoch:03d}.txt"


def samples_table(first_epoch: int, last_epoch: int) -> str:
    """The sample captions of epochs ``first_epoch``..``last_epoch`` as one MLflow table, with an
    ``epoch`` column (written once, when the job ends: a resumed run adds its own epochs')."""
    return f"samples/epochs_{first_epoch:03d}-{last_epoch:03d}.json"
