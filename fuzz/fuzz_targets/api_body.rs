//! Any bytes as a REST API body, both ways: every request body podswarmd decodes (scale, rebalance,
//! whitelist, host, token) and every answer podswarmctl decodes, at a success status and at an
//! error status (`podswarm_api::decode`), must give a value or an error, never panic or hang.
//! podswarmd's body extractors decode JSON with these types and serde_json; manifests go through
//! intake, which `manifest_parse` covers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podswarm_api::{
    ApplyResult, CreatedToken, Deleted, DeploymentDetail, DeploymentRevision, DeploymentStatus,
    Endpoints, ErrorBody, Health, HostBody, List, NewToken, Node, PodView, Rebalance, Revoked,
    Scale, Scaled, ServiceDetail, Token, WhitelistBody, decode,
};

fn both<T: serde::de::DeserializeOwned>(data: &[u8]) {
    let _ = serde_json::from_slice::<T>(data);
    for status in [200, 400, 404, 503, 507] {
        let _ = decode::<T>(status, data);
    }
}

fuzz_target!(|data: &[u8]| {
    // Requests podswarmd reads.
    both::<Scale>(data);
    both::<WhitelistBody>(data);
    both::<HostBody>(data);
    both::<NewToken>(data);
    // Answers podswarmctl reads.
    both::<ApplyResult>(data);
    both::<Deleted>(data);
    both::<Scaled>(data);
    both::<Rebalance>(data);
    both::<List<PodView>>(data);
    both::<List<Node>>(data);
    both::<List<DeploymentStatus>>(data);
    both::<DeploymentDetail>(data);
    both::<List<DeploymentRevision>>(data);
    both::<ServiceDetail>(data);
    both::<Endpoints>(data);
    both::<CreatedToken>(data);
    both::<List<Token>>(data);
    both::<Revoked>(data);
    both::<Health>(data);
    both::<ErrorBody>(data);
});
