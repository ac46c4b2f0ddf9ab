//! Kubernetes PATCH on the server's side: the three patch types kubectl sends, applied to an
//! object podswarm stores (Pod, Deployment, Service, Ingress, ConfigMap, Secret, Namespace) in
//! its Kubernetes JSON form.
//!
//! - JSON patch (RFC 6902, `application/json-patch+json`) and JSON merge patch (RFC 7386,
//!   `application/merge-patch+json`) are the `json-patch` crate's. A JSON patch is applied to a
//!   copy, so an operation that fails (a `test` that does not match, a path that is not there)
//!   leaves nothing half-done to undo.
//! - Strategic merge patch (`application/strategic-merge-patch+json`) is written here, after
//!   `k8s.io/apimachinery/pkg/util/strategicpatch` as the API server applies it. It is what
//!   `kubectl patch` sends by default and what client-side `kubectl apply` computes (a three-way
//!   patch from the last applied configuration, the manifest and the live object).
//!
//! # Strategic merge patch
//!
//! Maps merge recursively and `null` deletes a key, as in a merge patch. Lists differ: each list
//! field is one of
//! - atomic: the patch's list replaces the whole list (upstream: no patch strategy);
//! - a set of primitives (`patchStrategy:"merge"` without a key, e.g. `metadata.finalizers`):
//!   the union of both lists;
//! - keyed (`patchStrategy:"merge"`, `patchMergeKey`): a patch element is merged into the
//!   element with the same merge key value, or added.
//!
//! and the patch may carry directives: `$patch: delete` (an element of a keyed list, or a whole
//! map), `$patch: replace` (a whole map, or in a keyed list the whole list),
//! `$setElementOrder/<list>` (the order the listed elements end in),
//! `$deleteFromPrimitiveList/<list>` (values to remove from a list of primitives) and
//! `$retainKeys` (the only keys the map keeps). Element order follows upstream's rules
//! (`normalizeElementOrder`): `$setElementOrder` first, then the order in the patch, then the
//! live object's; elements the patch does not mention stay where the live order puts them
//! relative to the others, which for a new element without `$setElementOrder` means before the
//! live ones (upstream's "preserve the order from the patch" cases).
//!
//! Which lists are keyed, and by what, upstream reads from Go struct tags. podswarm has no Go
//! types, and deriving it from k8s-openapi's schemas would need schemars in the daemon and
//! those schemas do not carry the tags anyway; the kinds podswarm stores are few and fixed, so a
//! table here (`PLACES` and `LISTS`) holds the merge keys of their fields, from
//! `k8s.io/api`'s types. The table is keyed by paths relative to a type, and says where each
//! shared type sits: a PodSpec is a Pod's `spec` and a Deployment's
//! `spec.template.spec`, a Container is any of a PodSpec's container lists, so the same entries
//! serve each place. A list the table does not name is atomic, as it is upstream.
//!
//! # What is refused
//!
//! Every refusal is a [`PatchError`], never a panic, and a refused patch changes nothing:
//! - a strategic merge patch for a kind that is not in the table (upstream refuses it for
//!   custom resources too), or one that is not a JSON object;
//! - an unknown `$patch` value, `$patch: merge` (upstream: "not yet" supported), or
//!   `$patch: delete` in an atomic list (there is no key to delete by);
//! - malformed directives: a `$setElementOrder`/`$deleteFromPrimitiveList` without a field, or
//!   whose value is not a list of the right elements; a `$retainKeys` that is not a list of
//!   names, or that leaves out a field the patch sets; a `$setElementOrder` whose order
//!   contradicts the patch's list (upstream: "doesn't match");
//! - elements of a keyed list without the merge key, and lists that are not what the table says
//!   (objects in a set of primitives, primitives in a keyed list);
//! - a patch whose result is not a JSON object.
//!
//! # Where it departs from upstream
//!
//! Upstream keeps some directives in the stored object (those inside a value the live object
//! does not have yet, such as a new container's `$setElementOrder/env`, and `$patch` elements
//! of an atomic list); decoding then drops them as unknown fields, so a new container's
//! `{"name": "B", "$patch": "delete"}` env var ends up as env var B. Here no directive reaches
//! a stored object: a value the live object lacks is merged into nothing, which drops its
//! `null`s as upstream does and applies its directives (that env var is not added; a new map
//! with `$patch: replace` keeps its other keys, where upstream drops the whole map). In an
//! atomic list a `{"$patch": "replace"}` element is dropped (the list is replaced anyway) and
//! `$patch: delete` refused. Three smaller ones, none in what kubectl computes:
//! - where a patch both orders a list and deletes or adds some of its elements, upstream
//!   places the live elements the order does not name according to Go slices that share
//!   memory with the live list; here, according to the live list as it was;
//! - a `$setElementOrder` for a list that is empty and not in the patch does nothing (upstream:
//!   "no elements in any of the given slices");
//! - the order check skips directive elements wherever they are in the patch's list (upstream
//!   trips over those after the last ordered element).
//!
//! These were found by comparing this module with upstream's code on random patches.

use std::fmt;

use serde_json::{Map, Value};

type Object = Map<String, Value>;

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// The patch types Kubernetes accepts, by the `Content-Type` of the PATCH request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// RFC 6902: a list of operations.
    Json,
    /// RFC 7386: an object merged into the target, `null` deleting.
    Merge,
    /// Kubernetes' strategic merge patch.
    Strategic,
}

impl PatchType {
    /// From a request's Content-Type (parameters like `; charset=utf-8` ignored):
    /// application/json-patch+json, application/merge-patch+json,
    /// application/strategic-merge-patch+json.
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        [PatchType::Json, PatchType::Merge, PatchType::Strategic]
            .into_iter()
            .find(|patch_type| media_type.eq_ignore_ascii_case(patch_type.content_type()))
    }

    /// The media type a client sends the patch as (and the API server lists in `Accept-Patch`).
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
        }
    }
}

impl fmt::Display for PatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatchType::Json => "JSON",
            PatchType::Merge => "merge",
            PatchType::Strategic => "strategic merge",
        })
    }
}

/// Why a patch was not applied. Paths are the field's, dotted from the object's top
/// (`spec.template.spec.containers`); list elements add no segment.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The body is not JSON, or (a JSON patch) not a list of operations.
    #[error("cannot read the {patch_type} patch")]
    Unreadable {
        patch_type: PatchType,
        #[source]
        source: serde_json::Error,
    },
    /// A merge or strategic merge patch must be an object, like what it patches.
    #[error("a {patch_type} patch must be a JSON object")]
    PatchNotAnObject { patch_type: PatchType },
    #[error("the object to patch is not a JSON object")]
    TargetNotAnObject,
    #[error("the {patch_type} patch leaves something other than a JSON object")]
    ResultNotAnObject { patch_type: PatchType },
    /// An operation of a JSON patch failed: a `test` that did not match, a path not there.
    #[error("operation {index} of the JSON patch failed at path {path:?}")]
    Operation {
        index: usize,
        path: String,
        #[source]
        source: json_patch::PatchErrorKind,
    },
    /// Strategic merge patch needs to know the kind's merge keys.
    #[error("strategic merge patch is not supported for kind {kind}")]
    UnsupportedKind { kind: String },
    /// `value` is the directive's JSON text.
    #[error("unsupported $patch directive {value} at {path}")]
    UnsupportedDirective { path: String, value: String },
    #[error("malformed {directive} directive at {path}: {problem}")]
    MalformedDirective {
        path: String,
        directive: String,
        problem: &'static str,
    },
    #[error("the patch sets {field} at {path}, which its $retainKeys directive does not keep")]
    NotRetained { path: String, field: String },
    #[error(
        "the order of the list {path} in the patch does not match its $setElementOrder directive"
    )]
    OrderMismatch { path: String },
    #[error("an element of the list {path} has no merge key {key}")]
    NoMergeKey { path: String, key: &'static str },
    #[error("the list {path} {problem}")]
    BadList { path: String, problem: &'static str },
}

/// Applies `patch` (the raw request body) to `target` (an object of `kind`), returning the
/// patched object.
pub fn apply(
    kind: &str,
    target: &Value,
    patch: &[u8],
    patch_type: PatchType,
) -> Result<Value, PatchError> {
    let patched = match patch_type {
        PatchType::Json => {
            let operations: json_patch::Patch = serde_json::from_slice(patch)
                .map_err(|source| PatchError::Unreadable { patch_type, source })?;
            let mut patched = target.clone();
            // `patch_unsafe` on a copy rather than `patch` on the target: `patch` undoes the
            // operations already applied when one fails, and panics if it cannot.
            json_patch::patch_unsafe(&mut patched, &operations).map_err(|error| {
                let json_patch::PatchError {
                    operation,
                    path,
                    kind,
                    ..
                } = error;
                PatchError::Operation {
                    index: operation,
                    path: path.to_string(),
                    source: kind,
                }
            })?;
            patched
        }
        PatchType::Merge => {
            let patch = read_object(patch, patch_type)?;
            let mut patched = target.clone();
            json_patch::merge(&mut patched, &Value::Object(patch));
            patched
        }
        PatchType::Strategic => {
            let ty = Type::of_kind(kind).ok_or_else(|| PatchError::UnsupportedKind {
                kind: kind.to_owned(),
            })?;
            let patch = read_object(patch, patch_type)?;
            let Value::Object(original) = target else {
                return Err(PatchError::TargetNotAnObject);
            };
            Value::Object(Merger { ty }.map(original.clone(), patch, &[])?)
        }
    };
    if !patched.is_object() {
        return Err(PatchError::ResultNotAnObject { patch_type });
    }
    Ok(patched)
}

fn read_object(patch: &[u8], patch_type: PatchType) -> Result<Object, PatchError> {
    match serde_json::from_slice(patch) {
        Ok(Value::Object(patch)) => Ok(patch),
        Ok(_) => Err(PatchError::PatchNotAnObject { patch_type }),
        Err(source) => Err(PatchError::Unreadable { patch_type, source }),
    }
}

// --- Patch metadata ------------------------------------------------------------------------

/// The types whose fields the table describes: the stored kinds, and the types found in more
/// than one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Pod,
    Deployment,
    Service,
    Ingress,
    ConfigMap,
    Secret,
    Namespace,
    Node,
    ObjectMeta,
    PodSpec,
    /// Container, and EphemeralContainer's identical fields.
    Container,
}

impl Type {
    fn of_kind(kind: &str) -> Option<Type> {
        Some(match kind {
            "Pod" => Type::Pod,
            "Deployment" => Type::Deployment,
            "Service" => Type::Service,
            "Ingress" => Type::Ingress,
            "ConfigMap" => Type::ConfigMap,
            "Secret" => Type::Secret,
            "Namespace" => Type::Namespace,
            "Node" => Type::Node,
            _ => return None,
        })
    }
}

/// How a list field is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    /// Replaced whole.
    Atomic,
    /// Primitives, merged as a set.
    Set,
    /// Objects, merged element by element by this field.
    Keyed(&'static str),
}

/// Where a type sits in another: (outer type, path in it, inner type).
const PLACES: &[(Type, &str, Type)] = &[
    (Type::Pod, "metadata", Type::ObjectMeta),
    (Type::Pod, "spec", Type::PodSpec),
    (Type::Deployment, "metadata", Type::ObjectMeta),
    (Type::Deployment, "spec.template.metadata", Type::ObjectMeta),
    (Type::Deployment, "spec.template.spec", Type::PodSpec),
    (Type::Service, "metadata", Type::ObjectMeta),
    (Type::Ingress, "metadata", Type::ObjectMeta),
    (Type::ConfigMap, "metadata", Type::ObjectMeta),
    (Type::Secret, "metadata", Type::ObjectMeta),
    (Type::Namespace, "metadata", Type::ObjectMeta),
    (Type::Node, "metadata", Type::ObjectMeta),
    (Type::PodSpec, "containers", Type::Container),
    (Type::PodSpec, "initContainers", Type::Container),
    (Type::PodSpec, "ephemeralContainers", Type::Container),
];

/// The lists that are not atomic: (type, path in it, how), from the `patchStrategy` and
/// `patchMergeKey` tags of `k8s.io/api`'s types and `k8s.io/apimachinery`'s ObjectMeta. Lists
/// without those tags are atomic for strategic merge patch even where their `listType` is
/// `map` or `set`: `tolerations`, `readinessGates`, `resources.claims`, a container's `args`,
/// `command`, `envFrom` and `resizePolicy`, Ingress's lists, a Namespace's `spec.finalizers`,
/// a Pod's container statuses.
#[rustfmt::skip]
const LISTS: &[(Type, &str, ListKind)] = &[
    (Type::ObjectMeta, "finalizers", ListKind::Set),
    (Type::ObjectMeta, "ownerReferences", ListKind::Keyed("uid")),
    // `patchStrategy:"merge,retainKeys"`: the retainKeys half needs no entry, as a `$retainKeys`
    // directive is applied wherever it appears (as upstream).
    (Type::PodSpec, "volumes", ListKind::Keyed("name")),
    (Type::PodSpec, "initContainers", ListKind::Keyed("name")),
    (Type::PodSpec, "containers", ListKind::Keyed("name")),
    (Type::PodSpec, "ephemeralContainers", ListKind::Keyed("name")),
    (Type::PodSpec, "imagePullSecrets", ListKind::Keyed("name")),
    (Type::PodSpec, "hostAliases", ListKind::Keyed("ip")),
    // Upstream's list-map key is (topologyKey, whenUnsatisfiable), its patch merge key
    // topologyKey alone, and kubectl computes patches with the latter.
    (Type::PodSpec, "topologySpreadConstraints", ListKind::Keyed("topologyKey")),
    (Type::PodSpec, "schedulingGates", ListKind::Keyed("name")),
    (Type::PodSpec, "resourceClaims", ListKind::Keyed("name")),
    (Type::Container, "ports", ListKind::Keyed("containerPort")),
    (Type::Container, "env", ListKind::Keyed("name")),
    (Type::Container, "volumeMounts", ListKind::Keyed("mountPath")),
    (Type::Container, "volumeDevices", ListKind::Keyed("devicePath")),
    (Type::Pod, "status.conditions", ListKind::Keyed("type")),
    (Type::Pod, "status.podIPs", ListKind::Keyed("ip")),
    (Type::Pod, "status.hostIPs", ListKind::Keyed("ip")),
    (Type::Pod, "status.resourceClaimStatuses", ListKind::Keyed("name")),
    (Type::Deployment, "status.conditions", ListKind::Keyed("type")),
    (Type::Service, "spec.ports", ListKind::Keyed("port")),
    (Type::Service, "status.conditions", ListKind::Keyed("type")),
    (Type::Namespace, "status.conditions", ListKind::Keyed("type")),
    (Type::Node, "spec.podCIDRs", ListKind::Set),
    (Type::Node, "status.conditions", ListKind::Keyed("type")),
    (Type::Node, "status.addresses", ListKind::Keyed("type")),
];

/// Every list of `kind` that strategic merge patch does not replace whole: its dotted path
/// (list items implied, as in `spec.template.spec.containers.env`) and its merge key (`None`
/// for a set of primitives). The OpenAPI documents say the same as
/// `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key`, so the patches kubectl
/// computes from them are the ones this module applies.
pub fn merge_lists(kind: &str) -> Vec<(String, Option<&'static str>)> {
    fn expand(ty: Type, prefix: &str, out: &mut Vec<(String, Option<&'static str>)>) {
        for &(t, field, how) in LISTS {
            if t == ty {
                let key = match how {
                    ListKind::Keyed(key) => Some(key),
                    ListKind::Set => None,
                    ListKind::Atomic => continue,
                };
                out.push((format!("{prefix}{field}"), key));
            }
        }
        for &(outer, at, inner) in PLACES {
            if outer == ty {
                expand(inner, &format!("{prefix}{at}."), out);
            }
        }
    }
    let mut out = Vec::new();
    if let Some(ty) = Type::of_kind(kind) {
        expand(ty, "", &mut out);
    }
    out
}

/// How the list at `path` (relative to `ty`) is patched.
fn list_kind(ty: Type, path: &[&str]) -> ListKind {
    if let Some(&(_, _, kind)) = LISTS
        .iter()
        .find(|(t, field, _)| *t == ty && strip(field, path).is_some_and(<[_]>::is_empty))
    {
        return kind;
    }
    for &(outer, at, inner) in PLACES {
        if outer == ty
            && let Some(rest) = strip(at, path)
            && !rest.is_empty()
        {
            return list_kind(inner, rest);
        }
    }
    ListKind::Atomic
}

/// How server-side apply (`fields`) sees a list: whole, as a set of primitives, or as a map
/// from its key fields to its elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListShape {
    Atomic,
    Set,
    Map(&'static [&'static str]),
}

/// The shape of the list at `path` (field names from the top of a `kind` object, list elements
/// implied). Server-side apply keys lists by their `x-kubernetes-list-map-keys`, which are the
/// patch merge key except where upstream's list-map key has a second field (ports are also
/// keyed by protocol, spread constraints by `whenUnsatisfiable`).
pub fn list_shape(kind: &str, path: &[&str]) -> ListShape {
    let Some(ty) = Type::of_kind(kind) else {
        return ListShape::Atomic;
    };
    match list_kind(ty, path) {
        ListKind::Atomic => ListShape::Atomic,
        ListKind::Set => ListShape::Set,
        ListKind::Keyed(key) => ListShape::Map(match key {
            "containerPort" => &["containerPort", "protocol"],
            "port" => &["port", "protocol"],
            "topologyKey" => &["topologyKey", "whenUnsatisfiable"],
            "name" => &["name"],
            "uid" => &["uid"],
            "ip" => &["ip"],
            "mountPath" => &["mountPath"],
            "devicePath" => &["devicePath"],
            "type" => &["type"],
            // A key the table gains without a line here: whole, which loses ownership detail
            // and never correctness.
            _ => return ListShape::Atomic,
        }),
    }
}

/// `path` without the dotted `prefix`, if it starts with it.
fn strip<'p, 's>(prefix: &str, path: &'p [&'s str]) -> Option<&'p [&'s str]> {
    prefix
        .split('.')
        .try_fold(path, |rest, segment| match rest {
            [first, tail @ ..] if *first == segment => Some(tail),
            _ => None,
        })
}

// --- Strategic merge patch -----------------------------------------------------------------

/// What identifies a list's element: its merge key's value, or (primitives) itself.
#[derive(Debug, Clone, Copy)]
enum Identity {
    Key(&'static str),
    Itself,
}

impl Identity {
    fn of(self, element: &Value) -> Option<&Value> {
        match self {
            Identity::Key(key) => element.get(key),
            Identity::Itself => Some(element),
        }
    }
}

struct Merger {
    ty: Type,
}

impl Merger {
    /// `patch` merged into `original`, the map at `path`.
    fn map(
        &self,
        mut original: Object,
        mut patch: Object,
        path: &[&str],
    ) -> Result<Object, PatchError> {
        if let Some(directive) = patch.remove(PATCH) {
            return match directive.as_str() {
                // Merged into nothing rather than taken as it is, so that its nulls and
                // directives do not end up in the object.
                Some("replace") => self.map(Object::new(), patch, path),
                Some("delete") => Ok(Object::new()),
                _ => Err(unsupported(path, &directive)),
            };
        }
        retain_keys(&mut original, &mut patch, path)?;
        self.set_element_orders(&mut original, &mut patch, path)?;

        // Deletions from primitive lists come last, after the same list's additions: upstream
        // does so when the patch orders the list (all kubectl's patches), and the order is
        // otherwise Go's map order.
        let mut deletions = Vec::new();
        for (key, value) in patch {
            if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
                deletions.push((key, value));
                continue;
            }
            let child = child(path, &key);
            let current = original.get_mut(&key).map(std::mem::take);
            match self.value(current, value, &child)? {
                Some(value) => {
                    original.insert(key, value);
                }
                None => {
                    original.remove(&key);
                }
            }
        }
        for (directive, values) in deletions {
            delete_from_primitive_list(&mut original, &directive, values, path)?;
        }
        Ok(original)
    }

    /// `patch` merged into `current`, the value at `path` (if there is one): `None` where the
    /// patch deletes it.
    fn value(
        &self,
        current: Option<Value>,
        patch: Value,
        path: &[&str],
    ) -> Result<Option<Value>, PatchError> {
        Ok(match (current, patch) {
            (_, Value::Null) => None,
            (Some(Value::Object(current)), Value::Object(patch)) => {
                Some(Value::Object(self.map(current, patch, path)?))
            }
            (Some(Value::Array(current)), Value::Array(patch)) => {
                Some(Value::Array(self.list(current, patch, path)?))
            }
            // Nothing to delete, and (upstream) nothing added either.
            (_, Value::Object(patch))
                if patch.get(PATCH).and_then(Value::as_str) == Some("delete") =>
            {
                None
            }
            // A new value, or one of another type: merged into nothing, which drops its nulls
            // (as upstream) and applies its directives.
            (_, Value::Object(patch)) => {
                Some(Value::Object(self.map(Object::new(), patch, path)?))
            }
            (_, Value::Array(patch)) => Some(Value::Array(self.list(Vec::new(), patch, path)?)),
            (_, primitive) => Some(primitive),
        })
    }

    /// `patch` merged into `original`, the list at `path`.
    fn list(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        path: &[&str],
    ) -> Result<Vec<Value>, PatchError> {
        match list_kind(self.ty, path) {
            ListKind::Atomic => self.atomic(patch, path),
            ListKind::Set => set_union(original, patch, path),
            ListKind::Keyed(key) => self.keyed(original, patch, key, path),
        }
    }

    /// The list the patch gives, for a list replaced whole.
    fn atomic(&self, patch: Vec<Value>, path: &[&str]) -> Result<Vec<Value>, PatchError> {
        let mut list = Vec::with_capacity(patch.len());
        for element in patch {
            match element {
                Value::Object(mut element) => match element.remove(PATCH) {
                    None => list.push(Value::Object(self.map(Object::new(), element, path)?)),
                    Some(directive) => match directive.as_str() {
                        Some("replace") => {}
                        Some("delete") => {
                            return Err(bad_list(
                                path,
                                "has no merge key, so its elements cannot be deleted one by one",
                            ));
                        }
                        _ => return Err(unsupported(path, &directive)),
                    },
                },
                Value::Array(inner) => list.push(Value::Array(self.atomic(inner, path)?)),
                primitive => list.push(primitive),
            }
        }
        Ok(list)
    }

    /// `patch` merged into `original` element by element, by `key`.
    fn keyed(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        key: &'static str,
        path: &[&str],
    ) -> Result<Vec<Value>, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let mut original = objects(original, path)?;
        let mut plain = Vec::with_capacity(patch.len());
        let mut replace = false;
        for element in objects(patch, path)? {
            let Some(directive) = element.get(PATCH) else {
                plain.push(element);
                continue;
            };
            match directive.as_str() {
                Some("delete") => {
                    let id = merge_key(&element, key, path)?;
                    // Every match: a list may hold duplicates, and upstream deletes them all.
                    original.retain(|existing| !existing.get(key).is_some_and(|v| same(v, id)));
                }
                // The other elements still count: upstream drops the whole list first.
                Some("replace") => replace = true,
                _ => return Err(unsupported(path, directive)),
            }
        }
        if replace {
            let mut list = Vec::with_capacity(plain.len());
            for element in plain {
                merge_key(&element, key, path)?;
                list.push(Value::Object(self.map(Object::new(), element, path)?));
            }
            return Ok(list);
        }

        let live = original
            .iter()
            .map(|element| merge_key(element, key, path).cloned())
            .collect::<Result<Vec<_>, _>>()?;
        let order = plain
            .iter()
            .map(|element| merge_key(element, key, path).cloned())
            .collect::<Result<Vec<_>, _>>()?;
        let mut merged = original;
        for (element, id) in plain.into_iter().zip(&order) {
            match merged
                .iter()
                .position(|existing| existing.get(key).is_some_and(|v| same(v, id)))
            {
                Some(at) => {
                    let existing = std::mem::take(&mut merged[at]);
                    merged[at] = self.map(existing, element, path)?;
                }
                None => merged.push(self.map(Object::new(), element, path)?),
            }
        }
        let merged = merged.into_iter().map(Value::Object).collect();
        Ok(reorder(merged, &order, &live, Identity::Key(key)))
    }

    /// Applies the `$setElementOrder/<list>` directives of `patch`: merges each list they
    /// name, then orders it. The lists are taken out of `patch`, so they are merged once.
    fn set_element_orders(
        &self,
        original: &mut Object,
        patch: &mut Object,
        path: &[&str],
    ) -> Result<(), PatchError> {
        let directives: Vec<String> = patch
            .keys()
            .filter(|key| key.starts_with(SET_ELEMENT_ORDER))
            .cloned()
            .collect();
        for directive in directives {
            let Some(order) = patch.remove(&directive) else {
                continue;
            };
            let field = directive_field(&directive, SET_ELEMENT_ORDER, path)?;
            let refuse = |problem| malformed(path, &directive, problem);
            let Value::Array(order) = order else {
                return Err(refuse("it is not a list"));
            };
            let child = child(path, field);
            let identity = match list_kind(self.ty, &child) {
                ListKind::Keyed(key) => {
                    if order.iter().any(|element| element.get(key).is_none()) {
                        return Err(refuse(
                            "its elements must be objects with the list's merge key",
                        ));
                    }
                    Identity::Key(key)
                }
                ListKind::Set | ListKind::Atomic => {
                    if order
                        .iter()
                        .any(|element| element.is_object() || element.is_array())
                    {
                        return Err(refuse(
                            "its elements must be strings, numbers or booleans, as the list has no merge key",
                        ));
                    }
                    Identity::Itself
                }
            };
            let order: Vec<Value> = order
                .iter()
                .filter_map(|element| identity.of(element).cloned())
                .collect();

            let current = match original.get_mut(field).map(std::mem::take) {
                None | Some(Value::Null) => None,
                Some(Value::Array(list)) => Some(list),
                Some(_) => return Err(bad_list(&child, "is not a list")),
            };
            let listed = match patch.remove(field) {
                None => None,
                Some(Value::Array(list)) => Some(list),
                Some(_) => return Err(refuse("the field it orders is not a list in the patch")),
            };
            if let Some(listed) = &listed {
                check_order(listed, &order, identity, &child)?;
            }
            let live: Vec<Value> = current
                .iter()
                .flatten()
                .filter_map(|element| identity.of(element).cloned())
                .collect();
            let merged = match (current, listed) {
                (Some(current), None) => current,
                (current, Some(listed)) => {
                    self.list(current.unwrap_or_default(), listed, &child)?
                }
                (None, None) => continue,
            };
            if let Identity::Key(key) = identity
                && merged.iter().any(|element| element.get(key).is_none())
            {
                return Err(PatchError::NoMergeKey {
                    path: dotted(&child),
                    key,
                });
            }
            original.insert(
                field.to_owned(),
                Value::Array(reorder(merged, &order, &live, identity)),
            );
        }
        Ok(())
    }
}

/// The union of two lists of primitives, each value once.
fn set_union(
    original: Vec<Value>,
    patch: Vec<Value>,
    path: &[&str],
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    if original
        .iter()
        .chain(&patch)
        .any(|element| element.is_object() || element.is_array())
    {
        return Err(bad_list(
            path,
            "is merged as a set, which holds only strings, numbers and booleans",
        ));
    }
    let order = distinct(patch);
    let mut merged = order.clone();
    merged.extend(
        distinct(original.clone())
            .into_iter()
            .filter(|element| !order.iter().any(|listed| same(listed, element))),
    );
    Ok(reorder(merged, &order, &original, Identity::Itself))
}

/// `list` in upstream's order (`normalizeElementOrder`): the elements whose identity is in
/// `order` in that order, the others in `live`'s order, the two interleaved so that an element
/// of the second kind comes before one of the first only where both are live and it was
/// before it there.
fn reorder(list: Vec<Value>, order: &[Value], live: &[Value], identity: Identity) -> Vec<Value> {
    let position = |ids: &[Value], element: &Value| {
        identity
            .of(element)
            .and_then(|id| ids.iter().position(|other| same(other, id)))
    };
    let (mut listed, mut others): (Vec<Value>, Vec<Value>) = list
        .into_iter()
        .partition(|element| position(order, element).is_some());
    // Stable sorts: duplicates keep their relative order, as upstream's sort.SliceStable.
    listed.sort_by_key(|element| position(order, element));
    others.sort_by_key(|element| position(live, element).unwrap_or(usize::MAX));

    let mut merged = Vec::with_capacity(listed.len() + others.len());
    let mut listed = listed.into_iter().peekable();
    let mut others = others.into_iter().peekable();
    loop {
        let take_other = match (others.peek(), listed.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(other), Some(next)) => {
                matches!((position(live, other), position(live, next)), (Some(a), Some(b)) if a < b)
            }
        };
        merged.extend(if take_other {
            others.next()
        } else {
            listed.next()
        });
    }
    merged
}

/// Checks that the patch's list names its elements in the order `$setElementOrder` gives
/// (upstream's `validatePatchWithSetOrderList`): deletions and other directives aside, the
/// patch's elements are a subsequence of the order.
fn check_order(
    listed: &[Value],
    order: &[Value],
    identity: Identity,
    path: &[&str],
) -> Result<(), PatchError> {
    if order.is_empty() {
        return Ok(());
    }
    let mut listed = listed.iter().filter(|element| element.get(PATCH).is_none());
    let mut next = listed.next();
    for id in order {
        let Some(element) = next else {
            break;
        };
        let element_id = identity.of(element).ok_or_else(|| match identity {
            Identity::Key(key) => PatchError::NoMergeKey {
                path: dotted(path),
                key,
            },
            // Never: a primitive is its own identity.
            Identity::Itself => bad_list(path, "has an element that cannot be ordered"),
        })?;
        if same(element_id, id) {
            next = listed.next();
        }
    }
    match next {
        Some(_) => Err(PatchError::OrderMismatch { path: dotted(path) }),
        None => Ok(()),
    }
}

/// Applies a `$retainKeys` directive: `original` keeps only the keys it lists, which must
/// include every key the patch sets.
fn retain_keys(original: &mut Object, patch: &mut Object, path: &[&str]) -> Result<(), PatchError> {
    let Some(names) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let names: Option<Vec<&str>> = match &names {
        Value::Array(names) => names.iter().map(Value::as_str).collect(),
        _ => None,
    };
    let Some(names) = names else {
        return Err(malformed(
            path,
            RETAIN_KEYS,
            "it is not a list of field names",
        ));
    };
    let unlisted = patch.iter().find(|(key, value)| {
        !value.is_null()
            && !key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            && !key.starts_with(SET_ELEMENT_ORDER)
            && !names.contains(&key.as_str())
    });
    if let Some((field, _)) = unlisted {
        return Err(PatchError::NotRetained {
            path: dotted(path),
            field: field.clone(),
        });
    }
    original.retain(|key, _| names.contains(&key.as_str()));
    Ok(())
}

/// Applies a `$deleteFromPrimitiveList/<list>` directive, whatever the list's patch strategy
/// (as upstream). A list the object does not have stays absent.
fn delete_from_primitive_list(
    original: &mut Object,
    directive: &str,
    values: Value,
    path: &[&str],
) -> Result<(), PatchError> {
    let field = directive_field(directive, DELETE_FROM_PRIMITIVE_LIST, path)?;
    let Value::Array(values) = values else {
        return Err(malformed(path, directive, "it is not a list"));
    };
    if values
        .iter()
        .any(|value| value.is_object() || value.is_array())
    {
        return Err(malformed(
            path,
            directive,
            "it holds something other than strings, numbers and booleans",
        ));
    }
    match original.get_mut(field) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(list)) => {
            if list
                .iter()
                .any(|element| element.is_object() || element.is_array())
            {
                return Err(bad_list(
                    &child(path, field),
                    "holds objects or lists, which $deleteFromPrimitiveList cannot delete",
                ));
            }
            list.retain(|element| !values.iter().any(|value| same(value, element)));
            Ok(())
        }
        Some(_) => Err(bad_list(&child(path, field), "is not a list")),
    }
}

/// The field `<prefix>/<field>` names.
fn directive_field<'d>(
    directive: &'d str,
    prefix: &str,
    path: &[&str],
) -> Result<&'d str, PatchError> {
    match directive
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
    {
        Some(field) if !field.is_empty() => Ok(field),
        _ => Err(malformed(
            path,
            directive,
            "it names no list: the form is <directive>/<field>",
        )),
    }
}

fn objects(list: Vec<Value>, path: &[&str]) -> Result<Vec<Object>, PatchError> {
    list.into_iter()
        .map(|element| match element {
            Value::Object(element) => Ok(element),
            _ => Err(bad_list(
                path,
                "has a merge key, so its elements must be objects",
            )),
        })
        .collect()
}

fn merge_key<'e>(
    element: &'e Object,
    key: &'static str,
    path: &[&str],
) -> Result<&'e Value, PatchError> {
    element.get(key).ok_or_else(|| PatchError::NoMergeKey {
        path: dotted(path),
        key,
    })
}

/// `list` with each value once, where it first appears.
fn distinct(list: Vec<Value>) -> Vec<Value> {
    let mut seen: Vec<Value> = Vec::with_capacity(list.len());
    for value in list {
        if !seen.iter().any(|other| same(other, &value)) {
            seen.push(value);
        }
    }
    seen
}

/// Equality as Go's on decoded JSON, where every number is a float64: `80` is `80.0`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || x.as_f64().is_some_and(|x| Some(x) == y.as_f64())
        }
        _ => a == b,
    }
}

fn child<'a>(path: &[&'a str], key: &'a str) -> Vec<&'a str> {
    let mut child = Vec::with_capacity(path.len() + 1);
    child.extend_from_slice(path);
    child.push(key);
    child
}

fn dotted(path: &[&str]) -> String {
    if path.is_empty() {
        "the top level".to_owned()
    } else {
        path.join(".")
    }
}

fn unsupported(path: &[&str], directive: &Value) -> PatchError {
    PatchError::UnsupportedDirective {
        path: dotted(path),
        value: directive.to_string(),
    }
}

fn malformed(path: &[&str], directive: &str, problem: &'static str) -> PatchError {
    PatchError::MalformedDirective {
        path: dotted(path),
        directive: directive.to_owned(),
        problem,
    }
}

fn bad_list(path: &[&str], problem: &'static str) -> PatchError {
    PatchError::BadList {
        path: dotted(path),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn strategic(kind: &str, target: &Value, patch: &Value) -> Result<Value, PatchError> {
        apply(
            kind,
            target,
            patch.to_string().as_bytes(),
            PatchType::Strategic,
        )
    }

    fn pod(spec: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": spec,
        })
    }

    /// A Pod with `spec` patched with `{"spec": patch}`: the patched spec.
    fn patch_spec(spec: Value, patch: Value) -> Value {
        let patched = strategic("Pod", &pod(spec), &json!({"spec": patch})).unwrap();
        patched["spec"].clone()
    }

    fn patch_spec_error(spec: Value, patch: Value) -> PatchError {
        strategic("Pod", &pod(spec), &json!({"spec": patch})).unwrap_err()
    }

    /// A Pod with `metadata.finalizers` patched with `metadata`: the patched finalizers.
    fn patch_finalizers(finalizers: Value, metadata: Value) -> Value {
        let mut target = pod(json!({"containers": []}));
        target["metadata"]["finalizers"] = finalizers;
        let patched = strategic("Pod", &target, &json!({"metadata": metadata})).unwrap();
        patched["metadata"]["finalizers"].clone()
    }

    /// Containers `{"name": n}` with `image` where given: upstream's test lists, `mergingList`
    /// of `{name, value}`, become a PodSpec's containers.
    fn containers(items: &[(&str, Option<&str>)]) -> Value {
        Value::Array(
            items
                .iter()
                .map(|(name, image)| match image {
                    Some(image) => json!({"name": name, "image": image}),
                    None => json!({"name": name}),
                })
                .collect(),
        )
    }

    fn has_directive(value: &Value) -> bool {
        match value {
            Value::Object(map) => map
                .iter()
                .any(|(key, value)| key.starts_with('$') || has_directive(value)),
            Value::Array(list) => list.iter().any(has_directive),
            _ => false,
        }
    }

    #[test]
    fn patch_types_come_from_the_content_type() {
        let cases = [
            ("application/json-patch+json", Some(PatchType::Json)),
            (
                "application/merge-patch+json; charset=utf-8",
                Some(PatchType::Merge),
            ),
            (
                "Application/Strategic-Merge-Patch+JSON",
                Some(PatchType::Strategic),
            ),
            (
                " application/strategic-merge-patch+json ;charset=UTF-8",
                Some(PatchType::Strategic),
            ),
            ("application/json", None),
            // Server-side apply, which podswarm does not serve.
            ("application/apply-patch+yaml", None),
            ("", None),
        ];
        for (content_type, expected) in cases {
            assert_eq!(
                PatchType::from_content_type(content_type),
                expected,
                "{content_type}"
            );
        }
        for patch_type in [PatchType::Json, PatchType::Merge, PatchType::Strategic] {
            assert_eq!(
                PatchType::from_content_type(patch_type.content_type()),
                Some(patch_type)
            );
        }
    }

    #[test]
    fn json_patch_applies_operations_in_order() {
        let target =
            json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let patch = br#"[
            {"op": "test", "path": "/data/a", "value": "1"},
            {"op": "replace", "path": "/data/a", "value": "10"},
            {"op": "add", "path": "/metadata/labels", "value": {"app": "web"}},
            {"op": "remove", "path": "/data/b"},
            {"op": "copy", "from": "/data/a", "path": "/data/c"}
        ]"#;
        let patched = apply("ConfigMap", &target, patch, PatchType::Json).unwrap();
        assert_eq!(
            patched,
            json!({
                "kind": "ConfigMap",
                "metadata": {"name": "c", "labels": {"app": "web"}},
                "data": {"a": "10", "c": "10"},
            })
        );
    }

    #[test]
    fn json_patch_refuses_failed_tests_bad_paths_and_bad_bodies() {
        let target = json!({"kind": "ConfigMap", "data": {"a": "1"}});
        let failing_test = br#"[
            {"op": "replace", "path": "/data/a", "value": "2"},
            {"op": "test", "path": "/data/a", "value": "1"}
        ]"#;
        match apply("ConfigMap", &target, failing_test, PatchType::Json) {
            Err(PatchError::Operation {
                index: 1,
                path,
                source,
            }) => {
                assert_eq!(path, "/data/a");
                assert!(matches!(source, json_patch::PatchErrorKind::TestFailed));
            }
            other => panic!("{other:?}"),
        }
        let bad_path = br#"[{"op": "remove", "path": "/data/nope"}]"#;
        assert!(matches!(
            apply("ConfigMap", &target, bad_path, PatchType::Json),
            Err(PatchError::Operation { index: 0, .. })
        ));
        for body in [
            &br#"{"op": "remove", "path": "/data"}"#[..],
            b"[{\"op\": \"frobnicate\"}]",
            b"[",
            b"",
        ] {
            assert!(
                matches!(
                    apply("ConfigMap", &target, body, PatchType::Json),
                    Err(PatchError::Unreadable {
                        patch_type: PatchType::Json,
                        ..
                    })
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let to_a_string = br#"[{"op": "replace", "path": "", "value": "nope"}]"#;
        assert!(matches!(
            apply("ConfigMap", &target, to_a_string, PatchType::Json),
            Err(PatchError::ResultNotAnObject {
                patch_type: PatchType::Json
            })
        ));
    }

    #[test]
    fn merge_patch_merges_maps_deletes_nulls_and_replaces_lists() {
        let target = pod(json!({
            "containers": [{"name": "web", "image": "nginx:1.26"}, {"name": "log", "image": "busybox"}],
            "nodeSelector": {"disk": "ssd", "zone": "a"},
        }));
        let patch = json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}], "nodeSelector": {"zone": null}},
        });
        let patched = apply(
            "Pod",
            &target,
            patch.to_string().as_bytes(),
            PatchType::Merge,
        )
        .unwrap();
        assert_eq!(
            patched["metadata"],
            json!({"name": "web", "namespace": "default", "labels": {"app": "web"}})
        );
        // RFC 7386 knows no merge keys: the list is the patch's.
        assert_eq!(
            patched["spec"]["containers"],
            json!([{"name": "web", "image": "nginx:1.27"}])
        );
        assert_eq!(patched["spec"]["nodeSelector"], json!({"disk": "ssd"}));
    }

    #[test]
    fn merge_patch_refuses_non_objects_and_bad_json() {
        let target = pod(json!({}));
        for body in [&b"[]"[..], b"null", b"\"spec\""] {
            assert!(matches!(
                apply("Pod", &target, body, PatchType::Merge),
                Err(PatchError::PatchNotAnObject {
                    patch_type: PatchType::Merge
                })
            ));
        }
        assert!(matches!(
            apply("Pod", &target, b"{\"spec\":", PatchType::Merge),
            Err(PatchError::Unreadable {
                patch_type: PatchType::Merge,
                ..
            })
        ));
    }

    #[test]
    fn the_table_finds_merge_keys_wherever_the_types_sit() {
        let cases: &[(Type, &str, ListKind)] = &[
            (Type::Pod, "spec.containers", ListKind::Keyed("name")),
            (Type::Pod, "spec.containers.env", ListKind::Keyed("name")),
            (
                Type::Pod,
                "spec.ephemeralContainers.volumeMounts",
                ListKind::Keyed("mountPath"),
            ),
            (Type::Pod, "metadata.finalizers", ListKind::Set),
            (Type::Pod, "status.conditions", ListKind::Keyed("type")),
            (
                Type::Deployment,
                "spec.template.spec.containers",
                ListKind::Keyed("name"),
            ),
            (
                Type::Deployment,
                "spec.template.spec.initContainers.ports",
                ListKind::Keyed("containerPort"),
            ),
            (
                Type::Deployment,
                "spec.template.spec.containers.volumeDevices",
                ListKind::Keyed("devicePath"),
            ),
            (
                Type::Deployment,
                "spec.template.spec.topologySpreadConstraints",
                ListKind::Keyed("topologyKey"),
            ),
            (
                Type::Deployment,
                "spec.template.metadata.ownerReferences",
                ListKind::Keyed("uid"),
            ),
            (Type::Deployment, "metadata.finalizers", ListKind::Set),
            (
                Type::Deployment,
                "status.conditions",
                ListKind::Keyed("type"),
            ),
            (Type::Service, "spec.ports", ListKind::Keyed("port")),
            (Type::Namespace, "metadata.finalizers", ListKind::Set),
            // Atomic upstream, though some have list-map keys.
            (Type::Pod, "spec.tolerations", ListKind::Atomic),
            (Type::Pod, "spec.containers.args", ListKind::Atomic),
            (Type::Pod, "spec.containers.command", ListKind::Atomic),
            (Type::Pod, "spec.containers.envFrom", ListKind::Atomic),
            (Type::Pod, "spec.containers.resizePolicy", ListKind::Atomic),
            (
                Type::Pod,
                "spec.containers.resources.claims",
                ListKind::Atomic,
            ),
            (Type::Pod, "status.containerStatuses", ListKind::Atomic),
            (Type::Namespace, "spec.finalizers", ListKind::Atomic),
            (Type::Ingress, "spec.rules", ListKind::Atomic),
            (Type::Ingress, "spec.tls", ListKind::Atomic),
            // A PodSpec only where a Pod or a Deployment has one.
            (Type::Pod, "spec.template.spec.containers", ListKind::Atomic),
            (Type::Deployment, "spec.containers", ListKind::Atomic),
            (Type::Service, "spec.containers", ListKind::Atomic),
        ];
        for &(ty, path, expected) in cases {
            let path: Vec<&str> = path.split('.').collect();
            assert_eq!(list_kind(ty, &path), expected, "{ty:?} {path:?}");
        }
    }

    // Upstream: "add field and delete field from map", "delete field from nested map".
    #[test]
    fn strategic_maps_merge_and_null_deletes() {
        let target =
            pod(json!({"nodeSelector": {"disk": "ssd", "zone": "a"}, "restartPolicy": "Always"}));
        let patch = json!({
            "metadata": {"labels": {"app": "web"}, "namespace": null},
            "spec": {"nodeSelector": {"zone": null, "arch": "arm64"}, "restartPolicy": null, "dnsPolicy": null},
        });
        let patched = strategic("Pod", &target, &patch).unwrap();
        assert_eq!(
            patched,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {"nodeSelector": {"disk": "ssd", "arch": "arm64"}},
            })
        );
    }

    // Upstream: "replace list of scalars", and a list of maps without a merge key.
    #[test]
    fn strategic_lists_without_merge_key_are_replaced_whole() {
        let spec = json!({
            "containers": [{"name": "web", "args": ["-a", "-b"]}],
            "tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}],
        });
        let patched = patch_spec(
            spec,
            json!({
                "containers": [{"name": "web", "args": ["-b", "-c"]}],
                "tolerations": [{"key": "c", "operator": "Exists", "effect": null}],
            }),
        );
        assert_eq!(
            patched["containers"],
            json!([{"name": "web", "args": ["-b", "-c"]}])
        );
        assert_eq!(
            patched["tolerations"],
            json!([{"key": "c", "operator": "Exists"}])
        );
    }

    // Upstream: "merge lists of maps", "add field to map in merging list", "replace map field
    // value in merging list", "delete field from map in merging list".
    #[test]
    fn strategic_lists_with_merge_key_merge_element_by_element() {
        let spec = json!({"containers": [
            {"name": "web", "image": "nginx:1.26", "env": [{"name": "A", "value": "1"}], "workingDir": "/srv"},
            {"name": "log", "image": "busybox"},
        ]});
        let patched = patch_spec(
            spec,
            json!({"containers": [
                {"name": "web", "image": "nginx:1.27", "env": [{"name": "B", "value": "2"}], "workingDir": null},
            ]}),
        );
        assert_eq!(
            patched["containers"],
            json!([
                {"name": "web", "image": "nginx:1.27", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]},
                {"name": "log", "image": "busybox"},
            ])
        );
    }

    // Upstream: "preserve the order from the patch in a merging list" (and "... 2"), and an
    // element added without $setElementOrder, which goes before the live ones.
    #[test]
    fn strategic_merge_lists_take_the_patchs_order() {
        let live = containers(&[("1", None), ("2", Some("b")), ("3", None)]);
        let patched = patch_spec(
            json!({"containers": live.clone()}),
            json!({"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}, {"name": "2", "workingDir": "x"}]}),
        );
        assert_eq!(
            patched["containers"],
            json!([
                {"name": "3", "image": "c"},
                {"name": "1", "image": "a"},
                {"name": "2", "image": "b", "workingDir": "x"},
            ])
        );
        let patched = patch_spec(
            json!({"containers": live}),
            json!({"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}),
        );
        assert_eq!(
            patched["containers"],
            json!([{"name": "2", "image": "b"}, {"name": "3", "image": "c"}, {"name": "1", "image": "a"}])
        );
        let patched = patch_spec(
            json!({"containers": containers(&[("a", None), ("b", None)])}),
            json!({"containers": [{"name": "c"}]}),
        );
        assert_eq!(
            patched["containers"],
            containers(&[("c", None), ("a", None), ("b", None)])
        );
    }

    // Upstream: "delete map from merging list", "delete missing map from merging list",
    // "delete all duplicate entries in a merging list", "add map and delete map from merging
    // list".
    #[test]
    fn strategic_patch_delete_removes_list_elements_by_key() {
        let env = json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "A", "value": "3"}]);
        let patched = patch_spec(
            json!({"containers": [{"name": "web", "env": env}]}),
            json!({"containers": [{"name": "web", "env": [
                {"name": "A", "$patch": "delete"},
                {"name": "missing", "$patch": "delete"},
                {"name": "C", "value": "4"},
            ]}]}),
        );
        assert_eq!(
            patched["containers"],
            json!([{"name": "web", "env": [{"name": "C", "value": "4"}, {"name": "B", "value": "2"}]}])
        );
    }

    // Upstream: "delete all items from merging list", "add key and delete all keys from map",
    // "delete all keys from map".
    #[test]
    fn strategic_patch_replace_replaces_lists_and_maps() {
        let spec = json!({"containers": [{
            "name": "web",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}},
        }]});
        let patched = patch_spec(
            spec.clone(),
            json!({"containers": [{
                "name": "web",
                "env": [{"$patch": "replace"}, {"name": "C", "value": "3", "valueFrom": null}],
                "resources": {"$patch": "replace", "limits": {"cpu": "2"}},
            }]}),
        );
        assert_eq!(
            patched["containers"],
            json!([{"name": "web", "env": [{"name": "C", "value": "3"}], "resources": {"limits": {"cpu": "2"}}}])
        );
        let patched = patch_spec(
            spec,
            json!({"containers": [{"name": "web", "env": [{"$patch": "replace"}]}]}),
        );
        assert_eq!(patched["containers"][0]["env"], json!([]));
        let patched = strategic(
            "Pod",
            &pod(json!({})),
            &json!({"$patch": "replace", "kind": "Pod"}),
        )
        .unwrap();
        assert_eq!(patched, json!({"kind": "Pod"}));
    }

    // Upstream: "delete map from nested map".
    #[test]
    fn strategic_patch_delete_empties_a_map() {
        let patched = patch_spec(
            json!({"nodeSelector": {"disk": "ssd"}}),
            json!({"nodeSelector": {"$patch": "delete"}, "affinity": {"$patch": "delete"}}),
        );
        // As upstream: the map is emptied, and one the object lacks stays absent.
        assert_eq!(patched, json!({"nodeSelector": {}}));
    }

    // Upstream: "unique scalars when merging lists", "preserve the order from the patch in a
    // merging int list" (both).
    #[test]
    fn strategic_primitive_merge_lists_are_sets() {
        assert_eq!(
            patch_finalizers(json!(["a", "b"]), json!({"finalizers": ["b", "c"]})),
            json!(["a", "b", "c"])
        );
        assert_eq!(
            patch_finalizers(
                json!(["a", "b", "c"]),
                json!({"finalizers": ["c", "a", "b"]})
            ),
            json!(["c", "a", "b"])
        );
        assert_eq!(
            patch_finalizers(json!(["a", "b", "c"]), json!({"finalizers": ["c", "a"]})),
            json!(["b", "c", "a"])
        );
        assert_eq!(
            patch_finalizers(json!(["a", "a"]), json!({"finalizers": ["b", "b"]})),
            json!(["b", "a"])
        );
    }

    // Upstream: "delete items in lists of scalars", "add and delete items in lists of scalars",
    // and the "$deleteFromPrimitiveList ..." cases.
    #[test]
    fn strategic_delete_from_primitive_list() {
        assert_eq!(
            patch_finalizers(
                json!(["1", "2", "3", "4"]),
                json!({"$setElementOrder/finalizers": ["1", "2"], "$deleteFromPrimitiveList/finalizers": ["3"]}),
            ),
            json!(["1", "2", "4"])
        );
        assert_eq!(
            patch_finalizers(
                json!(["1", "2", "3"]),
                json!({
                    "$setElementOrder/finalizers": ["1", "2", "4"],
                    "$deleteFromPrimitiveList/finalizers": ["3"],
                    "finalizers": ["4"],
                }),
            ),
            json!(["1", "2", "4"])
        );
        assert_eq!(
            patch_finalizers(
                json!(["1", "2"]),
                json!({"$deleteFromPrimitiveList/finalizers": ["3"]})
            ),
            json!(["1", "2"])
        );
        // Neither an absent list nor a null one is created.
        let patched = strategic(
            "Pod",
            &pod(json!({})),
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["3"]}}),
        )
        .unwrap();
        assert_eq!(
            patched["metadata"],
            json!({"name": "web", "namespace": "default"})
        );
        assert_eq!(
            patch_finalizers(
                Value::Null,
                json!({"$deleteFromPrimitiveList/finalizers": ["3"]})
            ),
            Value::Null
        );
        // Whatever the list's strategy.
        let patched = patch_spec(
            json!({"containers": [{"name": "web", "args": ["1", "2", "3"]}]}),
            json!({"containers": [{"name": "web", "$deleteFromPrimitiveList/args": ["2"]}]}),
        );
        assert_eq!(patched["containers"][0]["args"], json!(["1", "3"]));
    }

    // Upstream's raw cases: "merge lists of maps", "set elements order in a list with
    // server-only items" (2 and 3), "$setElementOrder contains item that is not present in the
    // list to be merged", "delete and reorder in one list, reorder in another", "nested patch
    // merge with empty list", and the int-list twins.
    #[test]
    fn strategic_set_element_order_orders_lists() {
        let patched = patch_spec(
            json!({"containers": containers(&[("1", Some("a")), ("2", Some("b"))])}),
            json!({
                "$setElementOrder/containers": [{"name": "4"}, {"name": "1"}, {"name": "2"}, {"name": "3"}],
                "containers": [{"name": "4", "image": "d"}, {"name": "3", "image": "c"}],
            }),
        );
        assert_eq!(
            patched["containers"],
            containers(&[
                ("4", Some("d")),
                ("1", Some("a")),
                ("2", Some("b")),
                ("3", Some("c"))
            ])
        );

        let order = json!([{"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}]);
        let names =
            |list: &[&str]| containers(&list.iter().map(|name| (*name, None)).collect::<Vec<_>>());
        let patched = patch_spec(
            json!({"containers": names(&["1", "2", "9", "3", "4"])}),
            json!({"$setElementOrder/containers": order}),
        );
        assert_eq!(patched["containers"], names(&["2", "1", "9", "4", "3"]));
        let patched = patch_spec(
            json!({"containers": names(&["1", "2", "7", "9", "8", "3", "4"])}),
            json!({"$setElementOrder/containers": order}),
        );
        assert_eq!(
            patched["containers"],
            names(&["2", "1", "7", "9", "8", "4", "3"])
        );

        let patched = patch_spec(
            json!({"containers": names(&["1", "3"])}),
            json!({
                "$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
                "containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}],
            }),
        );
        assert_eq!(
            patched["containers"],
            containers(&[("3", Some("c")), ("1", Some("a"))])
        );

        let patched = patch_spec(
            json!({"containers": names(&["a", "b"]), "initContainers": names(&["c", "d"])}),
            json!({
                "$setElementOrder/containers": [{"name": "b"}],
                "$setElementOrder/initContainers": [{"name": "d"}, {"name": "c"}],
                "containers": [{"name": "a", "$patch": "delete"}],
            }),
        );
        assert_eq!(
            patched,
            json!({"containers": names(&["b"]), "initContainers": names(&["d", "c"])})
        );

        let patched = patch_spec(
            json!({"containers": names(&["hello2"])}),
            json!({
                "$setElementOrder/containers": [{"name": "hello"}, {"name": "doesntexist"}],
                "containers": [{"name": "hello"}],
            }),
        );
        assert_eq!(patched["containers"], names(&["hello", "hello2"]));

        assert_eq!(
            patch_finalizers(
                json!(["1", "3"]),
                json!({"$setElementOrder/finalizers": ["3", "2", "1"]})
            ),
            json!(["3", "1"])
        );
        assert_eq!(
            patch_finalizers(
                json!(["1", "2", "3", "2", "4"]),
                json!({"$setElementOrder/finalizers": ["2", "1", "4", "3", "2"]})
            ),
            json!(["2", "2", "1", "4", "3"])
        );
    }

    // Upstream: "should check if order in $setElementOrder and patch list match".
    #[test]
    fn strategic_set_element_order_must_agree_with_the_patch() {
        let error = patch_spec_error(
            json!({"containers": containers(&[("1", None), ("3", None), ("2", None)])}),
            json!({
                "$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
                "containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}],
            }),
        );
        assert!(
            matches!(&error, PatchError::OrderMismatch { path } if path == "spec.containers"),
            "{error:?}"
        );
        let error = strategic(
            "Pod",
            &pod(json!({})),
            &json!({"metadata": {"$setElementOrder/finalizers": ["1", "2", "3"], "finalizers": ["3", "1"]}}),
        )
        .unwrap_err();
        assert!(
            matches!(error, PatchError::OrderMismatch { .. }),
            "{error:?}"
        );
    }

    // Upstream: "retainKeys map should clear defaulted field", "retainKeys map adds a field
    // and clear a field", "retainKeys list of maps clears a field", "retainKeys map can add a
    // field when no retainKeys directive present".
    #[test]
    fn strategic_retain_keys_drops_the_keys_not_listed() {
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"spec": {
                    "containers": [{"name": "web"}],
                    "volumes": [{"name": "data", "emptyDir": {}}, {"name": "conf", "configMap": {"name": "c"}}],
                }},
            },
        });
        let patch = json!({"spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "template": {"spec": {
                "$setElementOrder/volumes": [{"name": "data"}, {"name": "conf"}],
                "volumes": [{"$retainKeys": ["hostPath", "name"], "name": "data", "hostPath": {"path": "/srv"}}],
            }},
        }});
        let patched = strategic("Deployment", &deployment, &patch).unwrap();
        assert_eq!(patched["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(
            patched["spec"]["template"]["spec"]["volumes"],
            json!([{"name": "data", "hostPath": {"path": "/srv"}}, {"name": "conf", "configMap": {"name": "c"}}])
        );
        // Without the directive, an ordinary merge.
        let patch = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}});
        let patched = strategic("Deployment", &deployment, &patch).unwrap();
        assert_eq!(
            patched["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}})
        );
        // The patch may not set what the directive does not keep.
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}});
        let error = strategic("Deployment", &deployment, &patch).unwrap_err();
        assert!(
            matches!(&error, PatchError::NotRetained { path, field } if path == "spec.strategy" && field == "rollingUpdate"),
            "{error:?}"
        );
    }

    #[test]
    fn strategic_refuses_malformed_and_unknown_directives() {
        let spec = json!({
            "containers": [{"name": "web", "env": [{"name": "A"}]}],
            "tolerations": [{"key": "a"}],
        });
        let cases = [
            (
                json!({"containers": [{"name": "web", "$patch": "merge"}]}),
                "unsupported $patch directive \"merge\" at spec.containers",
            ),
            (
                json!({"nodeSelector": {"$patch": "nope"}}),
                "unsupported $patch directive \"nope\" at spec.nodeSelector",
            ),
            (
                json!({"nodeSelector": {"$patch": 1}}),
                "unsupported $patch directive 1 at spec.nodeSelector",
            ),
            (
                json!({"tolerations": [{"key": "a", "$patch": "delete"}]}),
                "the list spec.tolerations has no merge key, so its elements cannot be deleted one by one",
            ),
            (
                json!({"$setElementOrder": []}),
                "malformed $setElementOrder directive at spec: it names no list: the form is <directive>/<field>",
            ),
            (
                json!({"$setElementOrder/": []}),
                "malformed $setElementOrder/ directive at spec: it names no list: the form is <directive>/<field>",
            ),
            (
                json!({"$setElementOrderX/containers": []}),
                "malformed $setElementOrderX/containers directive at spec: it names no list: the form is <directive>/<field>",
            ),
            (
                json!({"$setElementOrder/containers": {"name": "web"}}),
                "malformed $setElementOrder/containers directive at spec: it is not a list",
            ),
            (
                json!({"$setElementOrder/containers": ["web"]}),
                "malformed $setElementOrder/containers directive at spec: its elements must be objects with the list's merge key",
            ),
            (
                json!({"$setElementOrder/containers": [{"name": "web"}], "containers": {"name": "web"}}),
                "malformed $setElementOrder/containers directive at spec: the field it orders is not a list in the patch",
            ),
            (
                json!({"$setElementOrder/tolerations": [{"key": "a"}]}),
                "malformed $setElementOrder/tolerations directive at spec: its elements must be strings, numbers or booleans, as the list has no merge key",
            ),
            (
                json!({"containers": [{"name": "web", "$deleteFromPrimitiveList/args": "a"}]}),
                "malformed $deleteFromPrimitiveList/args directive at spec.containers: it is not a list",
            ),
            (
                json!({"containers": [{"name": "web", "$deleteFromPrimitiveList/env": [{"name": "A"}]}]}),
                "malformed $deleteFromPrimitiveList/env directive at spec.containers: it holds something other than strings, numbers and booleans",
            ),
            (
                json!({"containers": [{"name": "web", "$deleteFromPrimitiveList/env": ["A"]}]}),
                "the list spec.containers.env holds objects or lists, which $deleteFromPrimitiveList cannot delete",
            ),
            (
                json!({"nodeSelector": {"$retainKeys": "disk"}}),
                "malformed $retainKeys directive at spec.nodeSelector: it is not a list of field names",
            ),
            (
                json!({"nodeSelector": {"$retainKeys": [1]}}),
                "malformed $retainKeys directive at spec.nodeSelector: it is not a list of field names",
            ),
        ];
        for (patch, message) in cases {
            let error = patch_spec_error(spec.clone(), patch.clone());
            assert_eq!(error.to_string(), message, "{patch}");
        }
    }

    // Upstream: "missing merge key should error out".
    #[test]
    fn strategic_refuses_lists_that_do_not_fit_their_merge_key() {
        let spec = json!({"containers": [{"name": "web", "env": [{"name": "A", "value": "a"}]}]});
        let error = patch_spec_error(
            spec.clone(),
            json!({"containers": [{"name": "web", "env": [{"value": "b"}]}]}),
        );
        assert_eq!(
            error.to_string(),
            "an element of the list spec.containers.env has no merge key name"
        );
        let error = patch_spec_error(spec.clone(), json!({"containers": [{"image": "nginx"}]}));
        assert!(
            matches!(error, PatchError::NoMergeKey { key: "name", .. }),
            "{error:?}"
        );
        let error = patch_spec_error(spec.clone(), json!({"containers": [{"$patch": "delete"}]}));
        assert!(
            matches!(error, PatchError::NoMergeKey { key: "name", .. }),
            "{error:?}"
        );
        let error = patch_spec_error(spec, json!({"containers": ["web"]}));
        assert_eq!(
            error.to_string(),
            "the list spec.containers has a merge key, so its elements must be objects"
        );
        let error = strategic(
            "Pod",
            &pod(json!({})),
            &json!({"metadata": {"finalizers": [{"name": "a"}]}}),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the list metadata.finalizers is merged as a set, which holds only strings, numbers and booleans"
        );
    }

    #[test]
    fn strategic_refuses_non_objects_and_kinds_it_has_no_table_for() {
        let target = pod(json!({}));
        assert!(matches!(
            apply(
                "Pod",
                &target,
                b"[{\"op\": \"remove\", \"path\": \"/spec\"}]",
                PatchType::Strategic
            ),
            Err(PatchError::PatchNotAnObject {
                patch_type: PatchType::Strategic
            })
        ));
        assert!(matches!(
            apply("Pod", &target, b"{", PatchType::Strategic),
            Err(PatchError::Unreadable {
                patch_type: PatchType::Strategic,
                ..
            })
        ));
        let error = apply("Widget", &target, b"{}", PatchType::Strategic).unwrap_err();
        assert_eq!(
            error.to_string(),
            "strategic merge patch is not supported for kind Widget"
        );
        // The other patch types do not need to know the kind.
        assert!(apply("Widget", &target, b"{}", PatchType::Merge).is_ok());
        assert!(matches!(
            apply("Pod", &json!([]), b"{}", PatchType::Strategic),
            Err(PatchError::TargetNotAnObject)
        ));
    }

    #[test]
    fn strategic_directives_never_reach_the_object() {
        // Values the object does not have yet, carrying directives: merged into nothing.
        let patched = patch_spec(
            json!({"containers": [{"name": "web"}]}),
            json!({
                "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
                "containers": [{
                    "name": "side",
                    "$setElementOrder/env": [{"name": "A"}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "$patch": "delete"}],
                    "resources": {"$patch": "replace", "limits": {"cpu": "1"}},
                    "args": [{"$patch": "replace"}, "-v"],
                }],
                "affinity": {"nodeAffinity": {"$retainKeys": ["preferredDuringSchedulingIgnoredDuringExecution"]}},
                "$setElementOrder/volumes": [{"name": "data"}],
                "volumes": [{"name": "data", "emptyDir": {"$patch": "replace"}}],
                "securityContext": {"$patch": "delete"},
            }),
        );
        assert!(!has_directive(&patched), "{patched}");
        assert_eq!(
            patched,
            json!({
                "containers": [
                    {"name": "web"},
                    {"name": "side", "env": [{"name": "A", "value": "1"}], "resources": {"limits": {"cpu": "1"}}, "args": ["-v"]},
                ],
                "affinity": {"nodeAffinity": {}},
                "volumes": [{"name": "data", "emptyDir": {}}],
            })
        );
    }

    #[test]
    fn strategic_merge_keys_compare_numbers_by_value() {
        let service = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]},
        });
        let patch = json!({"spec": {
            "$setElementOrder/ports": [{"port": 80.0}, {"port": 443}],
            "ports": [{"port": 80.0, "targetPort": 9090}],
        }});
        let patched = strategic("Service", &service, &patch).unwrap();
        // One port 80, merged (its key now the patch's 80.0: Go reads both as float64).
        assert_eq!(
            patched["spec"]["ports"],
            json!([{"port": 80.0, "targetPort": 9090}, {"port": 443, "targetPort": 8443}])
        );
    }

    /// What kubectl 1.32's client-side `kubectl apply` sends for a Deployment whose manifest
    /// changed the container's image and dropped env var B: a three-way patch
    /// (`CreateThreeWayMergePatch`), applied to the live object with the server's defaults and
    /// status, which the patch leaves alone.
    #[test]
    fn strategic_three_way_patch_from_kubectl_apply() {
        let last_applied = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"name":"web","namespace":"default"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"env":[{"name":"A","value":"1"}],"image":"nginx:1.27","name":"web"}]}}}}
"#;
        let live = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "uid": "6f1c9a55-1111-4222-8333-944455556666",
                "resourceVersion": "42",
                "generation": 3,
                "annotations": {
                    "deployment.kubernetes.io/revision": "3",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}\n",
                },
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
                "template": {
                    "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                    "spec": {
                        "containers": [{
                            "name": "web",
                            "image": "nginx:1.26",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                            "imagePullPolicy": "IfNotPresent",
                        }],
                        "restartPolicy": "Always",
                        "terminationGracePeriodSeconds": 30,
                        "dnsPolicy": "ClusterFirst",
                        "securityContext": {},
                        "schedulerName": "default-scheduler",
                    },
                },
            },
            "status": {
                "observedGeneration": 3,
                "replicas": 2,
                "conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}],
            },
        });
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{
                    "$setElementOrder/env": [{"name": "A"}],
                    "env": [{"$patch": "delete", "name": "B"}],
                    "image": "nginx:1.27",
                    "name": "web",
                }],
            }}},
        });
        let patched = strategic("Deployment", &live, &patch).unwrap();

        let mut expected = live.clone();
        expected["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
            json!(last_applied);
        let container = &mut expected["spec"]["template"]["spec"]["containers"][0];
        container["image"] = json!("nginx:1.27");
        container["env"] = json!([{"name": "A", "value": "1"}]);
        assert_eq!(patched, expected);
    }

    /// Plain maps and lists of primitives, with `null`s only where `nulls`.
    fn plain(nulls: bool) -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z]{0,3}".prop_map(Value::from),
            prop::collection::vec(any::<i8>().prop_map(Value::from), 0..3).prop_map(Value::Array),
        ];
        let leaf = if nulls {
            prop_oneof![4 => leaf, 1 => Just(Value::Null)].boxed()
        } else {
            leaf.boxed()
        };
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect()))
        })
    }

    fn plain_object(nulls: bool) -> impl Strategy<Value = Value> {
        prop::collection::btree_map("[a-d]", plain(nulls), 0..4)
            .prop_map(|map| Value::Object(map.into_iter().collect()))
    }

    proptest! {
        /// Without merge keys or directives, a strategic merge patch is a JSON merge patch.
        #[test]
        fn strategic_without_merge_keys_is_merge_patch(target in plain_object(false), patch in plain_object(true)) {
            let body = patch.to_string();
            let strategic = apply("ConfigMap", &target, body.as_bytes(), PatchType::Strategic).unwrap();
            let merge = apply("ConfigMap", &target, body.as_bytes(), PatchType::Merge).unwrap();
            prop_assert_eq!(strategic, merge);
        }
    }
}
