//! `podswarmctl token create|list|revoke`: API tokens. A token is shown once, when created; the
//! cluster keeps only its hash, so listing shows ids and descriptions, never tokens.
//!
//! `token create --kubeconfig FILE` writes the token into a standard kubeconfig instead (the
//! server and CA come from the API's answer: the node's own TCP address and the cluster CA), so
//! the file works for podswarmctl and kubectl alike without copying a CA around by hand. Since
//! `--kubeconfig` is also the global "read this kubeconfig" flag, `main` hands it here as the
//! output and connects as if it were not given. The token exists once the API answered, and it
//! is shown only then: if the file cannot be written, the token goes to stdout after all.

use std::path::Path;

use anyhow::{Context, Result, bail};
use hyper::Method;
use podswarm_api::{CreatedToken, List, NewToken, Revoked, Token};

use crate::client::Client;
use crate::kubeconfig::{self, Config};
use crate::output::{age, now, table};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token (printed once; only its hash is stored)
    ///
    /// With --kubeconfig FILE, the token is not printed but written into a new kubeconfig FILE
    /// (mode 0600; an existing file is never replaced) with the answering node's server and the
    /// cluster CA, context "podswarm": for this command --kubeconfig names the file to write,
    /// not one to read, so the API is the one --server, KUBECONFIG or the socket selects.
    Create {
        /// What the token is for, shown by `token list`
        #[arg(long, default_value = "")]
        description: String,
        /// Lifetime, e.g. 3600s, 90m, 24h, 30d (default: until revoked)
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List tokens (ids and descriptions, never the tokens)
    List,
    /// Revoke a token by id
    Revoke {
        /// The token's id, as `token list` shows it
        id: String,
    },
}

fn parse_duration(s: &str) -> Result<u64> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .with_context(|| format!("{s:?} is not a duration like 90m or 24h"))?;
    Ok(n * match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => bail!("{s:?} is not a duration like 90m or 24h"),
    })
}

/// The kubeconfig for a created token, and a warning to show with it.
fn kubeconfig_for(created: &CreatedToken) -> Result<(Config, Option<String>)> {
    let Some(server) = created.server.as_deref() else {
        bail!(
            "the node that answered serves no TCP API, so there is no server to write into a \
             kubeconfig; enable its TCP API, or create the token on a node that serves one"
        );
    };
    let user = format!("podswarm-{}", created.id);
    if server.starts_with("http://") {
        let warning = format!(
            "warning: {server} is plain HTTP (the node is set up without TLS): the token will \
             cross the network unencrypted"
        );
        let config = Config::for_token(server, None, &user, &created.token);
        return Ok((config, Some(warning)));
    }
    let Some(ca) = created.certificate_authority.as_deref() else {
        bail!(
            "the API named its server {server} but no certificate authority to check it with, so \
             the kubeconfig would not work"
        );
    };
    Ok((
        Config::for_token(server, Some(ca), &user, &created.token),
        None,
    ))
}

/// Writes the kubeconfig for `created` to `file`.
fn write_kubeconfig(created: &CreatedToken, file: &Path) -> Result<()> {
    let (config, warning) = kubeconfig_for(created)?;
    kubeconfig::write_new(file, &config)?;
    if let Some(warning) = warning {
        eprintln!("{warning}");
    }
    eprintln!(
        "kubeconfig written to {} (context {})",
        file.display(),
        kubeconfig::CONTEXT
    );
    Ok(())
}

/// Runs a token command; `kubeconfig` is the file `token create --kubeconfig` writes.
pub async fn run(client: &Client, args: &Args, kubeconfig: Option<&Path>) -> Result<()> {
    match &args.command {
        TokenCommand::Create { description, ttl } => {
            let ttl = ttl.as_deref().map(parse_duration).transpose()?;
            let request = NewToken {
                description: description.clone(),
                ttl_seconds: ttl,
            };
            let created: CreatedToken = client
                .send_json(Method::POST, "/api/v1/tokens", &request)
                .await?;
            match kubeconfig {
                None => {
                    eprintln!("token {} created; it is shown only now:", created.id);
                    println!("{}", created.token);
                }
                Some(file) => {
                    eprintln!("token {} created", created.id);
                    if let Err(e) = write_kubeconfig(&created, file) {
                        eprintln!(
                            "the kubeconfig was not written, so the token is shown only now:"
                        );
                        println!("{}", created.token);
                        return Err(e);
                    }
                }
            }
        }
        TokenCommand::List => {
            let tokens: List<Token> = client.get("/api/v1/tokens").await?;
            let now = now();
            let rows: Vec<Vec<String>> = tokens
                .items
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.description.clone(),
                        age(t.created, now),
                        t.expires
                            .map(|e| {
                                if e > now {
                                    format!("in {}", age(now, e))
                                } else {
                                    "expired".into()
                                }
                            })
                            .unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect();
            print!("{}", table(&["ID", "DESCRIPTION", "AGE", "EXPIRES"], &rows));
        }
        TokenCommand::Revoke { id } => {
            let _: Revoked = client
                .call(Method::DELETE, &format!("/api/v1/tokens/{id}"), None, &[])
                .await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m").ok(), Some(5400));
        assert_eq!(parse_duration("24h").ok(), Some(86400));
        assert!(parse_duration("soon").is_err());
    }

    fn created(server: Option<&str>, ca: Option<&str>) -> CreatedToken {
        CreatedToken {
            id: "a1b2".into(),
            token: "secret".into(),
            description: String::new(),
            expires: None,
            server: server.map(str::to_owned),
            certificate_authority: ca.map(str::to_owned),
        }
    }

    /// A CA certificate, so the reader's PEM check passes.
    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn read_back(file: &Path) -> kubeconfig::Remote {
        let flags = kubeconfig::Flags {
            kubeconfig: Some(file.to_owned()),
            ..kubeconfig::Flags::default()
        };
        match kubeconfig::select(&flags, &kubeconfig::Environment::default()) {
            Ok(kubeconfig::Endpoint::Remote(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn token_create_kubeconfig_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_pem();
        let file = dir.path().join("kubeconfig");
        write_kubeconfig(&created(Some("https://10.0.0.5:8080"), Some(&ca)), &file).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("name: podswarm-a1b2"), "{text}");
        assert!(text.contains("current-context: podswarm"), "{text}");
        let remote = read_back(&file);
        assert_eq!(remote.server, "https://10.0.0.5:8080");
        assert_eq!(remote.token.as_deref(), Some("secret"));
        assert!(
            matches!(remote.trust, kubeconfig::Trust::Authority { ref pem, .. } if *pem == ca.as_bytes())
        );
        // A plain-HTTP node: no CA data, and a warning.
        let (config, warning) =
            kubeconfig_for(&created(Some("http://10.0.0.5:8080"), None)).unwrap();
        assert_eq!(config.clusters[0].cluster.certificate_authority_data, None);
        assert!(warning.is_some());
        // No TCP API, or HTTPS without a CA: refused (the caller then prints the token).
        assert!(kubeconfig_for(&created(None, None)).is_err());
        assert!(kubeconfig_for(&created(Some("https://x"), None)).is_err());
    }
}
