//! Manifest intake: the one place where user-supplied Kubernetes objects enter podswarm.
//!
//! Both the REST API and `podswarmctl` feed text through [`parse`], so a manifest is accepted or
//! refused the same way wherever it comes from. The pipeline is:
//!
//! 1. bound the input (bytes, documents, nodes, alias expansion) before building anything big;
//! 2. split YAML streams (or JSON values) into documents and expand `kind: List`;
//! 3. decode each object into its `k8s-openapi` type, with the failing field's path;
//! 4. refuse fields Kubernetes itself does not know (as `kubectl --validate=strict` does);
//! 5. validate what podswarm relies on (names, ranges, references, paths) and collect every
//!    problem, so a user fixes a file in one round instead of one error at a time;
//! 6. warn about every field Kubernetes knows but podswarm does not act on: a field is never
//!    dropped without saying so.
//!
//! A Deployment's rollout settings are read by [`Rollout::of`] with the same checks intake applies
//! (see [`rollout`]), so the daemon's planner never meets a setting intake let through unchecked.
//!
//! Validation deliberately lives here and not in the generator: the API must refuse bad input at
//! apply time, on whatever node receives it, rather than fail later on the node that runs the pod.

mod error;
pub mod kinds;
mod names;
mod parse;
mod pods;
mod quantity;
pub mod rollout;
mod support;
mod validate;

pub use error::{Error, Origin, Problem};
pub use names::{
    is_config_key, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_env_var_name,
    is_iana_svc_name, is_label_value, is_qualified_name,
};
pub use parse::{
    FieldValidation, Limits, Manifest, Object, ParsedObject, UNKNOWN_FIELD, parse, parse_with,
    read_documents,
};
pub use pods::{Owner, PodInstance, pods_of, replica_ordinal, replicas_of, template_hash};
pub use quantity::{QuantityError, cpu_millis, memory_bytes};
pub use rollout::{IntOrPercent, Rollout, RolloutError, RolloutErrorKind, Strategy};
pub use validate::{Policy, host_path_allowed};
