# Two commands on a fresh Debian/Ubuntu machine:
#   make demo   installs what is missing, then trains the MLP on Fashion-MNIST on the GPU
#   make test   installs what is missing, builds the page, then runs the whole test suite
#   make web    builds Kiln for the browser and serves the training page on 127.0.0.1
# Mesa's software Vulkan driver (lavapipe) is installed only where no Vulkan driver is present,
# the Fashion-MNIST package only where the data is absent, the fortunes package (the language
# models' default text) likewise, OpenMPI and libclang (for the data-parallel tests) only where
# missing; sudo only when not root. The page needs Debian's wasm toolchain and Chromium (for its
# test), installed where missing (../shared/web/BROWSER.md), and wasm-bindgen, built once
# into target/tools.

SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DATA ?= /usr/share/datasets/fashion-mnist
TEXT ?= /usr/share/games/fortunes
export XDG_RUNTIME_DIR ?= /tmp

PORT ?= 8000

.PHONY: demo test deps vulkan data text mpi toolchain web web-build browser wasm-bindgen

MPI_PACKAGES := libopenmpi-dev openmpi-bin libclang1-14 libclang-common-14-dev

demo: deps
	cargo run --release -- train --model mlp --optimizer adam --lr 1e-3 --schedule cosine --batch 64 --epochs 10 --validation 0 --seed 1 \
		--data $(DATA) --metrics-json target/demo-metrics.json --checkpoint target/demo-mlp.safetensors --plots target/demo-plots

# Ends with one 'N passed, M failed' line summed over every test binary. The tests keep their
# own tuning cache: kernels timed while tests share the cores are no choice for real runs.
test: deps web-build
	@mkdir -p target
	set -o pipefail; KILN_TUNE_CACHE=$(CURDIR)/target/test-tune.json cargo test --workspace --features mpi 2>&1 | tee target/test.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {print p " passed, " f " failed"}' target/test.log

deps: toolchain vulkan data text mpi

web: deps web-build
	python3 www/serve.py --port $(PORT) --data $(DATA)

WEB_PACKAGES := rustc-web cargo-web rust-web-src rust-web-llvm lld-22 chromium
WASM_BINDGEN := target/tools/bin/wasm-bindgen
WASM_BINDGEN_VERSION = $(shell awk '/^name = "wasm-bindgen"$$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)

# Debian's rustc 1.96 builds the standard library for wasm32 itself (-Zbuild-std), in a target
# folder of its own so that native builds stay warm.
web-build: browser wasm-bindgen
	RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 PATH=/usr/bin:$$PATH /usr/bin/cargo build --release \
		--target wasm32-unknown-unknown -Zbuild-std=std,panic_abort -p kiln-web --target-dir target/wasm
	$(WASM_BINDGEN) --target web --no-typescript --out-dir www/pkg target/wasm/wasm32-unknown-unknown/release/kiln_web.wasm

browser:
	@if dpkg -s $(WEB_PACKAGES) >/dev/null 2>&1; then \
		echo "wasm toolchain and Chromium present"; \
	else \
		echo "wasm toolchain or Chromium missing: installing $(WEB_PACKAGES)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(WEB_PACKAGES); \
	fi

wasm-bindgen:
	@if $(WASM_BINDGEN) --version 2>/dev/null | grep -qx "wasm-bindgen $(WASM_BINDGEN_VERSION)"; then \
		echo "wasm-bindgen $(WASM_BINDGEN_VERSION) present"; \
	else \
		echo "building wasm-bindgen $(WASM_BINDGEN_VERSION) into target/tools (once)"; \
		cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --no-default-features --root target/tools --force; \
	fi

toolchain:
	@command -v cargo >/dev/null || { echo "Rust is missing: install it with rustup (https://rustup.rs), then run make again"; exit 1; }

vulkan:
	@if ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json 2>/dev/null | grep -q . && ldconfig -p | grep -q libvulkan.so.1; then \
		echo "Vulkan driver present"; \
	else \
		echo "No Vulkan driver: installing Mesa's (lavapipe runs on the CPU)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mesa-vulkan-drivers libvulkan1; \
	fi

data:
	@if ls $(DATA)/train-images-idx3-ubyte* >/dev/null 2>&1; then \
		echo "Fashion-MNIST present in $(DATA)"; \
	else \
		echo "Fashion-MNIST missing: installing the dataset-fashion-mnist package"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	fi

text:
	@if ls $(TEXT)/cookie >/dev/null 2>&1; then \
		echo "Fortunes present in $(TEXT)"; \
	else \
		echo "Fortunes missing: installing the fortunes package (the language models' default text)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq fortunes; \
	fi

mpi:
	@if dpkg -s $(MPI_PACKAGES) >/dev/null 2>&1; then \
		echo "OpenMPI and libclang present"; \
	else \
		echo "OpenMPI or libclang missing: installing $(MPI_PACKAGES)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $(MPI_PACKAGES); \
	fi
