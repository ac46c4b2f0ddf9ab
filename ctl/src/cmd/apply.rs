//! `podswarmctl apply -f`: each input is sent whole, so the API accepts or refuses a file as one
//! (it validates with the same intake as `render`), and prints what it did per object.

use anyhow::Result;
use hyper::Method;
use podswarm_api::ApplyResult;

use crate::client::Client;
use crate::input::{Inputs, MAX_MANIFEST_BYTES, inputs, read_input};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub inputs: Inputs,
}

pub async fn run(client: &Client, args: &Args) -> Result<()> {
    for input in inputs(&args.inputs.files)? {
        let (name, text) = read_input(&input, MAX_MANIFEST_BYTES)?;
        let result: ApplyResult = client
            .call(
                Method::POST,
                "/api/v1/manifests",
                Some((text.into_bytes(), "application/yaml")),
                &[("x-podswarm-source", name.clone())],
            )
            .await?;
        for w in &result.warnings {
            eprintln!("warning: {w}");
        }
        for a in &result.applied {
            println!("{}/{} {}", a.kind.to_ascii_lowercase(), a.name, a.action);
        }
    }
    Ok(())
}
