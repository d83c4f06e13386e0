//! The functions served over HTTP by `cargo lambda watch --release`, as `make dev` serves
//! them, for measuring a chat turn through the local API Gateway emulation.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running `cargo lambda watch`; dropping it stops its whole process group.
pub struct Watch {
    child: Child,
    /// Where the functions are served.
    pub base: String,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Watch {
    /// Serves the workspace's functions with `env`, once `/health` answers.
    pub async fn start(workspace: &std::path::Path, env: &[(&str, String)]) -> Self {
        use std::os::unix::process::CommandExt;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("cargo")
            .args(["lambda", "watch", "--release", "--ignore-changes"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(port.to_string())
            .current_dir(workspace)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cargo lambda watch starts (make bench installs it)");
        let watch = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        loop {
            match reqwest::get(format!("{}/health", watch.base)).await {
                Ok(response) if response.status().is_success() => break,
                _ if started.elapsed() < Duration::from_secs(600) => {
                    tokio::time::sleep(Duration::from_millis(300)).await
                }
                other => panic!("cargo lambda watch never served /health: {other:?}"),
            }
        }
        watch
    }
}
