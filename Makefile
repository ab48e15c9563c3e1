# cubicle: the top-level entry points (README). Meson + Ninja do the building.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
MESON      ?= meson
GUEST_ENV  := $(BUILD)/guest.env

.PHONY: all deps build build-asan guest demo test test-unit test-e2e test-e2e-asan format-check bench \
	clean \
	fuzz-build fuzz fuzz-smoke

all: build

deps:
	./scripts/install-deps

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD_ASAN)/build.ninja:
	$(MESON) setup $(BUILD_ASAN) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

build-asan: deps $(BUILD_ASAN)/build.ninja
	ninja -C $(BUILD_ASAN)

# libFuzzer targets (clang, ASan + UBSan). The corpus grows in $(BUILD_FUZZ)/corpus/<target>,
# seeded from fuzz/corpus/<target>; crashes land in $(BUILD_FUZZ) as crash-<sha1>.
$(BUILD_FUZZ)/build.ninja:
	CC=clang $(MESON) setup $(BUILD_FUZZ) -Dfuzz=true -Dtests=false

fuzz-build: deps $(BUILD_FUZZ)/build.ninja
	ninja -C $(BUILD_FUZZ)

# Every target in fuzz/ (scripts/fuzz): 10 minutes each for `make fuzz`, 20 s each in `make test`.
fuzz: fuzz-build
	./scripts/fuzz $(BUILD_FUZZ) 600

fuzz-smoke: fuzz-build
	./scripts/fuzz $(BUILD_FUZZ) 20

# The default guest: kernel (cached per machine), initramfs and the tiny test guest.
guest: build
	./guest/build.sh $(BUILD) > $(GUEST_ENV).tmp && mv $(GUEST_ENV).tmp $(GUEST_ENV)

demo: guest
	./scripts/demo $(BUILD)

format-check:
	./scripts/format-check

test-unit: build build-asan
	$(MESON) test -C $(BUILD) --suite unit --print-errorlogs
	$(MESON) test -C $(BUILD_ASAN) --suite unit --print-errorlogs

test-e2e: guest
	/usr/bin/python3 -m pytest -v -ra tests/e2e

# The end-to-end tests that need no Linux boot, again on the ASan+UBSan build: a sanitizer report
# ends cubicle with an error, which fails the test. LeakSanitizer is off there (its exit-time
# scan clones a non-thread task and ptraces, which the seccomp filters forbid); leaks are caught
# by the unit tests under ASan. The jailer tests need the static binary (a jail has no /lib).
test-e2e-asan: build-asan
	./guest/build.sh $(BUILD_ASAN) > $(BUILD_ASAN)/guest.env.tmp && \
		mv $(BUILD_ASAN)/guest.env.tmp $(BUILD_ASAN)/guest.env
	CUBICLE_BUILD=$(BUILD_ASAN) ASAN_OPTIONS=detect_leaks=0 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		/usr/bin/python3 -m pytest -q -ra --ignore-glob='*linux*' \
		--ignore=tests/e2e/test_jailer.py tests/e2e

test: format-check fuzz-smoke test-unit test-e2e test-e2e-asan

bench: guest
	./bench/boot/run $(BUILD)
	./bench/devices/run $(BUILD)
	./bench/api/run $(BUILD)
	./bench/blk/run $(BUILD)
	./bench/net/run $(BUILD)
	./bench/vsock/run $(BUILD)
	./bench/restore/run $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
