//! `/openapi/v3`: the documents of `podswarm_api::kube::openapi`, serialized once per process
//! (they only change with the binary) and named in the root by their digest, so kubectl's cache
//! keeps them until an upgrade.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use podswarm_api::kube::openapi as docs;
use podswarm_api::kube::status::Reason;
use sha2::{Digest, Sha256};

use super::{KubeError, KubeResult, json_response};

/// Each group version's document path (`api/v1`), its JSON and that JSON's digest.
fn documents() -> &'static [(String, Vec<u8>, String)] {
    static DOCUMENTS: OnceLock<Vec<(String, Vec<u8>, String)>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        docs::GROUP_VERSIONS
            .iter()
            .filter_map(|(group, version, _)| {
                let body = serde_json::to_vec(&docs::document(group, version)?).ok()?;
                let hash = Sha256::digest(&body)
                    .iter()
                    .map(|b| format!("{b:02X}"))
                    .collect();
                Some((docs::document_path(group, version), body, hash))
            })
            .collect()
    })
}

pub(super) async fn root() -> Response {
    let hashes: Vec<(String, String)> = documents()
        .iter()
        .map(|(path, _, hash)| (path.clone(), hash.clone()))
        .collect();
    json_response(&docs::root(&hashes))
}

pub(super) async fn document(Path(path): Path<String>) -> KubeResult {
    let (_, body, _) = documents()
        .iter()
        .find(|(p, ..)| *p == path)
        .ok_or_else(|| {
            KubeError::new(
                Reason::NotFound,
                format!("podswarm has no OpenAPI document {path:?}: /openapi/v3 lists them"),
            )
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            // The URL carries the document's digest: a new document has a new URL.
            (header::CACHE_CONTROL, "public, immutable"),
        ],
        body.clone(),
    )
        .into_response())
}

/// OpenAPI v2, which kubectl reads only where v3 has no answer: to validate, on the client, a
/// kind no v3 document names. The answer is the empty v2 document (protobuf, the only encoding
/// kubectl reads here, and an empty message is a whole one): no schemas, so kubectl skips its
/// own validation and then says what a user needs to hear, that the server has no such kind
/// ("no matches for kind HorizontalPodAutoscaler"), instead of failing to validate. Every kind
/// podswarm has is in v3, where the server validates.
pub(super) async fn v2() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        )],
        Vec::<u8>::new(),
    )
        .into_response()
}
