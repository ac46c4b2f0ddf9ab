//! Which API podswarmctl talks to, and kubeconfig files: reading them as kubectl does, and writing
//! the one `podswarmctl token create --kubeconfig FILE` hands out.
//!
//! **Which target** ([`select`]), in this order:
//!
//! 1. `--kubeconfig FILE`: that file, which must exist.
//! 2. `--context NAME`: the `KUBECONFIG` list, else `~/.kube/config`, as kubectl does.
//! 3. `--server` (or `PODSWARM_SERVER`): with a `KUBECONFIG` list, its context with the server
//!    overridden; without one, the server alone with `--token` and
//!    `--certificate-authority`/`--insecure-skip-tls-verify`. `~/.kube/config` is *not* read
//!    then, unlike kubectl, so its user's token never goes to a server given by hand (and these
//!    flags keep meaning what they meant before kubeconfig support).
//! 4. `--socket` (or `PODSWARM_SOCKET`) given explicitly: that socket, even over `KUBECONFIG`,
//!    since a flag is more deliberate than an ambient variable.
//! 5. The `KUBECONFIG` list.
//! 6. The node's socket (the default path) if it exists; else `~/.kube/config` if it exists;
//!    else the socket after all, so the error is the usual "cannot reach the podswarm API at
//!    /run/podswarm/api.sock". Socket first keeps a node's podswarmctl on its own node even when
//!    root has a `~/.kube/config` for another cluster.
//!
//! A kubeconfig set is merged as kubectl merges a `KUBECONFIG` list (colon-separated): the first
//! file that defines a cluster, user or context name wins, the first non-empty
//! `current-context` wins, and files of the list that do not exist are skipped. The context is
//! `--context NAME`, else `current-context`, else the only context there is. `--server`,
//! `--token`, `--certificate-authority` and `--insecure-skip-tls-verify` override the
//! context's fields, as with kubectl. The context's `namespace` is read but not yet applied to
//! `-n` (whose default is `default` or `PODSWARM_NAMESPACE`).
//!
//! **Reading.** Only the fields podswarmctl uses are typed; everything else kubectl writes
//! (`client-certificate-data`, `exec`, `extensions`, `preferences` …) is ignored, because real
//! kubeconfigs carry it. A user that has no token but a client certificate, exec plugin, auth
//! provider or password is refused by name rather than sent unauthenticated: podswarm's API
//! takes bearer tokens only. Relative `certificate-authority` and `tokenFile` paths are relative
//! to the directory of the file that defines them (kubectl's rule). `certificate-authority-data`
//! wins over `certificate-authority`, as in client-go. Every error names the file and the
//! cluster, user or context at fault, since merged lists make "which file?" the first question.
//! A certificate authority is checked to be a PEM certificate here, before any connection, so a
//! broken kubeconfig is not reported as a TLS failure.
//!
//! **Writing.** [`Config::for_token`] builds the standard shape (one cluster, user and context,
//! `current-context` set) that both podswarmctl and kubectl read; [`write_new`] creates the file
//! with mode 0600 (it holds a token) and never overwrites one.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};

/// The name of the cluster and the context in a kubeconfig that `token create` writes.
pub const CONTEXT: &str = "podswarm";

/// A kubeconfig file (`kind: Config`), with the fields podswarmctl reads or writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "null_is_default")]
    pub clusters: Vec<NamedCluster>,
    #[serde(default, deserialize_with = "null_is_default")]
    pub users: Vec<NamedUser>,
    #[serde(default, deserialize_with = "null_is_default")]
    pub contexts: Vec<NamedContext>,
    /// kubectl writes `""` for "none"; read so too.
    #[serde(
        rename = "current-context",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_context: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedCluster {
    pub name: String,
    #[serde(default, deserialize_with = "null_is_default")]
    pub cluster: Cluster,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Base64 of the PEM certificate(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    /// A PEM file, relative to the kubeconfig's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    #[serde(default, deserialize_with = "null_is_default")]
    pub user: User,
}

/// A user's credentials. The ignored fields are there only to tell "no credentials" from
/// "credentials podswarmctl cannot use".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(rename = "tokenFile", default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    #[serde(rename = "client-certificate", default, skip_serializing)]
    client_certificate: Option<IgnoredAny>,
    #[serde(rename = "client-certificate-data", default, skip_serializing)]
    client_certificate_data: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    exec: Option<IgnoredAny>,
    #[serde(rename = "auth-provider", default, skip_serializing)]
    auth_provider: Option<IgnoredAny>,
    #[serde(default, skip_serializing)]
    username: Option<IgnoredAny>,
}

impl User {
    /// The kind of credentials this user has that podswarmctl does not support, if any.
    fn unsupported(&self) -> Option<&'static str> {
        if self.client_certificate.is_some() || self.client_certificate_data.is_some() {
            Some("a client certificate")
        } else if self.exec.is_some() {
            Some("an exec plugin")
        } else if self.auth_provider.is_some() {
            Some("an auth provider")
        } else if self.username.is_some() {
            Some("a username and password")
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedContext {
    pub name: String,
    #[serde(default, deserialize_with = "null_is_default")]
    pub context: Context,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(default)]
    pub cluster: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// kubectl writes `clusters: null` (and the like) for empty lists.
fn null_is_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl Config {
    /// The kubeconfig for a token: one cluster and context named [`CONTEXT`], one user named
    /// `user`. `certificate_authority` is PEM; without it (a plain-HTTP node) there is no CA data.
    pub fn for_token(
        server: &str,
        certificate_authority: Option<&str>,
        user: &str,
        token: &str,
    ) -> Config {
        Config {
            api_version: Some("v1".into()),
            kind: Some("Config".into()),
            clusters: vec![NamedCluster {
                name: CONTEXT.into(),
                cluster: Cluster {
                    server: Some(server.into()),
                    certificate_authority_data: certificate_authority
                        .map(|pem| BASE64.encode(pem.as_bytes())),
                    ..Cluster::default()
                },
            }],
            users: vec![NamedUser {
                name: user.into(),
                user: User {
                    token: Some(token.into()),
                    ..User::default()
                },
            }],
            contexts: vec![NamedContext {
                name: CONTEXT.into(),
                context: Context {
                    cluster: CONTEXT.into(),
                    user: user.into(),
                    namespace: None,
                },
            }],
            current_context: Some(CONTEXT.into()),
        }
    }

    /// The YAML text. Long values (the CA data) stay on one line, as kubectl writes them, not
    /// folded: people grep and copy these lines.
    pub fn to_yaml(&self) -> Result<String> {
        let mut options = serde_saphyr::SerializerOptions::default();
        options.prefer_block_scalars = false;
        serde_saphyr::to_string_with_options(self, options).context("cannot write the kubeconfig")
    }

    /// Parses a kubeconfig's text (YAML, or JSON which is YAML too). An empty file is an empty
    /// config, as kubectl reads it.
    pub fn parse(text: &str) -> Result<Config> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        Ok(serde_saphyr::from_str(text)?)
    }
}

/// Creates `path` holding `config`, mode 0600; refuses to replace an existing file.
pub fn write_new(path: &Path, config: &Config) -> Result<()> {
    let text = config.to_yaml()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                anyhow::anyhow!(
                    "{} exists; remove it or choose another path",
                    path.display()
                )
            }
            _ => anyhow::Error::new(e).context(format!("cannot create {}", path.display())),
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// What the command line says about the API to reach: the flags (and their environment
/// variables, which clap already read).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub server: Option<String>,
    pub token: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub certificate_authority: Option<PathBuf>,
    pub insecure_skip_tls_verify: bool,
    pub socket: PathBuf,
    /// `--socket` or `PODSWARM_SOCKET` was given (not just the default): then the socket is
    /// used even when it does not exist, never `~/.kube/config`.
    pub socket_given: bool,
}

/// The process environment [`select`] depends on; a value so tests need not change their own.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `KUBECONFIG`.
    pub kubeconfig: Option<OsString>,
    /// `HOME`, for `~/.kube/config`.
    pub home: Option<PathBuf>,
}

impl Environment {
    pub fn current() -> Environment {
        Environment {
            kubeconfig: std::env::var_os("KUBECONFIG"),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }

    fn default_kubeconfig(&self) -> Option<PathBuf> {
        self.home
            .as_ref()
            .filter(|h| !h.as_os_str().is_empty())
            .map(|h| h.join(".kube/config"))
    }
}

/// The API to talk to.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// The node's Unix socket (peer credentials; no token).
    Socket(PathBuf),
    Remote(Remote),
}

/// A node's TCP API.
#[derive(Debug, Clone, PartialEq)]
pub struct Remote {
    /// As given: `https://host[:port]`, `http://…`, or `host[:port]` (HTTPS).
    pub server: String,
    pub token: Option<String>,
    pub trust: Trust,
    /// The context's namespace, if it sets one (not applied to `-n` yet).
    pub namespace: Option<String>,
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Trust {
    /// Nothing given: fine for `http://`, an error for HTTPS.
    Unset,
    /// `--insecure-skip-tls-verify`: any certificate (signatures still checked).
    Insecure,
    /// Chains to these PEM certificates; `source` names where they came from, for errors.
    Authority { pem: Vec<u8>, source: String },
}

/// Picks the API from the flags and the environment (see the module doc for the order).
pub fn select(flags: &Flags, env: &Environment) -> Result<Endpoint> {
    let remote = |loaded: Loaded| Ok(Endpoint::Remote(loaded.remote(flags)?));
    if let Some(file) = &flags.kubeconfig {
        return remote(Loaded::read(std::slice::from_ref(file), true)?);
    }
    let list: Option<Vec<PathBuf>> = env.kubeconfig.as_ref().filter(|l| !l.is_empty()).map(|l| {
        std::env::split_paths(l)
            .filter(|p| !p.as_os_str().is_empty())
            .collect()
    });
    if let Some(context) = &flags.context {
        if let Some(files) = &list {
            return remote(Loaded::read(files, false)?);
        }
        let Some(file) = env.default_kubeconfig().filter(|f| f.exists()) else {
            bail!(
                "--context {context} needs a kubeconfig: give --kubeconfig FILE or KUBECONFIG \
                 (~/.kube/config does not exist)"
            );
        };
        return remote(Loaded::read(&[file], true)?);
    }
    if flags.server.is_some() {
        return match &list {
            Some(files) => remote(Loaded::read(files, false)?),
            None => Ok(Endpoint::Remote(flags_only(flags)?)),
        };
    }
    // A socket named on the command line (or by PODSWARM_SOCKET) beats the ambient KUBECONFIG.
    if flags.socket_given {
        return Ok(Endpoint::Socket(flags.socket.clone()));
    }
    if let Some(files) = &list {
        return remote(Loaded::read(files, false)?);
    }
    if flags.socket.exists() {
        return Ok(Endpoint::Socket(flags.socket.clone()));
    }
    if let Some(file) = env.default_kubeconfig().filter(|f| f.exists()) {
        return remote(Loaded::read(&[file], true)?);
    }
    Ok(Endpoint::Socket(flags.socket.clone()))
}

/// One or more kubeconfig files merged; each entry keeps the file it came from.
#[derive(Debug, Default)]
struct Loaded {
    /// The files read (for messages), and whether it was a `KUBECONFIG` list.
    files: Vec<PathBuf>,
    list: bool,
    clusters: Vec<(NamedCluster, PathBuf)>,
    users: Vec<(NamedUser, PathBuf)>,
    contexts: Vec<(NamedContext, PathBuf)>,
    current: Option<(String, PathBuf)>,
}

/// `name` in a merged list: the first file's entry.
fn find<'a, T>(
    entries: &'a [(T, PathBuf)],
    name: &str,
    key: impl Fn(&T) -> &str,
) -> Option<&'a (T, PathBuf)> {
    entries.iter().find(|(e, _)| key(e) == name)
}

/// `path` as written in `file`: relative to its directory.
fn relative_to(file: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    match file.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_owned(),
    }
}

/// Checks that `pem` holds at least one PEM certificate, all of them readable.
fn check_pem(pem: &[u8]) -> Result<(), String> {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| e.to_string())?;
        count += 1;
    }
    if count == 0 {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(())
}

impl Loaded {
    /// Reads and merges `files`. With `required`, a missing file is an error; otherwise (a
    /// `KUBECONFIG` list) it is skipped.
    fn read(files: &[PathBuf], required: bool) -> Result<Loaded> {
        let mut loaded = Loaded {
            files: files.to_vec(),
            list: !required,
            ..Loaded::default()
        };
        for file in files {
            let text = match std::fs::read_to_string(file) {
                Ok(text) => text,
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("cannot read kubeconfig {}", file.display())));
                }
            };
            let config = Config::parse(&text).with_context(|| {
                format!("kubeconfig {} is not a valid kubeconfig", file.display())
            })?;
            loaded.merge(config, file);
        }
        Ok(loaded)
    }

    fn merge(&mut self, config: Config, file: &Path) {
        for c in config.clusters {
            if find(&self.clusters, &c.name, |c| &c.name).is_none() {
                self.clusters.push((c, file.to_owned()));
            }
        }
        for u in config.users {
            if find(&self.users, &u.name, |u| &u.name).is_none() {
                self.users.push((u, file.to_owned()));
            }
        }
        for c in config.contexts {
            if find(&self.contexts, &c.name, |c| &c.name).is_none() {
                self.contexts.push((c, file.to_owned()));
            }
        }
        if self.current.is_none()
            && let Some(current) = config.current_context.filter(|c| !c.is_empty())
        {
            self.current = Some((current, file.to_owned()));
        }
    }

    /// "kubeconfig FILE" or "KUBECONFIG (A:B)", for messages about the whole set.
    fn describe(&self) -> String {
        if self.list {
            let joined: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
            format!("KUBECONFIG ({})", joined.join(":"))
        } else {
            let joined: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
            format!("kubeconfig {}", joined.join(", "))
        }
    }

    fn context_names(&self) -> String {
        let names: Vec<&str> = self.contexts.iter().map(|(c, _)| c.name.as_str()).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }

    /// The selected context with the flags applied.
    fn remote(&self, flags: &Flags) -> Result<Remote> {
        let chosen = match (&flags.context, &self.current) {
            (Some(name), _) => Some(
                find(&self.contexts, name, |c| &c.name)
                    .with_context(|| {
                        format!(
                            "context {name:?} is not in {} (its contexts: {})",
                            self.describe(),
                            self.context_names()
                        )
                    })?
                    .clone(),
            ),
            (None, Some((name, file))) => Some(
                find(&self.contexts, name, |c| &c.name)
                    .with_context(|| {
                        format!(
                            "kubeconfig {}: current-context {name:?} is not one of the contexts ({})",
                            file.display(),
                            self.context_names()
                        )
                    })?
                    .clone(),
            ),
            (None, None) => match self.contexts.as_slice() {
                [only] => Some(only.clone()),
                [] if flags.server.is_some() => None,
                [] if self.list && self.files.iter().all(|f| !f.exists()) => bail!(
                    "{} names no existing file; give --kubeconfig FILE or --server",
                    self.describe()
                ),
                [] => bail!("{} defines no context; give --server", self.describe()),
                _ => bail!(
                    "{} has several contexts ({}) and no current-context; choose one with --context NAME",
                    self.describe(),
                    self.context_names()
                ),
            },
        };
        let Some((context, file)) = chosen else {
            return flags_only(flags);
        };
        let at = |what: &str| format!("kubeconfig {}: {what}", file.display());

        let cluster = match context.context.cluster.as_str() {
            "" if flags.server.is_some() => None,
            "" => bail!(at(&format!("context {:?} names no cluster", context.name))),
            name => Some(find(&self.clusters, name, |c| &c.name).with_context(|| {
                at(&format!(
                    "context {:?}: cluster {name:?} is not defined",
                    context.name
                ))
            })?),
        };
        let user = match context.context.user.as_str() {
            "" => None,
            name => Some(find(&self.users, name, |u| &u.name).with_context(|| {
                at(&format!(
                    "context {:?}: user {name:?} is not defined",
                    context.name
                ))
            })?),
        };

        let server = match (&flags.server, cluster) {
            (Some(server), _) => server.clone(),
            (None, Some((c, f))) => match c.cluster.server.as_deref() {
                Some(s) if !s.is_empty() => s.to_owned(),
                _ => bail!(
                    "kubeconfig {}: cluster {:?} has no server",
                    f.display(),
                    c.name
                ),
            },
            (None, None) => bail!(at(&format!("context {:?} has no server", context.name))),
        };

        let trust = match cluster {
            _ if flags.certificate_authority.is_some() || flags.insecure_skip_tls_verify => {
                flag_trust(flags)?
            }
            None => Trust::Unset,
            Some((c, f)) => cluster_trust(c, f)?,
        };

        let token = match (&flags.token, user) {
            (Some(token), _) => Some(token.clone()),
            (None, None) => None,
            (None, Some((u, f))) => user_token(u, f)?,
        };

        Ok(Remote {
            server,
            token,
            trust,
            namespace: context.context.namespace.clone(),
        })
    }
}

/// `--server` with `--token` and the TLS flags, no kubeconfig.
fn flags_only(flags: &Flags) -> Result<Remote> {
    let Some(server) = flags.server.clone() else {
        bail!("no API server: give --server, --kubeconfig FILE or --context NAME");
    };
    Ok(Remote {
        server,
        token: flags.token.clone(),
        trust: flag_trust(flags)?,
        namespace: None,
    })
}

/// `--certificate-authority` / `--insecure-skip-tls-verify`; they exclude each other (kubectl
/// refuses the pair too: a CA that is not checked is a mistake either way).
fn flag_trust(flags: &Flags) -> Result<Trust> {
    match (&flags.certificate_authority, flags.insecure_skip_tls_verify) {
        (Some(_), true) => bail!(
            "--certificate-authority and --insecure-skip-tls-verify exclude each other; give one"
        ),
        (Some(file), false) => {
            let pem = std::fs::read(file).with_context(|| {
                format!("cannot read --certificate-authority {}", file.display())
            })?;
            check_pem(&pem)
                .map_err(|e| anyhow::anyhow!("--certificate-authority {}: {e}", file.display()))?;
            Ok(Trust::Authority {
                pem,
                source: format!("--certificate-authority {}", file.display()),
            })
        }
        (None, true) => Ok(Trust::Insecure),
        (None, false) => Ok(Trust::Unset),
    }
}

fn cluster_trust(c: &NamedCluster, file: &Path) -> Result<Trust> {
    let at = |what: &str| format!("kubeconfig {}: cluster {}: {what}", file.display(), c.name);
    let cluster = &c.cluster;
    let has_ca =
        cluster.certificate_authority_data.is_some() || cluster.certificate_authority.is_some();
    if cluster.insecure_skip_tls_verify == Some(true) {
        if has_ca {
            bail!(at(
                "certificate-authority and insecure-skip-tls-verify exclude each other; remove one"
            ));
        }
        return Ok(Trust::Insecure);
    }
    let source = format!("kubeconfig {} (cluster {})", file.display(), c.name);
    if let Some(data) = &cluster.certificate_authority_data {
        // Line breaks in the value are tolerated; anything else is the user's to fix.
        let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let pem = BASE64.decode(compact).map_err(|e| {
            anyhow::anyhow!(at(&format!(
                "certificate-authority-data is not valid base64 ({e})"
            )))
        })?;
        check_pem(&pem)
            .map_err(|e| anyhow::anyhow!(at(&format!("certificate-authority-data {e}"))))?;
        return Ok(Trust::Authority { pem, source });
    }
    if let Some(path) = &cluster.certificate_authority {
        let path = relative_to(file, path);
        let pem = std::fs::read(&path).with_context(|| {
            at(&format!(
                "cannot read certificate-authority {}",
                path.display()
            ))
        })?;
        check_pem(&pem).map_err(|e| {
            anyhow::anyhow!(at(&format!("certificate-authority {} {e}", path.display())))
        })?;
        return Ok(Trust::Authority { pem, source });
    }
    Ok(Trust::Unset)
}

fn user_token(u: &NamedUser, file: &Path) -> Result<Option<String>> {
    let at = |what: &str| format!("kubeconfig {}: user {}: {what}", file.display(), u.name);
    if let Some(token) = u.user.token.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(token.clone()));
    }
    if let Some(path) = &u.user.token_file {
        let path = relative_to(file, path);
        let token = std::fs::read_to_string(&path)
            .with_context(|| at(&format!("cannot read tokenFile {}", path.display())))?;
        return Ok(Some(token.trim().to_owned()));
    }
    if let Some(kind) = u.user.unsupported() {
        bail!(at(&format!(
            "it authenticates with {kind}, but podswarmctl supports only bearer tokens (token or \
             tokenFile); create one on a node with `podswarmctl token create --kubeconfig FILE`"
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real CA certificate (PEM), so CA checks pass; one per test run.
    static CA_PEM: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    });

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn kubeconfig(clusters: &[(&str, &str)], contexts: &[(&str, &str)], current: &str) -> String {
        let mut s = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
        for (name, server) in clusters {
            s += &format!(
                "- name: {name}\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\n",
                BASE64.encode(CA_PEM.as_str())
            );
        }
        s += "users:\n- name: u\n  user:\n    token: secret\n";
        s += "contexts:\n";
        for (name, cluster) in contexts {
            s += &format!("- name: {name}\n  context:\n    cluster: {cluster}\n    user: u\n");
        }
        s += &format!("current-context: \"{current}\"\n");
        s
    }

    fn flags(dir: &Path) -> Flags {
        Flags {
            socket: dir.join("api.sock"),
            ..Flags::default()
        }
    }

    fn no_env() -> Environment {
        Environment::default()
    }

    fn remote(endpoint: Result<Endpoint>) -> Remote {
        match endpoint.unwrap_or_else(|e| panic!("{e:#}")) {
            Endpoint::Remote(r) => r,
            other => panic!("expected a remote API, got {other:?}"),
        }
    }

    fn error(endpoint: Result<Endpoint>) -> String {
        match endpoint {
            Ok(e) => panic!("expected an error, got {e:?}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn a_kubectl_written_file_with_unknown_fields_is_read() {
        let dir = tempfile::tempdir().unwrap();
        // What `kubectl config view --raw` prints for a kind/kubeadm cluster, plus a token user.
        let text = format!(
            r#"apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {}
    server: https://10.0.0.5:8080
    tls-server-name: node-a
    extensions:
    - name: client.authentication.k8s.io/exec
      extension: {{audience: x}}
  name: podswarm
contexts:
- context:
    cluster: podswarm
    namespace: shop
    user: admin
  name: podswarm
current-context: podswarm
kind: Config
preferences: {{}}
users:
- name: admin
  user:
    token: abc.def
    client-key-data: null
"#,
            BASE64.encode(CA_PEM.as_str())
        );
        let file = write(dir.path(), "config", &text);
        let r = remote(select(
            &Flags {
                kubeconfig: Some(file.clone()),
                ..flags(dir.path())
            },
            &no_env(),
        ));
        assert_eq!(r.server, "https://10.0.0.5:8080");
        assert_eq!(r.token.as_deref(), Some("abc.def"));
        assert_eq!(r.namespace.as_deref(), Some("shop"));
        assert_eq!(
            r.trust,
            Trust::Authority {
                pem: CA_PEM.as_bytes().to_vec(),
                source: format!("kubeconfig {} (cluster podswarm)", file.display())
            }
        );
        // JSON is YAML too; kubectl's empty lists are null.
        let json = write(
            dir.path(),
            "json",
            r#"{"apiVersion":"v1","kind":"Config","clusters":null,"users":null,"contexts":null,"current-context":""}"#,
        );
        let e = error(select(
            &Flags {
                kubeconfig: Some(json.clone()),
                ..flags(dir.path())
            },
            &no_env(),
        ));
        assert_eq!(
            e,
            format!(
                "kubeconfig {} defines no context; give --server",
                json.display()
            )
        );
    }

    #[test]
    fn precedence_flag_then_env_then_socket_then_home() {
        let dir = tempfile::tempdir().unwrap();
        let flag = write(
            dir.path(),
            "flag",
            &kubeconfig(&[("c", "https://flag")], &[("x", "c")], "x"),
        );
        let listed = write(
            dir.path(),
            "env",
            &kubeconfig(&[("c", "https://env")], &[("x", "c")], "x"),
        );
        std::fs::create_dir(dir.path().join(".kube")).unwrap();
        write(
            dir.path(),
            ".kube/config",
            &kubeconfig(&[("c", "https://home")], &[("x", "c")], "x"),
        );
        let env = Environment {
            kubeconfig: Some(listed.clone().into_os_string()),
            home: Some(dir.path().to_owned()),
        };
        let with_flag = Flags {
            kubeconfig: Some(flag),
            ..flags(dir.path())
        };
        assert_eq!(remote(select(&with_flag, &env)).server, "https://flag");
        assert_eq!(
            remote(select(&flags(dir.path()), &env)).server,
            "https://env"
        );
        // Nothing named: the socket when it exists, else ~/.kube/config.
        let home_only = Environment {
            kubeconfig: None,
            ..env.clone()
        };
        assert_eq!(
            remote(select(&flags(dir.path()), &home_only)).server,
            "https://home"
        );
        std::fs::write(dir.path().join("api.sock"), "").unwrap();
        assert_eq!(
            select(&flags(dir.path()), &home_only).ok(),
            Some(Endpoint::Socket(dir.path().join("api.sock")))
        );
        // Neither: the socket, for its usual error.
        std::fs::remove_file(dir.path().join("api.sock")).unwrap();
        assert_eq!(
            select(&flags(dir.path()), &Environment::default()).ok(),
            Some(Endpoint::Socket(dir.path().join("api.sock")))
        );
        // An explicit --socket is used even when missing, and over KUBECONFIG.
        let given = Flags {
            socket_given: true,
            ..flags(dir.path())
        };
        assert_eq!(
            select(&given, &home_only).ok(),
            Some(Endpoint::Socket(dir.path().join("api.sock")))
        );
        assert_eq!(
            select(&given, &env).ok(),
            Some(Endpoint::Socket(dir.path().join("api.sock")))
        );
        // --server with KUBECONFIG: the context, its server overridden.
        let over = Flags {
            server: Some("https://over".into()),
            ..flags(dir.path())
        };
        let r = remote(select(&over, &env));
        assert_eq!(
            (r.server.as_str(), r.token.as_deref()),
            ("https://over", Some("secret"))
        );
        // --server alone does not read ~/.kube/config; --context alone does.
        let server = Flags {
            server: Some("https://by-hand".into()),
            insecure_skip_tls_verify: true,
            ..flags(dir.path())
        };
        assert_eq!(
            remote(select(&server, &home_only)),
            Remote {
                server: "https://by-hand".into(),
                token: None,
                trust: Trust::Insecure,
                namespace: None
            }
        );
        let context = Flags {
            context: Some("x".into()),
            ..flags(dir.path())
        };
        assert_eq!(remote(select(&context, &home_only)).server, "https://home");
    }

    #[test]
    fn kubeconfig_lists_merge_first_wins_and_skip_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a",
            &kubeconfig(&[("one", "https://a1")], &[("x", "one")], ""),
        );
        let b = write(
            dir.path(),
            "b",
            &kubeconfig(
                &[("one", "https://b1"), ("two", "https://b2")],
                &[("x", "two"), ("y", "two")],
                "y",
            ),
        );
        let list =
            std::env::join_paths([dir.path().join("missing"), a.clone(), b.clone()]).unwrap();
        let env = Environment {
            kubeconfig: Some(list),
            home: None,
        };
        // current-context from b (a sets none), context y from b, its cluster two from b.
        assert_eq!(
            remote(select(&flags(dir.path()), &env)).server,
            "https://b2"
        );
        // Context x from a (first), cluster one from a (first).
        let x = Flags {
            context: Some("x".into()),
            ..flags(dir.path())
        };
        assert_eq!(remote(select(&x, &env)).server, "https://a1");
        // Only missing files.
        let none = Environment {
            kubeconfig: Some(dir.path().join("missing").into_os_string()),
            home: None,
        };
        assert_eq!(
            error(select(&flags(dir.path()), &none)),
            format!(
                "KUBECONFIG ({}) names no existing file; give --kubeconfig FILE or --server",
                dir.path().join("missing").display()
            )
        );
        // An explicit --kubeconfig must exist.
        let missing = Flags {
            kubeconfig: Some(dir.path().join("missing")),
            ..flags(dir.path())
        };
        assert!(error(select(&missing, &no_env())).starts_with(&format!(
            "cannot read kubeconfig {}: ",
            dir.path().join("missing").display()
        )));
    }

    #[test]
    fn contexts_are_chosen_by_flag_current_or_being_the_only_one() {
        let dir = tempfile::tempdir().unwrap();
        let several = write(
            dir.path(),
            "several",
            &kubeconfig(
                &[("a", "https://a"), ("b", "https://b")],
                &[("ca", "a"), ("cb", "b")],
                "",
            ),
        );
        let with = |context: Option<&str>, file: &Path| Flags {
            kubeconfig: Some(file.to_owned()),
            context: context.map(str::to_owned),
            ..flags(dir.path())
        };
        assert_eq!(
            error(select(&with(None, &several), &no_env())),
            format!(
                "kubeconfig {} has several contexts (ca, cb) and no current-context; choose one with --context NAME",
                several.display()
            )
        );
        assert_eq!(
            remote(select(&with(Some("cb"), &several), &no_env())).server,
            "https://b"
        );
        assert_eq!(
            error(select(&with(Some("cc"), &several), &no_env())),
            format!(
                "context \"cc\" is not in kubeconfig {} (its contexts: ca, cb)",
                several.display()
            )
        );
        let one = write(
            dir.path(),
            "one",
            &kubeconfig(&[("a", "https://a")], &[("ca", "a")], ""),
        );
        assert_eq!(
            remote(select(&with(None, &one), &no_env())).server,
            "https://a"
        );
        let dangling = write(
            dir.path(),
            "dangling",
            &kubeconfig(&[("a", "https://a")], &[("ca", "nope")], "gone"),
        );
        assert_eq!(
            error(select(&with(None, &dangling), &no_env())),
            format!(
                "kubeconfig {}: current-context \"gone\" is not one of the contexts (ca)",
                dangling.display()
            )
        );
        assert_eq!(
            error(select(&with(Some("ca"), &dangling), &no_env())),
            format!(
                "kubeconfig {}: context \"ca\": cluster \"nope\" is not defined",
                dangling.display()
            )
        );
    }

    #[test]
    fn bad_certificate_authorities_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = |name: &str, cluster: &str| {
            let file = write(
                dir.path(),
                name,
                &format!(
                    "clusters:\n- name: c\n  cluster:\n    server: https://x\n{cluster}contexts:\n- name: x\n  context: {{cluster: c}}\n"
                ),
            );
            let e = error(select(
                &Flags {
                    kubeconfig: Some(file.clone()),
                    ..flags(dir.path())
                },
                &no_env(),
            ));
            (file, e)
        };
        let (file, e) = bad("b64", "    certificate-authority-data: not*base64\n");
        assert!(
            e.starts_with(&format!(
                "kubeconfig {}: cluster c: certificate-authority-data is not valid base64",
                file.display()
            )),
            "{e}"
        );
        let (file, e) = bad(
            "pem",
            &format!(
                "    certificate-authority-data: {}\n",
                BASE64.encode("hello")
            ),
        );
        assert_eq!(
            e,
            format!(
                "kubeconfig {}: cluster c: certificate-authority-data holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                file.display()
            )
        );
        let (file, e) = bad("missing", "    certificate-authority: ca.pem\n");
        assert!(
            e.starts_with(&format!(
                "kubeconfig {}: cluster c: cannot read certificate-authority {}: ",
                file.display(),
                dir.path().join("ca.pem").display()
            )),
            "{e}"
        );
        let (_, e) = bad(
            "both",
            "    certificate-authority: ca.pem\n    insecure-skip-tls-verify: true\n",
        );
        assert!(
            e.ends_with(
                "certificate-authority and insecure-skip-tls-verify exclude each other; remove one"
            ),
            "{e}"
        );
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        write(dir.path(), "conf/ca.pem", &CA_PEM);
        write(dir.path(), "conf/token", "from-file\n");
        let file = write(
            dir.path(),
            "conf/config",
            "clusters:\n- name: c\n  cluster: {server: 'https://x', certificate-authority: ca.pem}\nusers:\n- name: u\n  user: {tokenFile: token}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n",
        );
        let r = remote(select(
            &Flags {
                kubeconfig: Some(file.clone()),
                ..flags(dir.path())
            },
            &no_env(),
        ));
        assert_eq!(r.token.as_deref(), Some("from-file"));
        assert!(matches!(r.trust, Trust::Authority { ref pem, .. } if pem == CA_PEM.as_bytes()));
    }

    #[test]
    fn flags_override_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let ca = write(dir.path(), "other-ca.pem", &CA_PEM);
        let file = write(
            dir.path(),
            "config",
            &kubeconfig(&[("c", "https://kube")], &[("x", "c")], "x"),
        );
        let base = Flags {
            kubeconfig: Some(file),
            ..flags(dir.path())
        };
        let r = remote(select(
            &Flags {
                server: Some("https://flag:9000".into()),
                token: Some("flag-token".into()),
                certificate_authority: Some(ca.clone()),
                ..base.clone()
            },
            &no_env(),
        ));
        assert_eq!(r.server, "https://flag:9000");
        assert_eq!(r.token.as_deref(), Some("flag-token"));
        assert_eq!(
            r.trust,
            Trust::Authority {
                pem: CA_PEM.as_bytes().to_vec(),
                source: format!("--certificate-authority {}", ca.display())
            }
        );
        let r = remote(select(
            &Flags {
                insecure_skip_tls_verify: true,
                ..base.clone()
            },
            &no_env(),
        ));
        assert_eq!(r.trust, Trust::Insecure);
        assert_eq!(
            error(select(
                &Flags {
                    insecure_skip_tls_verify: true,
                    certificate_authority: Some(ca),
                    ..base
                },
                &no_env(),
            )),
            "--certificate-authority and --insecure-skip-tls-verify exclude each other; give one"
        );
    }

    #[test]
    fn users_without_a_token_but_other_credentials_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "config",
            "clusters:\n- name: c\n  cluster: {server: 'https://x', insecure-skip-tls-verify: true}\nusers:\n- name: admin\n  user:\n    client-certificate-data: AAAA\n    client-key-data: BBBB\ncontexts:\n- name: x\n  context: {cluster: c, user: admin}\n",
        );
        let with = Flags {
            kubeconfig: Some(file.clone()),
            ..flags(dir.path())
        };
        assert_eq!(
            error(select(&with, &no_env())),
            format!(
                "kubeconfig {}: user admin: it authenticates with a client certificate, but podswarmctl supports only bearer tokens (token or tokenFile); create one on a node with `podswarmctl token create --kubeconfig FILE`",
                file.display()
            )
        );
        // --token makes it usable.
        let r = remote(select(
            &Flags {
                token: Some("t".into()),
                ..with
            },
            &no_env(),
        ));
        assert_eq!(r.token.as_deref(), Some("t"));
    }

    #[test]
    fn a_token_kubeconfig_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::for_token(
            "https://10.0.0.5:8080",
            Some(&CA_PEM),
            "podswarm-a1b2",
            "tok",
        );
        let file = dir.path().join("out");
        write_new(&file, &config).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&file).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let r = remote(select(
            &Flags {
                kubeconfig: Some(file.clone()),
                ..flags(dir.path())
            },
            &no_env(),
        ));
        assert_eq!(r.server, "https://10.0.0.5:8080");
        assert_eq!(r.token.as_deref(), Some("tok"));
        assert!(matches!(r.trust, Trust::Authority { ref pem, .. } if pem == CA_PEM.as_bytes()));
        assert_eq!(
            Config::parse(&std::fs::read_to_string(&file).unwrap()).unwrap(),
            config
        );
        // Never overwritten.
        assert_eq!(
            write_new(&file, &config).map_err(|e| e.to_string()),
            Err(format!(
                "{} exists; remove it or choose another path",
                file.display()
            ))
        );
    }

    /// The written file is what kubectl reads (checked with the real one where it is installed).
    #[test]
    fn kubectl_reads_a_token_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out");
        write_new(
            &file,
            &Config::for_token(
                "https://10.0.0.5:8080",
                Some(&CA_PEM),
                "podswarm-a1b2",
                "tok",
            ),
        )
        .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        // One line per value, as kubectl writes them.
        assert!(
            text.lines().any(|l| l.trim_start()
                == format!(
                    "certificate-authority-data: {}",
                    BASE64.encode(CA_PEM.as_str())
                )),
            "{text}"
        );
        let out = match std::process::Command::new("kubectl")
            .args(["config", "view", "--raw", "-o", "json", "--kubeconfig"])
            .arg(&file)
            .output()
        {
            Ok(out) => out,
            Err(_) => return, // no kubectl here
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(view["current-context"], "podswarm");
        assert_eq!(
            view["clusters"][0]["cluster"]["server"],
            "https://10.0.0.5:8080"
        );
        assert_eq!(
            view["clusters"][0]["cluster"]["certificate-authority-data"],
            BASE64.encode(CA_PEM.as_str())
        );
        assert_eq!(view["users"][0]["name"], "podswarm-a1b2");
        assert_eq!(view["users"][0]["user"]["token"], "tok");
        assert_eq!(view["contexts"][0]["context"]["user"], "podswarm-a1b2");
    }
}
