//! The `mutt` binary: [`mutt::run`] with this process's arguments.
//!
//! # Layout
//!
//! No modules: everything is in the library (`lib.rs`), which `muttdev` runs too.

/// mimalloc: under MUTT's many short-lived allocations (entries, JSON values, strings) it
/// cuts the alerter's CPU per event by a fifth against glibc's allocator, for about twice
/// the resident memory (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    mutt::run(std::env::args_os())
}
