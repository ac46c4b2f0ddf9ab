//! What the API commands print: kubectl's column tables and ages, `-o json|yaml`, and lenient
//! reading of the API's JSON.
//!
//! The API's answers are read as untyped JSON on purpose: podswarmctl talks to nodes of other
//! versions during an upgrade, and a missing or renamed field should print an empty cell, not
//! fail the whole command.

use anyhow::{Context, Result};
use serde_json::Value;

/// `-o`: a wider table, or the API's objects as JSON or YAML.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Output {
    Wide,
    Json,
    Yaml,
}

/// Seconds since the epoch; 0 on a clock before 1970, which only makes ages read large.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// kubectl's AGE: 45s, 12m, 5h, 3d.
pub fn age(created: u64, now: u64) -> String {
    let s = now.saturating_sub(created);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Left-aligned columns separated by three spaces, as kubectl prints them.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let last = cells.len() - 1;
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// Prints `value` for `-o json` or `-o yaml` and says so; tables are the caller's job.
pub fn print_structured(value: &Value, output: Option<Output>) -> Result<bool> {
    match output {
        Some(Output::Json) => {
            println!("{}", serde_json::to_string_pretty(value)?);
            Ok(true)
        }
        Some(Output::Yaml) => {
            print!(
                "{}",
                serde_saphyr::to_string(value).context("cannot write YAML")?
            );
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A field as a table cell: strings as they are, other values as JSON, missing or null empty.
pub fn field(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A list answer's `items`, empty when there are none.
pub fn items(v: &Value) -> Vec<Value> {
    v.get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(100, 145), "45s");
        assert_eq!(age(0, 720), "12m");
        assert_eq!(age(0, 5 * 3600), "5h");
        assert_eq!(age(0, 3 * 86400), "3d");
        assert_eq!(age(200, 100), "0s");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["NAME", "READY"],
            &[
                vec!["web-abc-0".into(), "1/1".into()],
                vec!["x".into(), "0/1".into()],
            ],
        );
        assert_eq!(t, "NAME        READY\nweb-abc-0   1/1\nx           0/1\n");
    }
}
