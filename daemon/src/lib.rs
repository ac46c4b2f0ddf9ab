//! podswarmd as a library, so its parts are testable without a running system: configuration,
//! the desired-state store, the podman edge, the reconciler and the REST API.

pub mod api;
pub mod cli;
pub mod config;
pub mod podman;
pub mod probe;
pub mod reconcile;
pub mod state;
