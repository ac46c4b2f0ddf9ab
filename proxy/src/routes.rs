//! Kubernetes Ingress matching: which backend a host and path go to.
//!
//! The rules of every served Ingress are merged into one table, as Kubernetes merges Ingresses
//! that name the same host:
//! - **Hosts** compare without the port (`Host: a.com:80` is `a.com`), in lower case, without a
//!   trailing dot. `*.foo.com` matches exactly one more label (`bar.foo.com`, not
//!   `baz.bar.foo.com` and not `foo.com`). A rule without a host matches every host.
//! - **Precedence across hosts** follows host specificity, as the Gateway API spells out what the
//!   Ingress spec leaves open: the rules of an exact host are tried first, then those of a
//!   matching wildcard, then those without a host; the first group with a matching path wins.
//!   So `a.com` with only `/api` still reaches a host-less `/` rule for `/other`.
//! - **Paths**: `Exact` compares the whole path (case-sensitive, `/foo` is not `/foo/`);
//!   `Prefix` compares path segments (split at `/`, empty segments ignored), so `/api` matches
//!   `/api`, `/api/` and `/api/x` but not `/apiary`, `/api/` equals `/api`, and `/` matches
//!   everything. `ImplementationSpecific` arrives here as `Prefix`. Within a group the longest
//!   path wins (length of the normalized path), `Exact` before `Prefix` at equal length; a
//!   tie between Ingresses goes to the first in namespace/name order.
//! - **`defaultBackend`**: when nothing matches, the first Ingress (namespace/name order) that
//!   has one; without one the request is answered 404.
//!
//! The table is generic over what a rule leads to, so that it can be tested on its own.

use std::cmp::Reverse;
use std::collections::HashMap;

use podswarm_view::{Ingress, IngressBackend, PathType};

/// The host of a `Host` header or URI authority as rules compare it: without the port, lower
/// case, without a trailing dot. An IPv6 literal keeps its brackets.
pub fn normalize_host(raw: &str) -> String {
    let raw = raw.trim();
    let host = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => raw,
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The wildcard key a host falls under: `bar.foo.com` → `foo.com` (for `*.foo.com`).
pub fn wildcard_parent(host: &str) -> Option<&str> {
    match host.split_once('.') {
        Some((label, rest)) if !label.is_empty() && !rest.is_empty() => Some(rest),
        _ => None,
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

#[derive(Debug, Clone)]
struct Route<B> {
    exact: bool,
    /// `Exact`: the path as written; `Prefix`: its segments.
    path: String,
    segments: Vec<String>,
    /// For precedence: the length of the normalized path.
    len: usize,
    target: B,
}

impl<B> Route<B> {
    fn new(path: &str, path_type: PathType, target: B) -> Route<B> {
        match path_type {
            PathType::Exact => Route {
                exact: true,
                path: path.to_owned(),
                segments: Vec::new(),
                len: path.len(),
                target,
            },
            PathType::Prefix => {
                let segments: Vec<String> = segments(path).map(str::to_owned).collect();
                let normalized = format!("/{}", segments.join("/"));
                Route {
                    exact: false,
                    len: normalized.len(),
                    path: normalized,
                    segments,
                    target,
                }
            }
        }
    }

    fn matches(&self, path: &str) -> bool {
        if self.exact {
            return path == self.path;
        }
        let mut request = segments(path);
        self.segments
            .iter()
            .all(|s| request.next() == Some(s.as_str()))
    }
}

/// The merged rules of the served Ingresses.
#[derive(Debug, Clone)]
pub struct Router<B> {
    exact: HashMap<String, Vec<Route<B>>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Vec<Route<B>>>,
    any_host: Vec<Route<B>>,
    default: Option<B>,
}

impl<B> Default for Router<B> {
    fn default() -> Self {
        Router {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            any_host: Vec::new(),
            default: None,
        }
    }
}

impl<B: Clone> Router<B> {
    /// Builds the table from `ingresses` (already filtered by class, in namespace/name order);
    /// `target` turns a backend reference of an Ingress (namespace, backend) into what a match
    /// returns.
    pub fn build<'a>(
        ingresses: impl IntoIterator<Item = &'a Ingress>,
        mut target: impl FnMut(&str, &IngressBackend) -> B,
    ) -> Router<B> {
        let mut router = Router::default();
        for ing in ingresses {
            if router.default.is_none()
                && let Some(b) = &ing.default_backend
            {
                router.default = Some(target(&ing.namespace, b));
            }
            for rule in &ing.rules {
                let list = match rule.host.as_deref() {
                    None => &mut router.any_host,
                    Some(h) => match h.strip_prefix("*.") {
                        Some(parent) => router.wildcard.entry(parent.to_owned()).or_default(),
                        None => router.exact.entry(h.to_owned()).or_default(),
                    },
                };
                for p in &rule.paths {
                    list.push(Route::new(
                        &p.path,
                        p.path_type,
                        target(&ing.namespace, &p.backend),
                    ));
                }
            }
        }
        // Stable: among equals, the earlier Ingress stays first.
        let order = |list: &mut Vec<Route<B>>| list.sort_by_key(|r| (Reverse(r.len), !r.exact));
        router.exact.values_mut().for_each(order);
        router.wildcard.values_mut().for_each(order);
        order(&mut router.any_host);
        router
    }

    /// Where a request goes: `host` as [`normalize_host`] returns it, `path` without the query.
    pub fn route(&self, host: &str, path: &str) -> Option<&B> {
        let groups = [
            self.exact.get(host),
            wildcard_parent(host).and_then(|p| self.wildcard.get(p)),
            Some(&self.any_host),
        ];
        groups
            .into_iter()
            .flatten()
            .find_map(|routes| routes.iter().find(|r| r.matches(path)))
            .map(|r| &r.target)
            .or(self.default.as_ref())
    }

    /// Every target a rule or the default leads to (with repetitions).
    pub fn targets(&self) -> impl Iterator<Item = &B> {
        self.exact
            .values()
            .chain(self.wildcard.values())
            .chain(std::iter::once(&self.any_host))
            .flatten()
            .map(|r| &r.target)
            .chain(self.default.as_ref())
    }

    /// How many path rules the table holds.
    pub fn len(&self) -> usize {
        self.exact.values().map(Vec::len).sum::<usize>()
            + self.wildcard.values().map(Vec::len).sum::<usize>()
            + self.any_host.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.default.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podswarm_view::{BackendPort, IngressPath, IngressRule};

    fn path(p: &str, t: PathType, svc: &str) -> IngressPath {
        IngressPath {
            path: p.into(),
            path_type: t,
            backend: IngressBackend {
                service: svc.into(),
                port: BackendPort::Number(80),
            },
        }
    }

    fn ingress(name: &str, rules: Vec<(Option<&str>, Vec<IngressPath>)>) -> Ingress {
        Ingress {
            namespace: "default".into(),
            name: name.into(),
            rules: rules
                .into_iter()
                .map(|(host, paths)| IngressRule {
                    host: host.map(str::to_owned),
                    paths,
                })
                .collect(),
            ..Ingress::default()
        }
    }

    fn router(ingresses: &[Ingress]) -> Router<String> {
        Router::build(ingresses, |ns, b| format!("{ns}/{}", b.service))
    }

    fn to(r: &Router<String>, host: &str, p: &str) -> Option<String> {
        r.route(&normalize_host(host), p).map(|s| {
            s.strip_prefix("default/")
                .map(str::to_owned)
                .unwrap_or_else(|| s.clone())
        })
    }

    use PathType::{Exact, Prefix};

    #[test]
    fn hosts_compare_without_port_case_or_trailing_dot() {
        assert_eq!(normalize_host("A.com:80"), "a.com");
        assert_eq!(normalize_host("a.com."), "a.com");
        assert_eq!(normalize_host("a.com.:8080"), "a.com");
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
        assert_eq!(normalize_host("[::1]"), "[::1]");
        assert_eq!(normalize_host(" a.com "), "a.com");
        let r = router(&[ingress(
            "i",
            vec![(Some("a.com"), vec![path("/", Prefix, "a")])],
        )]);
        assert_eq!(to(&r, "a.com", "/").as_deref(), Some("a"));
        assert_eq!(to(&r, "a.com:80", "/x").as_deref(), Some("a"));
        assert_eq!(to(&r, "A.COM:8443", "/x").as_deref(), Some("a"));
        assert_eq!(to(&r, "b.com", "/"), None);
        assert_eq!(to(&r, "", "/"), None);
    }

    #[test]
    fn a_wildcard_matches_exactly_one_label_and_an_exact_host_beats_it() {
        let r = router(&[ingress(
            "i",
            vec![
                (Some("*.foo.com"), vec![path("/", Prefix, "wild")]),
                (Some("exact.foo.com"), vec![path("/", Prefix, "exact")]),
            ],
        )]);
        assert_eq!(to(&r, "bar.foo.com", "/").as_deref(), Some("wild"));
        assert_eq!(to(&r, "bar.foo.com:80", "/a").as_deref(), Some("wild"));
        assert_eq!(to(&r, "baz.bar.foo.com", "/"), None);
        assert_eq!(to(&r, "foo.com", "/"), None);
        assert_eq!(to(&r, ".foo.com", "/"), None);
        assert_eq!(to(&r, "exact.foo.com", "/").as_deref(), Some("exact"));
    }

    #[test]
    fn prefix_paths_match_whole_segments() {
        let r = router(&[ingress(
            "i",
            vec![(None, vec![path("/api", Prefix, "api")])],
        )]);
        for p in ["/api", "/api/", "/api/x", "/api/x/y", "/api//x"] {
            assert_eq!(to(&r, "h", p).as_deref(), Some("api"), "{p}");
        }
        for p in ["/apiary", "/", "/ap", "/x/api"] {
            assert_eq!(to(&r, "h", p), None, "{p}");
        }
        // A trailing slash in the rule is ignored.
        let r = router(&[ingress(
            "i",
            vec![(None, vec![path("/aaa/bbb/", Prefix, "b")])],
        )]);
        assert_eq!(to(&r, "h", "/aaa/bbb").as_deref(), Some("b"));
        assert_eq!(to(&r, "h", "/aaa/bbb/c").as_deref(), Some("b"));
        assert_eq!(to(&r, "h", "/aaa/bbbx"), None);
        // "/" matches everything.
        let r = router(&[ingress("i", vec![(None, vec![path("/", Prefix, "all")])])]);
        for p in ["/", "/x", "/x/y/z"] {
            assert_eq!(to(&r, "any.host", p).as_deref(), Some("all"), "{p}");
        }
    }

    #[test]
    fn exact_paths_match_only_themselves() {
        let r = router(&[ingress("i", vec![(None, vec![path("/foo", Exact, "foo")])])]);
        assert_eq!(to(&r, "h", "/foo").as_deref(), Some("foo"));
        assert_eq!(to(&r, "h", "/foo/"), None);
        assert_eq!(to(&r, "h", "/Foo"), None);
        assert_eq!(to(&r, "h", "/foo/bar"), None);
    }

    #[test]
    fn the_longest_path_wins_and_exact_beats_prefix_at_equal_length() {
        let r = router(&[ingress(
            "i",
            vec![(
                Some("a.com"),
                vec![
                    path("/", Prefix, "root"),
                    path("/api", Prefix, "api"),
                    path("/api/v1", Prefix, "v1"),
                    path("/api", Exact, "api-exact"),
                    path("/api/v1/users", Exact, "users"),
                ],
            )],
        )]);
        assert_eq!(to(&r, "a.com", "/").as_deref(), Some("root"));
        assert_eq!(to(&r, "a.com", "/other").as_deref(), Some("root"));
        assert_eq!(to(&r, "a.com", "/api").as_deref(), Some("api-exact"));
        assert_eq!(to(&r, "a.com", "/api/").as_deref(), Some("api"));
        assert_eq!(to(&r, "a.com", "/api/v1/x").as_deref(), Some("v1"));
        assert_eq!(to(&r, "a.com", "/api/v1/users").as_deref(), Some("users"));
        assert_eq!(to(&r, "a.com", "/api/v1/users/1").as_deref(), Some("v1"));
    }

    #[test]
    fn rules_without_host_match_every_host_after_the_specific_ones() {
        let r = router(&[ingress(
            "i",
            vec![
                (Some("a.com"), vec![path("/api", Prefix, "a-api")]),
                (None, vec![path("/", Prefix, "catch-all")]),
            ],
        )]);
        assert_eq!(to(&r, "a.com", "/api/x").as_deref(), Some("a-api"));
        // a.com has no rule for /other: the host-less rule takes it.
        assert_eq!(to(&r, "a.com", "/other").as_deref(), Some("catch-all"));
        assert_eq!(to(&r, "b.com", "/api").as_deref(), Some("catch-all"));
    }

    #[test]
    fn the_default_backend_takes_what_no_rule_matches() {
        let mut with_default = ingress(
            "b",
            vec![(Some("a.com"), vec![path("/app", Prefix, "app")])],
        );
        with_default.default_backend = Some(IngressBackend {
            service: "fallback".into(),
            port: BackendPort::Name("http".into()),
        });
        let mut later = ingress("c", vec![]);
        later.default_backend = Some(IngressBackend {
            service: "later".into(),
            port: BackendPort::Number(80),
        });
        let r = router(&[with_default, later]);
        assert_eq!(to(&r, "a.com", "/app").as_deref(), Some("app"));
        assert_eq!(to(&r, "a.com", "/").as_deref(), Some("fallback"));
        assert_eq!(to(&r, "nowhere", "/x").as_deref(), Some("fallback"));
    }

    #[test]
    fn ingresses_with_the_same_host_merge_and_the_first_wins_a_tie() {
        let r = router(&[
            ingress(
                "a",
                vec![(Some("a.com"), vec![path("/x", Prefix, "first")])],
            ),
            ingress(
                "b",
                vec![(
                    Some("a.com"),
                    vec![path("/x", Prefix, "second"), path("/y", Prefix, "y")],
                )],
            ),
        ]);
        assert_eq!(to(&r, "a.com", "/x").as_deref(), Some("first"));
        assert_eq!(to(&r, "a.com", "/y").as_deref(), Some("y"));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn backends_keep_the_ingress_namespace() {
        let mut other = ingress("i", vec![(None, vec![path("/", Prefix, "web")])]);
        other.namespace = "shop".into();
        let r = router(&[other]);
        assert_eq!(to(&r, "h", "/").as_deref(), Some("shop/web"));
        assert_eq!(r.targets().count(), 1);
    }

    #[test]
    fn an_empty_table_matches_nothing() {
        let r: Router<String> = router(&[]);
        assert!(r.is_empty());
        assert_eq!(to(&r, "a.com", "/"), None);
    }
}
