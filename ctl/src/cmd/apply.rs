//! `podswarmctl apply -f`: each input is sent whole, so the API accepts or refuses a file as one
//! (it validates with the same intake as `render`), and prints what it did per object.

use anyhow::Result;
use hyper::Method;
use serde_json::Value;

use crate::client::Client;
use crate::input::{Inputs, MAX_MANIFEST_BYTES, inputs, read_input};
use crate::output::field;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub inputs: Inputs,
}

pub async fn run(client: &Client, args: &Args) -> Result<()> {
    for input in inputs(&args.inputs.files)? {
        let (name, text) = read_input(&input, MAX_MANIFEST_BYTES)?;
        let result = client
            .json(
                Method::POST,
                "/api/v1/manifests",
                Some((text.into_bytes(), "application/yaml")),
                &[("x-podswarm-source", name.clone())],
            )
            .await?;
        for w in result
            .get("warnings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            eprintln!("warning: {}", w.as_str().unwrap_or_default());
        }
        for a in result
            .get("applied")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            println!(
                "{}/{} {}",
                field(a, "kind").to_ascii_lowercase(),
                field(a, "name"),
                field(a, "action")
            );
        }
    }
    Ok(())
}
