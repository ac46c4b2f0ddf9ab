//! Kubernetes name grammars (apimachinery's `validation` package), written as plain predicates.
//!
//! podswarm leans on these for more than politeness: names flow into unit file names, podman object
//! names and DNS, so a name that passes here contains only `[a-z0-9.-]` and can never carry `_`,
//! which the generator uses as its unambiguous separator.

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: at most 63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.starts_with(is_lower_alnum)
        && s.ends_with(is_lower_alnum)
}

/// RFC 1123 subdomain: at most 253 characters, dot-separated labels.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// RFC 1035 label (Service names): a 1123 label that starts with a letter.
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// IANA service name (named ports): at most 15 of `[a-z0-9-]`, a letter somewhere, no `--`,
/// not starting or ending with `-`.
pub fn is_iana_svc_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
        && !s.contains("--")
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Environment variable names: Kubernetes' classic rule `[-._a-zA-Z][-._a-zA-Z0-9]*`.
///
/// Newer Kubernetes accepts any printable character but `=`; podswarm keeps the stricter rule because
/// the name also lands in podman's comma-separated `--secret ...,target=NAME` option.
pub fn is_env_var_name(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    !s.is_empty() && s.chars().all(ok) && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// ConfigMap and Secret keys: at most 253 of `[-._a-zA-Z0-9]`, not `.` or `..`.
pub fn is_config_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// Qualified names (label and annotation keys): optional DNS subdomain prefix and `/`, then at most
/// 63 of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
pub fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns1123_subdomain) && is_label_value(name) && !name.is_empty()
}

/// Label values: empty, or at most 63 of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert!(is_dns1123_label("web-1"));
        assert!(!is_dns1123_label("Web"));
        assert!(!is_dns1123_label("-web"));
        assert!(!is_dns1123_label("web_1"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain("../etc"));
        assert!(is_dns1035_label("redis"));
        assert!(!is_dns1035_label("1redis"));
    }

    #[test]
    fn port_and_env_names() {
        assert!(is_iana_svc_name("http-metrics"));
        assert!(!is_iana_svc_name("8080"));
        assert!(!is_iana_svc_name("a--b"));
        assert!(!is_iana_svc_name("averyveryverylongname"));
        assert!(is_env_var_name("PODINFO_UI_COLOR"));
        assert!(is_env_var_name("my.var-1"));
        assert!(!is_env_var_name("1X"));
        assert!(!is_env_var_name("A B"));
        assert!(!is_env_var_name("A\nB"));
        assert!(!is_env_var_name("A=B"));
    }

    #[test]
    fn qualified_names() {
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(is_qualified_name("app"));
        assert!(!is_qualified_name("/app"));
        assert!(!is_qualified_name("a b"));
        assert!(is_label_value(""));
        assert!(!is_label_value("-x"));
    }
}
