//! What the API commands print: kubectl's column tables and ages, and `-o json|yaml`.
//!
//! Commands read the API's answers as `podswarm_api` types and fill cells from typed fields, so
//! a field the daemon renames fails to compile here rather than printing an empty column. Nodes
//! of other versions still read during an upgrade: the contract's rules (new fields optional,
//! unknown fields and enum values tolerated) are what keeps them readable, not lenient lookups.

use anyhow::{Context, Result};
use serde::Serialize;

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

/// Prints `value` for `-o json` or `-o yaml` and says so; tables are the caller's job. The value
/// goes through `serde_json::Value`, whose maps are sorted, so keys print in the order they
/// always have, whatever the order of the type's fields.
pub fn print_structured(value: &impl Serialize, output: Option<Output>) -> Result<bool> {
    if !matches!(output, Some(Output::Json | Output::Yaml)) {
        return Ok(false);
    }
    let value = serde_json::to_value(value)?;
    if matches!(output, Some(Output::Json)) {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!(
            "{}",
            serde_saphyr::to_string(&value).context("cannot write YAML")?
        );
    }
    Ok(true)
}

/// An optional value as a table cell: empty when there is none.
pub fn cell(value: Option<&impl ToString>) -> String {
    value.map(ToString::to_string).unwrap_or_default()
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
