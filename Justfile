# Recipes for those who have `just`; each is one cargo command, so nothing here needs more than cargo.

# gitlab.wasm, host and gitlab-sim, in release
build:
    cargo xtask build

# start the simulator, sync a group into SQLite, show what arrived
demo:
    cargo xtask demo

# the whole test suite (builds what it needs)
test:
    cargo test --release

# formatting and lints, as CI would want them
check:
    cargo fmt --all -- --check
    cargo clippy --release --all-targets -- -D warnings
    cargo clippy --release --target wasm32-wasip2 -p gitlab-connector -p json-scan -p token-thief -- -D warnings

# benchmarks: criterion (the connector natively vs in wasm; creating a sandbox), then the end-to-end figures
bench:
    cargo xtask build
    cargo bench -p bench --bench normalize
    cargo bench -p bench --bench instantiate
    cargo run --release -p bench --bin e2e

# the connector natively vs in wasm, in instructions per page (callgrind: steady on a noisy machine; needs valgrind)
bench-instructions:
    cargo run --release -p bench --bin instructions
