//! `generator`: Kubernetes pods → Podman Quadlet files. Pure: no I/O, no clock, no randomness, so
//! the same pod and context always give the same bytes (every node can render any pod and compare).
//!
//! This is the only crate that knows Quadlet syntax. What it produces:
//!
//! - a single-container pod → one `.container` unit;
//! - a multi-container pod → a `.pod` unit plus one `.container` per container (Podman ≥ 5), or a
//!   `.kube` unit and its pod definition (Podman 4.x), chosen by [`MultiContainer`];
//! - `emptyDir` and `persistentVolumeClaim` volumes → `.volume` units;
//! - the node's pod network → one `.network` unit ([`render_network`]);
//! - ConfigMap volumes → [`DataFile`]s the daemon writes under its data directory and bind-mounts;
//! - Secret values (env and volumes) → [`PodmanSecret`]s the daemon stores in podman's secret store,
//!   so secret text never lands in a world-readable unit file.
//!
//! Units carry no `[Install]` section on purpose: after a reboot podswarmd decides what runs on
//! the node (a pod may have moved while the node was down) instead of systemd starting stale pods.

mod container;
mod env;
pub mod escape;
mod kube;
pub mod names;
mod probe;
mod unit;
mod volumes;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use podswarm_manifest::{Object, PodInstance};

pub use unit::MARKER;

/// How pods with several containers become units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MultiContainer {
    /// `.pod` + one `.container` per container: needs Podman ≥ 5.0.
    #[default]
    Pod,
    /// One `.kube` unit playing a pod definition podswarm writes beside it: Podman 4.7+.
    Kube,
}

/// The node's share of the pod network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetwork {
    /// The node's subnet of the cluster pod CIDR, e.g. `10.244.3.0/24`.
    pub subnet: Ipv4Net,
}

impl PodNetwork {
    /// The bridge address: the node itself as seen from its pods.
    pub fn gateway(&self) -> Ipv4Addr {
        let base = u32::from(self.subnet.network());
        Ipv4Addr::from(base + 1)
    }
}

/// What a node contributes to every pod it renders.
#[derive(Debug, Clone)]
pub struct NodeContext {
    pub node_name: String,
    pub node_ip: Option<IpAddr>,
    pub network: PodNetwork,
    /// The cluster DNS server pods use; `None` leaves podman's default resolv.conf.
    pub dns_server: Option<IpAddr>,
    pub cluster_domain: String,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub multi_container: MultiContainer,
    /// Where ConfigMap volume files live on the node.
    pub data_dir: String,
    /// Host path prefixes `hostPath` volumes may use.
    pub host_path_allow: Vec<String>,
    /// Whether memory and CPU limits are passed to podman. Off where the node's cgroup tree has no
    /// controllers to enforce them (the daemon decides and says so on the pod).
    pub enforce_resources: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            multi_container: MultiContainer::Pod,
            data_dir: "/var/lib/podswarm/volumes".to_owned(),
            host_path_allow: Vec::new(),
            enforce_resources: true,
        }
    }
}

/// ConfigMaps and Secrets a pod may refer to, by namespace and name.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    config_maps: BTreeMap<(String, String), ConfigMap>,
    secrets: BTreeMap<(String, String), Secret>,
}

impl Objects {
    pub fn insert(&mut self, object: &Object) {
        let key = (object.namespace().to_owned(), object.name().to_owned());
        match object {
            Object::ConfigMap(cm) => {
                self.config_maps.insert(key, cm.clone());
            }
            Object::Secret(s) => {
                self.secrets.insert(key, s.clone());
            }
            _ => {}
        }
    }

    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps
            .get(&(namespace.to_owned(), name.to_owned()))
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// A Secret's keys with decoded values; `stringData` wins over `data`, as in Kubernetes.
    pub fn secret_data(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let s = self.secret(namespace, name)?;
        let mut data: BTreeMap<String, Vec<u8>> = s
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in s.string_data.iter().flatten() {
            data.insert(k.clone(), v.clone().into_bytes());
        }
        Some(data)
    }
}

/// One file for `/etc/containers/systemd/podswarm/`.
///
/// Besides its bytes, a file says what it is ([`Role`]) and whose it is (`pod`), set here when it
/// is rendered, so no other crate has to read Quadlet keys back out of `contents`. Files already on
/// disk are read back with [`pod_of`] and [`volume_of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    pub file_name: String,
    pub contents: String,
    /// The pod the file belongs to and goes with; `None` for files of the node (the pod network)
    /// or shared by pods (a claim's volume).
    pub pod: Option<PodKey>,
    pub role: Role,
}

/// A pod's namespace and name: `ns/name` as text, the key pods go by everywhere in podswarm.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PodKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn of(pod: &PodInstance) -> Self {
        PodKey::new(pod.namespace.as_str(), pod.name.as_str())
    }
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What a file is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The node's pod network (`.network`).
    Network,
    /// The shared part of a multi-container pod (`.pod`).
    Pod,
    /// One container (`.container`): the whole pod when it has one container.
    Container {
        /// The container's name in the pod spec.
        name: String,
        /// The image as podman is asked for it (normalised as Kubernetes reads image names).
        image: String,
    },
    /// A multi-container pod played by `podman kube play` (`.kube`).
    Kube {
        /// The containers' (name, image), in spec order.
        containers: Vec<(String, String)>,
    },
    /// The pod definition a `.kube` unit plays (`.kube.json`; not a unit).
    Definition,
    /// A podman volume (`.volume`): an emptyDir (goes with its pod) or a claim's (stays).
    Volume {
        /// The podman volume's name (`VolumeName=`).
        name: String,
    },
}

/// A file the daemon writes for a ConfigMap volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// A podman secret the daemon creates before starting the pod.
#[derive(Clone, PartialEq, Eq)]
pub struct PodmanSecret {
    pub name: String,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for PodmanSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secret material never reaches logs through Debug.
        f.debug_struct("PodmanSecret")
            .field("name", &self.name)
            .field("data", &format_args!("<{} bytes>", self.data.len()))
            .finish()
    }
}

/// Everything one pod needs on a node.
#[derive(Debug, Clone, Default)]
pub struct RenderedPod {
    /// The systemd service that stands for the pod (`podswarm-NS_POD.service`).
    pub service: String,
    pub units: Vec<UnitFile>,
    pub data_files: Vec<DataFile>,
    pub secrets: Vec<PodmanSecret>,
    /// Directories the daemon creates (ConfigMap volumes, even when the ConfigMap is still missing).
    pub directories: Vec<String>,
    /// ConfigMaps and Secrets the pod needs that do not exist yet (`ConfigMap ns/name`): the daemon
    /// keeps such a pod Pending, as the kubelet does.
    pub missing: Vec<String>,
    /// Things the user should know: missing references, unenforced settings.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("pod {namespace}/{pod}: {field}: {source}")]
    Escape {
        namespace: String,
        pod: String,
        field: String,
        #[source]
        source: escape::EscapeError,
    },
    #[error("pod {namespace}/{pod}: {field}: {message}")]
    Unsupported {
        namespace: String,
        pod: String,
        field: String,
        message: String,
    },
}

/// Context threaded through one pod's rendering, so errors name the pod and field.
pub(crate) struct Ctx<'a> {
    pub pod: &'a PodInstance,
    pub pod_ip: Option<Ipv4Addr>,
    pub node: &'a NodeContext,
    pub options: &'a Options,
    pub objects: &'a Objects,
    pub warnings: Vec<String>,
    pub missing: Vec<String>,
}

impl Ctx<'_> {
    pub fn escape<T>(
        &self,
        field: impl Into<String>,
        r: Result<T, escape::EscapeError>,
    ) -> Result<T, Error> {
        r.map_err(|source| Error::Escape {
            namespace: self.pod.namespace.clone(),
            pod: self.pod.name.clone(),
            field: field.into(),
            source,
        })
    }

    pub fn unsupported(&self, field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Unsupported {
            namespace: self.pod.namespace.clone(),
            pod: self.pod.name.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(format!(
            "pod {}/{}: {}",
            self.pod.namespace,
            self.pod.name,
            message.into()
        ));
    }
}

/// Renders one pod placed on this node with address `pod_ip`.
pub fn render_pod(
    pod: &PodInstance,
    pod_ip: Option<Ipv4Addr>,
    node: &NodeContext,
    options: &Options,
    objects: &Objects,
) -> Result<RenderedPod, Error> {
    let mut ctx = Ctx {
        pod,
        pod_ip,
        node,
        options,
        objects,
        warnings: Vec::new(),
        missing: Vec::new(),
    };
    check_names(&ctx)?;
    let volumes = volumes::resolve(&mut ctx)?;
    let mut out = RenderedPod {
        service: format!("{}.service", names::pod(&pod.namespace, &pod.name)),
        ..RenderedPod::default()
    };
    out.units.extend(volumes.units.iter().cloned());
    out.data_files.extend(volumes.data_files.iter().cloned());
    out.directories.extend(volumes.directories.iter().cloned());
    out.missing.extend(volumes.missing.iter().cloned());
    let multi = pod.spec.containers.len() > 1;
    if multi && options.multi_container == MultiContainer::Kube {
        let rendered = kube::render(&mut ctx, &volumes)?;
        out.units.extend(rendered.units);
        out.secrets.extend(rendered.secrets);
    } else {
        out.secrets.extend(volumes.secrets.iter().cloned());
        if multi {
            out.units.push(container::render_pod_unit(&mut ctx)?);
        }
        for c in &pod.spec.containers {
            let rendered = container::render_container(&mut ctx, c, &volumes, multi)?;
            out.units.push(rendered.unit);
            out.secrets.extend(rendered.secrets);
        }
    }
    out.secrets.sort_by(|a, b| a.name.cmp(&b.name));
    out.secrets.dedup_by(|a, b| a.name == b.name);
    out.missing.extend(ctx.missing);
    out.missing.sort();
    out.missing.dedup();
    out.warnings = ctx.warnings;
    Ok(out)
}

/// Renders the node's pod network unit, `podswarm.network`.
pub fn render_network(network: &PodNetwork) -> Result<UnitFile, escape::EscapeError> {
    let mut w = unit::UnitWriter::default();
    w.set("Unit", "Description", escape::raw("podswarm pod network")?);
    w.set("Network", "NetworkName", escape::generated("podswarm")?);
    w.set(
        "Network",
        "Subnet",
        escape::generated(network.subnet.trunc().to_string())?,
    );
    w.set(
        "Network",
        "Gateway",
        escape::generated(network.gateway().to_string())?,
    );
    // Name resolution is podswarm-dns's job; aardvark-dns would answer for container names instead.
    w.set("Network", "DisableDNS", escape::generated("true")?);
    Ok(UnitFile {
        file_name: "podswarm.network".to_owned(),
        contents: w.finish("the pod network of this node (host-gw routing between nodes)"),
        pod: None,
        role: Role::Network,
    })
}

/// The systemd service Quadlet generates from a unit file podswarm wrote, or `None` for files that
/// are not units (pod definitions). Honours `ServiceName=`, as Quadlet does.
pub fn service_of(file_name: &str, contents: &str) -> Option<String> {
    let (base, ext) = file_name.rsplit_once('.')?;
    if let Some(name) = contents
        .lines()
        .find_map(|l| l.strip_prefix("ServiceName="))
    {
        return Some(format!("{name}.service"));
    }
    match ext {
        "container" | "kube" => Some(format!("{base}.service")),
        "pod" | "volume" | "network" => Some(format!("{base}-{ext}.service")),
        _ => None,
    }
}

/// The pod a file podswarm wrote belongs to, read back from the file itself (the owner keys a unit
/// carries, or the labels of a pod definition): what [`UnitFile::pod`] was when it was rendered.
/// `None` for files of no pod (the network, a claim's volume).
pub fn pod_of(contents: &str) -> Option<PodKey> {
    // Units: the `[X-Podswarm]` section, which precedes every other section that may have a `Pod=`
    // key of its own (`.container` units name their `.pod` with one). Pod definitions (JSON): the
    // labels, at whatever depth the pretty-printer put them.
    let owner = |key: &str| {
        contents
            .lines()
            .skip_while(|l| *l != "[X-Podswarm]")
            .take_while(|l| !l.starts_with('[') || *l == "[X-Podswarm]")
            .find_map(|l| l.strip_prefix(key))
            .map(str::to_owned)
    };
    let label = |key: &str| {
        contents.lines().find_map(|l| {
            l.trim_start()
                .strip_prefix(key)
                .map(|v| v.trim().trim_end_matches(',').trim_matches('"').to_owned())
        })
    };
    match (owner("Namespace="), owner("Pod=")) {
        (Some(namespace), Some(name)) => Some(PodKey { namespace, name }),
        _ => match (
            label("\"io.podswarm.namespace\": "),
            label("\"io.podswarm.pod\": "),
        ) {
            (Some(namespace), Some(name)) => Some(PodKey { namespace, name }),
            _ => None,
        },
    }
}

/// The podman volume a `.volume` unit podswarm wrote stands for (`VolumeName=`), read back from
/// the file: what [`Role::Volume`]'s name was when it was rendered.
pub fn volume_of(file_name: &str, contents: &str) -> Option<String> {
    if !file_name.ends_with(".volume") {
        return None;
    }
    contents
        .lines()
        .find_map(|l| l.strip_prefix("VolumeName="))
        .map(str::to_owned)
}

/// Whether a file in the unit directory was written by podswarm (and so may be changed or removed
/// by it): units start with [`MARKER`]; pod definitions carry it as an annotation.
pub fn is_owned(contents: &str) -> bool {
    contents.starts_with(MARKER)
        || contents.contains(&format!("\"{KUBE_MARKER_ANNOTATION}\": \"{MARKER}\""))
}

pub(crate) const KUBE_MARKER_ANNOTATION: &str = "io.podswarm.generated";

/// The network unit file name containers refer to.
pub(crate) const NETWORK_UNIT: &str = "podswarm.network";

/// Defense in depth: pods may reach the generator from replicated state, not only from intake.
fn check_names(ctx: &Ctx<'_>) -> Result<(), Error> {
    use podswarm_manifest::{is_dns1123_label, is_dns1123_subdomain};
    let pod = ctx.pod;
    if !is_dns1123_label(&pod.namespace) {
        return Err(ctx.unsupported(
            "metadata.namespace",
            format!("{:?} is not a DNS-1123 label", pod.namespace),
        ));
    }
    if !is_dns1123_subdomain(&pod.name) {
        return Err(ctx.unsupported(
            "metadata.name",
            format!("{:?} is not a DNS-1123 subdomain", pod.name),
        ));
    }
    if pod.spec.containers.is_empty() {
        return Err(ctx.unsupported("spec.containers", "a pod needs at least one container"));
    }
    for c in &pod.spec.containers {
        if !is_dns1123_label(&c.name) {
            return Err(ctx.unsupported(
                "spec.containers[].name",
                format!("{:?} is not a DNS-1123 label", c.name),
            ));
        }
    }
    Ok(())
}

/// Everything a node would install for a set of objects.
#[derive(Debug, Clone, Default)]
pub struct NodeRender {
    pub units: Vec<UnitFile>,
    pub data_files: Vec<DataFile>,
    pub directories: Vec<String>,
    pub secrets: Vec<PodmanSecret>,
    pub missing: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Pod(#[from] Error),
    #[error("the network unit: {0}")]
    Network(#[source] escape::EscapeError),
    #[error("the pod subnet {subnet} has no address left for pod {namespace}/{pod}")]
    SubnetFull {
        subnet: Ipv4Net,
        namespace: String,
        pod: String,
    },
    #[error("two pods render different contents for {file}")]
    Conflict { file: String },
}

/// Renders every pod of `objects` as if all were placed on this node, giving addresses from the
/// node's subnet in order (`.1` is the node itself). This is `podswarmctl render`.
pub fn render_node(
    objects: &[Object],
    node: &NodeContext,
    options: &Options,
) -> Result<NodeRender, NodeError> {
    let mut index = Objects::default();
    for o in objects {
        index.insert(o);
    }
    let mut out = NodeRender::default();
    out.units
        .push(render_network(&node.network).map_err(NodeError::Network)?);
    let mut next = u32::from(node.network.gateway()) + 1;
    let broadcast = u32::from(node.network.subnet.broadcast());
    let mut host_ports: BTreeMap<(i32, String), String> = BTreeMap::new();
    for object in objects {
        for pod in podswarm_manifest::pods_of(object) {
            for port in pod
                .spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
            {
                let Some(hp) = port.host_port.filter(|p| *p > 0) else {
                    continue;
                };
                let proto = port.protocol.clone().unwrap_or_else(|| "TCP".to_owned());
                let here = format!("{}/{}", pod.namespace, pod.name);
                if let Some(first) = host_ports.insert((hp, proto.clone()), here.clone()) {
                    out.warnings.push(format!(
                        "pods {first} and {here} both need host port {hp}/{proto}: one node runs only one of them (the scheduler places them apart)"
                    ));
                }
            }
            if next >= broadcast {
                return Err(NodeError::SubnetFull {
                    subnet: node.network.subnet,
                    namespace: pod.namespace,
                    pod: pod.name,
                });
            }
            let ip = Ipv4Addr::from(next);
            next += 1;
            let rendered = render_pod(&pod, Some(ip), node, options, &index)?;
            for unit in rendered.units {
                // A claim's volume unit is shared by pods: identical copies are one file.
                match out.units.iter().find(|u| u.file_name == unit.file_name) {
                    Some(existing) if existing.contents == unit.contents => {}
                    Some(_) => {
                        return Err(NodeError::Conflict {
                            file: unit.file_name,
                        });
                    }
                    None => out.units.push(unit),
                }
            }
            out.data_files.extend(rendered.data_files);
            out.directories.extend(rendered.directories);
            out.secrets.extend(rendered.secrets);
            out.missing.extend(rendered.missing);
            out.warnings.extend(rendered.warnings);
        }
    }
    out.secrets.sort_by(|a, b| a.name.cmp(&b.name));
    out.secrets.dedup_by(|a, b| a.name == b.name);
    out.missing.sort();
    out.missing.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use podswarm_manifest::{Limits, Policy, parse};

    fn render_all(yaml: &str, multi_container: MultiContainer) -> Vec<UnitFile> {
        let manifest = parse(yaml, "t", &Limits::default(), &Policy::default()).unwrap();
        let objects: Vec<Object> = manifest.objects.into_iter().map(|o| o.object).collect();
        let node = NodeContext {
            node_name: "n1".to_owned(),
            node_ip: None,
            network: PodNetwork {
                subnet: "10.244.0.0/24".parse().unwrap(),
            },
            dns_server: None,
            cluster_domain: "cluster.local".to_owned(),
        };
        let options = Options {
            multi_container,
            ..Options::default()
        };
        render_node(&objects, &node, &options).unwrap().units
    }

    const PODS: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: one, namespace: shop}\nspec:\n  containers: [{name: c, image: nginx:1.25}]\n  volumes: [{name: scratch, emptyDir: {}}, {name: data, persistentVolumeClaim: {claimName: db}}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: two, namespace: shop}\nspec:\n  containers: [{name: app, image: me/app:v1}, {name: side, image: localhost/busybox:1}]\n  volumes: [{name: cache, emptyDir: {}}]\n";

    /// What the daemon reads back from a file on disk is what the file said when it was rendered.
    #[test]
    fn files_read_back_as_rendered() {
        for mode in [MultiContainer::Pod, MultiContainer::Kube] {
            let units = render_all(PODS, mode);
            assert!(units.len() > 5, "{units:?}");
            for u in &units {
                assert!(is_owned(&u.contents), "{}", u.file_name);
                assert_eq!(pod_of(&u.contents), u.pod, "{}", u.file_name);
                let volume = match &u.role {
                    Role::Volume { name } => Some(name.clone()),
                    _ => None,
                };
                assert_eq!(
                    volume_of(&u.file_name, &u.contents),
                    volume,
                    "{}",
                    u.file_name
                );
                assert_eq!(
                    service_of(&u.file_name, &u.contents).is_none(),
                    u.role == Role::Definition,
                    "{}",
                    u.file_name
                );
            }
        }
    }

    #[test]
    fn files_say_what_they_are() {
        let units = render_all(PODS, MultiContainer::Pod);
        let role = |name: &str| {
            units
                .iter()
                .find(|u| u.file_name == name)
                .map(|u| (u.pod.as_ref().map(ToString::to_string), u.role.clone()))
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let one = Some("shop/one".to_owned());
        let two = Some("shop/two".to_owned());
        assert_eq!(role("podswarm.network"), (None, Role::Network));
        assert_eq!(
            role("podswarm-shop_one.container"),
            (
                one.clone(),
                Role::Container {
                    name: "c".into(),
                    image: "docker.io/library/nginx:1.25".into()
                }
            )
        );
        assert_eq!(
            role("podswarm-shop_one__scratch.volume"),
            (
                one,
                Role::Volume {
                    name: "podswarm-shop_one__scratch".into()
                }
            )
        );
        assert_eq!(
            role("podswarm-shop__db.volume"),
            (
                None,
                Role::Volume {
                    name: "podswarm-shop__db".into()
                }
            ),
            "a claim's volume is no pod's"
        );
        assert_eq!(role("podswarm-shop_two.pod"), (two.clone(), Role::Pod));
        assert_eq!(
            role("podswarm-shop_two_side.container"),
            (
                two,
                Role::Container {
                    name: "side".into(),
                    image: "localhost/busybox:1".into()
                }
            )
        );
        let kube = render_all(PODS, MultiContainer::Kube);
        let played = kube
            .iter()
            .find(|u| u.file_name == "podswarm-shop_two.kube")
            .map(|u| u.role.clone());
        assert_eq!(
            played,
            Some(Role::Kube {
                containers: vec![
                    ("app".into(), "docker.io/me/app:v1".into()),
                    ("side".into(), "localhost/busybox:1".into())
                ]
            })
        );
    }

    #[test]
    fn files_name_their_pod() {
        let key = |contents: &str| pod_of(contents).map(|k| k.to_string());
        assert_eq!(
            key("[X-Podswarm]\nNamespace=shop\nPod=web-0\n").as_deref(),
            Some("shop/web-0")
        );
        let definition = "{\n  \"metadata\": {\n    \"labels\": {\n      \"io.podswarm.namespace\": \"shop\",\n      \"io.podswarm.pod\": \"web-0\"\n    }\n  }\n}\n";
        assert_eq!(key(definition).as_deref(), Some("shop/web-0"));
        assert_eq!(key("[Network]\nNetworkName=podswarm\n"), None);
        // A `.container` of a `.pod` names its `.pod` with a `Pod=` key of the `[Container]` section.
        let unit = "# m\n\n[X-Podswarm]\nNamespace=shop\nPod=web-0\n\n[Container]\nPod=podswarm-shop_web-0.pod\n";
        assert_eq!(key(unit).as_deref(), Some("shop/web-0"));
        assert_eq!(
            key("[X-Podswarm]\nNamespace=shop\nClaim=db\n"),
            None,
            "a claim's volume is no pod's"
        );
    }
}
