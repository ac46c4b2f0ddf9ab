//! Errors as Kubernetes writes them: a `Status` object whose `reason` and `code` clients act on
//! (kubectl prints `Error from server (NotFound): …`; client-go retries on 409 and 429, re-lists
//! on 410).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};

/// The reasons podswarm answers with, spelt as `metav1.StatusReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    AlreadyExists,
    Conflict,
    Gone,
    Invalid,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    InternalError,
    ServiceUnavailable,
}

impl Reason {
    /// The HTTP status code Kubernetes pairs with the reason.
    pub fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Unauthorized => 401,
            Reason::Forbidden => 403,
            Reason::NotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::NotAcceptable => 406,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Gone => 410,
            Reason::RequestEntityTooLarge => 413,
            Reason::UnsupportedMediaType => 415,
            Reason::Invalid => 422,
            Reason::TooManyRequests => 429,
            Reason::InternalError => 500,
            Reason::ServiceUnavailable => 503,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Gone => "Gone",
            Reason::Invalid => "Invalid",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
        }
    }
}

/// A failure `Status` with `reason`, its code and `message`.
pub fn failure(reason: Reason, message: impl Into<String>) -> Status {
    Status {
        status: Some("Failure".to_owned()),
        reason: Some(reason.as_str().to_owned()),
        code: Some(i32::from(reason.code())),
        message: Some(message.into()),
        ..Status::default()
    }
}

/// `pods "web" not found`, with the details kubectl reads (`kind` is the resource's plural, as
/// Kubernetes puts it there).
pub fn not_found(group: &str, plural: &str, name: &str) -> Status {
    let what = if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    };
    Status {
        details: Some(StatusDetails {
            name: Some(name.to_owned()),
            group: (!group.is_empty()).then(|| group.to_owned()),
            kind: Some(plural.to_owned()),
            ..StatusDetails::default()
        }),
        ..failure(Reason::NotFound, format!("{what} {name:?} not found"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_as_kubernetes_writes_it() {
        let value = serde_json::to_value(not_found("apps", "deployments", "web")).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "deployments.apps \"web\" not found",
                "reason": "NotFound",
                "details": {"name": "web", "group": "apps", "kind": "deployments"},
                "code": 404
            })
        );
        let value = serde_json::to_value(not_found("", "pods", "x")).unwrap();
        assert_eq!(value["message"], "pods \"x\" not found");
    }
}
