//! Field management and server-side apply, as the API server does them
//! (`k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager` over `structured-merge-diff`).
//!
//! Every write through the Kubernetes API records who set which fields in the object's
//! `metadata.managedFields`, in upstream's `FieldsV1` form, so kubectl (and its client-side to
//! server-side apply migration, `csaupgrade`) reads podswarm's records as it reads the API
//! server's:
//! - an update (create, replace, patch) gives its manager the fields whose values it changed,
//!   taking them from whoever had them; fields it removed are no one's;
//! - an apply (`application/apply-patch+yaml`) is a manager's whole intent: the applied
//!   configuration is merged into the live object (maps field by field, lists by their keys or
//!   whole, as `patch::list_shape` says), fields the manager applied before and no longer does
//!   are removed unless another manager has them, and the manager then owns exactly what it
//!   applied. A field it would change that another manager owns is a conflict, refused unless
//!   the apply is forced, which moves the field to it.
//!
//! A field set is kept as the set of its leaf paths, each element in upstream's syntax (`f:name`
//! a field, `k:{"name":"web"}` a keyed list's element, `v:"x"` a set's element, `.` the element
//! or field itself), which makes union and difference plain set operations and keeps the
//! conversion to and from `FieldsV1` the one place that knows its nesting.
//!
//! # Where it departs from upstream
//!
//! - No defaulting: podswarm stores what was asked for. A port without `protocol` is keyed as
//!   `TCP`, upstream's default, so keys match what kubectl expects.
//! - Explicit `null`s in an applied configuration are left out of its field set (upstream
//!   treats them as "owned, unset" for some types).
//! - Structs upstream marks atomic are only a Deployment's and a Service's `spec.selector`; other
//!   structs are merged field by field.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
use serde_json::{Map, Value};

use super::patch::{ListShape, list_shape};

/// One path element in upstream's syntax.
type Path = Vec<String>;

/// The metadata no manager owns: the object's identity and what the server sets.
const UNOWNED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Structs replaced whole, never merged (upstream's `+structType=atomic`, `+mapType=atomic`).
const ATOMIC: &[(&str, &[&str])] = &[
    ("Deployment", &["spec", "selector"]),
    ("Service", &["spec", "selector"]),
];

/// Why a write's managed fields were refused.
#[derive(Debug, thiserror::Error)]
pub enum FieldsError {
    /// Sent `metadata.managedFields` that are not a list of `ManagedFieldsEntry`.
    #[error("metadata.managedFields is not a list of managed fields entries")]
    Unreadable {
        #[source]
        source: serde_json::Error,
    },
    #[error("metadata.managedFields[{index}]: {problem}")]
    Invalid { index: usize, problem: String },
    /// An apply would change fields other managers own.
    #[error("Apply failed with {} conflict{}: {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, describe(.0))]
    Conflicts(Vec<Conflict>),
}

/// A field an apply would change that another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    /// The API version the manager wrote with.
    pub api_version: String,
    /// As upstream prints it: `.spec.replicas`, `.spec.template.spec.containers[name="web"].image`.
    pub field: String,
}

/// As upstream words them: one conflict on one line, more grouped by manager, a field a line.
fn describe(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "conflict with {:?} using {}: {}",
            c.manager, c.api_version, c.field
        );
    }
    let mut by_manager: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for c in conflicts {
        by_manager
            .entry((&c.manager, &c.api_version))
            .or_default()
            .push(&c.field);
    }
    let mut lines = Vec::new();
    for ((manager, api_version), fields) in by_manager {
        lines.push(format!("conflicts with {manager:?} using {api_version}:"));
        lines.extend(fields.iter().map(|f| format!("- {f}")));
    }
    lines.join("\n")
}

/// A set of fields of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<Path>);

impl FieldSet {
    /// The fields `object` (of `kind`) sets.
    pub fn of(kind: &str, object: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        let Value::Object(map) = object else {
            return set;
        };
        for (key, value) in map {
            match key.as_str() {
                "apiVersion" | "kind" | "status" => {}
                "metadata" => {
                    if let Value::Object(meta) = value {
                        for (k, v) in meta {
                            if !UNOWNED_METADATA.contains(&k.as_str()) {
                                set.walk(
                                    kind,
                                    &["metadata", k],
                                    vec!["f:metadata".into(), format!("f:{k}")],
                                    v,
                                );
                            }
                        }
                    }
                }
                _ => set.walk(kind, &[key], vec![format!("f:{key}")], value),
            }
        }
        set
    }

    fn walk(&mut self, kind: &str, names: &[&str], path: Path, value: &Value) {
        match value {
            Value::Null => {}
            Value::Object(map) if !map.is_empty() && !is_atomic(kind, names) => {
                for (k, v) in map {
                    let mut p = path.clone();
                    p.push(format!("f:{k}"));
                    self.walk(kind, &[names, &[k.as_str()]].concat(), p, v);
                }
            }
            Value::Array(items) if !items.is_empty() => match list_shape(kind, names) {
                ListShape::Atomic => {
                    self.0.insert(path);
                }
                ListShape::Set => {
                    for item in items {
                        let mut p = path.clone();
                        p.push(format!("v:{item}"));
                        self.0.insert(p);
                    }
                }
                ListShape::Map(keys) => {
                    let keyed: Option<Vec<(String, &Map<String, Value>)>> = items
                        .iter()
                        .map(|item| Some((item_key(item, keys)?, item.as_object()?)))
                        .collect();
                    // Elements without their keys cannot be told apart: the list is owned whole
                    // (and the intake refuses such a list anyway).
                    let Some(keyed) = keyed else {
                        self.0.insert(path);
                        return;
                    };
                    for (key, item) in keyed {
                        let mut element = path.clone();
                        element.push(format!("k:{key}"));
                        let mut itself = element.clone();
                        itself.push(".".into());
                        self.0.insert(itself);
                        for (k, v) in item {
                            let mut p = element.clone();
                            p.push(format!("f:{k}"));
                            self.walk(kind, &[names, &[k.as_str()]].concat(), p, v);
                        }
                    }
                }
            },
            _ => {
                self.0.insert(path);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the set has `path` or a path under it.
    fn covers(&self, path: &Path) -> bool {
        self.0
            .range(path.clone()..)
            .next()
            .is_some_and(|p| p.starts_with(path))
    }

    fn remove_all(&mut self, other: &FieldSet) {
        self.0.retain(|p| !other.0.contains(p));
    }

    /// Upstream's `FieldsV1` JSON: nested objects keyed by path elements, `{}` for a leaf, and
    /// `".": {}` where a field or element that has children is itself owned.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for (depth, element) in path.iter().enumerate() {
                let existed = node.contains_key(element);
                let child = node
                    .entry(element.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(child) = child else {
                    break;
                };
                // An empty node that was there before, reached on the way down, was a leaf: it
                // is owned itself too.
                if existed && child.is_empty() && depth + 1 < path.len() {
                    child.insert(".".into(), Value::Object(Map::new()));
                }
                node = child;
            }
        }
        Value::Object(root)
    }

    /// Reads upstream's `FieldsV1` JSON.
    pub fn from_fields_v1(fields: &Value) -> Result<FieldSet, String> {
        fn read(node: &Value, path: &mut Path, set: &mut FieldSet) -> Result<(), String> {
            let Value::Object(map) = node else {
                return Err(format!("{} is not an object", path.join("/")));
            };
            if map.is_empty() {
                let mut leaf = path.clone();
                if leaf.last().is_some_and(|e| e.starts_with("k:")) {
                    leaf.push(".".into());
                }
                set.0.insert(leaf);
                return Ok(());
            }
            for (element, child) in map {
                if element == "." {
                    let mut itself = path.clone();
                    if itself.last().is_some_and(|e| e.starts_with("k:")) {
                        itself.push(".".into());
                    }
                    set.0.insert(itself);
                    continue;
                }
                if !["f:", "k:", "v:"].iter().any(|p| element.starts_with(p)) {
                    return Err(format!("unknown path element {element:?}"));
                }
                if let Some(json) = element
                    .strip_prefix("k:")
                    .or_else(|| element.strip_prefix("v:"))
                    && serde_json::from_str::<Value>(json).is_err()
                {
                    return Err(format!("path element {element:?} is not JSON"));
                }
                path.push(element.clone());
                read(child, path, set)?;
                path.pop();
            }
            Ok(())
        }
        let mut set = FieldSet::default();
        if let Value::Object(map) = fields
            && map.is_empty()
        {
            return Ok(set);
        }
        read(fields, &mut Vec::new(), &mut set)?;
        Ok(set)
    }
}

fn is_atomic(kind: &str, names: &[&str]) -> bool {
    ATOMIC.iter().any(|(k, p)| *k == kind && *p == names)
}

/// A keyed list element's key as upstream writes it: its key fields as compact JSON with
/// sorted keys, a missing `protocol` taken as `TCP` (its default).
fn item_key(item: &Value, keys: &[&str]) -> Option<String> {
    let object = item.as_object()?;
    let mut key = BTreeMap::new();
    for &k in keys {
        match object.get(k) {
            Some(v) if !v.is_null() => {
                key.insert(k, v.clone());
            }
            _ if k == "protocol" => {
                key.insert(k, Value::String("TCP".into()));
            }
            _ => return None,
        }
    }
    serde_json::to_string(&key).ok()
}

/// Whether `item` is the element `key` (a `k:` element's JSON) names.
fn matches_key(item: &Value, key: &str) -> bool {
    let Ok(Value::Object(wanted)) = serde_json::from_str::<Value>(key) else {
        return false;
    };
    let keys: Vec<&str> = wanted.keys().map(String::as_str).collect();
    item_key(item, &keys).is_some_and(|k| {
        serde_json::from_str::<Value>(&k).is_ok_and(|k| k == Value::Object(wanted.clone()))
    })
}

/// The value at `path` in `object`; for an element's `.`, the element.
fn value_at<'v>(object: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut at = object;
    for element in path {
        at = if let Some(name) = element.strip_prefix("f:") {
            at.as_object()?.get(name)?
        } else if let Some(key) = element.strip_prefix("k:") {
            at.as_array()?.iter().find(|item| matches_key(item, key))?
        } else if let Some(json) = element.strip_prefix("v:") {
            let wanted: Value = serde_json::from_str(json).ok()?;
            at.as_array()?.iter().find(|item| **item == wanted)?
        } else {
            at
        };
    }
    Some(at)
}

fn value_at_mut<'v>(object: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    let mut at = object;
    for element in path {
        at = if let Some(name) = element.strip_prefix("f:") {
            at.as_object_mut()?.get_mut(name)?
        } else if let Some(key) = element.strip_prefix("k:") {
            at.as_array_mut()?
                .iter_mut()
                .find(|item| matches_key(item, key))?
        } else {
            at
        };
    }
    Some(at)
}

/// Removes the field or element at `path` from `object`; a path no longer there is no-op.
fn remove_at(object: &mut Value, path: &[String]) {
    let (last, parent) = match path {
        [parent @ .., element, dot] if dot == "." => {
            // An element itself: out of its list.
            let Some(key) = element.strip_prefix("k:") else {
                return;
            };
            if let Some(Value::Array(items)) = value_at_mut(object, parent) {
                items.retain(|item| !matches_key(item, key));
            }
            return;
        }
        [parent @ .., last] => (last, parent),
        [] => return,
    };
    let Some(container) = value_at_mut(object, parent) else {
        return;
    };
    if let Some(name) = last.strip_prefix("f:") {
        if let Value::Object(map) = container {
            map.remove(name);
        }
    } else if let Some(json) = last.strip_prefix("v:")
        && let (Value::Array(items), Ok(wanted)) = (container, serde_json::from_str::<Value>(json))
    {
        items.retain(|item| *item != wanted);
    }
}

/// `applied` merged into `live`: maps field by field, keyed lists element by element (new
/// elements after the live ones), sets as their union, everything else replaced.
fn merge(kind: &str, names: &[&str], live: &Value, applied: &Value) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) if !is_atomic(kind, names) => {
            let mut out = l.clone();
            for (k, v) in a {
                let merged = match l.get(k) {
                    Some(lv) if !v.is_null() => {
                        merge(kind, &[names, &[k.as_str()]].concat(), lv, v)
                    }
                    _ => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) => match list_shape(kind, names) {
            ListShape::Atomic => applied.clone(),
            ListShape::Set => {
                let mut out = l.clone();
                for v in a {
                    if !out.contains(v) {
                        out.push(v.clone());
                    }
                }
                Value::Array(out)
            }
            ListShape::Map(keys) => {
                let mut out = l.clone();
                for v in a {
                    let key = item_key(v, keys);
                    match out
                        .iter_mut()
                        .find(|item| key.is_some() && item_key(item, keys) == key)
                    {
                        Some(item) => *item = merge(kind, names, item, v),
                        None => out.push(v.clone()),
                    }
                }
                Value::Array(out)
            }
        },
        _ => applied.clone(),
    }
}

/// `.spec.template.spec.containers[name="web"].image`, as upstream names a conflicting field.
fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(name) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = element.strip_prefix("k:") {
            let fields = match serde_json::from_str::<Value>(key) {
                Ok(Value::Object(fields)) => fields
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                _ => key.to_owned(),
            };
            out.push_str(&format!("[{fields}]"));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        }
    }
    out
}

/// One `managedFields` entry, its field set read.
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<Time>,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str) -> bool {
        self.is_at(manager, operation, None)
    }

    fn is_at(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }
}

/// The object's `managedFields`, read. Entries podswarm cannot read are an error: for ones a
/// client sent, its write is refused; stored ones were written here and read back.
fn entries(object: &Value) -> Result<Vec<Entry>, FieldsError> {
    let Some(sent) = object["metadata"]
        .get("managedFields")
        .filter(|v| !v.is_null())
    else {
        return Ok(Vec::new());
    };
    let list: Vec<ManagedFieldsEntry> = serde_json::from_value(sent.clone())
        .map_err(|source| FieldsError::Unreadable { source })?;
    list.into_iter()
        .enumerate()
        .map(|(index, e)| {
            let invalid = |problem: String| FieldsError::Invalid { index, problem };
            let manager = e.manager.unwrap_or_default();
            if manager.is_empty() {
                return Err(invalid("manager: Required value".into()));
            }
            if manager.len() > 128 {
                return Err(invalid("manager: Too long: may not be more than 128 bytes".into()));
            }
            let operation = e.operation.unwrap_or_default();
            if operation != "Apply" && operation != "Update" {
                return Err(invalid(format!(
                    "operation: Unsupported value: {operation:?}: supported values: \"Apply\", \"Update\""
                )));
            }
            match e.fields_type.as_deref() {
                None | Some("FieldsV1") => {}
                Some(other) => {
                    return Err(invalid(format!(
                        "fieldsType: Unsupported value: {other:?}: supported values: \"FieldsV1\""
                    )));
                }
            }
            let fields = match &e.fields_v1 {
                Some(FieldsV1(v)) => FieldSet::from_fields_v1(v)
                    .map_err(|why| invalid(format!("fieldsV1: {why}")))?,
                None => FieldSet::default(),
            };
            Ok(Entry {
                manager,
                operation,
                api_version: e.api_version.unwrap_or_default(),
                time: e.time,
                subresource: e.subresource.filter(|s| !s.is_empty()),
                fields,
            })
        })
        .collect()
}

/// Writes `entries` (those owning nothing left out) as `object`'s `managedFields`.
fn write(object: &mut Value, entries: Vec<Entry>) {
    let list: Vec<ManagedFieldsEntry> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| ManagedFieldsEntry {
            api_version: Some(e.api_version),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(e.fields.to_fields_v1())),
            manager: Some(e.manager),
            operation: Some(e.operation),
            subresource: e.subresource,
            time: e.time,
        })
        .collect();
    if let Some(meta) = object
        .as_object_mut()
        .and_then(|o| o.get_mut("metadata"))
        .and_then(Value::as_object_mut)
    {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert(
                "managedFields".into(),
                serde_json::to_value(list).unwrap_or(Value::Null),
            );
        }
    }
}

/// Who is writing, and when.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    /// The object's `apiVersion` (`apps/v1`).
    pub api_version: String,
    pub now: Option<Time>,
    /// Where the write came in, when not through the object itself (`scale`): Kubernetes
    /// records such a manager's fields apart from its writes of the whole object.
    pub subresource: Option<&'a str>,
}

/// Records an update (create, replace or patch) of `old` (absent on create) to `new` in
/// `new`'s `managedFields`. `new` carries the managed fields the request left it: those of
/// `old` unless the request changed them, in which case the client's are taken as they are
/// (as kubectl's migration to server-side apply sends them), after a check; an empty list
/// starts the record over.
pub fn update(
    kind: &str,
    old: Option<&Value>,
    new: &mut Value,
    writer: &Writer<'_>,
) -> Result<(), FieldsError> {
    let sent = new["metadata"].get("managedFields").cloned();
    let kept = old.and_then(|o| o["metadata"].get("managedFields").cloned());
    let mut list = match &sent {
        Some(Value::Array(items)) if items.is_empty() => Vec::new(),
        Some(s) if !s.is_null() && sent != kept => {
            // Taken as sent; only checked.
            entries(new)?;
            return Ok(());
        }
        _ => match old {
            Some(old) => entries(old)?,
            None => Vec::new(),
        },
    };
    let now_set = FieldSet::of(kind, new);
    let (changed, removed) = match old {
        None => (now_set.clone(), FieldSet::default()),
        Some(old) => {
            let changed = now_set
                .0
                .iter()
                .filter(|p| {
                    if p.last().is_some_and(|e| e == ".") {
                        value_at(old, p).is_none()
                    } else {
                        value_at(old, p) != value_at(new, p)
                    }
                })
                .cloned()
                .collect();
            let mut removed = FieldSet::of(kind, old);
            removed.remove_all(&now_set);
            (FieldSet(changed), removed)
        }
    };
    for e in &mut list {
        e.fields.remove_all(&changed);
        e.fields.remove_all(&removed);
    }
    if !changed.is_empty() {
        match list
            .iter_mut()
            .find(|e| e.is_at(writer.manager, "Update", writer.subresource))
        {
            Some(e) => {
                e.fields.0.extend(changed.0);
                e.time = writer.now.clone();
                e.api_version.clone_from(&writer.api_version);
            }
            None => list.push(Entry {
                manager: writer.manager.to_owned(),
                operation: "Update".into(),
                api_version: writer.api_version.clone(),
                time: writer.now.clone(),
                subresource: writer.subresource.map(str::to_owned),
                fields: changed,
            }),
        }
    }
    write(new, list);
    Ok(())
}

/// A server-side apply of `applied` (the manager's whole intent for the object, its server
/// metadata taken off) to `live` (absent: the apply creates the object). Returns the object as
/// it is to be stored, with its `managedFields`, or the conflicts that refuse it.
pub fn apply(
    kind: &str,
    live: Option<&Value>,
    applied: &Value,
    writer: &Writer<'_>,
    force: bool,
) -> Result<Value, FieldsError> {
    let applied_set = FieldSet::of(kind, applied);
    let (mut list, mut merged) = match live {
        Some(live) => {
            let mut bare = live.clone();
            write(&mut bare, Vec::new());
            (entries(live)?, merge(kind, &[], &bare, applied))
        }
        None => (Vec::new(), applied.clone()),
    };
    if let Some(live) = live {
        let mut conflicts = Vec::new();
        for e in list.iter_mut().filter(|e| !e.is(writer.manager, "Apply")) {
            let lost: Vec<Path> = applied_set
                .0
                .iter()
                .filter(|p| e.fields.0.contains(*p) && p.last().is_none_or(|l| l != "."))
                .filter(|p| value_at(live, p) != value_at(&merged, p))
                .cloned()
                .collect();
            for p in &lost {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    field: dotted(p),
                });
            }
            if force {
                e.fields.remove_all(&FieldSet(lost.into_iter().collect()));
            }
        }
        if !force && !conflicts.is_empty() {
            return Err(FieldsError::Conflicts(conflicts));
        }
    }
    // What this manager applied before and leaves out now goes, unless someone else has it.
    let mut dropped = list
        .iter()
        .find(|e| e.is(writer.manager, "Apply"))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    // A path stays while it, or a field under it, is applied or someone else's: a map this
    // manager once applied empty holds what is applied in it now.
    let others: Vec<&FieldSet> = list
        .iter()
        .filter(|e| !e.is(writer.manager, "Apply"))
        .map(|e| &e.fields)
        .collect();
    dropped
        .0
        .retain(|p| !applied_set.covers(p) && !others.iter().any(|o| o.covers(p)));
    // In order, so an element (its `.` sorts first) goes before its fields, which are then no
    // longer there: removing the key fields first would leave an element no key finds.
    for path in &dropped.0 {
        remove_at(&mut merged, path);
    }
    list.retain(|e| !e.is(writer.manager, "Apply"));
    list.push(Entry {
        manager: writer.manager.to_owned(),
        operation: "Apply".into(),
        api_version: writer.api_version.clone(),
        time: writer.now.clone(),
        subresource: None,
        fields: applied_set,
    });
    write(&mut merged, list);
    Ok(merged)
}

impl FieldsError {
    /// The conflicts an apply was refused for, if that is why.
    pub fn conflicts(&self) -> &[Conflict] {
        match self {
            FieldsError::Conflicts(c) => c,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "v1".into(),
            now: None,
            subresource: None,
        }
    }

    fn deployment(image: &str, replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "web",
                        "image": image,
                        "ports": [{"containerPort": 80}],
                        "env": [{"name": "A", "value": "1"}]
                    }]}
                }
            }
        })
    }

    #[test]
    fn fields_v1_is_upstreams_form() {
        let set = FieldSet::of("Deployment", &deployment("nginx", 2));
        let v1 = set.to_fields_v1();
        assert_eq!(
            v1,
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                            ".": {},
                            "f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                ".": {}, "f:containerPort": {}
                            }}
                        }}}
                    }
                }
            })
        );
        assert_eq!(FieldSet::from_fields_v1(&v1).unwrap(), set);
    }

    #[test]
    fn a_leaf_that_also_has_children_keeps_its_dot() {
        let set = FieldSet(
            [
                vec!["f:data".to_owned()],
                vec!["f:data".to_owned(), "f:a".to_owned()],
            ]
            .into_iter()
            .collect(),
        );
        let v1 = set.to_fields_v1();
        assert_eq!(v1, json!({"f:data": {".": {}, "f:a": {}}}));
        assert_eq!(FieldSet::from_fields_v1(&v1).unwrap(), set);
    }

    #[test]
    fn an_update_owns_what_it_changed() {
        let old = deployment("nginx", 2);
        let mut new = old.clone();
        update(
            "Deployment",
            None,
            &mut new,
            &writer("kubectl-client-side-apply"),
        )
        .unwrap();
        let created = new.clone();
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(5);
        update(
            "Deployment",
            Some(&created),
            &mut scaled,
            &writer("kubectl-scale"),
        )
        .unwrap();
        let managed = &scaled["metadata"]["managedFields"];
        assert_eq!(managed.as_array().unwrap().len(), 2);
        assert_eq!(managed[1]["manager"], "kubectl-scale");
        assert_eq!(
            managed[1]["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert!(managed[0]["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    }

    #[test]
    fn sent_managed_fields_are_taken_after_a_check() {
        let mut old = deployment("nginx", 2);
        update("Deployment", None, &mut old, &writer("a")).unwrap();
        let mut new = old.clone();
        new["metadata"]["managedFields"] = json!([{"manager": "b", "operation": "Apply",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
        let sent = new.clone();
        update("Deployment", Some(&old), &mut new, &writer("a")).unwrap();
        assert_eq!(new, sent);
        new["metadata"]["managedFields"][0]["operation"] = json!("Merge");
        let e = update("Deployment", Some(&old), &mut new, &writer("a")).unwrap_err();
        assert!(
            e.to_string().contains("operation: Unsupported value"),
            "{e}"
        );
    }

    #[test]
    fn an_apply_with_the_same_values_shares_ownership() {
        let mut live = deployment("nginx", 2);
        update(
            "Deployment",
            None,
            &mut live,
            &writer("kubectl-client-side-apply"),
        )
        .unwrap();
        let applied = deployment("nginx", 2);
        let out = apply(
            "Deployment",
            Some(&live),
            &applied,
            &writer("kubectl"),
            false,
        )
        .unwrap();
        let managers: Vec<&str> = out["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["kubectl-client-side-apply", "kubectl"]);
        assert_eq!(out["spec"], live["spec"]);
    }

    #[test]
    fn an_apply_that_changes_anothers_field_conflicts_unless_forced() {
        let mut live = deployment("nginx", 2);
        update("Deployment", None, &mut live, &writer("helm")).unwrap();
        let applied = deployment("nginx:2", 2);
        let e = apply(
            "Deployment",
            Some(&live),
            &applied,
            &writer("kubectl"),
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.conflicts(),
            [Conflict {
                manager: "helm".into(),
                api_version: "v1".into(),
                field: ".spec.template.spec.containers[name=\"web\"].image".into()
            }]
        );
        assert_eq!(
            e.to_string(),
            "Apply failed with 1 conflict: conflict with \"helm\" using v1: .spec.template.spec.containers[name=\"web\"].image"
        );
        let out = apply(
            "Deployment",
            Some(&live),
            &applied,
            &writer("kubectl"),
            true,
        )
        .unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:2"
        );
        let helm = &out["metadata"]["managedFields"][0];
        assert_eq!(helm["manager"], "helm");
        let helm_fields = FieldSet::from_fields_v1(&helm["fieldsV1"]).unwrap();
        assert!(!helm_fields.0.iter().any(|p| p.last().unwrap() == "f:image"));
    }

    #[test]
    fn an_apply_removes_what_its_manager_no_longer_applies_and_no_one_else_has() {
        let cm = |data: Value| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "default"}, "data": data})
        };
        let first = apply(
            "ConfigMap",
            None,
            &cm(json!({"a": "1", "b": "2", "c": "3"})),
            &writer("me"),
            false,
        )
        .unwrap();
        // Another manager comes to share b.
        let shared = apply(
            "ConfigMap",
            Some(&first),
            &cm(json!({"b": "2"})),
            &writer("you"),
            false,
        )
        .unwrap();
        let out = apply(
            "ConfigMap",
            Some(&shared),
            &cm(json!({"a": "1"})),
            &writer("me"),
            false,
        )
        .unwrap();
        assert_eq!(out["data"], json!({"a": "1", "b": "2"}));
        let out = apply(
            "ConfigMap",
            Some(&out),
            &cm(json!({"a": "1"})),
            &writer("you"),
            false,
        )
        .unwrap();
        assert_eq!(out["data"], json!({"a": "1"}));
    }

    #[test]
    fn an_apply_merges_keyed_lists_by_key_and_drops_its_own_elements() {
        let mut live = deployment("nginx", 2);
        live = apply("Deployment", None, &live, &writer("me"), false).unwrap();
        let mut applied = deployment("nginx", 2);
        applied["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "B", "value": "2"}]);
        let out = apply("Deployment", Some(&live), &applied, &writer("me"), false).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "2"}])
        );
        // Another manager's element stays.
        let mut other = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "web",
                "env": [{"name": "C", "value": "3"}]}]}}}});
        let out = apply("Deployment", Some(&out), &other, &writer("you"), false).unwrap();
        let env = &out["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(
            env,
            &json!([{"name": "B", "value": "2"}, {"name": "C", "value": "3"}])
        );
        other["spec"]["template"]["spec"]["containers"][0]["env"] = json!([]);
        let out = apply("Deployment", Some(&out), &other, &writer("you"), false).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "2"}])
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn config_map(data: &BTreeMap<String, String>) -> Value {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "default"}, "data": data})
        }

        fn owned_keys(object: &Value) -> BTreeSet<String> {
            entries(object)
                .unwrap()
                .iter()
                .flat_map(|e| e.fields.0.iter())
                .filter_map(|p| match p.as_slice() {
                    [data, key] if data == "f:data" => Some(key["f:".len()..].to_owned()),
                    _ => None,
                })
                .collect()
        }

        fn data() -> impl Strategy<Value = BTreeMap<String, String>> {
            prop::collection::btree_map("[a-d]", "[xy]", 0..4)
        }

        proptest! {
            /// One manager's applies are declarative: the object ends as the last one said,
            /// and applying it again changes nothing.
            #[test]
            fn one_manager_ends_with_its_last_apply(steps in prop::collection::vec(data(), 1..6)) {
                let mut live: Option<Value> = None;
                for d in &steps {
                    let out = apply("ConfigMap", live.as_ref(), &config_map(d), &writer("me"), false)
                        .unwrap();
                    let again = apply("ConfigMap", Some(&out), &config_map(d), &writer("me"), false)
                        .unwrap();
                    prop_assert_eq!(&again, &out);
                    live = Some(out);
                }
                let live = live.unwrap();
                let last = steps.last().unwrap();
                prop_assert_eq!(&live["data"], &json!(last));
            }

            /// With several managers forcing their applies, every key the object has is owned by
            /// someone and every owned key is there, each manager's last apply holds wherever it
            /// was the last to set a key, and no apply fails.
            #[test]
            fn forced_applies_keep_ownership_whole(
                steps in prop::collection::vec((0..3usize, data()), 1..8)
            ) {
                let managers = ["a", "b", "c"];
                let mut live: Option<Value> = None;
                for (m, d) in &steps {
                    let out = apply(
                        "ConfigMap", live.as_ref(), &config_map(d), &writer(managers[*m]), true,
                    )
                    .unwrap();
                    for (k, v) in d {
                        prop_assert_eq!(&out["data"][k], &json!(v));
                    }
                    let keys: BTreeSet<String> = out["data"]
                        .as_object()
                        .map(|o| o.keys().cloned().collect())
                        .unwrap_or_default();
                    prop_assert_eq!(keys, owned_keys(&out));
                    live = Some(out);
                }
            }

            /// Without force, an apply either conflicts and changes nothing, or sets what it
            /// applied.
            #[test]
            fn unforced_applies_conflict_or_hold(
                steps in prop::collection::vec((0..3usize, data()), 1..8)
            ) {
                let managers = ["a", "b", "c"];
                let mut live: Option<Value> = None;
                for (m, d) in &steps {
                    match apply("ConfigMap", live.as_ref(), &config_map(d), &writer(managers[*m]), false) {
                        Ok(out) => {
                            for (k, v) in d {
                                prop_assert_eq!(&out["data"][k], &json!(v));
                            }
                            live = Some(out);
                        }
                        Err(e) => {
                            let live = live.as_ref().unwrap();
                            for c in e.conflicts() {
                                prop_assert!(c.manager != managers[*m]);
                                let key = c.field.trim_start_matches(".data.");
                                prop_assert_ne!(&live["data"][key], &json!(d[key]));
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_keyed_list_has_list_map_keys() {
        for kind in ["Pod", "Deployment", "Service", "Node", "Namespace"] {
            for (path, key) in super::super::patch::merge_lists(kind) {
                if key.is_some() {
                    let names: Vec<&str> = path.split('.').collect();
                    assert!(
                        matches!(list_shape(kind, &names), ListShape::Map(_)),
                        "{kind} {path}"
                    );
                }
            }
        }
    }
}
