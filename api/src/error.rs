//! The API's error shape, and reading an answer as either a value or that error.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Every refusal's body, whatever the status: `{"error": "...", "details": [...]}`. `error` is
/// one sentence; `details` says more where there is more (each problem of a manifest, by
/// document, object and field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default)]
    pub details: Vec<String>,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>) -> Self {
        ErrorBody {
            error: error.into(),
            details: Vec::new(),
        }
    }
}

/// Why an answer is not the value asked for.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused the request and said why.
    #[error("{}", .body.error)]
    Refused { status: u16, body: ErrorBody },
    /// A refusal without the error shape (a proxy, or something that is not podswarmd).
    #[error("the API answered status {status}")]
    Status { status: u16 },
    /// A success whose body is not the type asked for: most likely a node of another version.
    #[error("cannot read the API's answer (is the node running another podswarm version?)")]
    Unreadable(#[source] serde_json::Error),
}

/// An answer with HTTP status `status` and body `body`, as `T` when it succeeded, else as the
/// API's error.
pub fn decode<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, Error> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body).map_err(Error::Unreadable);
    }
    if let Ok(body) = serde_json::from_slice::<ErrorBody>(body) {
        return Err(Error::Refused { status, body });
    }
    // The Kubernetes API's refusals are `Status` objects: their message is the sentence.
    match serde_json::from_slice::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>(body) {
        Ok(s) if s.message.as_deref().is_some_and(|m| !m.is_empty()) => Err(Error::Refused {
            status,
            // Its causes repeat what the message says.
            body: ErrorBody::new(s.message.unwrap_or_default()),
        }),
        _ => Err(Error::Status { status }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::List;

    #[test]
    fn answers_are_values_or_the_apis_error() {
        let list: List<u32> = decode(200, br#"{"items": [1, 2]}"#).unwrap();
        assert_eq!(list.items, [1, 2]);
        match decode::<List<u32>>(404, br#"{"error": "pod a/b not found", "details": []}"#) {
            Err(Error::Refused { status: 404, body }) => {
                assert_eq!(body, ErrorBody::new("pod a/b not found"));
            }
            other => panic!("{other:?}"),
        }
        match decode::<List<u32>>(
            404,
            br#"{"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                 "reason": "NotFound", "message": "pods \"x\" not found"}"#,
        ) {
            Err(e @ Error::Refused { status: 404, .. }) => {
                assert_eq!(e.to_string(), r#"pods "x" not found"#);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode::<List<u32>>(502, b"Bad Gateway"),
            Err(Error::Status { status: 502 })
        ));
        assert!(matches!(
            decode::<List<u32>>(200, br#"{"things": []}"#),
            Err(Error::Unreadable(_))
        ));
    }
}
