//! podswarm's REST API contract (DESIGN.md, "REST API"): every request and response body
//! podswarmd serves under `/api/v1` and podswarmctl sends and reads, as types both sides use.
//!
//! Why a crate of its own: podswarmd used to serialise its views while podswarmctl read them
//! back as untyped JSON through string keys, and podswarmctl's tests ran against hand-written
//! JSON, so a renamed field on one side failed nothing. Now a change to a type here changes
//! both sides at once, and what is left to disagree on fails to compile.
//!
//! The wire format is the one clients already read (the booted-node tests, scripts, older
//! podswarmctl): camelCase names, `null` for an absent optional value unless a field says it is
//! skipped, Kubernetes objects as Kubernetes writes them. Changing a type here changes the API:
//! - a new field must be optional (`Option`, or `#[serde(default)]`) so answers of nodes still
//!   on the older version keep reading during an upgrade;
//! - responses never deny unknown fields, so an older podswarmctl reads a newer node's answer;
//! - enums read values they do not know as a catch-all variant ([`PodReason::Unknown`],
//!   [`Action::Unknown`]) rather than failing the whole answer.
//!
//! Request bodies are decoded strictly by podswarmd (unknown fields refused where the handler
//! always refused them), so a misspelt field is an error rather than silently ignored.
//!
//! Kubernetes objects (Services, Ingresses, a Deployment's spec) travel as `k8s-openapi` types:
//! the API returns what was applied, and DESIGN.md asks for those types rather than hand-written
//! ones. This crate does not pick a Kubernetes version; the binaries do.
//!
//! Answers are turned into a value or the API's error with [`decode`], the one place that knows
//! the error shape.

mod error;
pub mod kube;
mod pod;
mod workload;
mod write;

pub use error::{Error, ErrorBody, decode};
pub use pod::{ContainerView, Phase, PodReason, PodView};
pub use podswarm_view::Whitelist;
pub use workload::{
    Addresses, ConditionReason, ConditionStatus, ConditionType, DeploymentCondition,
    DeploymentDetail, DeploymentRevision, DeploymentStatus, Endpoint, Endpoints, Node,
    ServiceDetail,
};
pub use write::{
    Action, Applied, ApplyResult, CreatedToken, Deleted, Health, HostBody, NewToken, ObjectRef,
    PodMove, Rebalance, Revoked, Scale, Scaled, Token, WhitelistBody,
};

use serde::{Deserialize, Serialize};

/// A list answer: `{"items": [...]}` (pods, deployments, services, ingresses, nodes, tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct List<T> {
    pub items: Vec<T>,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List { items: Vec::new() }
    }
}

impl<T> From<Vec<T>> for List<T> {
    fn from(items: Vec<T>) -> Self {
        List { items }
    }
}
