//! Request bodies as axum extractors, so handlers receive decoded values and every way a body can
//! be refused answers in the API's error shape (`{"error": "...", "details": [...]}`): 413 over
//! the configured limit (axum's `DefaultBodyLimit`, whose own rejection is plain text), 400 for
//! text that is not UTF-8 or JSON of the wrong shape, and for manifests 400 with the line and
//! field at fault (or 413 past the manifest limits), as `podswarm_manifest` reports them.
//!
//! JSON bodies are decoded whatever their `Content-Type`: clients have never had to send
//! `application/json`, which axum's own `Json` extractor would demand.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use podswarm_api::ErrorBody;
use serde::de::DeserializeOwned;

use super::{ApiError, Shared};

/// Header naming where a manifest came from (a file name), for error messages.
const SOURCE_HEADER: &str = "x-podswarm-source";

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "the request body is larger than this API accepts (api.max_body_bytes)",
            )
        } else {
            let mut e = ApiError::new(status, "cannot read the request body");
            e.body.details.push(rejection.body_text());
            e
        }
    }
}

/// A JSON body's shape: what to say when the body does not fit it.
pub(super) trait JsonShape: DeserializeOwned {
    /// The error message for a body that does not decode.
    fn refused(e: &serde_json::Error) -> String;
    /// The value of an empty body, for requests whose fields are all optional.
    fn when_empty() -> Option<Self> {
        None
    }
}

/// A JSON request body of shape `T`.
#[derive(Debug)]
pub(super) struct JsonBody<T>(pub T);

impl<T: JsonShape, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await?;
        if bytes.is_empty()
            && let Some(value) = T::when_empty()
        {
            return Ok(JsonBody(value));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, T::refused(&e)))
    }
}

/// A manifest body (YAML or JSON, multi-document), parsed and validated against the node's
/// limits and policy.
#[derive(Debug)]
pub(super) struct Manifests(pub podswarm_manifest::Manifest);

impl FromRequest<Shared> for Manifests {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &Shared) -> Result<Self, ApiError> {
        let source = request
            .headers()
            .get(SOURCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|s| s.len() < 256 && !s.chars().any(char::is_control))
            .unwrap_or("request body")
            .to_owned();
        let bytes = Bytes::from_request(request, api).await?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{source} is not UTF-8 text (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            )
        })?;
        podswarm_manifest::parse(text, &source, &api.limits, &api.policy)
            .map(Manifests)
            .map_err(|e| ApiError {
                status: if matches!(e, podswarm_manifest::Error::TooLarge { .. }) {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                },
                body: ErrorBody {
                    error: e.to_string(),
                    details: e.problems().iter().map(ToString::to_string).collect(),
                },
            })
    }
}
