//! Benchmarks of Larch; see BENCHMARKS.md.
