# The single entry point. `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: install install-dev peers run test test-fast lint fuzz chaos bench bench-ingest bench-e2e bench-delivery bench-learned bench-page bench-quality bench-verdict-matrix bench-noise-reading bench-motion-echo bench-verdict-interpolation models clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# The tests cover training and export too, so they need the train extra (torch==2.13.0, CPU).
$(STAMP_DEV): pyproject.toml $(STAMP_RUN)
	$(BIN)/pip install --quiet -e '.[dev,train]'
	touch $@

install: $(STAMP_RUN)

install-dev: $(STAMP_DEV)

peers:
	bash scripts/peers.sh

run: install
	$(BIN)/qcgate serve

test: install-dev peers
	$(BIN)/pytest $(PYTEST_ARGS)

# In-process tests only (no DICOM, Redis or PostgreSQL peers, no subprocess servers): under a minute.
test-fast: install-dev
	$(BIN)/pytest -m "not peers and not slow" $(PYTEST_ARGS)

# Coverage-guided fuzzing of the receiver's parse-and-validate path for FUZZ_SECONDS (default 600);
# the corpus grows in .fuzz/corpus, a crash is written to .fuzz/ (docs/reliability.md).
FUZZ_SECONDS ?= 600
fuzz: install-dev
	mkdir -p .fuzz/corpus
	$(BIN)/python tests/fuzz/receive.py .fuzz/corpus -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=.fuzz/ -print_final_stats=1

# Series stream in while a worker, Redis, PostgreSQL and the receiver are killed and restarted, on a
# PostgreSQL and a Redis of its own (docs/reliability.md); exits 1 if anything was lost or done twice.
chaos: install-dev peers
	$(BIN)/python -m qcgate.bench.chaos

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy service/qcgate export/qcgate

bench: bench-ingest bench-e2e

bench-ingest: install-dev peers
	$(BIN)/python -m qcgate.bench.ingest

bench-e2e: install-dev peers
	$(BIN)/python -m qcgate.bench.end_to_end

bench-delivery: install-dev peers
	$(BIN)/python -m qcgate.bench.delivery

bench-learned: install-dev
	$(BIN)/python -m qcgate.bench.learned

# The QC page's server time: worklist over 10,000 series, mosaic of a 176-slice series (docs/page.md).
bench-page: install-dev
	$(BIN)/python -m qcgate.bench.page

bench-quality: install-dev
	$(BIN)/python -m qcgate.bench.quality --out bench/out/quality

# The verdict on clean synthetic slices by matrix size, 48 to 1024 (docs/verdict.md).
bench-verdict-matrix: install-dev
	$(BIN)/python -m qcgate.bench.verdict_matrix

# How the verdict's noise feature reads a known noise level, by matrix and SNR (docs/training.md).
bench-noise-reading: install-dev
	$(BIN)/python -m qcgate.bench.noise_reading

# A candidate motion feature, echo, against the shipped features on synthetic slices (docs/training.md).
bench-motion-echo: install-dev
	$(BIN)/python -m qcgate.bench.motion_echo

# The default flag on clean slices interpolated 1-3.6 times beside severely blurred ones (docs/training.md).
bench-verdict-interpolation: install-dev
	$(BIN)/python -m qcgate.bench.verdict_interpolation

# Retrain and re-export every shipped model from scratch (about an hour on 2 CPU cores).
# The training stack pinned (models/constraints.txt) so that a fresh machine rebuilds the shipped models.
models: install-dev
	$(BIN)/pip install --quiet -c models/constraints.txt numpy scipy scikit-image torch onnx onnxscript onnxconverter-common onnxruntime pydicom
	$(BIN)/python -m qcgate.models.release

clean:
	rm -rf $(VENV) qcgate-data .pytest_cache .mypy_cache .ruff_cache
