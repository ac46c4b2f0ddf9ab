//! The Kubernetes API's read side (DESIGN.md, "The Kubernetes API subset"): version, discovery,
//! and `get`/`list` of the supported kinds, as JSON objects or as the `Table` kubectl asks for.
//! Errors are `Status` objects.
//!
//! Everything answers from the current [`Snapshot`], like the rest of the API: applied objects
//! as they were applied, with the metadata Kubernetes adds (`resourceVersion` is the state
//! version of the write, `creationTimestamp` its first write); pods and nodes as their records
//! say, turned into Kubernetes objects by `podswarm_api::kube::objects`. Which resources exist
//! is one table (`podswarm_api::kube::discovery`), so discovery offers exactly what is routed.

use axum::Router;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Status};
use podswarm_api::kube::discovery::{self, Resource};
use podswarm_api::kube::status::{self, Reason};
use podswarm_api::kube::{objects, tables};
use podswarm_manifest::Object;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use crate::model::Snapshot;
use crate::state::{Entry, uuid_of};

/// The Kubernetes version podswarm's API follows (its objects are k8s-openapi's latest).
const KUBE_MINOR: &str = "35";

pub(super) mod cache;
mod openapi;
mod watch;
mod write;

use podswarm_api::kube::objects::{
    CHANGE_CAUSE_ANNOTATION, REVISION_ANNOTATION, TEMPLATE_HASH_LABEL,
};

pub(super) use write::{manager_of, writer};

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/version", get(version))
        .route(
            "/api",
            get(|| async { json_response(&discovery::core_versions()) }),
        )
        .route(
            "/apis",
            get(|| async { json_response(&discovery::groups()) }),
        )
        .route("/api/v1", get(|| async { group_resources("", "v1") }))
        .route("/apis/{group}/{version}", get(group_version))
        .route("/openapi/v3", get(openapi::root))
        .route("/openapi/v3/{*path}", get(openapi::document))
        .route("/openapi/v2", get(openapi::v2))
        .route(
            "/api/v1/{resource}",
            get(core_list_all).post(write::create_handler),
        )
        .route(
            "/api/v1/{resource}/{name}",
            get(core_get_cluster)
                .put(write::replace_handler)
                .patch(write::patch_handler)
                .delete(write::delete_handler),
        )
        .route(
            "/api/v1/namespaces/{ns}/{resource}",
            get(core_list_namespaced).post(write::create_handler),
        )
        .route(
            "/api/v1/namespaces/{ns}/{resource}/{name}",
            get(core_get_namespaced)
                .put(write::replace_handler)
                .patch(write::patch_handler)
                .delete(write::delete_handler),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale",
            get(get_scale).put(put_scale).patch(patch_scale),
        )
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}/status",
            get(get_deployment_status)
                .put(write_deployment_status)
                .patch(write_deployment_status),
        )
        .route(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            axum::routing::post(self_subject_review),
        )
        .route("/apis/{group}/{version}/{resource}", get(group_list_all))
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{resource}",
            get(group_list_namespaced).post(write::create_handler),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{resource}/{name}",
            get(group_get_namespaced)
                .put(write::replace_handler)
                .patch(write::patch_handler)
                .delete(write::delete_handler),
        )
}

/// A `Status` answer with its code (boxed: a `Status` is large, and errors are the rare path).
pub(super) struct KubeError(Box<Status>);

impl IntoResponse for KubeError {
    fn into_response(self) -> Response {
        let code = self
            .0
            .code
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, json_response(&*self.0)).into_response()
    }
}

impl KubeError {
    pub(super) fn new(reason: Reason, message: impl Into<String>) -> KubeError {
        KubeError(Box::new(status::failure(reason, message)))
    }
}

type KubeResult = Result<Response, KubeError>;

/// podswarm's own errors, where a Kubernetes path reuses a podswarm handler, as a `Status` with
/// the reason that goes with the code.
impl From<super::ApiError> for KubeError {
    fn from(e: super::ApiError) -> KubeError {
        let reason = match e.status.as_u16() {
            400 => Reason::BadRequest,
            401 => Reason::Unauthorized,
            403 => Reason::Forbidden,
            404 => Reason::NotFound,
            409 => Reason::Conflict,
            413 => Reason::RequestEntityTooLarge,
            502..=504 => Reason::ServiceUnavailable,
            _ => Reason::InternalError,
        };
        let mut message = e.body.error;
        for detail in e.body.details {
            message.push_str("; ");
            message.push_str(&detail);
        }
        let mut status = status::failure(reason, message);
        // The code podswarm answered with, where Kubernetes' pairing differs (502, 504).
        status.code = Some(i32::from(e.status.as_u16()));
        KubeError(Box::new(status))
    }
}

fn json_response(value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn version() -> Response {
    let version = env!("CARGO_PKG_VERSION");
    json_response(&json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0-podswarm.{version}"),
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("linux/{}", std::env::consts::ARCH),
    }))
}

async fn group_version(Path((group, version)): Path<(String, String)>) -> KubeResult {
    group_resources(&group, &version)
}

fn group_resources(group: &str, version: &str) -> KubeResult {
    discovery::resources(group, version)
        .map(|list| json_response(&list))
        .ok_or_else(|| {
            let gv = if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            };
            KubeError::new(
                Reason::NotFound,
                format!("the server could not find the requested resource: podswarm serves no group version {gv}"),
            )
        })
}

/// The list and watch parameters kubectl sends; the ones this stop does not implement are
/// refused rather than ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    label_selector: Option<String>,
    field_selector: Option<String>,
    watch: Option<String>,
    /// Accepted: podswarm answers whole lists (no `continue` token is ever returned).
    #[allow(dead_code)]
    limit: Option<u64>,
    #[serde(rename = "continue")]
    continue_: Option<String>,
    /// Where a watch starts; a list always answers the current state.
    resource_version: Option<String>,
    timeout_seconds: Option<u64>,
    allow_watch_bookmarks: Option<bool>,
    send_initial_events: Option<bool>,
}

fn resource(group: &str, version: &str, plural: &str) -> Result<&'static Resource, KubeError> {
    discovery::find(group, version, plural).ok_or_else(|| {
        KubeError::new(
            Reason::NotFound,
            format!("the server could not find the requested resource ({plural} is not a resource podswarm serves in {})",
                if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") }),
        )
    })
}

async fn core_list_all(
    AxState(api): AxState<Shared>,
    Path(plural): Path<String>,
    Query(q): Query<ListParams>,
    headers: HeaderMap,
) -> KubeResult {
    list(&api, resource("", "v1", &plural)?, None, &q, &headers)
}

async fn group_list_all(
    AxState(api): AxState<Shared>,
    Path((group, version, plural)): Path<(String, String, String)>,
    Query(q): Query<ListParams>,
    headers: HeaderMap,
) -> KubeResult {
    list(
        &api,
        resource(&group, &version, &plural)?,
        None,
        &q,
        &headers,
    )
}

async fn core_list_namespaced(
    AxState(api): AxState<Shared>,
    Path((ns, plural)): Path<(String, String)>,
    Query(q): Query<ListParams>,
    headers: HeaderMap,
) -> KubeResult {
    let r = resource("", "v1", &plural)?;
    list(&api, namespaced(r)?, Some(&ns), &q, &headers)
}

async fn group_list_namespaced(
    AxState(api): AxState<Shared>,
    Path((group, version, ns, plural)): Path<(String, String, String, String)>,
    Query(q): Query<ListParams>,
    headers: HeaderMap,
) -> KubeResult {
    let r = resource(&group, &version, &plural)?;
    list(&api, namespaced(r)?, Some(&ns), &q, &headers)
}

async fn core_get_cluster(
    AxState(api): AxState<Shared>,
    Path((plural, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> KubeResult {
    let r = resource("", "v1", &plural)?;
    if r.namespaced {
        return Err(KubeError::new(
            Reason::NotFound,
            format!("{plural} are namespaced: /api/v1/namespaces/NAMESPACE/{plural}/{name}"),
        ));
    }
    one(&api, r, None, &name, &headers)
}

async fn core_get_namespaced(
    AxState(api): AxState<Shared>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> KubeResult {
    let r = resource("", "v1", &plural)?;
    one(&api, namespaced(r)?, Some(&ns), &name, &headers)
}

async fn group_get_namespaced(
    AxState(api): AxState<Shared>,
    Path((group, version, ns, plural, name)): Path<(String, String, String, String, String)>,
    headers: HeaderMap,
) -> KubeResult {
    let r = resource(&group, &version, &plural)?;
    one(&api, namespaced(r)?, Some(&ns), &name, &headers)
}

fn namespaced(r: &'static Resource) -> Result<&'static Resource, KubeError> {
    if r.namespaced {
        Ok(r)
    } else {
        Err(KubeError::new(
            Reason::NotFound,
            format!("{} are not namespaced", r.plural),
        ))
    }
}

/// Whether the client asked for a `Table` (kubectl's `get` does, with JSON as its fallback).
pub(super) fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next()
        .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
}

/// One of the objects the snapshot lists for `r`: its Kubernetes form, and what a table row of
/// it needs.
struct Item {
    value: Value,
    namespace: String,
    name: String,
    labels: std::collections::BTreeMap<String, String>,
    typed: Typed,
}

/// What an object's table row is made from, kept with its Kubernetes form (and with it in the
/// shared [`cache`], so a `Table` is made from objects already made).
#[derive(Debug, PartialEq)]
pub(super) enum Typed {
    /// An applied object: its row comes from the snapshot's entry of it (a Deployment's with
    /// the status the snapshot computed).
    Entry,
    /// The objects podswarm computes from its records, as typed for their table rows.
    Pod(Box<k8s_openapi::api::core::v1::Pod>),
    Node(Box<k8s_openapi::api::core::v1::Node>),
    Endpoints(Box<k8s_openapi::api::core::v1::Endpoints>),
    /// An object podswarm derives (a ReplicaSet): its metadata, its table cells after the
    /// name, and when it was made.
    Derived(Box<ObjectMeta>, Vec<Value>, u64),
    Event(Box<k8s_openapi::api::core::v1::Event>),
}

/// One row of a table to make: which object, and what its row is made from.
struct Row<'a> {
    namespace: &'a str,
    name: &'a str,
    typed: &'a Typed,
}

impl Item {
    fn row(&self) -> Row<'_> {
        Row {
            namespace: &self.namespace,
            name: &self.name,
            typed: &self.typed,
        }
    }
}

/// An applied object with the metadata Kubernetes adds on write.
fn entry_value(e: &Entry) -> Value {
    let mut value = e.object.to_value();
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(e.version.to_string()));
        if let Some(t) = objects::time(e.created) {
            meta.insert("creationTimestamp".into(), json!(t));
        }
        meta.insert("uid".into(), json!(e.uid()));
        meta.insert("generation".into(), json!(e.version));
    }
    value
}

/// Each Deployment's revisions as the ReplicaSets Kubernetes would keep for them, which
/// `kubectl rollout history` and `rollout undo` read: named `<deployment>-<template hash>` (its
/// pods' names start so), owned by the Deployment (by its uid), labelled and selecting with
/// `pod-template-hash`, carrying the revision number and the Deployment's annotations (which
/// `undo` writes back with the template). The current template's desires the Deployment's
/// replicas, older ones none; their counts are the pods of each template that exist.
fn replica_sets(snapshot: &Snapshot, ns: Option<&str>) -> Vec<Item> {
    let mut out = Vec::new();
    for e in snapshot.objects("Deployment", ns) {
        let Object::Deployment(d) = &e.object else {
            continue;
        };
        let (namespace, name) = (e.object.namespace(), e.object.name());
        let Some(revisions) = snapshot.revisions(namespace, name) else {
            continue;
        };
        let current = podswarm_manifest::template_hash(&d.spec.template);
        let owner = format!("Deployment/{name}");
        for (hash, revision) in revisions {
            let pods: Vec<&crate::model::Pod> = snapshot
                .pods()
                .filter(|p| {
                    p.view.namespace == namespace && p.view.owner.as_deref() == Some(&owner)
                })
                .filter(|p| {
                    podswarm_manifest::replica_ordinal(&p.view.name).is_some_and(|(h, _)| h == hash)
                })
                .filter(|p| !p.view.terminating)
                .collect();
            let ready = pods.iter().filter(|p| p.view.ready).count();
            let desired = if *hash == current {
                d.spec.replicas.unwrap_or(1)
            } else {
                0
            };
            let mut labels = revision
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
            let mut template = serde_json::to_value(&revision.template).unwrap_or(Value::Null);
            template["metadata"]["labels"] = json!(labels);
            let mut selector = d.spec.selector.match_labels.clone().unwrap_or_default();
            selector.insert(TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
            let mut annotations = d.metadata.annotations.clone().unwrap_or_default();
            // An older revision's cause is the one it last had (its record's), not the
            // Deployment's now; its other annotations are the Deployment's, which `undo` writes
            // back, so an undo keeps them.
            if *hash != current {
                match &revision.change_cause {
                    Some(cause) => {
                        annotations.insert(CHANGE_CAUSE_ANNOTATION.to_owned(), cause.clone());
                    }
                    None => {
                        annotations.remove(CHANGE_CAUSE_ANNOTATION);
                    }
                }
            }
            annotations.insert(
                REVISION_ANNOTATION.to_owned(),
                revision.revision.to_string(),
            );
            let rs_name = format!("{name}-{hash}");
            let value = json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": annotations,
                    "uid": uuid_of(&format!("ReplicaSet/{namespace}/{rs_name}/{}", revision.created)),
                    "creationTimestamp": objects::time(revision.created),
                    "resourceVersion": snapshot.stamp.state.to_string(),
                    "ownerReferences": [{
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": name,
                        "uid": e.uid(),
                        "controller": true,
                        "blockOwnerDeletion": true,
                    }],
                },
                "spec": {
                    "replicas": desired,
                    "selector": {"matchLabels": selector},
                    "template": template,
                },
                "status": {
                    "replicas": pods.len(),
                    "fullyLabeledReplicas": pods.len(),
                    "readyReplicas": ready,
                    "availableReplicas": ready,
                    "observedGeneration": 1,
                },
            });
            out.push(Item {
                namespace: namespace.to_owned(),
                name: rs_name,
                labels,
                typed: Typed::Derived(
                    serde_json::from_value(value["metadata"].clone()).unwrap_or_default(),
                    vec![json!(desired), json!(pods.len()), json!(ready)],
                    revision.created,
                ),
                value,
            });
        }
    }
    out
}

/// An event as Kubernetes' core `Event`, reported by this node (`reportingInstance`).
fn kube_event(e: &crate::events::Event, node: &str) -> k8s_openapi::api::core::v1::Event {
    use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
    let api_version = match e.kind {
        "Deployment" => "apps/v1",
        _ => "v1",
    };
    Event {
        metadata: ObjectMeta {
            name: Some(e.name.clone()),
            namespace: Some(e.namespace.clone()),
            uid: Some(uuid_of(&format!("Event/{}/{}/{node}", e.namespace, e.name))),
            resource_version: Some(e.version.to_string()),
            creation_timestamp: objects::time(e.first),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some(api_version.to_owned()),
            kind: Some(e.kind.to_owned()),
            name: Some(e.object.clone()),
            namespace: (e.kind != "Node").then(|| e.namespace.clone()),
            uid: e.uid.clone(),
            ..ObjectReference::default()
        },
        reason: Some(e.reason.to_owned()),
        message: Some(e.message.clone()),
        type_: Some(if e.warning { "Warning" } else { "Normal" }.to_owned()),
        count: Some(i32::try_from(e.count).unwrap_or(i32::MAX)),
        first_timestamp: objects::time(e.first),
        last_timestamp: objects::time(e.last),
        source: Some(EventSource {
            component: Some(crate::events::COMPONENT.to_owned()),
            host: (!e.host.is_empty()).then(|| e.host.clone()),
        }),
        reporting_component: Some(crate::events::COMPONENT.to_owned()),
        reporting_instance: Some(node.to_owned()),
        ..Event::default()
    }
}

/// An applied object with its status, for the kinds whose status podswarm computes.
fn with_status(snapshot: &Snapshot, e: &Entry) -> Value {
    let mut value = entry_value(e);
    if let Object::Deployment(_) = &e.object
        && let Some(status) = snapshot.deployment(e.object.namespace(), e.object.name())
    {
        value["status"] =
            serde_json::to_value(objects::deployment_status(status)).unwrap_or(Value::Null);
        if status.revision > 0 {
            value["metadata"]["annotations"][REVISION_ANNOTATION] =
                json!(status.revision.to_string());
        }
    }
    value
}

/// Which objects a read wants, by namespace and name: checked before an object is made into
/// its Kubernetes form, which is most of a read's work.
type Want<'w> = &'w dyn Fn(&str, &str) -> bool;

/// Every object.
fn all(_: &str, _: &str) -> bool {
    true
}

fn items(snapshot: &Snapshot, r: &Resource, ns: Option<&str>, want: Want<'_>) -> Vec<Item> {
    match r.kind {
        "Pod" => {
            let mut pods: Vec<Item> = snapshot
                .pods()
                .filter(|p| ns.is_none_or(|n| p.view.namespace == n))
                .filter(|p| want(&p.view.namespace, &p.view.name))
                .map(|p| {
                    let host = snapshot
                        .nodes()
                        .iter()
                        .find(|n| n.name == p.view.node)
                        .map(|n| n.address.as_str());
                    let mut pod = objects::pod(&p.view, host);
                    pod.metadata.uid = Some(snapshot.pod_uid(&p.view));
                    let mut value = serde_json::to_value(&pod).unwrap_or(Value::Null);
                    // A pod applied as a Pod reads back as applied (what `kubectl apply`
                    // compares against), with the status its record says and what podswarm
                    // adds to its metadata.
                    if let Some(e) = snapshot.entry("Pod", &p.view.namespace, &p.view.name) {
                        let computed = value;
                        value = entry_value(e);
                        value["status"] = computed["status"].clone();
                        let meta = &computed["metadata"];
                        for key in objects::SERVER_ANNOTATIONS {
                            if let Some(v) = meta["annotations"].get(key) {
                                value["metadata"]["annotations"][key] = v.clone();
                            }
                        }
                        if let Some(t) = meta.get("deletionTimestamp") {
                            value["metadata"]["deletionTimestamp"] = t.clone();
                        }
                        // Where it was placed, as Kubernetes' scheduler writes it.
                        if let Some(node) = computed["spec"].get("nodeName") {
                            value["spec"]["nodeName"] = node.clone();
                        }
                    }
                    Item {
                        value,
                        namespace: p.view.namespace.clone(),
                        name: p.view.name.clone(),
                        labels: p.view.labels.clone(),
                        typed: Typed::Pod(Box::new(pod)),
                    }
                })
                .collect();
            // Applied pods not scheduled yet: Pending, as in Kubernetes.
            let placed: std::collections::BTreeSet<(String, String)> = pods
                .iter()
                .map(|i| (i.namespace.clone(), i.name.clone()))
                .collect();
            for e in snapshot
                .objects("Pod", ns)
                .filter(|e| want(e.object.namespace(), e.object.name()))
            {
                if placed.contains(&(e.object.namespace().to_owned(), e.object.name().to_owned())) {
                    continue;
                }
                let mut value = entry_value(e);
                value["status"] = json!({"phase": "Pending"});
                let pod = serde_json::from_value(value.clone()).unwrap_or_default();
                pods.push(Item {
                    value,
                    namespace: e.object.namespace().to_owned(),
                    name: e.object.name().to_owned(),
                    labels: e.object.metadata().labels.clone().unwrap_or_default(),
                    typed: Typed::Pod(Box::new(pod)),
                });
            }
            pods
        }
        "ReplicaSet" => replica_sets(snapshot, ns)
            .into_iter()
            .filter(|i| want(&i.namespace, &i.name))
            .collect(),
        "Event" => snapshot
            .events()
            .iter()
            .filter(|e| ns.is_none_or(|n| e.namespace == n))
            .filter(|e| want(&e.namespace, &e.name))
            .map(|e| {
                let event = kube_event(e, snapshot.node_name());
                Item {
                    value: serde_json::to_value(&event).unwrap_or(Value::Null),
                    namespace: e.namespace.clone(),
                    name: e.name.clone(),
                    labels: std::collections::BTreeMap::new(),
                    typed: Typed::Event(Box::new(event)),
                }
            })
            .collect(),
        "Node" => super::node_items(snapshot)
            .into_iter()
            .filter(|n| want("", &n.name))
            .map(|n| {
                let node = objects::node(&n, env!("CARGO_PKG_VERSION"));
                Item {
                    value: serde_json::to_value(&node).unwrap_or(Value::Null),
                    namespace: String::new(),
                    name: n.name.clone(),
                    labels: node.metadata.labels.clone().unwrap_or_default(),
                    typed: Typed::Node(Box::new(node)),
                }
            })
            .collect(),
        // One for every Service, as Kubernetes' endpoints controller keeps them.
        "Endpoints" => snapshot
            .objects("Service", ns)
            .filter(|e| want(e.object.namespace(), e.object.name()))
            .map(|e| {
                let (namespace, name) = (e.object.namespace(), e.object.name());
                let eps = objects::endpoints(
                    namespace,
                    name,
                    snapshot.endpoints(namespace, name),
                    e.created,
                );
                Item {
                    value: serde_json::to_value(&eps).unwrap_or(Value::Null),
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    labels: e.object.metadata().labels.clone().unwrap_or_default(),
                    typed: Typed::Endpoints(Box::new(eps)),
                }
            })
            .collect(),
        kind => snapshot
            .objects(kind, ns)
            .filter(|e| want(e.object.namespace(), e.object.name()))
            .map(|e| Item {
                value: with_status(snapshot, e),
                namespace: e.object.namespace().to_owned(),
                name: e.object.name().to_owned(),
                labels: e.object.metadata().labels.clone().unwrap_or_default(),
                typed: Typed::Entry,
            })
            .collect(),
    }
}

/// `labelSelector`: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated (all must hold). Set-based
/// terms (`in`, `notin`) are refused rather than misread.
fn label_filter(selector: &str) -> Result<Vec<(String, Option<String>, bool)>, KubeError> {
    let mut terms = Vec::new();
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if term.contains(" in ") || term.contains(" notin ") || term.contains('(') {
            return Err(KubeError::new(
                Reason::BadRequest,
                format!(
                    "unable to parse requirement {term:?}: set-based label selectors are not supported by podswarm"
                ),
            ));
        }
        if let Some((k, v)) = term.split_once("!=") {
            terms.push((k.trim().to_owned(), Some(v.trim().to_owned()), false));
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            terms.push((k.trim().to_owned(), Some(v.trim().to_owned()), true));
        } else if let Some(k) = term.strip_prefix('!') {
            terms.push((k.trim().to_owned(), None, false));
        } else {
            terms.push((term.to_owned(), None, true));
        }
    }
    Ok(terms)
}

fn matches_labels(
    labels: &std::collections::BTreeMap<String, String>,
    terms: &[(String, Option<String>, bool)],
) -> bool {
    terms.iter().all(|(k, v, equal)| match v {
        Some(v) => (labels.get(k) == Some(v)) == *equal,
        None => labels.contains_key(k) == *equal,
    })
}

/// The fields a pod may be selected by besides its name and namespace, as in Kubernetes
/// (`kubectl describe node` asks for a node's pods by `spec.nodeName` and `status.phase`).
const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

/// The fields an event may be selected by, as in Kubernetes (`kubectl describe` asks for an
/// object's events by `involvedObject.*`).
const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "type",
];

/// `fieldSelector`: `metadata.name=…` and `metadata.namespace=…` (what kubectl sends for `get
/// KIND NAME --watch` and `-n`), for pods [`POD_FIELDS`] and for events [`EVENT_FIELDS`]; any
/// other field is refused.
fn field_filter(r: &Resource, selector: &str) -> Result<Vec<(String, String, bool)>, KubeError> {
    let mut terms = Vec::new();
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (k, v, equal) = if let Some((k, v)) = term.split_once("!=") {
            (k, v, false)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (k, v, true)
        } else {
            return Err(KubeError::new(
                Reason::BadRequest,
                format!("invalid field selector {term:?}"),
            ));
        };
        let k = k.trim();
        let own: &[&str] = match r.kind {
            "Pod" => POD_FIELDS,
            "Event" => EVENT_FIELDS,
            _ => &[],
        };
        if k != "metadata.name" && k != "metadata.namespace" && !own.contains(&k) {
            return Err(KubeError::new(
                Reason::BadRequest,
                format!(
                    "field label not supported: {k} (podswarm selects on metadata.name and metadata.namespace, pods also on {}, events also on {})",
                    POD_FIELDS.join(", "),
                    EVENT_FIELDS.join(", ")
                ),
            ));
        }
        terms.push((k.to_owned(), v.trim().to_owned(), equal));
    }
    Ok(terms)
}

fn list(
    api: &Shared,
    r: &'static Resource,
    ns: Option<&str>,
    q: &ListParams,
    headers: &HeaderMap,
) -> KubeResult {
    if !r.verbs.contains(&"list") {
        return Err(KubeError::new(
            Reason::MethodNotAllowed,
            format!("{} cannot be listed", r.plural),
        ));
    }
    if q.continue_.as_deref().is_some_and(|c| !c.is_empty()) {
        return Err(KubeError::new(
            Reason::Gone,
            "the continue token is not valid: podswarm answers whole lists",
        ));
    }
    let selectors = Selectors {
        labels: label_filter(q.label_selector.as_deref().unwrap_or_default())?,
        fields: field_filter(r, q.field_selector.as_deref().unwrap_or_default())?,
    };
    if q.watch.as_deref().is_some_and(|w| w != "false" && w != "0") {
        return watch::start(api, r, ns, q, selectors, wants_table(headers));
    }
    let snapshot = api.model.current();
    let resource_version = snapshot.stamp.state.to_string();
    // The objects as every list and watch of this snapshot shares them.
    let objects = api.kube_objects.objects(&snapshot, r);
    if wants_table(headers) {
        let rows: Vec<Row<'_>> = objects
            .iter()
            .filter(|((n, name), o)| selectors.selects(ns, n, name, o))
            .map(|((namespace, name), o)| Row {
                namespace,
                name,
                typed: &o.typed,
            })
            .collect();
        let mut table = table(&snapshot, r, &rows, api.state.now());
        table.metadata.resource_version = Some(resource_version);
        return Ok(json_response(&table));
    }
    let items: Vec<&Value> = objects
        .iter()
        .filter(|((n, name), o)| selectors.selects(ns, n, name, o))
        .map(|(_, o)| &o.value)
        .collect();
    #[derive(serde::Serialize)]
    struct List<'a> {
        kind: String,
        #[serde(rename = "apiVersion")]
        api_version: String,
        metadata: Value,
        items: Vec<&'a Value>,
    }
    Ok(json_response(&List {
        kind: format!("{}List", r.kind),
        api_version: r.group_version(),
        metadata: json!({"resourceVersion": resource_version}),
        items,
    }))
}

/// `POST selfsubjectreviews` (`kubectl auth whoami`): the caller as podswarm knows it, the token
/// it presented over TCP or its uid on the API socket. The request body names nothing to check.
async fn self_subject_review(request: axum::extract::Request) -> Response {
    let (username, extra) = if let Some(caller) = request.extensions().get::<super::Caller>() {
        (format!("token:{}", caller.token), "bearer token")
    } else if let Some(peer) = request
        .extensions()
        .get::<axum::extract::ConnectInfo<super::Peer>>()
    {
        (
            format!(
                "uid:{}",
                peer.0.uid.map_or("unknown".to_owned(), |u| u.to_string())
            ),
            "API socket",
        )
    } else {
        ("node".to_owned(), "node certificate")
    };
    let mut response = json_response(&json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {},
        "status": {"userInfo": {
            "username": username,
            "groups": ["system:authenticated"],
            "extra": {"podswarm.io/authenticated-by": [extra]},
        }},
    }));
    *response.status_mut() = StatusCode::CREATED;
    response
}

/// A list's or watch's selectors, parsed.
struct Selectors {
    labels: Vec<(String, Option<String>, bool)>,
    fields: Vec<(String, String, bool)>,
}

impl Selectors {
    /// Whether a read of namespace `only` (every one when `None`) with these selects the shared
    /// `object` at `namespace/name`.
    fn selects(
        &self,
        only: Option<&str>,
        namespace: &str,
        name: &str,
        object: &cache::Object,
    ) -> bool {
        only.is_none_or(|n| n == namespace)
            && self.matches(namespace, name, &object.labels, &object.value)
    }

    /// Whether these select the object `namespace/name` with `labels`, in its Kubernetes form
    /// `value`.
    fn matches(
        &self,
        namespace: &str,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
        value: &Value,
    ) -> bool {
        matches_labels(labels, &self.labels)
            && self.fields.iter().all(|(k, v, equal)| {
                let field = match k.as_str() {
                    "metadata.name" => name,
                    "metadata.namespace" => namespace,
                    // An absent field selects as the empty string, as in Kubernetes.
                    path => path
                        .split('.')
                        .fold(value, |v, key| &v[key])
                        .as_str()
                        .unwrap_or_default(),
                };
                (field == v) == *equal
            })
    }
}

fn one(
    api: &Shared,
    r: &'static Resource,
    ns: Option<&str>,
    name: &str,
    headers: &HeaderMap,
) -> KubeResult {
    if !r.verbs.contains(&"get") {
        return Err(KubeError::new(
            Reason::MethodNotAllowed,
            format!("{} cannot be read back", r.plural),
        ));
    }
    let snapshot = api.model.current();
    let mut found: Vec<Item> = items(&snapshot, r, ns, &|_, n| n == name);
    let Some(item) = found.pop() else {
        return Err(KubeError(Box::new(status::not_found(
            r.group, r.plural, name,
        ))));
    };
    if wants_table(headers) {
        let mut table = table(&snapshot, r, &[item.row()], api.state.now());
        table.metadata.resource_version = Some(snapshot.stamp.state.to_string());
        return Ok(json_response(&table));
    }
    Ok(json_response(&item.value))
}

/// The table of `rows`, with ages by `now` (the daemon's clock, which stamped their creation).
/// An applied object's row is made from `snapshot`'s entry of it.
fn table(
    snapshot: &Snapshot,
    r: &Resource,
    rows: &[Row<'_>],
    now: u64,
) -> podswarm_api::kube::table::Table {
    match r.kind {
        "Pod" => tables::pods(
            rows.iter().filter_map(|i| match i.typed {
                Typed::Pod(p) => Some(&**p),
                _ => None,
            }),
            now,
        ),
        "Node" => tables::nodes(rows.iter().filter_map(|i| match i.typed {
            Typed::Node(n) => Some(&**n),
            _ => None,
        })),
        "Endpoints" => tables::endpoints(
            rows.iter().filter_map(|i| match i.typed {
                Typed::Endpoints(e) => Some(&**e),
                _ => None,
            }),
            now,
        ),
        "Event" => tables::events(
            rows.iter().filter_map(|i| match i.typed {
                Typed::Event(e) => Some(&**e),
                _ => None,
            }),
            now,
        ),
        "ReplicaSet" => tables::simple(
            rows.iter().filter_map(|i| match i.typed {
                Typed::Derived(meta, cells, created) => Some((&**meta, cells.clone(), *created)),
                _ => None,
            }),
            &[
                ("Desired", "Number of desired pods."),
                ("Current", "Number of pods that exist."),
                ("Ready", "Number of ready pods."),
            ],
            now,
        ),
        _ => {
            let entries = rows
                .iter()
                .filter_map(|i| snapshot.entry(r.kind, i.namespace, i.name));
            entry_table(snapshot, r, entries, now)
        }
    }
}

fn entry_table<'a>(
    snapshot: &'a Snapshot,
    r: &Resource,
    entries: impl Iterator<Item = &'a Entry>,
    now: u64,
) -> podswarm_api::kube::table::Table {
    match r.kind {
        "Deployment" => tables::deployments(
            entries.filter_map(|e| match &e.object {
                Object::Deployment(d) => snapshot
                    .deployment(e.object.namespace(), e.object.name())
                    .map(|s| (s, d)),
                _ => None,
            }),
            now,
        ),
        "Service" => tables::services(
            entries.filter_map(|e| match &e.object {
                Object::Service(s) => Some((s, e.created)),
                _ => None,
            }),
            now,
        ),
        "Ingress" => tables::ingresses(
            entries.filter_map(|e| match &e.object {
                Object::Ingress(i) => Some((i, e.created)),
                _ => None,
            }),
            now,
        ),
        "Namespace" => tables::simple(
            entries.map(|e| (meta(e), vec![json!("Active")], e.created)),
            &[("Status", "The namespace's phase.")],
            now,
        ),
        "ConfigMap" => tables::simple(
            entries.map(|e| {
                let n = match &e.object {
                    Object::ConfigMap(c) => {
                        c.data.as_ref().map_or(0, |d| d.len())
                            + c.binary_data.as_ref().map_or(0, |d| d.len())
                    }
                    _ => 0,
                };
                (meta(e), vec![json!(n)], e.created)
            }),
            &[("Data", "Number of keys.")],
            now,
        ),
        "Secret" => tables::simple(
            entries.map(|e| {
                let (type_, n) = match &e.object {
                    Object::Secret(s) => (
                        s.type_.clone().unwrap_or_else(|| "Opaque".to_owned()),
                        s.data.as_ref().map_or(0, |d| d.len())
                            + s.string_data.as_ref().map_or(0, |d| d.len()),
                    ),
                    _ => (String::new(), 0),
                };
                (meta(e), vec![json!(type_), json!(n)], e.created)
            }),
            &[("Type", "The type of secret."), ("Data", "Number of keys.")],
            now,
        ),
        _ => tables::simple(entries.map(|e| (meta(e), Vec::new(), e.created)), &[], now),
    }
}

fn meta(e: &Entry) -> &ObjectMeta {
    e.object.metadata()
}

/// `kubectl logs`' parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogParams {
    container: Option<String>,
    follow: Option<bool>,
    tail_lines: Option<u64>,
    previous: Option<bool>,
    timestamps: Option<bool>,
    since_seconds: Option<u64>,
    since_time: Option<String>,
    limit_bytes: Option<u64>,
}

/// `GET /api/v1/namespaces/{ns}/pods/{name}/log`: the same journal podswarm's own logs endpoint
/// reads, from the node that runs the pod (proxied there over mTLS as podswarm's path).
async fn pod_log(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogParams>,
) -> KubeResult {
    let since = match (q.since_seconds, q.since_time.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(KubeError::new(
                Reason::BadRequest,
                "at most one of sinceTime or sinceSeconds may be specified",
            ));
        }
        (Some(s), None) => Some(
            i64::try_from(crate::link::unix_now())
                .unwrap_or(i64::MAX)
                .saturating_sub(i64::try_from(s).unwrap_or(i64::MAX)),
        ),
        (None, Some(t)) => Some(
            t.parse::<k8s_openapi::jiff::Timestamp>()
                .map_err(|e| {
                    KubeError::new(
                        Reason::BadRequest,
                        format!("sinceTime {t:?} is not an RFC 3339 time: {e}"),
                    )
                })?
                .as_second(),
        ),
        (None, None) => None,
    };
    let query = super::LogQuery {
        follow: q.follow,
        tail: q.tail_lines,
        container: q.container,
        timestamps: q.timestamps,
        since,
        limit_bytes: q.limit_bytes,
        previous: q.previous,
    };
    // The path another node serves, for the proxy: podswarm's own, with its parameters.
    let mut path = format!(
        "/api/v1/pods/{ns}/{name}/logs?follow={}",
        query.follow == Some(true)
    );
    if let Some(n) = query.tail {
        path.push_str(&format!("&tail={n}"));
    }
    if query.timestamps == Some(true) {
        path.push_str("&timestamps=true");
    }
    if let Some(t) = query.since {
        path.push_str(&format!("&since={t}"));
    }
    if let Some(n) = query.limit_bytes {
        path.push_str(&format!("&limitBytes={n}"));
    }
    if query.previous == Some(true) {
        path.push_str("&previous=true");
    }
    if let Some(c) = &query.container {
        // Container names are DNS labels: anything else names no container, and would need
        // escaping in the path passed on.
        if !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(KubeError::new(
                Reason::BadRequest,
                format!("{c:?} is not a container name"),
            ));
        }
        path.push_str(&format!("&container={c}"));
    }
    let uri: axum::http::Uri = path
        .parse()
        .map_err(|_| KubeError::new(Reason::BadRequest, "invalid pod or container name"))?;
    Ok(super::logs(&api, &ns, &name, &query, &uri).await?)
}

/// `deployments/{name}/scale`, as `autoscaling/v1` `Scale`: desired replicas in `spec`, the
/// pods that exist and the selector in `status`.
fn scale_of(snapshot: &Snapshot, ns: &str, name: &str) -> Result<Value, KubeError> {
    let not_found = || KubeError(Box::new(status::not_found("apps", "deployments", name)));
    let e = snapshot
        .entry("Deployment", ns, name)
        .ok_or_else(not_found)?;
    let Object::Deployment(d) = &e.object else {
        return Err(not_found());
    };
    let selector = tables::label_pairs(d.spec.selector.match_labels.iter().flatten());
    let existing = snapshot.deployment(ns, name).map_or(0, |s| s.total);
    let meta = entry_value(e)["metadata"].clone();
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": d.spec.replicas.unwrap_or(1)},
        "status": {"replicas": existing, "selector": selector},
    }))
}

/// `GET deployments/{name}/status`: the Deployment, with the status podswarm computes for it.
async fn get_deployment_status(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> KubeResult {
    let r = resource("apps", "v1", "deployments")?;
    one(&api, r, Some(&ns), &name, &headers)
}

/// `PUT`/`PATCH deployments/{name}/status`: refused, since a Deployment's status is what
/// podswarm observes of its pods, which no client can set.
async fn write_deployment_status(Path((ns, name)): Path<(String, String)>) -> KubeError {
    KubeError::new(
        Reason::MethodNotAllowed,
        format!(
            "the status of deployment {ns}/{name} is computed by podswarm from its pods and cannot be written"
        ),
    )
}

async fn get_scale(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> KubeResult {
    Ok(json_response(&scale_of(&api.model.current(), &ns, &name)?))
}

/// The replicas a `Scale` body (PUT) or a merge patch of one (PATCH) asks for, and the
/// `resourceVersion` it names, if any. Anything but `spec.replicas` (and the identity fields a
/// full `Scale` carries) is refused: a scale changes nothing else.
fn requested_replicas(body: &[u8]) -> Result<(i32, Option<u64>), KubeError> {
    let invalid = |why: String| KubeError::new(Reason::BadRequest, why);
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the body is not a JSON object: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(invalid(
            "a scale patch is a JSON object (merge patch); JSON patch is not supported here"
                .to_owned(),
        ));
    };
    for key in object.keys() {
        if !["spec", "metadata", "kind", "apiVersion", "status"].contains(&key.as_str()) {
            return Err(invalid(format!("a Scale has no field {key:?}")));
        }
    }
    let replicas = value["spec"]["replicas"]
        .as_i64()
        .and_then(|r| i32::try_from(r).ok())
        .ok_or_else(|| {
            KubeError::new(Reason::Invalid, "spec.replicas: Required value: an integer")
        })?;
    Ok((
        replicas,
        resource_version(value["metadata"].get("resourceVersion"))?,
    ))
}

/// The `resourceVersion` a body's metadata names (its `resourceVersion` field): a
/// precondition of the write, which podswarm gave as a state version (anything else cannot
/// match, so it is a conflict).
fn resource_version(field: Option<&Value>) -> Result<Option<u64>, KubeError> {
    match field.and_then(Value::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            KubeError::new(
                Reason::Conflict,
                format!("resourceVersion {v:?} is not one podswarm gave"),
            )
        }),
    }
}

/// A scale's parameters: who is scaling.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScaleParams {
    field_manager: Option<String>,
}

async fn put_scale(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<ScaleParams>,
    headers: HeaderMap,
    write::Body(body): write::Body,
) -> KubeResult {
    let (replicas, version) = requested_replicas(&body)?;
    let manager = manager_of(q.field_manager.as_deref(), &headers)?;
    super::scale_to(&api, &ns, &name, replicas, version, &manager).await?;
    Ok(json_response(&scale_of(&api.model.current(), &ns, &name)?))
}

async fn patch_scale(
    AxState(api): AxState<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<ScaleParams>,
    headers: HeaderMap,
    write::Body(body): write::Body,
) -> KubeResult {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/merge-patch+json")
        && !content_type.starts_with("application/strategic-merge-patch+json")
    {
        return Err(KubeError::new(
            Reason::UnsupportedMediaType,
            format!(
                "the scale subresource takes merge patches (application/merge-patch+json or application/strategic-merge-patch+json), not {content_type:?}"
            ),
        ));
    }
    let (replicas, version) = requested_replicas(&body)?;
    let manager = manager_of(q.field_manager.as_deref(), &headers)?;
    super::scale_to(&api, &ns, &name, replicas, version, &manager).await?;
    Ok(json_response(&scale_of(&api.model.current(), &ns, &name)?))
}
