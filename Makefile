# The two commands of the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.auditkit-installed
DEMO   ?= out/demo

.PHONY: demo test lint setup system-deps clean

setup: $(STAMP)

system-deps:
	@bash tools/system-deps.sh

$(STAMP): pyproject.toml
	@bash tools/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e ".[dev,dask,serve]"
	@touch $(STAMP)

demo: $(STAMP)
	@echo "== auditkit audit: sample_data/steel through steel-v1.onnx against industrial-aoi-acceptance"
	@rm -rf $(DEMO)
	@$(BIN)/auditkit audit sample_data/steel/manifest.csv \
	    --model sample_data/models/steel-v1.onnx \
	    --rubric industrial-aoi-acceptance --param latency_budget_ms=50 --out $(DEMO) --no-verify; \
	  code=$$?; if [ $$code -gt 4 ]; then exit $$code; fi; \
	  echo "(exit code $$code: 0 ACCEPT, 1 REJECT, 3 HOLD, 4 CONDITIONAL)"
	@echo "== auditkit verify $(DEMO)/report.pdf --trust $(DEMO)/dev-keys/ca.pem --recompute"
	@$(BIN)/auditkit verify $(DEMO)/report.pdf --trust $(DEMO)/dev-keys/ca.pem --recompute
	@if command -v pdfsig >/dev/null; then echo "== pdfsig (poppler)"; \
	  pdfsig $(DEMO)/report.pdf | grep -E "Signer Certificate Common Name|Signature Validation|Total document"; fi

lint: $(STAMP)
	$(BIN)/ruff check auditkit tests sample_data benchmarks
	$(BIN)/ruff format --check auditkit tests sample_data benchmarks
	$(BIN)/mypy auditkit/

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) out build dist .pytest_cache .mypy_cache .ruff_cache
