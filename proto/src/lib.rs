//! Wire types of Larch.
//!
//! * [`logproto`]: Loki's push protocol. `POST /loki/api/v1/push` carries a
//!   snappy-compressed (raw block format) [`logproto::PushRequest`]; the gRPC
//!   service `logproto.Pusher/Push` carries the same message uncompressed.
//! * [`otlp`]: the OTLP logs messages accepted on `POST /otlp/v1/logs`.
//! * [`larch`]: the service between Larch's write nodes (`larch.Replica`:
//!   forwarded pushes, readiness), carrying Loki's push messages.
//! * [`prometheus`]: Prometheus remote write 1.0's `WriteRequest`, which
//!   the ruler sends (snappy-compressed) with recording rules' samples.
//!
//! The code is generated at build time from `proto/**/*.proto` by a pure-Rust
//! compiler, so no `protoc` is needed.

#![allow(missing_docs)]

/// Loki's push protocol (package `logproto`).
pub mod logproto {
    include!(concat!(env!("OUT_DIR"), "/logproto.rs"));
}

/// OTLP logs (package `otlp`, field numbers of OTLP v1).
pub mod otlp {
    include!(concat!(env!("OUT_DIR"), "/otlp.rs"));
}

/// Prometheus remote write 1.0 (package `prometheus`, field numbers of
/// Prometheus' `prompb`).
pub mod prometheus {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// Larch's own service between write nodes (package `larch`).
pub mod larch {
    include!(concat!(env!("OUT_DIR"), "/larch.rs"));
}
