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

/// One object of `kind` (`namespace` is not used for cluster-scoped kinds).
pub fn path_of(kind: Kind, namespace: &str, name: &str) -> String {
    match kind {
        Kind::Pod => object_path::<Pod>(namespace, name),
        Kind::Deployment => object_path::<Deployment>(namespace, name),
        Kind::Service => object_path::<Service>(namespace, name),
        Kind::Ingress => object_path::<Ingress>(namespace, name),
        Kind::ConfigMap => object_path::<ConfigMap>(namespace, name),
        Kind::Secret => object_path::<Secret>(namespace, name),
        Kind::Namespace => format!("{}/{name}", list_path::<Namespace>(None)),
        Kind::Node => format!("{}/{name}", list_path::<Node>(None)),
    }
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
    }
}
