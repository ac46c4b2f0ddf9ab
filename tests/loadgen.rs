//! `podswarm-loadgen`: a constant, open-loop HTTP load for the day-two tests, run inside a booted
//! node against its ingress. A request starts every `1/rate` seconds whatever the earlier ones do
//! (a slow or stuck backend shows up as latency and errors, not as fewer requests), each on a new
//! connection, so every request goes through the ingress's choice of endpoint afresh.
//!
//! Each request's result is one line of `--out`: its start (milliseconds since the epoch), its
//! HTTP status or `ERR` with the reason, and its time in microseconds. The test cuts the file into
//! its steps by time; a line is written once the request ends. It stops when `--stop-file`
//! appears (requests under way then still finish), or after `--seconds`.
//!
//! Usage: podswarm-loadgen ADDR HOST PATH RATE OUT STOP_FILE SECONDS

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

struct Args {
    addr: SocketAddr,
    host: String,
    path: String,
    rate: u32,
    out: PathBuf,
    stop: PathBuf,
    seconds: u64,
}

fn args() -> Result<Args, String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [addr, host, path, rate, out, stop, seconds] = a.as_slice() else {
        return Err("usage: podswarm-loadgen ADDR HOST PATH RATE OUT STOP_FILE SECONDS".into());
    };
    Ok(Args {
        addr: addr.parse().map_err(|e| format!("{addr}: {e}"))?,
        host: host.clone(),
        path: path.clone(),
        rate: rate
            .parse()
            .ok()
            .filter(|r| *r > 0)
            .ok_or_else(|| format!("{rate}: not a rate"))?,
        out: out.into(),
        stop: stop.into(),
        seconds: seconds.parse().map_err(|e| format!("{seconds}: {e}"))?,
    })
}

/// One request on a new connection: the status, or why there is none.
async fn request(addr: SocketAddr, host: &str, path: &str) -> Result<u16, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", host)
        .header("connection", "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status().as_u16();
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok(status)
}

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let file = match std::fs::File::create(&args.out) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: {e}", args.out.display());
            std::process::exit(1);
        }
    };
    let out = Arc::new(Mutex::new(std::io::LineWriter::new(file)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async move {
        let host: Arc<str> = args.host.into();
        let path: Arc<str> = args.path.into();
        let mut tick = tokio::time::interval(Duration::from_secs(1) / args.rate);
        // Open loop: a late tick is not made up for with a burst.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = Instant::now() + Duration::from_secs(args.seconds);
        let mut running = tokio::task::JoinSet::new();
        while Instant::now() < end && !args.stop.exists() {
            tick.tick().await;
            let (out, host, path, addr) = (Arc::clone(&out), host.clone(), path.clone(), args.addr);
            running.spawn(async move {
                let at = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let started = Instant::now();
                let result =
                    tokio::time::timeout(REQUEST_TIMEOUT, request(addr, &host, &path)).await;
                let took = started.elapsed().as_micros();
                let what = match result {
                    Ok(Ok(status)) => status.to_string(),
                    Ok(Err(e)) => format!("ERR {}", e.replace(' ', "_")),
                    Err(_) => "ERR timeout".to_owned(),
                };
                if let Ok(mut out) = out.lock() {
                    let _ = writeln!(out, "{at} {took} {what}");
                }
            });
            // Finished requests are reaped as it goes, so the set stays small.
            while running.try_join_next().is_some() {}
        }
        while running.join_next().await.is_some() {}
    });
}
