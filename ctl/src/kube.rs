//! Where the Kubernetes API serves a k8s-openapi type: podswarmctl reads the same endpoints, in
//! the same types, as kubectl does (the paths come from the types, so a kind cannot be asked
//! for at another kind's path).

use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use podswarm_manifest::kinds::Kind;

/// `/api/v1` or `/apis/{group}/{version}`.
fn base<T: Resource>() -> String {
    if T::GROUP.is_empty() {
        format!("/api/{}", T::VERSION)
    } else {
        format!("/apis/{}/{}", T::GROUP, T::VERSION)
    }
}

/// The list of `T` in `namespace`, or in all namespaces (and for cluster-scoped kinds) with
/// `None`.
pub fn list_path<T: Resource>(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{}/namespaces/{ns}/{}", base::<T>(), T::URL_PATH_SEGMENT),
        None => format!("{}/{}", base::<T>(), T::URL_PATH_SEGMENT),
    }
}

/// One namespaced object of kind `T`.
pub fn object_path<T: Resource>(namespace: &str, name: &str) -> String {
    format!("{}/{name}", list_path::<T>(Some(namespace)))
}

/// Where objects of `kind` are created: in `namespace`, for namespaced kinds.
pub fn collection_of(kind: Kind, namespace: &str) -> String {
    match kind {
        Kind::Pod => list_path::<Pod>(Some(namespace)),
        Kind::Deployment => list_path::<Deployment>(Some(namespace)),
        Kind::Service => list_path::<Service>(Some(namespace)),
        Kind::Ingress => list_path::<Ingress>(Some(namespace)),
        Kind::ConfigMap => list_path::<ConfigMap>(Some(namespace)),
        Kind::Secret => list_path::<Secret>(Some(namespace)),
        Kind::Namespace => list_path::<Namespace>(None),
        Kind::Node => list_path::<Node>(None),
    }
}

/// One object of `kind` (`namespace` is not used for cluster-scoped kinds).
pub fn path_of(kind: Kind, namespace: &str, name: &str) -> String {
    format!("{}/{name}", collection_of(kind, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_kubernetes_own() {
        assert_eq!(list_path::<Pod>(None), "/api/v1/pods");
        assert_eq!(list_path::<Node>(None), "/api/v1/nodes");
        assert_eq!(
            list_path::<Deployment>(Some("shop")),
            "/apis/apps/v1/namespaces/shop/deployments"
        );
        assert_eq!(
            object_path::<Pod>("default", "web-0"),
            "/api/v1/namespaces/default/pods/web-0"
        );
        assert_eq!(
            path_of(Kind::Ingress, "shop", "web"),
            "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web"
        );
        assert_eq!(
            path_of(Kind::Namespace, "", "shop"),
            "/api/v1/namespaces/shop"
        );
        assert_eq!(
            collection_of(Kind::Secret, "shop"),
            "/api/v1/namespaces/shop/secrets"
        );
    }
}
