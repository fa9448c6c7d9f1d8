# Two commands on a fresh Debian/Ubuntu machine:
#   make demo   installs what is missing, then trains the MLP on Fashion-MNIST on the GPU
#   make test   installs what is missing, then runs the whole test suite
# Mesa's software Vulkan driver (lavapipe) is installed only where no Vulkan driver is present,
# the Fashion-MNIST package only where the data is absent, the fortunes package (the language
# models' default text) likewise, OpenMPI and libclang (for the data-parallel tests) only where
# missing; sudo only when not root.

SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DATA ?= /usr/share/datasets/fashion-mnist
TEXT ?= /usr/share/games/fortunes
export XDG_RUNTIME_DIR ?= /tmp

.PHONY: demo test deps vulkan data text mpi toolchain

MPI_PACKAGES := libopenmpi-dev openmpi-bin libclang1-14 libclang-common-14-dev

demo: deps
	cargo run --release -- train --model mlp --optimizer adam --lr 1e-3 --schedule cosine --batch 64 --epochs 10 --validation 0 --seed 1 \
		--data $(DATA) --metrics-json target/demo-metrics.json --checkpoint target/demo-mlp.safetensors --plots target/demo-plots

# Ends with one 'N passed, M failed' line summed over every test binary.
test: deps
	@mkdir -p target
	set -o pipefail; cargo test --workspace --features mpi 2>&1 | tee target/test.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {print p " passed, " f " failed"}' target/test.log

deps: toolchain vulkan data text mpi

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
