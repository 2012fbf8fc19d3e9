//! Concurrent push clients: each sends its own request bodies, in order,
//! on its own keep-alive connection, as the agents of different nodes do.

use std::sync::Arc;
use std::time::Duration;

use larch_testkit::http::Connection;

/// Request bodies (snappy protobuf) per client: `[client][request]`.
pub type PerClient = Vec<Vec<Vec<u8>>>;

/// Sends every client's bodies to `/loki/api/v1/push`, in order, each
/// client on its own thread and connection (client `i` to
/// `ports[i % ports.len()]`), and fails unless every push is answered
/// 204. `read_timeout` bounds the wait for each answer (the test kit's
/// default when `None`).
pub fn push_all(
    ports: &[u16],
    bodies: &Arc<PerClient>,
    read_timeout: Option<Duration>,
) -> anyhow::Result<()> {
    anyhow::ensure!(!ports.is_empty(), "no port to push to");
    let workers: Vec<_> = (0..bodies.len())
        .map(|client| {
            let bodies = bodies.clone();
            let port = ports[client % ports.len()];
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut c = match read_timeout {
                    Some(t) => Connection::connect_with_timeout(port, t)?,
                    None => Connection::connect(port)?,
                };
                for body in &bodies[client] {
                    let r = c.request(
                        "POST",
                        "/loki/api/v1/push",
                        &[larch_testkit::push::PROTOBUF],
                        body,
                    )?;
                    anyhow::ensure!(r.status == 204, "push answered {}: {}", r.status, r.text());
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    Ok(())
}
