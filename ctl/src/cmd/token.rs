//! `podswarmctl token create|list|revoke`: API tokens. A token is shown once, when created; the
//! cluster keeps only its hash, so listing shows ids and descriptions, never tokens.

use anyhow::{Context, Result, bail};
use hyper::Method;
use podswarm_api::{CreatedToken, List, NewToken, Revoked, Token};

use crate::client::Client;
use crate::output::{age, now, table};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token (printed once; only its hash is stored)
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

pub async fn run(client: &Client, args: &Args) -> Result<()> {
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
            eprintln!("token {} created; it is shown only now:", created.id);
            println!("{}", created.token);
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
}
