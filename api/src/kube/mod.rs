//! The Kubernetes API's own documents, as kubectl reads them: discovery, `Status` errors and
//! `Table` answers. Objects themselves are `k8s-openapi` types.

pub mod discovery;
pub mod fields;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod status;
pub mod table;
pub mod tables;
