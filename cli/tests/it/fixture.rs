//! The data most tests read: three streams with known lines one second
//! apart, pushed over HTTP to a fresh store.

use crate::support::{Larch, SEC, StoreExt, StoreProcess, base_time, larch, secs, start_store};

pub struct Fixture {
    pub store: StoreProcess,
    /// The whole second the lines start after.
    pub base: i64,
}

/// Lines (offset in seconds from `base`); `service_name` is given
/// explicitly because the store, like Loki, derives it from `app` anyway:
/// * `{app="api", env="prod", pod="a", service_name="api"}`: 1 `GET /users 200`,
///   3 `GET /orders 500 error`, 5 `  padded line  `
/// * `{app="api", env="prod", pod="b", service_name="api"}`: 2 `POST /login 200`,
///   4 `GET /users 404 error`
/// * `{app="web", env="dev", service_name="web"}`: 6 `rendered page`
pub fn fixture() -> Fixture {
    let store = start_store();
    let b = base_time();
    store.push(
        None,
        &[
            (
                &[
                    ("app", "api"),
                    ("env", "prod"),
                    ("pod", "a"),
                    ("service_name", "api"),
                ],
                &[
                    (b + SEC, "GET /users 200"),
                    (b + 3 * SEC, "GET /orders 500 error"),
                    (b + 5 * SEC, "  padded line  "),
                ],
            ),
            (
                &[
                    ("app", "api"),
                    ("env", "prod"),
                    ("pod", "b"),
                    ("service_name", "api"),
                ],
                &[
                    (b + 2 * SEC, "POST /login 200"),
                    (b + 4 * SEC, "GET /users 404 error"),
                ],
            ),
            (
                &[("app", "web"), ("env", "dev"), ("service_name", "web")],
                &[(b + 6 * SEC, "rendered page")],
            ),
        ],
    );
    Fixture { store, base: b }
}

impl Fixture {
    /// `larch <args> --addr <store> -z UTC`.
    pub fn larch(&self, args: &[&str]) -> Larch {
        let addr = self.store.addr();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--addr", &addr, "-z", "UTC"]);
        larch(&all)
    }

    /// Like [`Fixture::larch`] plus `--from base --to base+60s`.
    pub fn ranged(&self, args: &[&str]) -> Larch {
        let (from, to) = (secs(self.base), secs(self.base + 60 * SEC));
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--from", &from, "--to", &to]);
        self.larch(&all)
    }

    /// The UTC RFC 3339 text of `base + s` seconds.
    pub fn t(&self, s: i64) -> String {
        crate::support::rfc3339(self.base + s * SEC)
    }
}
