# Entry points. `make help` lists them. Every target that runs code depends on `setup`, so each
# README command works alone from a clean clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FREE_MODEL := body_models/free/FREE_ANNY_SMPL_NEUTRAL.pkl
# the free SMPL-X / MANO stand-ins (issue #16); not part of `setup` (the bake takes 1-3 min on 2 cores):
# whole-body targets and `test` (their tests compare the files with anny) list `free-wholebody-models`
FREE_WHOLEBODY := body_models/free/FREE_ANNY_SMPLX_NEUTRAL.npz body_models/free/FREE_ANNY_MANO_RIGHT.pkl body_models/free/FREE_ANNY_MANO_LEFT.pkl
CONFIG ?= configs/annotate/body_free.yaml
ARGS ?=
TRAINER ?=
SWEEP ?= --tiny
BENCH_ARGS ?=
BENCH_ANNOT_ARGS ?=
BENCH_TWO_STAGE_ARGS ?=
PRETRAIN_ARGS ?=
BENCH_THREADS_ARGS ?=
EST ?= pose2pose
PHOTOS ?= ../shared/data/photos
PHOTOS_BOXES ?=
PHOTOS_OUT ?= outputs/annotate-photos
PHOTOS_DEPS := .photos-deps
CKPT ?=
# CONFIG defaults to the annotation config; for the estimator targets only an explicit CONFIG=... counts
EST_CONFIG = $(if $(filter command line,$(origin CONFIG)),$(CONFIG),configs/estimator/$(EST).yaml)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
POSES ?= outputs/annotate-body/stage_a_cmu/pseudo_gt.npz
.PHONY: help setup free-wholebody-models osmesa chromium photos-deps annotate-photos annotate-body annotate-wholebody bench-hand check-body-models fixtures train-prior pretrain-backbone train-estimator eval-estimator sweep bench bench-annot bench-annot-scale bench-two-stage bench-threads wheelhouse-gpu gpu-check-dry-run test lint test-full clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

setup: $(VENV)/.installed $(FREE_MODEL) osmesa ## venv (torch 2.13 CPU first), package, free body model bake, OSMesa; idempotent

$(VENV)/.installed: setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,bake]"
	@touch $@

$(FREE_MODEL): | $(VENV)/.installed
	$(PY) tools/build_free_body_model.py --out $@

free-wholebody-models: | $(VENV)/.installed ## bake the free SMPL-X + MANO stand-ins from anny -> body_models/free/ (skips valid files; 1-3 min)
	$(PY) tools/build_free_body_model.py --wholebody --out-dir $(dir $(firstword $(FREE_WHOLEBODY)))

osmesa: ## install Debian's libosmesa6 for offscreen rendering when it is missing
	@ldconfig -p | grep -q libOSMesa.so || { echo "installing libosmesa6 (offscreen rendering)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libosmesa6 >/dev/null; }

chromium: ## install Debian's chromium (headless test of review.html) when it is missing; no browser download
	@command -v chromium >/dev/null || { echo "installing chromium (headless review-page test)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null \
	  || echo "chromium could not be installed: the review-page browser test will skip"; }

photos-deps: $(PHOTOS_DEPS)/.installed ## mediapipe 0.10.14 (BlazePose in its wheel) + pins into .photos-deps/, outside the venv, when missing

$(PHOTOS_DEPS)/.installed: tools/photos_requirements.txt | $(VENV)/.installed
	rm -rf $(PHOTOS_DEPS)
	$(PY) -m pip install -q --no-deps --target $(PHOTOS_DEPS) -r tools/photos_requirements.txt
	@touch $@

annotate-photos: setup photos-deps ## people + keypoints in your photos (PHOTOS=dir/, PHOTOS_BOXES=coco.json) -> Algorithm 1 -> pseudo-GTs, overlays, review.html in PHOTOS_OUT
	$(PY) tools/detect_people.py --images $(PHOTOS) --out $(PHOTOS_OUT)/detections $(if $(PHOTOS_BOXES),--boxes $(PHOTOS_BOXES))
	$(PY) tools/annotate.py --config configs/annotate/photos_free.yaml data.root=$(PHOTOS_OUT)/detections export.out_dir=$(PHOTOS_OUT) $(ARGS)

annotate-body: setup ## Algorithm 1 on the embedded default -> pseudo-GTs (CONFIG=..., TRAINER=configs/trainer/gpu.yaml, ARGS="key=value ...")
	$(PY) tools/annotate.py --config $(CONFIG) $(if $(TRAINER),--trainer $(TRAINER)) $(ARGS)

annotate-wholebody: setup free-wholebody-models ## SMPL-X pseudo-GTs: annotate-body + face and hand fits + integration -> outputs/annotate-wholebody/ (ARGS="key=value ...")
	$(PY) tools/annotate_wholebody.py --config configs/annotate/wholebody_free.yaml $(ARGS)

bench-hand: setup free-wholebody-models ## the per-sample MANO fit on synthetic hands of the free MANO model (exact 3D GT; ARGS=--annotator adds the hand annotator, ~8 min) -> outputs/bench-hand/results.json
	$(PY) tools/bench_hand_fit.py $(ARGS)

train-estimator: setup fixtures ## train an estimator g (EST=pose2pose|hmr, or CONFIG=configs/estimator/pose2pose_paper.yaml; ARGS="key=value ...")
	$(PY) tools/train_estimator.py --config $(EST_CONFIG) $(ARGS)

eval-estimator: setup ## evaluate a checkpoint from the file alone (CKPT=path; ARGS="key=value ...")
	@test -n "$(CKPT)" || { echo "usage: make eval-estimator CKPT=outputs/train-estimator/pose2pose/checkpoints/last.ckpt [ARGS=...]"; exit 2; }
	$(PY) tools/evaluate.py $(CKPT) $(ARGS)

bench-annot: setup ## NeuralAnnot (each recipe on/off, + fit), SMPLify, EFT on the realistic synthetic ITW split, 3 seeds -> outputs/bench-annot/results.{md,png}
	$(PY) tools/bench_annot.py $(BENCH_ANNOT_ARGS)

bench-annot-scale: setup ## NeuralAnnot (2D keypoint input), NeuralAnnot + fit, SMPLify against N = 64, 256, 1024, 2048 target people (~2 h on 2 cores) -> outputs/bench-annot-scale/scale.{md,png}
	$(PY) tools/bench_annot_scale.py $(BENCH_ANNOT_ARGS)

bench-two-stage: setup ## Pose2Pose (--estimator hmr) trained on each annotator's pseudo-GTs of the synthetic ITW split + no pseudo-GT + GT, tested on the synthetic test split, 3 seeds (~90 min on 2 cores) -> outputs/bench-two-stage/results.{md,json,png}
	$(PY) tools/bench_two_stage.py $(BENCH_TWO_STAGE_ARGS)

sweep: setup ## Three Recipes supp. Table A grid -> outputs/sweep/results.md (default 2x2 --tiny; SWEEP= for all 12 points; W&B agent with WANDB_API_KEY)
	$(PY) tools/sweep.py --config configs/sweep/reg_weights.yaml --base $(CONFIG) $(if $(TRAINER),--trainer $(TRAINER)) $(SWEEP) $(ARGS)

bench: setup ## annotator train/annotate samples/s vs a bare ResNet-50 (BENCH_ARGS="--device cuda --batch 192 --precision bf16")
	$(PY) tools/bench_train.py $(BENCH_ARGS)
	$(PY) tools/bench_annotate.py $(BENCH_ARGS)

bench-threads: setup ## annotator step rate alone vs beside an identical job, old vs new thread settings (BENCH_THREADS_ARGS="--settings before: after:CONFIGURE=1 --copies 1 2")
	$(PY) tools/bench_threads.py $(BENCH_THREADS_ARGS)

fixtures: setup ## write tiny copies of every supported dataset layout to outputs/fixtures/ (posed free body model)
	$(PY) tools/make_fixtures.py --out outputs/fixtures

train-prior: setup ## train a VPoser-architecture prior on SMPL poses (POSES=file.npz; default: the CMU pseudo-GTs of annotate-body)
	@test -f $(POSES) || { echo "no poses at $(POSES): run 'make annotate-body' first (its stage (a) writes them) or pass POSES=file.npz"; exit 2; }
	$(PY) tools/train_prior.py --poses $(POSES) --out outputs/prior $(ARGS)

pretrain-backbone: setup ## second recipe, free data: SimpleBaseline pose_resnet on synthetic + COCO samples -> outputs/pretrain-backbone/pose_resnet_18_free.pth (PRETRAIN_ARGS="depth=50 ...")
	$(PY) tools/pretrain_backbone.py --config configs/pretrain/backbone.yaml $(PRETRAIN_ARGS)

wheelhouse-gpu: $(FREE_MODEL) ## wheels the GPU machine lacks -> .whl/ (< 60 MiB), body model/CMU/photos -> .gpucheck/, EGL loaders -> .gl/ (bakes the free body model first when missing)
	$(PYTHON) tools/wheelhouse_gpu.py

gpu-check-dry-run: ## tools/gpu_check.sh --dry-run: the GPU check's every section at tiny sizes on CPU (needs a set-up venv)
	PATH=$(abspath $(VENV))/bin:$$PATH bash tools/gpu_check.sh --dry-run

check-body-models: setup ## validate the installed body models (free model; SMPL under BODY_MODELS_DIR)
	$(PY) tools/check_body_models.py

test: setup free-wholebody-models chromium ## ruff (the rules in pyproject.toml), then the default test suite (slow and GPU tests skipped; the free SMPL-X / MANO files and Chromium for the tests that need them)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: setup ## ruff alone (what `make test` runs first); `$(PY) -m ruff check --fix .` fixes the fixable
	$(PY) -m ruff check .

test-full: setup chromium ## every test, slow ones included (GPU tests skip without a GPU)
	$(PY) -m pytest -q -m "slow or not slow"

clean: ## remove outputs (keeps the venv and the baked body model)
	rm -rf outputs lightning_logs
