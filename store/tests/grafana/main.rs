//! The Grafana replay suite: a real `larch-store` process, data pushed
//! through the real push API, and every request Grafana's Loki data source
//! and Logs Drilldown send, with the response shapes their parsers need.
//!
//! Grafana cannot run here (it is in neither Debian nor npm/PyPI), so each
//! request is replayed as Grafana builds it, and each test names the
//! Grafana source file the request comes from (grafana/grafana
//! `pkg/tsdb/loki/*`, `public/app/plugins/datasource/loki/*`;
//! grafana/logs-drilldown `src/services/*`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod drilldown;
mod explore;
mod health;
mod metadata;
mod support;
mod tail;
