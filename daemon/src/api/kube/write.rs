//! The Kubernetes API's write side: create (`POST`), replace (`PUT`), patch (`PATCH`) and delete
//! (`DELETE`), as kubectl's `apply`, `create`, `replace`, `patch`, `edit`, `label`, `annotate`,
//! `rollout restart` and `delete` send them.
//!
//! Every write goes through podswarm's own intake (`podswarm_manifest::parse_with`), the same
//! one `podswarmctl apply` meets, so an object is accepted or refused the same way whichever
//! client sent it. `fieldValidation` chooses what unknown fields do (`Strict`, the default:
//! refused as Kubernetes' "strict decoding error"); podswarm's warnings (fields it accepts but
//! does not act on) come back as `Warning` headers, which kubectl prints.
//!
//! The metadata the server owns (`resourceVersion`, `uid`, `creationTimestamp`, `generation`)
//! and `status` are taken off what the client sends: the state holds what the user asked for,
//! and reads add the rest back. `managedFields` are the exception: they are the record of who
//! set which field (`podswarm_api::kube::fields`), which every write here keeps up to date and
//! the state holds with the object, so server-side apply (`application/apply-patch+yaml`) can
//! tell a manager's conflicts and what it stopped applying, on any node. `resourceVersion`, when sent, is a precondition:
//! a write against an older version gets 409, as in Kubernetes. The check and the write are not
//! one step (there is no leader to serialize them); two writers racing on two nodes resolve as
//! every podswarm write does, the later state version winning on every node.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use podswarm_api::kube::discovery::Resource;
use podswarm_api::kube::patch::{self, PatchType};
use podswarm_api::kube::status::{self, Reason};
use podswarm_api::kube::{fields, objects, protobuf};
use podswarm_manifest::{FieldValidation, Object, UNKNOWN_FIELD};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{KubeError, KubeResult, Shared, entry_value, json_response, namespaced, resource};

/// The query parameters of a write. Unknown ones are ignored, as by Kubernetes; those known but
/// not honoured are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WriteParams {
    field_validation: Option<String>,
    dry_run: Option<String>,
    /// Who the write's fields are recorded as set by; without it, the client's name from its
    /// `User-Agent` (`kubectl`), as Kubernetes does.
    field_manager: Option<String>,
    /// A server-side apply takes the fields it conflicts on from their managers.
    force: Option<bool>,
    propagation_policy: Option<String>,
}

impl WriteParams {
    fn field_validation(&self) -> Result<FieldValidation, KubeError> {
        match self.field_validation.as_deref() {
            None | Some("" | "Strict") => Ok(FieldValidation::Strict),
            Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(KubeError::new(
                Reason::BadRequest,
                format!("fieldValidation must be Strict, Warn or Ignore, not {other:?}"),
            )),
        }
    }

    fn dry_run(&self) -> Result<bool, KubeError> {
        match self.dry_run.as_deref() {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(KubeError::new(
                Reason::BadRequest,
                format!("dryRun must be All, not {other:?}"),
            )),
        }
    }

    /// The field manager a write is recorded as.
    fn manager(&self, headers: &HeaderMap) -> Result<String, KubeError> {
        manager_of(self.field_manager.as_deref(), headers)
    }
}

/// The field manager a write is recorded as: `fieldManager`, or the `User-Agent`'s product
/// (`kubectl/v1.32.0 (linux/amd64) …` is `kubectl`).
pub(in crate::api) fn manager_of(
    field_manager: Option<&str>,
    headers: &HeaderMap,
) -> Result<String, KubeError> {
    match field_manager {
        Some(m) if !m.is_empty() => checked_manager(m),
        _ => checked_manager(
            &headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .and_then(|ua| ua.split('/').next())
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .unwrap_or("unknown")
                .chars()
                .take(128)
                .collect::<String>(),
        ),
    }
}

/// A write by `manager` of an object of `api_version` (through `subresource`, where not the
/// object itself) now, as `managedFields` record it.
pub(in crate::api) fn writer<'m>(
    manager: &'m str,
    api_version: String,
    subresource: Option<&'m str>,
) -> fields::Writer<'m> {
    fields::Writer {
        manager,
        api_version,
        now: objects::time(crate::link::unix_now()),
        subresource,
    }
}

/// A field manager's name, as Kubernetes allows it: at most 128 printable characters.
fn checked_manager(manager: &str) -> Result<String, KubeError> {
    if manager.len() > 128 || manager.chars().any(char::is_control) {
        return Err(KubeError::new(
            Reason::Invalid,
            "fieldManager: Invalid value: must be at most 128 printable characters",
        ));
    }
    Ok(manager.to_owned())
}

/// A request's `Content-Type` as sent (`""` when none), for messages, and its media type (the
/// parameters, such as `; charset=utf-8`, taken off).
fn content_type(headers: &HeaderMap) -> (&str, &str) {
    let sent = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    (sent, sent.split(';').next().unwrap_or_default().trim())
}

/// A manifest the intake could not read at all (its syntax, its size), as a `Status`.
fn unreadable(e: &podswarm_manifest::Error) -> KubeError {
    let reason = if matches!(e, podswarm_manifest::Error::TooLarge { .. }) {
        Reason::RequestEntityTooLarge
    } else {
        Reason::BadRequest
    };
    KubeError::new(reason, e.to_string())
}

/// Records `new` as written by `manager` over `old` in its `managedFields`.
fn record(
    target: &Target,
    manager: &str,
    old: Option<&Value>,
    new: &mut Value,
) -> Result<(), KubeError> {
    fields::update(target.r.kind, old, new, &target.writer(manager))
        .map_err(|e| fields_error(target, new, &e))
}

/// A refused write's managed fields: a conflict (409, each field a cause, as Kubernetes lists
/// them) or managed fields a client sent that cannot be read (422).
fn fields_error(target: &Target, value: &Value, e: &fields::FieldsError) -> KubeError {
    if e.conflicts().is_empty() {
        return KubeError::new(
            Reason::Invalid,
            format!(
                "{} is invalid: {e}",
                target.qualified(value["metadata"]["name"].as_str().unwrap_or_default())
            ),
        );
    }
    let mut s = status::failure(Reason::Conflict, e.to_string());
    s.details = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
            name: value["metadata"]["name"].as_str().map(str::to_owned),
            group: Some(target.r.group.to_owned()),
            kind: Some(target.r.plural.to_owned()),
            causes: Some(
                e.conflicts()
                    .iter()
                    .map(
                        |c| k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                            field: Some(c.field.clone()),
                            message: Some(format!(
                                "conflict with {:?} using {}",
                                c.manager, c.api_version
                            )),
                            reason: Some("FieldManagerConflict".to_owned()),
                        },
                    )
                    .collect(),
            ),
            ..Default::default()
        },
    );
    KubeError(Box::new(s))
}

/// Where a write is aimed: the resource, the namespace (for namespaced ones) and the name (for
/// all but create).
struct Target {
    r: &'static Resource,
    namespace: Option<String>,
    name: Option<String>,
}

impl Target {
    fn collection(
        group: &str,
        version: &str,
        ns: Option<String>,
        plural: &str,
    ) -> Result<Target, KubeError> {
        let r = resource(group, version, plural)?;
        let r = match &ns {
            Some(_) => namespaced(r)?,
            None if r.namespaced => {
                return Err(KubeError::new(
                    Reason::MethodNotAllowed,
                    format!(
                        "{plural} are namespaced: write them under /namespaces/NAMESPACE/{plural}"
                    ),
                ));
            }
            None => r,
        };
        Ok(Target {
            r,
            namespace: ns,
            name: None,
        })
    }

    fn named(mut self, name: String) -> Target {
        self.name = Some(name);
        self
    }

    fn writable(&self, verb: &str) -> Result<(), KubeError> {
        if self.r.verbs.contains(&verb) {
            Ok(())
        } else {
            Err(KubeError::new(
                Reason::MethodNotAllowed,
                format!(
                    "{} cannot be changed through this API ({verb} is not supported)",
                    self.r.plural
                ),
            ))
        }
    }

    /// A write by `manager` now, as `managedFields` record it.
    fn writer<'m>(&self, manager: &'m str) -> fields::Writer<'m> {
        writer(manager, self.r.group_version(), None)
    }

    /// The namespace objects are stored under: `""` for cluster-scoped kinds.
    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }

    /// `deployments.apps "web"`, as Kubernetes names an object in its messages.
    fn qualified(&self, name: &str) -> String {
        if self.r.group.is_empty() {
            format!("{} {name:?}", self.r.plural)
        } else {
            format!("{}.{} {name:?}", self.r.plural, self.r.group)
        }
    }
}

/// A request body, refused as a `Status` (413 past `api.max_body_bytes`) rather than as axum's
/// plain-text rejection, which kubectl cannot show.
pub(super) struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = KubeError;

    async fn from_request(request: Request, state: &S) -> Result<Self, KubeError> {
        Bytes::from_request(request, state)
            .await
            .map(Body)
            .map_err(|rejection| KubeError::from(super::super::ApiError::from(rejection)))
    }
}

/// The metadata the server owns, taken off what a client sends (`managedFields` it keeps, see
/// the module's documentation).
const SERVER_METADATA: &[&str] = &[
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
];

/// Checks a body against its target (kind, apiVersion, namespace, name), fills in what the URL
/// says and the body left out, takes off what the server owns, and returns the
/// `resourceVersion` the client sent (its precondition).
fn prepare(target: &Target, value: &mut Value) -> Result<Option<u64>, KubeError> {
    let r = target.r;
    let bad = |why: String| KubeError::new(Reason::BadRequest, why);
    let Some(object) = value.as_object_mut() else {
        return Err(bad(format!("the body must be a {} object", r.kind)));
    };
    let expected = r.group_version();
    match object.get("apiVersion").and_then(Value::as_str) {
        None => {
            object.insert("apiVersion".into(), json!(expected));
        }
        Some(v) if v == expected => {}
        Some(v) => {
            return Err(bad(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected})"
            )));
        }
    }
    match object.get("kind").and_then(Value::as_str) {
        None => {
            object.insert("kind".into(), json!(r.kind));
        }
        Some(k) if k == r.kind => {}
        Some(k) => {
            return Err(bad(format!(
                "the kind in the data ({k}) does not match the kind of the resource ({})",
                r.kind
            )));
        }
    }
    object.remove("status");
    let meta = object
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| bad("metadata must be an object".to_owned()))?;
    if let Some(ns) = &target.namespace {
        match meta.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("namespace".into(), json!(ns));
            }
            Some(n) if n == ns => {}
            Some(_) => {
                return Err(bad(
                    "the namespace of the provided object does not match the namespace sent on the request"
                        .to_owned(),
                ));
            }
        }
    }
    if meta.get("generateName").is_some_and(|g| !g.is_null()) && meta.get("name").is_none() {
        return Err(KubeError::new(
            Reason::Invalid,
            "metadata.generateName is not supported by podswarm: give the object a name",
        ));
    }
    if let Some(name) = &target.name {
        match meta.get("name").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("name".into(), json!(name));
            }
            Some(n) if n == name => {}
            Some(n) => {
                return Err(bad(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
    }
    let precondition = super::resource_version(meta.get("resourceVersion"))?;
    for key in SERVER_METADATA {
        meta.remove(*key);
    }
    if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        // What the server sets on what it answers (a Deployment's revision, as Kubernetes'
        // deployment controller owns it; a pod's unit), which a client writes back when it
        // sends an object it read.
        for key in podswarm_api::kube::objects::SERVER_ANNOTATIONS {
            annotations.remove(key);
        }
        if annotations.is_empty() {
            meta.remove("annotations");
        }
    }
    Ok(precondition)
}

/// One object through podswarm's intake, with the warnings to send back; refusals as Kubernetes
/// words them (unknown fields as a "strict decoding error", the rest as `Invalid`).
fn intake(
    api: &Shared,
    target: &Target,
    value: &Value,
    fields: FieldValidation,
) -> Result<(Object, Vec<String>), KubeError> {
    let r = target.r;
    let name = value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let text = value.to_string();
    let manifest = podswarm_manifest::parse_with(&text, "request body", &api.limits, &api.policy, fields)
        .map_err(|e| {
            let problems = e.problems();
            if problems.is_empty() {
                return unreadable(&e);
            }
            if problems.iter().all(|p| p.message == UNKNOWN_FIELD) {
                let fields: Vec<String> = problems
                    .iter()
                    .map(|p| format!("unknown field {:?}", p.path))
                    .collect();
                return KubeError::new(
                    Reason::BadRequest,
                    format!(
                        "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                        fields.join(", "),
                        kind = r.kind,
                        version = r.version,
                    ),
                );
            }
            let causes: Vec<String> = problems
                .iter()
                .map(podswarm_manifest::Problem::brief)
                .collect();
            let kind = if r.group.is_empty() {
                r.kind.to_owned()
            } else {
                format!("{}.{}", r.kind, r.group)
            };
            KubeError::new(
                Reason::Invalid,
                format!("{kind} {name:?} is invalid: {}", causes.join(", ")),
            )
        })?;
    let mut objects = manifest.objects.into_iter();
    let (Some(object), None) = (objects.next(), objects.next()) else {
        return Err(KubeError::new(
            Reason::BadRequest,
            format!("the body must be one {} object", r.kind),
        ));
    };
    let warnings = manifest
        .warnings
        .iter()
        .map(podswarm_manifest::Problem::brief)
        .collect();
    Ok((object.object, warnings))
}

/// Fields Kubernetes does not let an update change: a Deployment's selector (its pods would be
/// orphaned). Checked before intake, so the answer names the field changed rather than what the
/// change broke elsewhere.
fn check_immutable(target: &Target, old: &Value, new: &Value) -> Result<(), KubeError> {
    if target.r.kind == "Deployment" && old["spec"]["selector"] != new["spec"]["selector"] {
        return Err(KubeError::new(
            Reason::Invalid,
            format!(
                "Deployment.apps {:?} is invalid: spec.selector: Invalid value: {}: field is immutable",
                new["metadata"]["name"].as_str().unwrap_or_default(),
                new["spec"]["selector"],
            ),
        ));
    }
    Ok(())
}

/// The response to a write: the object as now stored (or as it would be, on a dry run), with
/// podswarm's warnings as `Warning` headers.
fn written(code: StatusCode, value: &Value, warnings: &[String]) -> Response {
    let mut response = json_response(value);
    *response.status_mut() = code;
    for w in warnings {
        // RFC 7234 warn-text is a quoted string: quotes and backslashes escaped, one line.
        let text = w
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace(['\r', '\n'], " ");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            response.headers_mut().append(header::WARNING, v);
        }
    }
    response
}

/// Stores `object`, unless this is a dry run, and answers with it as the state now has it.
async fn store(
    api: &Shared,
    target: &Target,
    object: Object,
    dry_run: bool,
    code: StatusCode,
    warnings: &[String],
) -> KubeResult {
    let (kind, ns, name) = (
        object.kind(),
        object.namespace().to_owned(),
        object.name().to_owned(),
    );
    if dry_run {
        let mut value = object.to_value();
        if let Some(e) = api.model.current().entry(kind, &ns, &name) {
            let existing = entry_value(e);
            for key in SERVER_METADATA {
                if let Some(v) = existing["metadata"].get(*key) {
                    value["metadata"][*key] = v.clone();
                }
            }
        }
        return Ok(written(code, &value, warnings));
    }
    api.link
        .apply(std::slice::from_ref(&object))
        .await
        .map_err(|e| KubeError::from(super::super::unavailable(&e)))?;
    // The link answers once the replicated state holds the write; this node's state takes it
    // from there a moment later, and the answer is the object as the state has it (its version
    // and creation time). Should that take unusually long, the write stands all the same: the
    // answer is then the object as written, without them.
    let wanted = object.to_value();
    let deadline = tokio::time::Instant::now() + STATE_WAIT;
    loop {
        let snapshot = api.model.settled();
        if let Some(e) = snapshot
            .entry(kind, &ns, &name)
            .filter(|e| e.object.to_value() == wanted)
        {
            return Ok(written(code, &entry_value(e), warnings));
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                object = %target.qualified(&name),
                "written, but not yet in this node's state: answered without its version"
            );
            return Ok(written(code, &wanted, warnings));
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// How long a write's answer waits for this node's state to hold it.
const STATE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A body as JSON: sent as JSON, or as protobuf (what kubectl's typed clients send, for
/// `kubectl create configmap`, `create deployment`, `run`, …), read into the same JSON. Other
/// encodings get 415.
fn body_value(headers: &HeaderMap, body: &[u8]) -> Result<Value, KubeError> {
    // No Content-Type is JSON.
    let (_, media) = content_type(headers);
    if media.eq_ignore_ascii_case(protobuf::MEDIA_TYPE) {
        return protobuf::decode(body).map_err(|e| {
            let reason = match e {
                protobuf::ProtobufError::UnknownKind { .. } => Reason::UnsupportedMediaType,
                _ => Reason::BadRequest,
            };
            KubeError::new(reason, format!("the protobuf body cannot be read: {e}"))
        });
    }
    if !media.eq_ignore_ascii_case("application/json") && !media.is_empty() {
        return Err(KubeError::new(
            Reason::UnsupportedMediaType,
            format!(
                "the body must be application/json or {}, not {media:?}",
                protobuf::MEDIA_TYPE
            ),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        KubeError::new(
            Reason::BadRequest,
            format!("the body is not a JSON object: {e}"),
        )
    })
}

fn stale(target: &Target, name: &str) -> KubeError {
    KubeError::new(
        Reason::Conflict,
        format!(
            "Operation cannot be fulfilled on {}: the object has been modified; please apply your changes to the latest version and try again",
            target.qualified(name)
        ),
    )
}

fn not_found(target: &Target, name: &str) -> KubeError {
    KubeError(Box::new(status::not_found(
        target.r.group,
        target.r.plural,
        name,
    )))
}

async fn create(
    api: Shared,
    target: Target,
    params: WriteParams,
    headers: &HeaderMap,
    body: Bytes,
) -> KubeResult {
    target.writable("create")?;
    let fields = params.field_validation()?;
    let dry_run = params.dry_run()?;
    let manager = params.manager(headers)?;
    let mut value = body_value(headers, &body)?;
    prepare(&target, &mut value)?;
    record(&target, &manager, None, &mut value)?;
    let (object, warnings) = intake(&api, &target, &value, fields)?;
    if api
        .model
        .settled()
        .entry(object.kind(), object.namespace(), object.name())
        .is_some()
    {
        return Err(KubeError(Box::new({
            let mut s = status::failure(
                Reason::AlreadyExists,
                format!("{} already exists", target.qualified(object.name())),
            );
            s.details = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
                    name: Some(object.name().to_owned()),
                    group: Some(target.r.group.to_owned()),
                    kind: Some(target.r.plural.to_owned()),
                    ..Default::default()
                },
            );
            s
        })));
    }
    store(
        &api,
        &target,
        object,
        dry_run,
        StatusCode::CREATED,
        &warnings,
    )
    .await
}

/// The stored object a write replaces, or 404.
fn current(api: &Shared, target: &Target, name: &str) -> Result<(u64, Value), KubeError> {
    let snapshot = api.model.settled();
    let e = snapshot
        .entry(target.r.kind, target.ns(), name)
        .ok_or_else(|| not_found(target, name))?;
    // As clients read it (a Deployment with its revision annotation, which `kubectl rollout
    // undo`'s JSON patch replaces along with the others).
    Ok((e.version, super::with_status(&snapshot, e)))
}

async fn replace(
    api: Shared,
    target: Target,
    params: WriteParams,
    headers: &HeaderMap,
    body: Bytes,
) -> KubeResult {
    target.writable("update")?;
    let fields = params.field_validation()?;
    let dry_run = params.dry_run()?;
    let name = target.name.clone().unwrap_or_default();
    let (version, old) = current(&api, &target, &name)?;
    let mut value = body_value(headers, &body)?;
    if prepare(&target, &mut value)?.is_some_and(|v| v != version) {
        return Err(stale(&target, &name));
    }
    check_immutable(&target, &old, &value)?;
    record(&target, &params.manager(headers)?, Some(&old), &mut value)?;
    let (object, warnings) = intake(&api, &target, &value, fields)?;
    store(&api, &target, object, dry_run, StatusCode::OK, &warnings).await
}

async fn patch_object(
    api: Shared,
    target: Target,
    params: WriteParams,
    headers: &HeaderMap,
    body: Bytes,
) -> KubeResult {
    target.writable("patch")?;
    let (content_type, media) = content_type(headers);
    if media.eq_ignore_ascii_case(APPLY_PATCH) {
        return server_side_apply(api, target, params, body).await;
    }
    let Some(patch_type) = PatchType::from_content_type(content_type) else {
        return Err(KubeError::new(
            Reason::UnsupportedMediaType,
            format!(
                "the body of a patch is application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json or {APPLY_PATCH}, not {content_type:?}"
            ),
        ));
    };
    let fields = params.field_validation()?;
    let dry_run = params.dry_run()?;
    let name = target.name.clone().unwrap_or_default();
    let (version, value) = current(&api, &target, &name)?;
    let mut patched = patch::apply(target.r.kind, &value, &body, patch_type).map_err(|e| {
        KubeError::new(
            Reason::BadRequest,
            format!("the patch cannot be applied: {e}"),
        )
    })?;
    // A patch may name the version it was made against; one that changes the name or namespace
    // would write a different object, which Kubernetes refuses.
    let sent_version = patched["metadata"]["resourceVersion"].clone();
    if patched["metadata"]["name"] != value["metadata"]["name"]
        || patched["metadata"]["namespace"] != value["metadata"]["namespace"]
    {
        return Err(KubeError::new(
            Reason::Invalid,
            format!(
                "{} is invalid: metadata.name, metadata.namespace: field is immutable",
                target.qualified(&name)
            ),
        ));
    }
    if sent_version != value["metadata"]["resourceVersion"] {
        patched["metadata"]["resourceVersion"] = sent_version;
    }
    if prepare(&target, &mut patched)?.is_some_and(|v| v != version) {
        return Err(stale(&target, &name));
    }
    check_immutable(&target, &value, &patched)?;
    record(
        &target,
        &params.manager(headers)?,
        Some(&value),
        &mut patched,
    )?;
    let (object, warnings) = intake(&api, &target, &patched, fields)?;
    store(&api, &target, object, dry_run, StatusCode::OK, &warnings).await
}

/// The media type of a server-side apply's body (kubectl sends JSON, which is YAML too).
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// A server-side apply (`kubectl apply --server-side`): the body is the manager's whole intent
/// for the object, merged into it (or creating it) by `fields::apply`, with Kubernetes' conflicts.
/// The result then meets the same intake as any write.
async fn server_side_apply(
    api: Shared,
    target: Target,
    params: WriteParams,
    body: Bytes,
) -> KubeResult {
    let Some(manager) = params.field_manager.as_deref().filter(|m| !m.is_empty()) else {
        return Err(KubeError::new(
            Reason::Invalid,
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    };
    let manager = checked_manager(manager)?;
    let validation = params.field_validation()?;
    let dry_run = params.dry_run()?;
    let name = target.name.clone().unwrap_or_default();
    let bad = |why: String| KubeError::new(Reason::BadRequest, why);
    let text = std::str::from_utf8(&body)
        .map_err(|_| bad("the apply body is not UTF-8 text".to_owned()))?;
    let mut documents = podswarm_manifest::read_documents(text, "request body", &api.limits)
        .map_err(|e| unreadable(&e))?
        .into_iter();
    let (Some(mut applied), None) = (documents.next(), documents.next()) else {
        return Err(bad(format!(
            "the apply body must be one {} object",
            target.r.kind
        )));
    };
    for field in ["apiVersion", "kind"] {
        if applied
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(bad(format!("an applied configuration must set {field}")));
        }
    }
    if applied["metadata"]
        .get("managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(bad(
            "metadata.managedFields must be nil in an applied configuration".to_owned(),
        ));
    }
    let precondition = prepare(&target, &mut applied)?;
    let snapshot = api.model.settled();
    let live = snapshot
        .entry(target.r.kind, target.ns(), &name)
        .map(|e| (e.version, super::with_status(&snapshot, e)));
    drop(snapshot);
    match (precondition, &live) {
        (Some(wanted), Some((version, _))) if wanted != *version => {
            return Err(stale(&target, &name));
        }
        (Some(_), None) => return Err(not_found(&target, &name)),
        _ => {}
    }
    let old = live.as_ref().map(|(_, v)| v);
    let mut merged = fields::apply(
        target.r.kind,
        old,
        &applied,
        &target.writer(&manager),
        params.force == Some(true),
    )
    .map_err(|e| fields_error(&target, &applied, &e))?;
    prepare(&target, &mut merged)?;
    if let Some(old) = old {
        check_immutable(&target, old, &merged)?;
    }
    let (object, warnings) = intake(&api, &target, &merged, validation)?;
    let code = if live.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    store(&api, &target, object, dry_run, code, &warnings).await
}

/// A patch of a node: what `kubectl cordon` and `uncordon` send (`spec.unschedulable`). A node
/// is its record, which its own daemon writes; the one thing a client sets is the cordon, which
/// podswarm keeps apart from the record (as `podswarmctl node cordon` does). Any other change is
/// refused, not dropped.
async fn patch_node(
    api: Shared,
    name: String,
    params: WriteParams,
    headers: &HeaderMap,
    body: Bytes,
) -> KubeResult {
    let (content_type, _) = content_type(headers);
    let patch_type = PatchType::from_content_type(content_type).ok_or_else(|| {
        KubeError::new(
            Reason::UnsupportedMediaType,
            format!("a node takes JSON, merge or strategic merge patches, not {content_type:?}"),
        )
    })?;
    let dry_run = params.dry_run()?;
    let node = |api: &Shared| {
        super::super::node_items(&api.model.settled())
            .into_iter()
            .find(|n| n.name == name)
            .map(|n| {
                serde_json::to_value(objects::node(&n, env!("CARGO_PKG_VERSION")))
                    .unwrap_or(Value::Null)
            })
            .ok_or_else(|| KubeError(Box::new(status::not_found("", "nodes", &name))))
    };
    let value = node(&api)?;
    let patched = patch::apply("Node", &value, &body, patch_type).map_err(|e| {
        KubeError::new(
            Reason::BadRequest,
            format!("the patch cannot be applied: {e}"),
        )
    })?;
    let unschedulable = |v: &Value| v["spec"]["unschedulable"].as_bool().unwrap_or(false);
    let mut rest = patched.clone();
    rest["spec"]["unschedulable"] = value["spec"]["unschedulable"].clone();
    if rest["spec"]["unschedulable"].is_null()
        && let Some(spec) = rest["spec"].as_object_mut()
    {
        spec.remove("unschedulable");
    }
    // Metadata a client may send back as it read it (kubectl's patches name none of it).
    if rest != value {
        return Err(KubeError::new(
            Reason::Invalid,
            format!(
                "Node {name:?} is invalid: podswarm's nodes take only spec.unschedulable (cordon, uncordon); the rest is each node's own record"
            ),
        ));
    }
    if dry_run || unschedulable(&patched) == unschedulable(&value) {
        return Ok(json_response(&patched));
    }
    let cordon = unschedulable(&patched).then(|| crate::link::Cordon {
        drain: false,
        since: crate::link::unix_now(),
        node_id: String::new(),
    });
    let found = api
        .link
        .set_cordon(&name, cordon)
        .await
        .map_err(|e| KubeError::from(super::super::unavailable(&e)))?;
    if !found {
        return Err(KubeError(Box::new(status::not_found("", "nodes", &name))));
    }
    Ok(json_response(&node(&api)?))
}

async fn delete_object(api: Shared, target: Target, params: WriteParams) -> KubeResult {
    target.writable("delete")?;
    let name = target.name.clone().unwrap_or_default();
    match params.propagation_policy.as_deref() {
        None | Some("" | "Background" | "Foreground") => {}
        Some("Orphan") => {
            return Err(KubeError::new(
                Reason::BadRequest,
                "propagationPolicy Orphan is not supported by podswarm: a Deployment's pods go with it",
            ));
        }
        Some(other) => {
            return Err(KubeError::new(
                Reason::BadRequest,
                format!(
                    "propagationPolicy must be Foreground, Background or Orphan, not {other:?}"
                ),
            ));
        }
    }
    // As in Kubernetes: everything without a namespace lives there.
    if target.r.kind == "Namespace" && name == "default" {
        return Err(KubeError::new(
            Reason::Forbidden,
            "namespaces \"default\" is forbidden: this namespace may not be deleted",
        ));
    }
    let snapshot = api.model.settled();
    if snapshot.entry(target.r.kind, target.ns(), &name).is_none() {
        // A pod of a Deployment has no object of its own: the Deployment replaces its pods.
        if target.r.kind == "Pod"
            && let Some(p) = snapshot
                .pods()
                .find(|p| p.view.namespace == target.ns() && p.view.name == name)
        {
            return Err(KubeError::new(
                Reason::MethodNotAllowed,
                format!(
                    "pod {name:?} belongs to {}: podswarm keeps a deployment's pods itself; to replace them use kubectl rollout restart",
                    p.view.owner.as_deref().unwrap_or("its owner"),
                ),
            ));
        }
        return Err(not_found(&target, &name));
    }
    if params.dry_run()? {
        return Ok(json_response(&success(&target, &name)));
    }
    super::super::delete_keys(&api, target.r.kind, target.ns(), &name).await?;
    Ok(json_response(&success(&target, &name)))
}

fn success(target: &Target, name: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Status {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Status {
        status: Some("Success".to_owned()),
        details: Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
                name: Some(name.to_owned()),
                group: Some(target.r.group.to_owned()),
                kind: Some(target.r.plural.to_owned()),
                ..Default::default()
            },
        ),
        ..Default::default()
    }
}

// The handlers, one per verb: the route's captures (`group`, `version`, `ns`, `resource`,
// `name`, whichever the URL shape has) say the target.

type Captures = Path<std::collections::HashMap<String, String>>;

impl Target {
    fn of(Path(captures): Captures) -> Result<Target, KubeError> {
        let get = |k: &str| captures.get(k).cloned();
        let group = get("group").unwrap_or_default();
        let version = get("version").unwrap_or_else(|| "v1".to_owned());
        let plural = get("resource").unwrap_or_default();
        let target = Target::collection(&group, &version, get("ns"), &plural)?;
        Ok(match get("name") {
            Some(name) => target.named(name),
            None => target,
        })
    }
}

pub(super) async fn create_handler(
    AxState(api): AxState<Shared>,
    captures: Captures,
    Query(params): Query<WriteParams>,
    headers: HeaderMap,
    Body(body): Body,
) -> KubeResult {
    create(api, Target::of(captures)?, params, &headers, body).await
}

pub(super) async fn replace_handler(
    AxState(api): AxState<Shared>,
    captures: Captures,
    Query(params): Query<WriteParams>,
    headers: HeaderMap,
    Body(body): Body,
) -> KubeResult {
    replace(api, Target::of(captures)?, params, &headers, body).await
}

pub(super) async fn patch_handler(
    AxState(api): AxState<Shared>,
    captures: Captures,
    Query(params): Query<WriteParams>,
    headers: HeaderMap,
    Body(body): Body,
) -> KubeResult {
    if captures.get("resource").is_some_and(|r| r == "nodes") && !captures.contains_key("group") {
        let name = captures.get("name").cloned().unwrap_or_default();
        return patch_node(api, name, params, &headers, body).await;
    }
    patch_object(api, Target::of(captures)?, params, &headers, body).await
}

pub(super) async fn delete_handler(
    AxState(api): AxState<Shared>,
    captures: Captures,
    Query(params): Query<WriteParams>,
) -> KubeResult {
    delete_object(api, Target::of(captures)?, params).await
}
