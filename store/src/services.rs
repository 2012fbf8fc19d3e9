//! The roles a store process runs and the state of each, as Loki's
//! `GET /services` reports its modules: one `name => State` line per role.
//!
//! The binary registers each role it starts (`server`, `ingester`,
//! `distributor`, `querier`, `compactor`, `ui`, the embedded `agent`...)
//! and moves it through [`ServiceState`] as it starts and stops; the
//! handler only reads. Names are the binary's, not clients', so the list
//! is small and fixed.

use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;

/// A role's life, with Loki's names (`services.State`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceState {
    /// Registered, not started.
    New,
    /// Starting.
    Starting,
    /// Serving.
    Running,
    /// Shutting down.
    Stopping,
    /// Stopped normally.
    Terminated,
    /// Stopped with an error.
    Failed,
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceState::New => "New",
            ServiceState::Starting => "Starting",
            ServiceState::Running => "Running",
            ServiceState::Stopping => "Stopping",
            ServiceState::Terminated => "Terminated",
            ServiceState::Failed => "Failed",
        })
    }
}

/// The registry: roles in the order they were registered. Cloning shares
/// it.
#[derive(Clone, Debug, Default)]
pub struct Services {
    roles: Arc<RwLock<Vec<(String, ServiceState)>>>,
}

impl Services {
    /// An empty registry.
    pub fn new() -> Services {
        Services::default()
    }

    /// Sets the state of `name`, registering it at the end if it is new.
    pub fn set(&self, name: &str, state: ServiceState) {
        let mut roles = self.roles.write();
        match roles.iter_mut().find(|(n, _)| n == name) {
            Some((_, s)) => *s = state,
            None => roles.push((name.to_string(), state)),
        }
    }

    /// Sets every role that is running to `state` (`Stopping` at shutdown).
    pub fn set_running(&self, state: ServiceState) {
        for (_, s) in self.roles.write().iter_mut() {
            if *s == ServiceState::Running {
                *s = state;
            }
        }
    }

    /// The state of `name`, if registered.
    pub fn state(&self, name: &str) -> Option<ServiceState> {
        self.roles
            .read()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| *s)
    }

    /// Every role and its state, in registration order.
    pub fn list(&self) -> Vec<(String, ServiceState)> {
        self.roles.read().clone()
    }

    /// Loki's text: `name => State`, one line per role.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, state) in self.roles.read().iter() {
            out.push_str(name);
            out.push_str(" => ");
            out.push_str(&state.to_string());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_keep_their_order_and_render_as_loki_does() {
        let s = Services::new();
        s.set("server", ServiceState::Starting);
        s.set("ingester", ServiceState::Running);
        s.set("server", ServiceState::Running);
        s.set("agent", ServiceState::Failed);
        assert_eq!(
            s.render(),
            "server => Running\ningester => Running\nagent => Failed\n"
        );
        s.set_running(ServiceState::Stopping);
        assert_eq!(s.state("server"), Some(ServiceState::Stopping));
        assert_eq!(s.state("agent"), Some(ServiceState::Failed));
        assert_eq!(s.state("ruler"), None);
        assert_eq!(s.list().len(), 3);
    }
}
