//! Runs the real `baseliner` binary against the plane, as a separate process.
//!
//! Tests that only need "an operator is running" share one process per test
//! binary ([`shared_operator`]); tests that measure or disturb the operator
//! start their own ([`Operator::start`]). Every operator process is tied to
//! the test process: it gets SIGKILL when the test process dies, so a failed
//! run leaves nothing behind.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::{Plane, random_name, workspace_root};

/// A running `baseliner run` process.
pub struct Operator {
    child: Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Operator {
    /// Starts `baseliner run ARGS...` with `kubeconfig` as its `KUBECONFIG`.
    ///
    /// Unless ARGS say otherwise, the process runs without leader election
    /// (the only writer, as tests expect) and serves HTTP on a port of the
    /// OS's choosing, so any number can run side by side; tests of leader
    /// election pass `--leader-elect=true` with a Lease of their own.
    pub fn start(kubeconfig: &Path, args: &[&str]) -> Result<Self> {
        Self::start_binary(&operator_binary()?, kubeconfig, args)
    }

    /// As [`Operator::start`], with another build of `baseliner`.
    pub fn start_binary(binary: &Path, kubeconfig: &Path, args: &[&str]) -> Result<Self> {
        let logs = workspace_root().join("target").join("e2e-logs");
        std::fs::create_dir_all(&logs)?;
        let log = logs.join(format!("{}.log", random_name("operator")));
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let mut command = Command::new(binary);
        command
            .arg("run")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("BASELINER_LEADER_ELECT", "false")
            .env("BASELINER_HTTP_ADDR", "127.0.0.1:0")
            .env(
                "RUST_LOG",
                std::env::var("BASELINER_E2E_LOG")
                    .unwrap_or_else(|_| "info,baseliner=debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe and touches only this process.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = spawn_from_lasting_thread(command)
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self { child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The exit status once the process has exited, without waiting.
    pub fn try_wait(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns the
    /// exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        signal(self.child.id(), libc::SIGTERM);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                bail!(
                    "operator did not exit within {timeout:?} of SIGTERM; log: {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process's output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.terminate(Duration::from_secs(10));
        }
    }
}

/// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, and
/// each test runs on a thread of its own; so children are forked from one
/// thread that lives as long as the test process.
fn spawn_from_lasting_thread(command: Command) -> std::io::Result<Child> {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::spawn(move || {
            for (mut command, reply) in rx {
                let _ = reply.send(command.spawn());
            }
        });
        Mutex::new(tx)
    });
    let (reply, result) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, reply))
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
    result
        .recv()
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: sending a signal to a child we own.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// One operator shared by the tests of this test binary, as cluster admin.
/// Tests must keep to their own namespaces and profiles (select by a label
/// only they use) so they do not see each other's work.
pub fn shared_operator(plane: &Plane) -> Result<()> {
    static SHARED: OnceLock<Result<Mutex<Operator>, String>> = OnceLock::new();
    let shared = SHARED
        .get_or_init(|| {
            Operator::start(
                &plane.kubeconfig,
                &[
                    "--resync-seconds",
                    "30",
                    "--leader-elect=false",
                    "--http-addr",
                    "127.0.0.1:0",
                ],
            )
            .map(Mutex::new)
            .map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("starting the shared operator: {e}"))?;
    let mut operator = shared.lock().unwrap_or_else(|e| e.into_inner());
    if !operator.is_running() {
        bail!(
            "the shared operator exited; its log:\n{}",
            operator.output()
        );
    }
    Ok(())
}

/// The `baseliner` binary: `$BASELINER_BIN`, or the workspace's debug build,
/// built once per test process so it is never stale.
pub fn operator_binary() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("BASELINER_BIN") {
        return Ok(PathBuf::from(path));
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                // Both binaries: the plugin's tests run `kubectl-baseliner`.
                .args(["build", "--quiet", "-p", "baseliner", "--bins"])
                .current_dir(workspace_root())
                .status()
                .map_err(|e| format!("running cargo build: {e}"))?;
            if !status.success() {
                return Err(format!(
                    "cargo build of the baseliner binary failed: {status}"
                ));
            }
            Ok(workspace_root()
                .join("target")
                .join("debug")
                .join("baseliner"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}
