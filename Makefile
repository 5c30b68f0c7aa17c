# Fresh machine:  make demo   (calibrate + build a real YOLOv8n on real photos)   |   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ASSETS := calib_data/models/yolov8n_320.onnx
OUT    := out

.PHONY: install assets test lint demo bench bench-peers fuzz clean browser screenshot

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

assets: $(ASSETS)

$(ASSETS): calib_data/assets.sha256 | $(STAMP)
	$(BIN)/python calib_data/fetch_assets.py calib_data

test: $(STAMP) $(ASSETS)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check qdqtool cli tests bench

DEMO_DATA := --data calib_data/images --preset yolo --size 320
demo: $(STAMP) $(ASSETS)
	@mkdir -p $(OUT)
	@echo "== 1/3 calibrate (default flags: --method auto): FP32 YOLOv8n + 18 real photos -> Q/DQ ONNX placed by TensorRT's rules"
	$(BIN)/qdqtool calibrate calib_data/models/yolov8n_320.onnx $(DEMO_DATA) \
		-o $(OUT)/yolov8n.qdq.onnx --cache $(OUT)/yolov8n.calib.cache
	@echo "== 2/3 check: how TensorRT will fuse and type the layers (from the graph alone)"
	$(BIN)/qdqtool check $(OUT)/yolov8n.qdq.onnx --fail-on float-add,requant-concat --html $(OUT)/yolov8n.check.html
	@echo "== the predicted engine as a page (open it in a browser, no network needed): $(OUT)/yolov8n.check.html"
	@echo "== 3/3 build: TensorRT if present with a GPU (yolov8n.qdq.engine), else ONNX Runtime (yolov8n.qdq.ort.onnx,"
	@echo "       TensorRT's gates then judged on check's prediction); per-layer precision"
	$(BIN)/qdqtool build $(OUT)/yolov8n.qdq.onnx $(DEMO_DATA) --runs 20 --fail-on float-add,requant-concat,reformat \
		--report $(OUT)/yolov8n.layers.json --show summary

# Headless Chromium for the engine page's browser tests (Debian's package; tests skip without it)
browser:
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)

# The README's picture of the engine page (TensorRT pair resnet18-qat-residual from ../shared, report --compare)
screenshot: $(STAMP) browser
	$(BIN)/python -m bench.bench_engine_page shot docs/engine-page.png

# Random graphs: 400 per property with fresh seeds (make test runs 25 with a fixed seed)
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_random_graphs.py

bench: $(STAMP) $(ASSETS)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# NVIDIA ModelOpt (ONNX PTQ) in its own venv for the accuracy bench's peer rows; torch's CPU build is enough.
PEERS := .venv-peers
bench-peers:
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install torch==2.13.0
	$(PEERS)/bin/pip install torch==2.13.0 "nvidia-modelopt[onnx]==0.47.0" requests huggingface_hub pillow

clean:
	rm -rf $(VENV) $(OUT) bench_out
