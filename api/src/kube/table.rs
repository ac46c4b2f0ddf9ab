//! `meta.k8s.io/v1` `Table`: what `kubectl get` asks for (`Accept:
//! application/json;as=Table;v=v1;g=meta.k8s.io`) and prints as it comes, so the columns are
//! the server's to choose. k8s-openapi has no type for it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    pub api_version: String,
    pub kind: String,
    pub metadata: ListMeta,
    pub column_definitions: Vec<Column>,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn new(columns: Vec<Column>, rows: Vec<Row>) -> Table {
        Table {
            api_version: "meta.k8s.io/v1".to_owned(),
            kind: "Table".to_owned(),
            metadata: ListMeta::default(),
            column_definitions: columns,
            rows,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean`, `date`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `name` for the column kubectl treats as the object's name; empty otherwise.
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub description: String,
    /// 0: always shown; higher: only with `-o wide`.
    #[serde(default)]
    pub priority: i32,
}

impl Column {
    /// A column shown by default.
    pub fn new(name: &str, type_: &str, description: &str) -> Column {
        Column {
            name: name.to_owned(),
            type_: type_.to_owned(),
            format: if name == "Name" {
                "name".to_owned()
            } else {
                String::new()
            },
            description: description.to_owned(),
            priority: 0,
        }
    }

    /// A column only `-o wide` shows.
    pub fn wide(self) -> Column {
        Column {
            priority: 1,
            ..self
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// One JSON value per column: strings and integers, as Kubernetes sends them.
    pub cells: Vec<serde_json::Value>,
    /// The object (or its metadata only, `PartialObjectMetadata`), which kubectl reads for
    /// `--show-labels`, `-L` and the namespace column of `-A`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_reads_as_kubernetes_writes_it() {
        let table = Table::new(
            vec![
                Column::new("Name", "string", "the name"),
                Column::new("Node", "string", "where it runs").wide(),
            ],
            vec![Row {
                cells: vec!["web".into(), "c1".into()],
                object: None,
            }],
        );
        let value = serde_json::to_value(&table).unwrap();
        assert_eq!(value["kind"], "Table");
        assert_eq!(value["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(value["columnDefinitions"][0]["format"], "name");
        assert_eq!(value["columnDefinitions"][1]["priority"], 1);
        assert_eq!(value["columnDefinitions"][1]["type"], "string");
        assert_eq!(value["rows"][0]["cells"], serde_json::json!(["web", "c1"]));
        let back: Table = serde_json::from_value(value).unwrap();
        assert_eq!(back, table);
    }
}
