//! podswarmd as a library, so its parts are testable without a running system: configuration,
//! the desired-state store, the podman edge, the reconciler and the REST API.

pub mod api;
pub mod autorollback;
pub mod cli;
pub mod events;
mod execute;
pub mod groups;
pub mod lifecycle;
pub mod link;
pub mod metrics;
pub mod model;
/// The configuration file, shared with podswarm's other daemons.
pub use podswarm_config as config;
pub mod plan;
pub mod podman;
pub mod probe;
pub mod reconcile;
pub mod rollout;
pub mod routes;
pub mod schedule;
pub mod state;
pub mod status;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod view;
