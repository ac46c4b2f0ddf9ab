use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, Origin, Problem};
use crate::validate::{Policy, validate};

/// Bounds on one input. The YAML parser's own budget bounds nodes and alias replay; these bound
/// what reaches it.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_documents: usize,
    /// Total events that aliases may replay: a "billion laughs" document stops here.
    pub max_alias_events: usize,
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 4 << 20,
            max_documents: 1000,
            max_alias_events: 100_000,
            max_nodes: 500_000,
        }
    }
}

/// The kinds podswarm runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Namespace(Namespace),
    Pod(Pod),
    Deployment(Deployment),
    Service(Service),
    Ingress(Ingress),
    ConfigMap(ConfigMap),
    Secret(Secret),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Namespace(_) => "Namespace",
            Object::Pod(_) => "Pod",
            Object::Deployment(_) => "Deployment",
            Object::Service(_) => "Service",
            Object::Ingress(_) => "Ingress",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
        }
    }

    pub fn metadata(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::Ingress(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
        }
    }

    pub fn metadata_mut(
        &mut self,
    ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Object::Namespace(o) => &mut o.metadata,
            Object::Pod(o) => &mut o.metadata,
            Object::Deployment(o) => &mut o.metadata,
            Object::Service(o) => &mut o.metadata,
            Object::Ingress(o) => &mut o.metadata,
            Object::ConfigMap(o) => &mut o.metadata,
            Object::Secret(o) => &mut o.metadata,
        }
    }

    /// The object as Kubernetes JSON (with `apiVersion` and `kind`), e.g. for storage.
    pub fn to_value(&self) -> Value {
        let v = match self {
            Object::Namespace(o) => serde_json::to_value(o),
            Object::Pod(o) => serde_json::to_value(o),
            Object::Deployment(o) => serde_json::to_value(o),
            Object::Service(o) => serde_json::to_value(o),
            Object::Ingress(o) => serde_json::to_value(o),
            Object::ConfigMap(o) => serde_json::to_value(o),
            Object::Secret(o) => serde_json::to_value(o),
        };
        v.unwrap_or(Value::Null)
    }

    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The namespace, `default` when the manifest left it out (as kubectl does); empty for
    /// cluster-scoped kinds.
    pub fn namespace(&self) -> &str {
        match self {
            Object::Namespace(_) => "",
            _ => self.metadata().namespace.as_deref().unwrap_or("default"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedObject {
    pub origin: Origin,
    pub object: Object,
}

/// A whole input, accepted: every object valid, with the warnings the user must see.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub objects: Vec<ParsedObject>,
    pub warnings: Vec<Problem>,
}

/// Kinds Kubernetes has that podswarm does not run (yet). Named so the error can say "not supported"
/// instead of "unknown": the user did nothing wrong, podswarm just cannot do it.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "StorageClass",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "NetworkPolicy",
    "Endpoints",
    "EndpointSlice",
    "IngressClass",
    "LimitRange",
    "ResourceQuota",
    "CustomResourceDefinition",
    "PriorityClass",
];

const SUPPORTED: &str = "Namespace, Pod, Deployment, Service, Ingress, ConfigMap, Secret";

/// What intake does with a field the Kubernetes schema does not have: the Kubernetes API's
/// `fieldValidation`. podswarm's own intake is `Strict`: a misspelt field is a mistake to show,
/// not something to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Refuse the object, naming each unknown field.
    #[default]
    Strict,
    /// Accept it without the field, with a warning per field.
    Warn,
    /// Accept it without the field.
    Ignore,
}

/// The message of a [`Problem`] about a field the Kubernetes schema does not have, so callers
/// that report those differently (the Kubernetes API's "strict decoding error") can tell them.
pub const UNKNOWN_FIELD: &str =
    "unknown field: Kubernetes has no such field here (check spelling and indentation)";

/// Parses and validates one input (YAML stream, JSON value or JSON stream), strictly.
pub fn parse(
    input: &str,
    source: &str,
    limits: &Limits,
    policy: &Policy,
) -> Result<Manifest, Error> {
    parse_with(input, source, limits, policy, FieldValidation::Strict)
}

/// Parses and validates one input, with `fields` saying what becomes of unknown fields.
///
/// `source` names the input in messages (a file name, `<stdin>`, `request body`). Nothing is
/// returned unless every object is valid: a manifest is applied whole or not at all.
pub fn parse_with(
    input: &str,
    source: &str,
    limits: &Limits,
    policy: &Policy,
    fields: FieldValidation,
) -> Result<Manifest, Error> {
    if input.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            source_name: source.to_owned(),
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    let documents = split_documents(input, source, limits)?;
    let mut manifest = Manifest::default();
    let mut problems = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let origin = Origin {
            source: source.to_owned(),
            document: index + 1,
            item: None,
        };
        match document {
            Value::Null => continue, // an empty document, e.g. after a trailing `---`
            Value::Object(map) if is_list(&map) => {
                let Some(Value::Array(items)) = map.get("items") else {
                    problems.push(problem(
                        &origin,
                        None,
                        "items",
                        "a List needs an items array",
                    ));
                    continue;
                };
                for (i, item) in items.iter().enumerate() {
                    let origin = Origin {
                        item: Some(i),
                        ..origin.clone()
                    };
                    decode_document(item, origin, policy, fields, &mut manifest, &mut problems);
                }
            }
            other => decode_document(&other, origin, policy, fields, &mut manifest, &mut problems),
        }
    }
    check_duplicates(&manifest, &mut problems);
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(Error::Invalid { problems })
    }
}

fn is_list(map: &Map<String, Value>) -> bool {
    map.get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || (k.ends_with("List") && map.contains_key("items")))
}

/// The documents of a YAML or JSON input as JSON values, before any of them is read as an
/// object: what a server-side apply's `application/apply-patch+yaml` body is read with, so it
/// meets the same syntax and limits as a manifest.
pub fn read_documents(input: &str, source: &str, limits: &Limits) -> Result<Vec<Value>, Error> {
    if input.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            source_name: source.to_owned(),
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    split_documents(input, source, limits)
}

fn split_documents(input: &str, source: &str, limits: &Limits) -> Result<Vec<Value>, Error> {
    let trimmed = input.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    let documents = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        json_documents(input, source)?
    } else {
        yaml_documents(input, source, limits)?
    };
    if documents.len() > limits.max_documents {
        return Err(Error::Syntax {
            source_name: source.to_owned(),
            line: None,
            column: None,
            message: format!(
                "{} documents, over the limit of {}",
                documents.len(),
                limits.max_documents
            ),
        });
    }
    Ok(documents)
}

/// JSON: one value, a stream of values, or a top-level array of objects (each one a document).
fn json_documents(input: &str, source: &str) -> Result<Vec<Value>, Error> {
    let mut documents = Vec::new();
    for value in serde_json::Deserializer::from_str(input).into_iter::<Value>() {
        match value {
            Ok(Value::Array(items)) => documents.extend(items),
            Ok(value) => documents.push(value),
            Err(e) => {
                return Err(Error::Syntax {
                    source_name: source.to_owned(),
                    line: Some(e.line() as u64),
                    column: Some(e.column() as u64),
                    message: format!("invalid JSON: {}", strip_json_position(&e.to_string())),
                });
            }
        }
    }
    Ok(documents)
}

fn strip_json_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

fn yaml_documents(input: &str, source: &str, limits: &Limits) -> Result<Vec<Value>, Error> {
    let mut budget = serde_saphyr::budget::Budget::default();
    budget.max_documents = limits.max_documents;
    budget.max_nodes = limits.max_nodes;
    budget.max_total_scalar_bytes = limits.max_bytes;
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = limits.max_alias_events;
    let options = serde_saphyr::options! {
        budget: Some(budget),
        alias_limits: alias_limits,
        // Kubernetes is YAML 1.1 on the wire but kubectl reads `on`/`yes` as strings in practice;
        // strict booleans keep "yes" a string instead of silently turning it into true.
        strict_booleans: true,
        // kubectl reads YAML 1.1, where `defaultMode: 0644` is octal; manifests depend on it.
        legacy_octal_numbers: true,
        with_snippet: false,
    };
    serde_saphyr::from_multiple_with_options::<Value>(input, options).map_err(|e| {
        let location = e.location();
        Error::Syntax {
            source_name: source.to_owned(),
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            message: format!("invalid YAML: {}", first_line(&e.to_string())),
        }
    })
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_owned()
}

fn problem(
    origin: &Origin,
    object: Option<String>,
    path: &str,
    message: impl Into<String>,
) -> Problem {
    Problem {
        origin: origin.clone(),
        object,
        path: path.to_owned(),
        message: message.into(),
    }
}

fn decode_document(
    value: &Value,
    origin: Origin,
    policy: &Policy,
    fields: FieldValidation,
    manifest: &mut Manifest,
    problems: &mut Vec<Problem>,
) {
    let Value::Object(map) = value else {
        problems.push(problem(
            &origin,
            None,
            "",
            "a document must be a mapping with apiVersion and kind",
        ));
        return;
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str);
    let kind = map.get("kind").and_then(Value::as_str);
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        let missing = if api_version.is_none() {
            "apiVersion"
        } else {
            "kind"
        };
        problems.push(problem(&origin, None, missing, "required field is missing"));
        return;
    };
    let label = Some(match name {
        Some(n) => format!("{kind} {n:?}"),
        None => kind.to_owned(),
    });
    let expected = match kind {
        "Namespace" | "Pod" | "Service" | "ConfigMap" | "Secret" => "v1",
        "Deployment" => "apps/v1",
        "Ingress" => "networking.k8s.io/v1",
        k if KNOWN_UNSUPPORTED.contains(&k) => {
            problems.push(problem(
                &origin,
                label,
                "",
                format!("kind {k} ({api_version}) is not supported by podswarm; supported kinds: {SUPPORTED}"),
            ));
            return;
        }
        k => {
            problems.push(problem(
                &origin,
                label,
                "",
                format!("unknown kind {k:?} ({api_version}); supported kinds: {SUPPORTED}"),
            ));
            return;
        }
    };
    if api_version != expected {
        problems.push(problem(
            &origin,
            label,
            "apiVersion",
            format!("{kind} must use apiVersion {expected}, not {api_version}"),
        ));
        return;
    }
    let decoded = match kind {
        "Namespace" => typed(value).map(|(o, c)| (Object::Namespace(o), c)),
        "Pod" => typed(value).map(|(o, c)| (Object::Pod(o), c)),
        "Deployment" => typed(value).map(|(o, c)| (Object::Deployment(o), c)),
        "Service" => typed(value).map(|(o, c)| (Object::Service(o), c)),
        "Ingress" => typed(value).map(|(o, c)| (Object::Ingress(o), c)),
        "ConfigMap" => typed(value).map(|(o, c)| (Object::ConfigMap(o), c)),
        _ => typed(value).map(|(o, c)| (Object::Secret(o), c)),
    };
    let (mut object, canonical) = match decoded {
        Ok(ok) => ok,
        Err((path, message)) => {
            problems.push(problem(&origin, label, &path, message));
            return;
        }
    };
    let before = problems.len();
    unknown_fields(value, &canonical, "", &mut |path| match fields {
        FieldValidation::Strict => {
            problems.push(problem(&origin, label.clone(), path, UNKNOWN_FIELD));
        }
        FieldValidation::Warn => {
            manifest
                .warnings
                .push(problem(&origin, label.clone(), path, UNKNOWN_FIELD));
        }
        FieldValidation::Ignore => {}
    });
    if problems.len() > before {
        return;
    }
    if !matches!(object, Object::Namespace(_)) && object.metadata().namespace.is_none() {
        object.metadata_mut().namespace = Some("default".to_owned());
    }
    let report = validate(&object, policy);
    for (path, message) in report.errors {
        problems.push(problem(&origin, label.clone(), &path, message));
    }
    for (path, message) in report.warnings {
        manifest
            .warnings
            .push(problem(&origin, label.clone(), &path, message));
    }
    for path in crate::support::unsupported_fields(object.kind(), &canonical) {
        manifest.warnings.push(problem(
            &origin,
            label.clone(),
            &path,
            "podswarm does not support this field yet; it has no effect",
        ));
    }
    manifest.objects.push(ParsedObject { origin, object });
}

/// Decodes into a k8s-openapi type and also returns the type's own serialization, which holds
/// exactly the fields the type knows.
fn typed<T: DeserializeOwned + serde::Serialize>(
    value: &Value,
) -> Result<(T, Value), (String, String)> {
    let object: T = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, e.into_inner().to_string())
    })?;
    let canonical = serde_json::to_value(&object).map_err(|e| (String::new(), e.to_string()))?;
    Ok((object, canonical))
}

/// Reports every field present in `raw` (and not null) that the typed round trip lost: those are
/// fields the Kubernetes schema does not have.
fn unknown_fields(raw: &Value, canonical: &Value, path: &str, report: &mut dyn FnMut(&str)) {
    match (raw, canonical) {
        (Value::Object(raw), Value::Object(canonical)) => {
            for (key, value) in raw {
                if value.is_null() {
                    continue;
                }
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match canonical.get(key) {
                    Some(c) => unknown_fields(value, c, &child, report),
                    None => report(&child),
                }
            }
        }
        (Value::Array(raw), Value::Array(canonical)) => {
            for (i, (r, c)) in raw.iter().zip(canonical).enumerate() {
                unknown_fields(r, c, &format!("{path}[{i}]"), report);
            }
        }
        _ => {}
    }
}

/// Two objects of one kind with one name in one namespace: the second would silently win.
fn check_duplicates(manifest: &Manifest, problems: &mut Vec<Problem>) {
    let mut seen = std::collections::BTreeMap::new();
    for parsed in &manifest.objects {
        let o = &parsed.object;
        let key = (o.kind(), o.namespace().to_owned(), o.name().to_owned());
        if let Some(first) = seen.insert(key, &parsed.origin) {
            problems.push(problem(
                &parsed.origin,
                Some(format!("{} {:?}", o.kind(), o.name())),
                "metadata.name",
                format!("duplicate object: also defined at {first}"),
            ));
        }
    }
}
