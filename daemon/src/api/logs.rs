//! A pod's journal as `kubectl logs` and `podswarmctl logs` read it: journalctl's JSON entries
//! of the pod's containers (podman's journald driver tags each line with `CONTAINER_NAME` and
//! `CONTAINER_ID`) turned into the lines the containers wrote.
//!
//! Why JSON rather than `-o cat`: conmon stores each line with its newline, `MESSAGE` may be
//! bytes rather than text, and `--timestamps` and `--previous` need the entry's time and
//! container instance. Every start of a pod's unit runs a new container (Quadlet runs podman
//! with `--rm --replace`), so a container's instances are its distinct `CONTAINER_ID`s, in the
//! order the journal has them: `--previous` is the second newest, as the kubelet keeps the
//! previous instance's log.

use serde_json::Value;

/// What a client asks of a log beyond which lines: the kubelet's options as podswarm honours them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Shape {
    /// Each line after its time, RFC 3339 in UTC, as `kubectl logs --timestamps` shows it.
    pub timestamps: bool,
    /// At most this many bytes in all (`limitBytes`).
    pub limit_bytes: Option<u64>,
}

/// One entry of a container's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    pub message: Vec<u8>,
    /// `__REALTIME_TIMESTAMP`: microseconds since the epoch.
    pub micros: Option<i64>,
    /// `CONTAINER_NAME`: podman's name of the container.
    pub container: String,
    /// `CONTAINER_ID`: the container instance.
    pub instance: String,
}

/// One entry of journalctl's JSON output.
pub(super) fn parse(json_line: &str) -> Line {
    let entry: Value = serde_json::from_str(json_line).unwrap_or(Value::Null);
    let text = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or_default();
    let mut message = match entry.get("MESSAGE") {
        Some(Value::String(s)) => s.clone().into_bytes(),
        // journald gives non-UTF-8 messages as arrays of bytes.
        Some(Value::Array(bytes)) => bytes
            .iter()
            .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect(),
        _ => Vec::new(),
    };
    if message.last() == Some(&b'\n') {
        message.pop();
    }
    Line {
        message,
        micros: text("__REALTIME_TIMESTAMP").parse().ok(),
        container: text("CONTAINER_NAME").to_owned(),
        instance: text("CONTAINER_ID").to_owned(),
    }
}

/// The line a client reads: the message with one newline, after its time when asked (Go's
/// RFC 3339 with the fraction's trailing zeros dropped, as the kubelet writes it).
pub(super) fn render(line: &Line, timestamps: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.message.len() + 32);
    if timestamps
        && let Some(t) = line
            .micros
            .and_then(|m| k8s_openapi::jiff::Timestamp::from_microsecond(m).ok())
    {
        out.extend_from_slice(format!("{t} ").as_bytes());
    }
    out.extend_from_slice(&line.message);
    out.push(b'\n');
    out
}

/// The entries of each container's previous instance (its second newest `CONTAINER_ID`), in
/// journal order; the containers that have had only one instance have none.
pub(super) fn previous(lines: Vec<Line>) -> Vec<Line> {
    let mut instances: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for l in &lines {
        let seen = instances.entry(l.container.clone()).or_default();
        if !l.instance.is_empty() && !seen.contains(&l.instance) {
            seen.push(l.instance.clone());
        }
    }
    lines
        .into_iter()
        .filter(|l| {
            instances
                .get(&l.container)
                .and_then(|ids| ids.len().checked_sub(2).map(|i| &ids[i]))
                .is_some_and(|previous| *previous == l.instance)
        })
        .collect()
}

/// What is left of `limit` bytes after `chunk`, and the part of `chunk` that fits.
pub(super) fn within(limit: &mut Option<u64>, chunk: Vec<u8>) -> Vec<u8> {
    let Some(left) = limit else {
        return chunk;
    };
    let take = usize::try_from(*left)
        .unwrap_or(usize::MAX)
        .min(chunk.len());
    *left -= u64::try_from(take).unwrap_or(*left);
    let mut chunk = chunk;
    chunk.truncate(take);
    chunk
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(container: &str, instance: &str, message: &str) -> Line {
        Line {
            message: message.as_bytes().to_vec(),
            micros: Some(1_764_646_801_123_450),
            container: container.into(),
            instance: instance.into(),
        }
    }

    #[test]
    fn entries_read_as_the_container_wrote_them() {
        let l = parse(
            r#"{"MESSAGE": "hello\n", "__REALTIME_TIMESTAMP": "1764646801123450", "CONTAINER_NAME": "p", "CONTAINER_ID": "ab12"}"#,
        );
        assert_eq!(l, line("p", "ab12", "hello"));
        assert_eq!(render(&l, false), b"hello\n");
        assert_eq!(render(&l, true), b"2025-12-02T03:40:01.12345Z hello\n");
        // Bytes that are not UTF-8 come as an array, and stay bytes.
        let l = parse(r#"{"MESSAGE": [104, 255, 10]}"#);
        assert_eq!(render(&l, true), b"h\xff\n");
    }

    #[test]
    fn messages_get_exactly_one_newline() {
        let text = |json: &str| render(&parse(json), false);
        assert_eq!(text(r#"{"MESSAGE":"hello\n"}"#), b"hello\n");
        assert_eq!(text(r#"{"MESSAGE":"hello"}"#), b"hello\n");
        assert_eq!(text(r#"{"MESSAGE":[104,255,10]}"#), vec![104, 255, 10]);
        assert_eq!(text("not json"), b"\n");
    }

    #[test]
    fn previous_is_each_containers_second_newest_instance() {
        let lines = vec![
            line("a", "1", "a first"),
            line("b", "7", "b only"),
            line("a", "2", "a second"),
            line("a", "2", "a second, again"),
            line("a", "3", "a now"),
        ];
        let messages: Vec<Vec<u8>> = previous(lines).into_iter().map(|l| l.message).collect();
        assert_eq!(
            messages,
            [b"a second".to_vec(), b"a second, again".to_vec()]
        );
    }

    #[test]
    fn a_limit_cuts_the_stream_where_it_runs_out() {
        let mut limit = Some(7);
        assert_eq!(within(&mut limit, b"hello\n".to_vec()), b"hello\n");
        assert_eq!(within(&mut limit, b"world\n".to_vec()), b"w");
        assert_eq!(within(&mut limit, b"more\n".to_vec()), b"");
        assert_eq!(limit, Some(0));
        assert_eq!(within(&mut None, b"all\n".to_vec()), b"all\n");
    }
}
