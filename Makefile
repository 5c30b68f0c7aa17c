# Fresh machine:  make demo   (calibrate + build a real YOLOv8n on real photos)   |   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ASSETS := calib_data/models/yolov8n_320.onnx
OUT    := out

.PHONY: install assets test lint demo bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $@

assets: $(ASSETS)

$(ASSETS): calib_data/assets.sha256 | $(STAMP)
	$(BIN)/python calib_data/fetch_assets.py calib_data

test: $(STAMP) $(ASSETS)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check qdqtool cli tests bench

demo: $(STAMP) $(ASSETS)
	bash bench/demo.sh $(BIN) $(OUT)

bench: $(STAMP) $(ASSETS)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) $(OUT) bench_out
