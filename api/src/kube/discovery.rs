//! Discovery: which groups, versions and resources podswarm serves, as kubectl asks for them.
//!
//! One table, [`RESOURCES`], says what exists and which verbs each resource takes; the discovery
//! documents are derived from it and the router looks resources up in it, so discovery never
//! offers what the router does not serve. Only the legacy documents are served (`/api`, `/apis`,
//! `/api/v1`, `/apis/{group}/{version}`): client-go asks for aggregated discovery first and falls
//! back to these when the answer is plain JSON.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
};

/// A resource kubectl can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// The plural, as in the URL.
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub verbs: &'static [&'static str],
}

impl Resource {
    /// `v1`, `apps/v1`.
    pub fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn api_resource(&self) -> APIResource {
        APIResource {
            name: self.plural.to_owned(),
            singular_name: self.singular.to_owned(),
            kind: self.kind.to_owned(),
            namespaced: self.namespaced,
            short_names: (!self.short_names.is_empty())
                .then(|| self.short_names.iter().map(|s| (*s).to_owned()).collect()),
            verbs: self.verbs.iter().map(|s| (*s).to_owned()).collect(),
            // kubectl's `get all` expands the category `all`, as Kubernetes defines it.
            categories: ALL_CATEGORY
                .contains(&self.plural)
                .then(|| vec!["all".to_owned()]),
            ..APIResource::default()
        }
    }
}

/// What `kubectl get all` lists in Kubernetes.
const ALL_CATEGORY: &[&str] = &["pods", "services", "deployments", "replicasets"];

/// What kubectl's `apply`, `create`, `replace`, `patch`, `edit` and `delete` need.
const WRITE: &[&str] = &["create", "delete", "get", "list", "patch", "update"];

/// Every resource podswarm serves, in discovery order.
pub const RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        verbs: WRITE,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short_names: &["ep"],
        // Each Service's endpoints, as podswarm tracks them: read only.
        verbs: &["get", "list", "watch"],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        // What each node saw happen, derived from the replicated state: read only.
        verbs: &["get", "list", "watch"],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        verbs: WRITE,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        // `patch` for `kubectl cordon` and `uncordon`, the one change a client makes to a node.
        verbs: &["get", "list", "patch", "watch"],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        verbs: WRITE,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        verbs: WRITE,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        verbs: WRITE,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        verbs: WRITE,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        // A Deployment's revisions, as `kubectl rollout history` and `undo` read them: derived
        // from its revision records, never written.
        verbs: &["get", "list"],
    },
    Resource {
        group: "authentication.k8s.io",
        version: "v1",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        kind: "SelfSubjectReview",
        namespaced: false,
        short_names: &[],
        // `kubectl auth whoami`: who the server takes the caller for.
        verbs: &["create"],
    },
    Resource {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        singular: "ingress",
        kind: "Ingress",
        namespaced: true,
        short_names: &["ing"],
        verbs: WRITE,
    },
];

/// Subresources served, as discovery lists them: (group, version, name, kind, verbs).
const SUBRESOURCES: &[(&str, &str, &str, &str, &[&str])] = &[
    ("", "v1", "pods/log", "Pod", &["get"]),
    ("apps", "v1", "deployments/status", "Deployment", &["get"]),
    (
        "apps",
        "v1",
        "deployments/scale",
        "Scale",
        &["get", "patch", "update"],
    ),
];

/// The resource at `/api/{version}/…` (group `""`) or `/apis/{group}/{version}/…`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// `GET /api`: the core group's versions.
pub fn core_versions() -> APIVersions {
    APIVersions {
        versions: vec!["v1".to_owned()],
        server_address_by_client_cidrs: Vec::new(),
    }
}

/// `GET /apis`: every named group, each with its one version.
pub fn groups() -> APIGroupList {
    let mut groups: Vec<APIGroup> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if groups.iter().any(|g| g.name == r.group) {
            continue;
        }
        let version = GroupVersionForDiscovery {
            group_version: r.group_version(),
            version: r.version.to_owned(),
        };
        groups.push(APIGroup {
            name: r.group.to_owned(),
            preferred_version: Some(version.clone()),
            versions: vec![version],
            server_address_by_client_cidrs: None,
        });
    }
    APIGroupList { groups }
}

/// `GET /api/v1`, `GET /apis/{group}/{version}`: that group version's resources, or `None`
/// where podswarm serves no such group version.
pub fn resources(group: &str, version: &str) -> Option<APIResourceList> {
    let resources: Vec<APIResource> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(Resource::api_resource)
        .chain(
            SUBRESOURCES
                .iter()
                .filter(|(g, v, ..)| *g == group && *v == version)
                .map(|(_, _, name, kind, verbs)| APIResource {
                    name: (*name).to_owned(),
                    kind: (*kind).to_owned(),
                    // The Scale subresource is autoscaling/v1's, served under apps/v1.
                    group: (*kind == "Scale").then(|| "autoscaling".to_owned()),
                    version: (*kind == "Scale").then(|| "v1".to_owned()),
                    namespaced: true,
                    verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
                    singular_name: String::new(),
                    ..APIResource::default()
                }),
        )
        .collect();
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(APIResourceList {
        group_version,
        resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_version_in_the_group_list_has_resources() {
        for group in groups().groups {
            for v in group.versions {
                let list = resources(&group.name, &v.version)
                    .unwrap_or_else(|| panic!("{} has no resources", v.group_version));
                assert_eq!(list.group_version, v.group_version);
            }
        }
        assert!(resources("", "v1").is_some());
        assert!(resources("autoscaling", "v2").is_none());
        let apps = resources("apps", "v1").unwrap();
        assert!(
            apps.resources
                .iter()
                .any(|r| r.name == "deployments/scale" && r.verbs.contains(&"patch".to_owned()))
        );
        assert!(find("apps", "v1", "deployments/scale").is_none());
    }

    #[test]
    fn documents_carry_kind_and_api_version_as_kubernetes_writes_them() {
        let value = serde_json::to_value(resources("apps", "v1")).unwrap();
        assert_eq!(value["kind"], "APIResourceList");
        assert_eq!(value["apiVersion"], "v1");
        assert_eq!(value["groupVersion"], "apps/v1");
        let deploy = &value["resources"][0];
        assert_eq!(deploy["name"], "deployments");
        assert_eq!(deploy["shortNames"], serde_json::json!(["deploy"]));
        assert_eq!(deploy["categories"], serde_json::json!(["all"]));
        let groups = serde_json::to_value(groups()).unwrap();
        assert_eq!(groups["kind"], "APIGroupList");
        assert_eq!(
            groups["groups"][0]["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
        let core = serde_json::to_value(core_versions()).unwrap();
        assert_eq!(core["kind"], "APIVersions");
        assert_eq!(core["versions"], serde_json::json!(["v1"]));
    }

    #[test]
    fn resources_are_found_by_group_version_and_plural_only() {
        assert_eq!(find("", "v1", "pods").map(|r| r.kind), Some("Pod"));
        assert_eq!(
            find("apps", "v1", "deployments").map(|r| r.kind),
            Some("Deployment")
        );
        assert!(find("", "v1", "deployments").is_none());
        assert!(find("apps", "v1beta1", "deployments").is_none());
        assert!(find("", "v1", "po").is_none());
    }
}
