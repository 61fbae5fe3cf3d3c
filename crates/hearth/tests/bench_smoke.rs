//! The benchmark's pieces start and stop cleanly: `bench/run.sh --smoke` builds the bench tools
//! (std only, seconds), starts the fixed-response upstream and this hearth binary, sends a few
//! requests of every kind (plain, streamed, held open, failover), stops both, checks they are
//! gone and exits 0. No wrk, no LiteLLM, no network. The benchmark itself never runs in CI.
#![cfg(target_os = "linux")]
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// `<target>/bench-tools`, beside the profile directory that holds this test's hearth binary,
/// so building the tools never waits on the lock of the build that runs this test.
fn tools_target_dir() -> PathBuf {
    let hearth = Path::new(env!("CARGO_BIN_EXE_hearth"));
    hearth.parent().and_then(Path::parent).unwrap().join("bench-tools")
}

#[test]
fn bench_smoke_starts_and_stops_cleanly() {
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(repo_root().join("bench/run.sh"))
        .args(["--smoke", "--out-dir"])
        .arg(out.path())
        .env("HEARTH_BIN", env!("CARGO_BIN_EXE_hearth"))
        .env("CARGO_TARGET_DIR", tools_target_dir())
        .env("CARGO", env!("CARGO"))
        .env_remove("HEARTH_CONFIG")
        .env_remove("HEARTH_GATEWAY_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench/run.sh --smoke failed:\n{stderr}");
    assert!(stderr.contains("smoke ok"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the smoke run took {:?}",
        started.elapsed()
    );

    // The run recorded every piece it exercised, through hearth and directly.
    let raw = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(raw)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (scenario, target) in [
        ("ready", "direct"),
        ("ready", "hearth"),
        ("once", "hearth"),
        ("stream", "hearth"),
        ("hold", "hearth"),
        ("fallback_once", "hearth"),
        ("cold_first_dead", "hearth"),
    ] {
        assert!(
            lines.iter().any(|l| l["scenario"] == scenario && l["target"] == target),
            "no {scenario}/{target} record in {lines:?}"
        );
    }
    let hold = lines.iter().find(|l| l["scenario"] == "hold" && l["target"] == "hearth").unwrap();
    assert_eq!(hold["data"]["ok"], hold["data"]["n"], "{hold}");
    assert_eq!(hold["data"]["stalls"], 0, "{hold}");

    // Every process the run started is gone and its ports refuse connections.
    let stopped = lines.iter().find(|l| l["scenario"] == "stopped").unwrap();
    let pids = stopped["data"]["pids"].as_array().unwrap();
    assert!(pids.len() >= 2, "{stopped}");
    for pid in pids {
        let pid = pid.as_u64().unwrap();
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running =
            state.rsplit(')').next().is_some_and(|s| !s.trim_start().starts_with(['Z', 'X']))
                && !state.is_empty();
        assert!(!running, "process {pid} is still running: {state}");
    }
    for port in stopped["data"]["ports"].as_array().unwrap() {
        let port = u16::try_from(port.as_u64().unwrap()).unwrap();
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still accepts connections"
        );
    }
}
