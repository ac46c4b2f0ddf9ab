//! The kinds podswarm knows and the words users type for them (`po`, `deploy`, `svc` …), defined
//! once.
//!
//! Both podswarmctl (which resource a command line names, which table it prints) and the API
//! (`DELETE /api/v1/manifests/:ns/:kind/:name`) turn a user's word into a kind. Two copies of the
//! list drift apart, and then the CLI accepts a word the API refuses, or the other way round; so
//! this crate, which both depend on, holds the only one.
//!
//! The words are kubectl's (`kubectl api-resources`): the plural, the singular, the short names,
//! the kind itself, and the group-qualified plural or singular (`deployments.apps`), all in any
//! case. A habit from kubectl should either work or be refused by name, never mean something
//! else.
//!
//! `Node` is here although no manifest holds one: users list nodes like any other resource, but a
//! podswarm node is a cluster member (it joins and leaves), never an applied object.
//! [`Kind::in_manifests`] tells the two apart.

use std::fmt;

use crate::Object;

/// A kind podswarm knows, as a type: commands match on it rather than on spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Pod,
    Deployment,
    Service,
    Ingress,
    ConfigMap,
    Secret,
    Namespace,
    Node,
}

/// One row of the table: everything about a kind's names.
#[derive(Debug)]
struct Names {
    kind: &'static str,
    singular: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    /// The API group, empty for the core group.
    group: &'static str,
    api_version: &'static str,
    namespaced: bool,
    in_manifests: bool,
}

impl Kind {
    /// Every kind, in the order help texts and error messages list them.
    pub const ALL: [Kind; 8] = [
        Kind::Pod,
        Kind::Deployment,
        Kind::Service,
        Kind::Ingress,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::Namespace,
        Kind::Node,
    ];

    const fn names(self) -> &'static Names {
        match self {
            Kind::Pod => &Names {
                kind: "Pod",
                singular: "pod",
                plural: "pods",
                short: &["po"],
                group: "",
                api_version: "v1",
                namespaced: true,
                in_manifests: true,
            },
            Kind::Deployment => &Names {
                kind: "Deployment",
                singular: "deployment",
                plural: "deployments",
                short: &["deploy"],
                group: "apps",
                api_version: "apps/v1",
                namespaced: true,
                in_manifests: true,
            },
            Kind::Service => &Names {
                kind: "Service",
                singular: "service",
                plural: "services",
                short: &["svc"],
                group: "",
                api_version: "v1",
                namespaced: true,
                in_manifests: true,
            },
            Kind::Ingress => &Names {
                kind: "Ingress",
                singular: "ingress",
                plural: "ingresses",
                short: &["ing"],
                group: "networking.k8s.io",
                api_version: "networking.k8s.io/v1",
                namespaced: true,
                in_manifests: true,
            },
            Kind::ConfigMap => &Names {
                kind: "ConfigMap",
                singular: "configmap",
                plural: "configmaps",
                short: &["cm"],
                group: "",
                api_version: "v1",
                namespaced: true,
                in_manifests: true,
            },
            Kind::Secret => &Names {
                kind: "Secret",
                singular: "secret",
                plural: "secrets",
                short: &[],
                group: "",
                api_version: "v1",
                namespaced: true,
                in_manifests: true,
            },
            Kind::Namespace => &Names {
                kind: "Namespace",
                singular: "namespace",
                plural: "namespaces",
                short: &["ns"],
                group: "",
                api_version: "v1",
                namespaced: false,
                in_manifests: true,
            },
            Kind::Node => &Names {
                kind: "Node",
                singular: "node",
                plural: "nodes",
                short: &["no"],
                group: "",
                api_version: "v1",
                namespaced: false,
                in_manifests: false,
            },
        }
    }

    /// The kind as manifests spell it: `Deployment`.
    pub const fn name(self) -> &'static str {
        self.names().kind
    }

    /// Lower case, as kubectl prints objects: `deployment/web`.
    pub const fn singular(self) -> &'static str {
        self.names().singular
    }

    /// The resource name: `deployments`.
    pub const fn plural(self) -> &'static str {
        self.names().plural
    }

    /// kubectl's short names: `deploy`.
    pub const fn short_names(self) -> &'static [&'static str] {
        self.names().short
    }

    /// The API group, empty for the core group.
    pub const fn group(self) -> &'static str {
        self.names().group
    }

    /// The `apiVersion` manifests use for this kind.
    pub const fn api_version(self) -> &'static str {
        self.names().api_version
    }

    /// Whether objects of this kind live in a namespace.
    pub const fn is_namespaced(self) -> bool {
        self.names().namespaced
    }

    /// Whether manifests hold this kind (so it can be applied and deleted).
    pub const fn in_manifests(self) -> bool {
        self.names().in_manifests
    }

    /// The kind of a `kind:` field, spelled exactly as manifests do (`ConfigMap`).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind a user's word names: `po`, `pods`, `Pod`, `deployments.apps`, in any case.
    pub fn from_word(word: &str) -> Option<Kind> {
        let word = word.to_ascii_lowercase();
        Kind::ALL.into_iter().find(|k| k.words().any(|w| w == word))
    }

    /// Every word [`Kind::from_word`] accepts for this kind, in lower case.
    pub fn words(self) -> impl Iterator<Item = String> {
        let n = self.names();
        let plain = [n.singular, n.plural]
            .into_iter()
            .chain(n.short.iter().copied())
            .map(str::to_owned);
        let qualified = [n.plural, n.singular]
            .into_iter()
            .filter(|_| !n.group.is_empty())
            .map(|w| format!("{w}.{}", n.group));
        plain.chain(qualified)
    }

    /// The kind of a parsed object.
    pub fn of(object: &Object) -> Kind {
        match object {
            Object::Namespace(_) => Kind::Namespace,
            Object::Pod(_) => Kind::Pod,
            Object::Deployment(_) => Kind::Deployment,
            Object::Service(_) => Kind::Service,
            Object::Ingress(_) => Kind::Ingress,
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::Secret(_) => Kind::Secret,
        }
    }

    /// How help and error messages name the kind: `deployments (deploy)`.
    pub fn usage(self) -> String {
        match self.short_names() {
            [] => self.plural().to_owned(),
            short => format!("{} ({})", self.plural(), short.join(", ")),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kinds as a sentence lists them: `pods (po), deployments (deploy) or services (svc)`.
pub fn list(kinds: &[Kind]) -> String {
    let names: Vec<String> = kinds.iter().map(|k| k.usage()).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, Policy, parse};

    #[test]
    fn every_word_names_one_kind() {
        for kind in Kind::ALL {
            for word in kind.words() {
                assert_eq!(Kind::from_word(&word), Some(kind), "{word}");
                assert_eq!(Kind::from_word(&word.to_ascii_uppercase()), Some(kind));
                let others: Vec<Kind> = Kind::ALL
                    .into_iter()
                    .filter(|k| *k != kind && k.words().any(|w| w == word))
                    .collect();
                assert!(others.is_empty(), "{word} also names {others:?}");
            }
            assert_eq!(Kind::from_word(kind.name()), Some(kind));
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
    }

    /// The words users relied on before this table existed (podswarmctl's and the API's own
    /// lists, and kubectl's short names) keep working.
    #[test]
    fn kubectl_words() {
        for (word, kind) in [
            ("po", Kind::Pod),
            ("pod", Kind::Pod),
            ("pods", Kind::Pod),
            ("deploy", Kind::Deployment),
            ("deployment", Kind::Deployment),
            ("deployments", Kind::Deployment),
            ("deployments.apps", Kind::Deployment),
            ("svc", Kind::Service),
            ("service", Kind::Service),
            ("services", Kind::Service),
            ("SVC", Kind::Service),
            ("ing", Kind::Ingress),
            ("ingress", Kind::Ingress),
            ("ingresses", Kind::Ingress),
            ("ingresses.networking.k8s.io", Kind::Ingress),
            ("cm", Kind::ConfigMap),
            ("configmap", Kind::ConfigMap),
            ("configmaps", Kind::ConfigMap),
            ("ConfigMap", Kind::ConfigMap),
            ("secret", Kind::Secret),
            ("secrets", Kind::Secret),
            ("ns", Kind::Namespace),
            ("namespace", Kind::Namespace),
            ("namespaces", Kind::Namespace),
            ("no", Kind::Node),
            ("node", Kind::Node),
            ("nodes", Kind::Node),
        ] {
            assert_eq!(Kind::from_word(word), Some(kind), "{word}");
        }
        for word in [
            "",
            "p",
            "statefulset",
            "sts",
            "pods.apps",
            "deploy.extensions",
        ] {
            assert_eq!(Kind::from_word(word), None, "{word:?}");
        }
        assert_eq!(
            Kind::from_name("pod"),
            None,
            "manifests spell kinds exactly"
        );
    }

    /// The table agrees with intake: every kind manifests hold parses under the table's name and
    /// apiVersion and comes back as the same kind; the others are refused.
    #[test]
    fn the_table_matches_what_parse_accepts() {
        let policy = Policy {
            host_path_allow: Vec::new(),
            allow_host_users: false,
        };
        for kind in Kind::ALL {
            let spec = match kind {
                Kind::Pod => "spec: {containers: [{name: app, image: localhost/busybox:latest}]}\n",
                Kind::Deployment => {
                    "spec:\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec: {containers: [{name: app, image: localhost/busybox:latest}]}\n"
                }
                Kind::Service => "spec: {ports: [{port: 80}]}\n",
                Kind::Ingress => {
                    "spec: {defaultBackend: {service: {name: x, port: {number: 80}}}}\n"
                }
                _ => "",
            };
            let text = format!(
                "apiVersion: {}\nkind: {}\nmetadata: {{name: x}}\n{spec}",
                kind.api_version(),
                kind.name()
            );
            let parsed = parse(&text, "test", &Limits::default(), &policy);
            if kind.in_manifests() {
                let manifest = parsed.unwrap_or_else(|e| panic!("{kind}: {e:?}"));
                let object = &manifest.objects[0].object;
                assert_eq!(Kind::of(object), kind);
                assert_eq!(object.kind(), kind.name());
                assert_eq!(object.namespace().is_empty(), !kind.is_namespaced());
            } else {
                assert!(parsed.is_err(), "{kind} is not a manifest kind");
            }
        }
    }

    #[test]
    fn lists_read_as_a_sentence() {
        assert_eq!(list(&[]), "");
        assert_eq!(list(&[Kind::Secret]), "secrets");
        assert_eq!(
            list(&[Kind::Pod, Kind::Secret, Kind::Deployment]),
            "pods (po), secrets or deployments (deploy)"
        );
        assert_eq!(Kind::Ingress.api_version(), "networking.k8s.io/v1");
        assert_eq!(Kind::Deployment.api_version(), "apps/v1");
        assert_eq!(Kind::ConfigMap.to_string(), "ConfigMap");
    }
}
