//! The bodies of writes and their answers: manifests applied and deleted, scaling, the DNS
//! whitelist, API tokens, and the health check.

use serde::{Deserialize, Serialize};

/// What applying did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The cluster did not have it.
    Created,
    /// The cluster had another version of it.
    Configured,
    /// The cluster had exactly this.
    Unchanged,
    /// An action this podswarm does not know (a node of a newer version said it).
    #[serde(other)]
    Unknown,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object by kind (`Deployment`), namespace (empty for Namespaces) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// One object of an applied manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub action: Action,
}

/// `POST /api/v1/manifests`: what happened to each object, in the manifest's order, and what
/// intake warned about (fields podswarm knows but does not support).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResult {
    pub applied: Vec<Applied>,
    pub warnings: Vec<String>,
}

/// `DELETE /api/v1/manifests/:ns/:kind/:name`: the object, and for a Namespace every object
/// that went with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: Vec<ObjectRef>,
}

/// `PUT /api/v1/deployments/:ns/:name/scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scale {
    pub replicas: i32,
}

/// The answer to [`Scale`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaled {
    pub namespace: String,
    pub name: String,
    pub replicas: i32,
}

/// `POST /api/v1/rebalance[?dryRun=true]`: the pods that move to even out the spread (in a dry
/// run, that would), in name order; none when the pods are evenly spread.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rebalance {
    pub moves: Vec<PodMove>,
    /// Nothing was written: the moves are only what would be done.
    #[serde(default)]
    pub dry_run: bool,
}

/// One pod a rebalance moves, gracefully: its copy on `from` serves until the one on `to` is
/// ready and takes over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMove {
    /// `namespace/name`.
    pub pod: String,
    pub from: String,
    pub to: String,
}

/// `PUT /api/v1/dns/whitelist`: the whole list; `enabled` defaults to true, since setting a
/// list is asking for it to be enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhitelistBody {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub hosts: Vec<String>,
}

fn yes() -> bool {
    true
}

/// `POST /api/v1/dns/whitelist/hosts`: one more domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostBody {
    pub host: String,
}

/// `POST /api/v1/tokens`; an empty body is a token without description or expiry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewToken {
    #[serde(default)]
    pub description: String,
    pub ttl_seconds: Option<u64>,
}

/// The answer to [`NewToken`]: the only time the token itself is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    pub id: String,
    pub token: String,
    pub description: String,
    /// Seconds since the epoch; `null` for a token that does not expire.
    pub expires: Option<u64>,
    /// The answering node's TCP API as a client reaches it (`https://ADDRESS:PORT`; `http://` only
    /// where the node serves plain HTTP by its insecure setting); `null` without a TCP API.
    #[serde(default)]
    pub server: Option<String>,
    /// The cluster CA's certificate (PEM) that the server's certificate chains to; `null` where
    /// the node serves no HTTPS.
    #[serde(default)]
    pub certificate_authority: Option<String>,
}

/// A token in `GET /api/v1/tokens`: never the token, only what identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub description: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// Seconds since the epoch; `null` for a token that does not expire.
    pub expires: Option<u64>,
}

/// `DELETE /api/v1/tokens/:id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub revoked: String,
}

/// `GET /api/v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Always `ok`: a node that answers is healthy enough to answer.
    pub status: String,
    pub node: String,
    /// podswarmd's version.
    pub version: String,
    pub state_version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn actions_are_lower_case_words_and_unknown_ones_still_read() {
        let applied: Applied = serde_json::from_value(
            json!({"kind": "Deployment", "namespace": "shop", "name": "web", "action": "configured"}),
        )
        .unwrap();
        assert_eq!(applied.action, Action::Configured);
        assert_eq!(
            serde_json::to_value(Action::Unchanged).unwrap(),
            json!("unchanged")
        );
        assert_eq!(
            serde_json::from_value::<Action>(json!("pruned")).unwrap(),
            Action::Unknown
        );
    }

    #[test]
    fn a_rebalance_lists_its_moves() {
        let wire = json!({"moves": [{"pod": "default/web-1", "from": "n1", "to": "n2"}],
            "dryRun": true});
        let answer: Rebalance = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(answer.moves[0].pod, "default/web-1");
        assert_eq!(serde_json::to_value(&answer).unwrap(), wire);
        assert!(
            !serde_json::from_value::<Rebalance>(json!({"moves": []}))
                .unwrap()
                .dry_run
        );
    }

    /// Requests are strict: a misspelt field is refused, not ignored.
    #[test]
    fn request_bodies_refuse_unknown_fields() {
        assert!(serde_json::from_value::<HostBody>(json!({"hots": "a"})).is_err());
        assert!(serde_json::from_value::<NewToken>(json!({"ttl": 5})).is_err());
        let list: WhitelistBody = serde_json::from_value(json!({"hosts": ["a.example"]})).unwrap();
        assert!(list.enabled);
        // What podswarmctl sends for a token without expiry.
        assert_eq!(
            serde_json::to_value(NewToken::default()).unwrap(),
            json!({"description": "", "ttlSeconds": null})
        );
    }
}
