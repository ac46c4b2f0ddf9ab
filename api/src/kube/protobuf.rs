//! Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`) of request bodies, read
//! into the JSON form every other write has.
//!
//! kubectl's typed clients send protobuf for built-in kinds and have no JSON fallback: `kubectl
//! create configmap|secret|deployment|namespace|service`, `kubectl run` and `kubectl expose`
//! fail against a server that cannot read it. Answers stay JSON, which those clients read.
//!
//! The wire format is upstream's: the magic `k8s\0`, then a `runtime.Unknown` carrying the
//! object's `apiVersion` and `kind` and the object's own message, encoded from the
//! `generated.proto` files of `k8s.io/api` and `k8s.io/apimachinery` (vendored in
//! `third_party/k8s-proto`, compiled into `api/protobuf/k8s.binpb` by this module's test with
//! protox, and embedded). Messages are read with prost-reflect against those descriptors, so no
//! kind's fields are written out here; the only hand-written part is the handful of types whose
//! JSON form is not their message's shape (`IntOrString`, `Quantity`, `Time`, `MicroTime`,
//! `Duration`, and the raw JSON of `RawExtension` and `FieldsV1`). Field names are the proto
//! fields', which upstream generates from the JSON names.

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, ReflectMessage, Value as Proto};
use serde_json::{Map, Value};

/// The compiled descriptors of the vendored `.proto` files.
const DESCRIPTORS: &[u8] = include_bytes!("../../protobuf/k8s.binpb");

/// What starts every protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// The media type of a protobuf body.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

static POOL: LazyLock<Result<DescriptorPool, prost_reflect::DescriptorError>> =
    LazyLock::new(|| DescriptorPool::decode(DESCRIPTORS));

/// Why a protobuf body was not read.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("the body does not start with the protobuf envelope's magic number")]
    NoMagic,
    #[error("cannot read the protobuf envelope")]
    Envelope(#[source] prost::DecodeError),
    #[error("the protobuf envelope's content encoding {0:?} is not supported")]
    Encoding(String),
    #[error("no protobuf message for {kind} in {api_version}")]
    UnknownKind { api_version: String, kind: String },
    #[error("cannot read the {kind} message")]
    Message {
        kind: String,
        #[source]
        source: prost::DecodeError,
    },
    /// The descriptors are read once; their error is kept as its message.
    #[error("the embedded protobuf descriptors are unreadable: {0}")]
    Descriptors(String),
}

/// A protobuf request body as the object's JSON, with `apiVersion` and `kind`.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let pool = POOL
        .as_ref()
        .map_err(|e| ProtobufError::Descriptors(e.to_string()))?;
    let unknown_type = message_type(pool, "k8s.io.apimachinery.pkg.runtime.Unknown")?;
    let unknown = DynamicMessage::decode(unknown_type, rest).map_err(ProtobufError::Envelope)?;
    let text = |m: &DynamicMessage, name: &str| {
        m.get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let type_meta = unknown
        .get_field_by_name("typeMeta")
        .and_then(|v| v.as_message().cloned())
        .unwrap_or_else(|| DynamicMessage::new(unknown.descriptor()));
    let api_version = text(&type_meta, "apiVersion");
    let kind = text(&type_meta, "kind");
    let encoding = text(&unknown, "contentEncoding");
    if !encoding.is_empty() {
        return Err(ProtobufError::Encoding(encoding));
    }
    let raw = unknown
        .get_field_by_name("raw")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    let unknown_kind = || ProtobufError::UnknownKind {
        api_version: api_version.clone(),
        kind: kind.clone(),
    };
    // `v1` is the core group; `apps/v1`, `networking.k8s.io/v1` are their package's first word.
    let (package, version) = match api_version.split_once('/') {
        None => ("core", api_version.as_str()),
        Some((group, version)) => (group.split('.').next().unwrap_or_default(), version),
    };
    if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(unknown_kind());
    }
    let object_type = pool
        .get_message_by_name(&format!("k8s.io.api.{package}.{version}.{kind}"))
        .ok_or_else(unknown_kind)?;
    let object = DynamicMessage::decode(object_type, raw.as_ref()).map_err(|source| {
        ProtobufError::Message {
            kind: kind.clone(),
            source,
        }
    })?;
    let mut value = message(&object);
    if let Value::Object(map) = &mut value {
        map.insert("apiVersion".into(), Value::String(api_version));
        map.insert("kind".into(), Value::String(kind));
    }
    Ok(value)
}

fn message_type(
    pool: &DescriptorPool,
    name: &str,
) -> Result<prost_reflect::MessageDescriptor, ProtobufError> {
    pool.get_message_by_name(name)
        .ok_or_else(|| ProtobufError::UnknownKind {
            api_version: String::new(),
            kind: name.to_owned(),
        })
}

/// A message's JSON form: its set fields, or the special form of the types that have one.
fn message(m: &DynamicMessage) -> Value {
    let field = |name: &str| m.get_field_by_name(name).map(|v| value(&v));
    match m.descriptor().full_name() {
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => {
            let is_string = m
                .get_field_by_name("type")
                .and_then(|v| v.as_i64())
                .is_some_and(|t| t == 1);
            let v = if is_string {
                field("strVal")
            } else {
                field("intVal")
            };
            v.unwrap_or(Value::Null)
        }
        "k8s.io.apimachinery.pkg.api.resource.Quantity" => field("string").unwrap_or(Value::Null),
        "k8s.io.apimachinery.pkg.apis.meta.v1.Time"
        | "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime" => {
            let seconds = m.get_field_by_name("seconds").and_then(|v| v.as_i64());
            let nanos = m
                .get_field_by_name("nanos")
                .and_then(|v| v.as_i32())
                .unwrap_or(0);
            seconds
                .and_then(|s| k8s_openapi::jiff::Timestamp::new(s, nanos).ok())
                .map_or(Value::Null, |t| Value::String(t.to_string()))
        }
        "k8s.io.apimachinery.pkg.apis.meta.v1.Duration" => m
            .get_field_by_name("duration")
            .and_then(|v| v.as_i64())
            .map_or(Value::Null, |ns| {
                Value::String(format!("{}s", ns as f64 / 1e9))
            }),
        "k8s.io.apimachinery.pkg.runtime.RawExtension"
        | "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1" => {
            let raw = m
                .get_field_by_name("raw")
                .or_else(|| m.get_field_by_name("Raw"))
                .and_then(|v| v.as_bytes().cloned())
                .unwrap_or_default();
            serde_json::from_slice(&raw).unwrap_or(Value::Null)
        }
        _ => Value::Object(
            m.fields()
                .filter(|(f, v)| !unset(f.name(), v))
                .map(|(f, v)| (f.name().to_owned(), value(v)))
                .collect::<Map<String, Value>>(),
        ),
    }
}

/// Go fields that are pointers (`*int32`, `*bool`, `*int64`) in `k8s.io/api`, whose zero is a
/// value a client chose: `replicas: 0`, `runAsUser: 0`, `allowPrivilegeEscalation: false`.
const POINTER_SCALARS: &[&str] = &[
    "replicas",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "automountServiceAccountToken",
    "shareProcessNamespace",
    "enableServiceLinks",
    "hostUsers",
    "setHostnameAsFQDN",
    "priority",
    "privileged",
    "readOnlyRootFilesystem",
    "allowPrivilegeEscalation",
    "runAsNonRoot",
    "runAsUser",
    "runAsGroup",
    "fsGroup",
    "immutable",
    "optional",
    "defaultMode",
    "mode",
    "allocateLoadBalancerNodePorts",
    "expirationSeconds",
];

/// Whether a field a Go client sent is one its JSON would leave out. Go's protobuf encoding
/// writes every field that is not a pointer, set or not (`restartPolicy: ""`, `hostPort: 0`,
/// `stdin: false`, a zero `creationTimestamp`), where its JSON omits them (`omitempty`): such
/// zeros are dropped, except in the fields that are pointers, where zero was chosen.
fn unset(name: &str, v: &Proto) -> bool {
    let zero = match v {
        Proto::String(s) => return s.is_empty(),
        Proto::Bool(b) => !b,
        Proto::I32(i) => *i == 0,
        Proto::I64(i) => *i == 0,
        Proto::U32(i) => *i == 0,
        Proto::U64(i) => *i == 0,
        Proto::Message(m) => {
            return match m.descriptor().full_name() {
                "k8s.io.apimachinery.pkg.apis.meta.v1.Time"
                | "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime" => m
                    .get_field_by_name("seconds")
                    .and_then(|s| s.as_i64())
                    .is_none_or(|s| s <= 0),
                // A Service port's target (not a pointer) left out is the port.
                "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => {
                    name == "targetPort" && message(m) == 0
                }
                _ => false,
            };
        }
        _ => false,
    };
    zero && !POINTER_SCALARS.contains(&name)
}

fn value(v: &Proto) -> Value {
    match v {
        Proto::Bool(b) => Value::Bool(*b),
        Proto::I32(i) => Value::from(*i),
        Proto::I64(i) => Value::from(*i),
        Proto::U32(i) => Value::from(*i),
        Proto::U64(i) => Value::from(*i),
        Proto::F32(f) => Value::from(f64::from(*f)),
        Proto::F64(f) => Value::from(*f),
        Proto::String(s) => Value::String(s.clone()),
        // Secret data, ConfigMap binaryData: base64 in JSON, as upstream's JSON has them.
        Proto::Bytes(b) => Value::String(BASE64.encode(b)),
        Proto::EnumNumber(n) => Value::from(*n),
        Proto::Message(m) => message(m),
        Proto::List(items) => Value::Array(items.iter().map(value).collect()),
        Proto::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        MapKey::Bool(b) => b.to_string(),
                        MapKey::I32(i) => i.to_string(),
                        MapKey::I64(i) => i.to_string(),
                        MapKey::U32(i) => i.to_string(),
                        MapKey::U64(i) => i.to_string(),
                        MapKey::String(s) => s.clone(),
                    };
                    (key, value(v))
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use serde_json::json;

    const PROTOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../third_party/k8s-proto");
    const FILES: &[&str] = &[
        "k8s.io/api/core/v1/generated.proto",
        "k8s.io/api/apps/v1/generated.proto",
        "k8s.io/api/networking/v1/generated.proto",
    ];

    /// The embedded descriptors are the vendored `.proto` files compiled;
    /// `EXPECTORATE=overwrite` writes them again.
    #[test]
    fn descriptors_are_the_vendored_protos() {
        let mut set = protox::compile(FILES, [PROTOS]).unwrap();
        // The comments are most of the size, and decoding needs none of them.
        for file in &mut set.file {
            file.source_code_info = None;
        }
        let bytes = set.encode_to_vec();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/protobuf/k8s.binpb");
        if std::env::var("EXPECTORATE").as_deref() == Ok("overwrite") {
            std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/protobuf")).unwrap();
            std::fs::write(path, &bytes).unwrap();
        }
        assert!(
            bytes == DESCRIPTORS,
            "api/protobuf/k8s.binpb is not third_party/k8s-proto compiled: EXPECTORATE=overwrite cargo test -p podswarm-api --lib protobuf"
        );
    }

    fn pool() -> &'static DescriptorPool {
        POOL.as_ref().unwrap()
    }

    fn new(name: &str) -> DynamicMessage {
        DynamicMessage::new(pool().get_message_by_name(name).unwrap())
    }

    fn set(m: &mut DynamicMessage, field: &str, v: Proto) {
        m.set_field_by_name(field, v);
    }

    /// A body as a typed client encodes it.
    fn envelope(api_version: &str, kind: &str, object: &DynamicMessage) -> Vec<u8> {
        let mut type_meta = new("k8s.io.apimachinery.pkg.runtime.TypeMeta");
        set(
            &mut type_meta,
            "apiVersion",
            Proto::String(api_version.into()),
        );
        set(&mut type_meta, "kind", Proto::String(kind.into()));
        let mut unknown = new("k8s.io.apimachinery.pkg.runtime.Unknown");
        set(&mut unknown, "typeMeta", Proto::Message(type_meta));
        set(
            &mut unknown,
            "raw",
            Proto::Bytes(object.encode_to_vec().into()),
        );
        set(
            &mut unknown,
            "contentEncoding",
            Proto::String(String::new()),
        );
        set(&mut unknown, "contentType", Proto::String(String::new()));
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    fn metadata(name: &str) -> DynamicMessage {
        let mut meta = new("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        set(&mut meta, "name", Proto::String(name.into()));
        meta
    }

    #[test]
    fn a_secret_reads_as_its_json() {
        let mut secret = new("k8s.io.api.core.v1.Secret");
        set(&mut secret, "metadata", Proto::Message(metadata("s")));
        set(
            &mut secret,
            "data",
            Proto::Map(
                [(
                    MapKey::String("p".into()),
                    Proto::Bytes(b"q".to_vec().into()),
                )]
                .into(),
            ),
        );
        set(&mut secret, "type", Proto::String("Opaque".into()));
        let value = decode(&envelope("v1", "Secret", &secret)).unwrap();
        assert_eq!(
            value,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                "data": {"p": "cQ=="}, "type": "Opaque"})
        );
    }

    #[test]
    fn int_or_string_quantity_and_time_read_as_upstreams_json() {
        let mut surge = new("k8s.io.apimachinery.pkg.util.intstr.IntOrString");
        set(&mut surge, "type", Proto::I64(1));
        set(&mut surge, "strVal", Proto::String("25%".into()));
        let mut unavailable = new("k8s.io.apimachinery.pkg.util.intstr.IntOrString");
        set(&mut unavailable, "type", Proto::I64(0));
        set(&mut unavailable, "intVal", Proto::I32(0));
        let mut rolling = new("k8s.io.api.apps.v1.RollingUpdateDeployment");
        set(&mut rolling, "maxSurge", Proto::Message(surge));
        set(&mut rolling, "maxUnavailable", Proto::Message(unavailable));
        let mut strategy = new("k8s.io.api.apps.v1.DeploymentStrategy");
        set(&mut strategy, "rollingUpdate", Proto::Message(rolling));
        let mut quantity = new("k8s.io.apimachinery.pkg.api.resource.Quantity");
        set(&mut quantity, "string", Proto::String("128Mi".into()));
        let mut resources = new("k8s.io.api.core.v1.ResourceRequirements");
        set(
            &mut resources,
            "limits",
            Proto::Map([(MapKey::String("memory".into()), Proto::Message(quantity))].into()),
        );
        let mut container = new("k8s.io.api.core.v1.Container");
        set(&mut container, "name", Proto::String("web".into()));
        set(&mut container, "image", Proto::String("nginx".into()));
        set(&mut container, "resources", Proto::Message(resources));
        let mut pod_spec = new("k8s.io.api.core.v1.PodSpec");
        set(
            &mut pod_spec,
            "containers",
            Proto::List(vec![Proto::Message(container)]),
        );
        let mut template = new("k8s.io.api.core.v1.PodTemplateSpec");
        set(&mut template, "spec", Proto::Message(pod_spec));
        let mut spec = new("k8s.io.api.apps.v1.DeploymentSpec");
        set(&mut spec, "replicas", Proto::I32(0));
        set(&mut spec, "strategy", Proto::Message(strategy));
        set(&mut spec, "template", Proto::Message(template));
        let mut time = new("k8s.io.apimachinery.pkg.apis.meta.v1.Time");
        set(&mut time, "seconds", Proto::I64(1_700_000_000));
        let mut meta = metadata("web");
        set(&mut meta, "creationTimestamp", Proto::Message(time));
        let mut deployment = new("k8s.io.api.apps.v1.Deployment");
        set(&mut deployment, "metadata", Proto::Message(meta));
        set(&mut deployment, "spec", Proto::Message(spec));
        let value = decode(&envelope("apps/v1", "Deployment", &deployment)).unwrap();
        assert_eq!(
            value["metadata"]["creationTimestamp"],
            "2023-11-14T22:13:20Z"
        );
        // Present in proto2 even at zero: a replica count of 0 is kept.
        assert_eq!(value["spec"]["replicas"], 0);
        assert_eq!(
            value["spec"]["strategy"]["rollingUpdate"],
            json!({"maxSurge": "25%", "maxUnavailable": 0})
        );
        assert_eq!(
            value["spec"]["template"]["spec"]["containers"][0]["resources"],
            json!({"limits": {"memory": "128Mi"}})
        );
        // And it is a Deployment k8s-openapi reads.
        let _: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(value).unwrap();
    }

    #[test]
    fn zeros_go_writes_for_fields_that_are_not_pointers_are_left_out() {
        let mut port = new("k8s.io.api.core.v1.ContainerPort");
        set(&mut port, "name", Proto::String(String::new()));
        set(&mut port, "hostPort", Proto::I32(0));
        set(&mut port, "containerPort", Proto::I32(8080));
        let mut security = new("k8s.io.api.core.v1.SecurityContext");
        set(&mut security, "runAsUser", Proto::I64(0));
        set(
            &mut security,
            "allowPrivilegeEscalation",
            Proto::Bool(false),
        );
        let mut container = new("k8s.io.api.core.v1.Container");
        set(&mut container, "name", Proto::String("web".into()));
        set(&mut container, "image", Proto::String("nginx".into()));
        set(&mut container, "workingDir", Proto::String(String::new()));
        set(&mut container, "stdin", Proto::Bool(false));
        set(
            &mut container,
            "ports",
            Proto::List(vec![Proto::Message(port)]),
        );
        set(&mut container, "securityContext", Proto::Message(security));
        let mut spec = new("k8s.io.api.core.v1.PodSpec");
        set(&mut spec, "restartPolicy", Proto::String(String::new()));
        set(
            &mut spec,
            "containers",
            Proto::List(vec![Proto::Message(container)]),
        );
        let mut meta = metadata("web");
        set(
            &mut meta,
            "creationTimestamp",
            Proto::Message(new("k8s.io.apimachinery.pkg.apis.meta.v1.Time")),
        );
        let mut pod = new("k8s.io.api.core.v1.Pod");
        set(&mut pod, "metadata", Proto::Message(meta));
        set(&mut pod, "spec", Proto::Message(spec));
        let value = decode(&envelope("v1", "Pod", &pod)).unwrap();
        assert_eq!(
            value,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                "spec": {"containers": [{"name": "web", "image": "nginx",
                    "ports": [{"containerPort": 8080}],
                    "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": false}}]}})
        );
    }

    #[test]
    fn bad_bodies_are_refused() {
        assert!(matches!(decode(b"{}"), Err(ProtobufError::NoMagic)));
        assert!(matches!(
            decode(b"k8s\0\xff\xff\xff"),
            Err(ProtobufError::Envelope(_))
        ));
        let job = new("k8s.io.api.core.v1.ConfigMap");
        assert!(matches!(
            decode(&envelope("batch/v1", "Job", &job)),
            Err(ProtobufError::UnknownKind { .. })
        ));
        assert!(matches!(
            decode(&envelope("v1", "../Secret", &job)),
            Err(ProtobufError::UnknownKind { .. })
        ));
    }
}
