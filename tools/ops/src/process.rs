//! Running commands, and the long-running processes of a lattice: each started in its own
//! session under orders-supervisor (lattice/supervisor), which starts it again whenever it dies,
//! and stopped by the pids recorded in `.state/<instance>`: `<name>.pid` is the supervisor's,
//! `<name>.child-pid` the process's (a host's providers are its children and stop with it).
//! Nothing else is ever signalled.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// One line of progress, as every step of the Makefile's targets prints it.
pub fn say(what: impl std::fmt::Display) {
    println!("\x1b[1;34m==>\x1b[0m {what}");
}

/// A command built from a program and its arguments.
pub fn command<I, S>(program: impl AsRef<OsStr>, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args);
    command
}

/// Runs `command` with the terminal as its output; an error unless it succeeds.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("{} could not start", shown(command)))?;
    if !status.success() {
        bail!("{} failed ({status})", shown(command));
    }
    Ok(())
}

/// Runs `command` and returns its standard output; an error with what it printed unless it
/// succeeds.
pub fn output(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{} could not start", shown(command)))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}{}",
            shown(command),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether `command` succeeds, whatever it prints (which nobody sees).
pub fn succeeds(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn shown(command: &Command) -> String {
    let program = Path::new(command.get_program())
        .file_name()
        .unwrap_or(command.get_program())
        .to_string_lossy()
        .into_owned();
    let args: Vec<_> = command
        .get_args()
        .take(3)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    format!("`{program} {}`", args.join(" "))
}

/// True once `check` holds, tried every quarter second until `seconds` have passed. The deadline
/// is the clock's, not a count of tries: one try can itself take seconds (a wash query waits for
/// every host's answer).
pub fn within(seconds: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// [`within`], or an error that names what was awaited and where the logs are.
pub fn wait_for(
    what: &str,
    seconds: u64,
    logs: &Path,
    check: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    if within(seconds, check) {
        Ok(())
    } else {
        bail!(
            "timed out after {seconds}s waiting for {what}; logs in {}",
            logs.display()
        )
    }
}

/// The processes this tool started and has not reaped yet: a stopped one must not linger as a
/// zombie, which would still answer "alive" to a signal 0.
static STARTED: Mutex<Vec<Child>> = Mutex::new(Vec::new());

fn reap() {
    let mut started = STARTED.lock().unwrap();
    started.retain_mut(|child| matches!(child.try_wait(), Ok(None)));
}

/// Whether process `pid` is alive.
pub fn alive(pid: i32) -> bool {
    reap();
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Sends `signal` to the process group `pid` leads; false if there is none.
pub fn signal_group(pid: i32, signal: libc::c_int) -> bool {
    // SAFETY: a plain kill(2) of a negative pid: the process group.
    unsafe { libc::kill(-pid, signal) == 0 }
}

fn signal_process(pid: i32, signal: libc::c_int) -> bool {
    // SAFETY: a plain kill(2).
    unsafe { libc::kill(pid, signal) == 0 }
}

/// The lattice processes of one instance, by the pid files in its state folder.
pub struct Processes {
    pub state: PathBuf,
    pub logs: PathBuf,
    /// Under orders-supervisor (restarted whenever they die), or bare (`ORDERS_SUPERVISE=off`).
    pub supervisor: Option<PathBuf>,
}

/// How a process is started.
pub struct Start<'a> {
    pub name: &'a str,
    pub program: &'a Path,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// A wasmCloud host: its supervisor gives it a key of its own at each start and announces a
    /// dead one to wadm as stopped.
    pub wasmcloud_host: bool,
}

impl Processes {
    /// The processes whose pid files are in `state`, their logs in `state/logs`.
    pub fn of(state: PathBuf, supervisor: Option<PathBuf>) -> Self {
        Self {
            logs: state.join("logs"),
            state,
            supervisor,
        }
    }

    fn pid_file(&self, name: &str) -> PathBuf {
        self.state.join(format!("{name}.pid"))
    }

    fn child_pid_file(&self, name: &str) -> PathBuf {
        self.state.join(format!("{name}.child-pid"))
    }

    fn read_pid(file: &Path) -> Option<i32> {
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// The pid of `name`'s supervisor (or of the bare process).
    pub fn pid(&self, name: &str) -> Option<i32> {
        Self::read_pid(&self.pid_file(name))
    }

    /// The pid of the process `name`'s supervisor runs.
    pub fn child_pid(&self, name: &str) -> Option<i32> {
        Self::read_pid(&self.child_pid_file(name))
    }

    pub fn running(&self, name: &str) -> bool {
        self.pid(name).is_some_and(alive)
    }

    /// Starts the process unless it is running, in a session of its own (so neither a terminal's
    /// Ctrl-C nor its closing reaches it), its output appended to `logs/<name>.log`.
    pub fn start(&self, start: Start<'_>) -> anyhow::Result<()> {
        let name = start.name;
        if let Some(pid) = self.pid(name).filter(|pid| alive(*pid)) {
            crate::process::say(format!("{name} already running (pid {pid})"));
            return Ok(());
        }
        let mut command = match &self.supervisor {
            Some(supervisor) => {
                let mut command = Command::new(supervisor);
                command
                    .arg("--name")
                    .arg(name)
                    .arg("--pid-file")
                    .arg(self.child_pid_file(name));
                if start.wasmcloud_host {
                    command.arg("--wasmcloud-host");
                }
                command.arg("--").arg(start.program);
                command
            }
            None => Command::new(start.program),
        };
        command.args(&start.args).envs(start.env);
        std::fs::create_dir_all(&self.logs)?;
        let log_path = self.logs.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: setsid(2) is async-signal-safe, and all the closure does.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("{name}: {} could not start", start.program.display()))?;
        let pid = child.id();
        std::fs::write(self.pid_file(name), format!("{pid}\n"))?;
        STARTED.lock().unwrap().push(child);
        let restarted = if self.supervisor.is_some() {
            ", restarted whenever it dies"
        } else {
            ""
        };
        say(format!(
            "{name} started (pid {pid}, log {}{restarted})",
            log_path.display()
        ));
        Ok(())
    }

    /// Stops `name` and everything it started: SIGTERM to its group, and whatever of the group is
    /// still there after 10 s (a provider that ignored the host) is killed.
    pub fn stop(&self, name: &str) {
        let Some(pid) = self.pid(name).filter(|pid| alive(*pid)) else {
            self.forget(name);
            return;
        };
        if !signal_group(pid, libc::SIGTERM) {
            signal_process(pid, libc::SIGTERM);
        }
        within(10, || !alive(pid));
        signal_group(pid, libc::SIGKILL);
        self.forget(name);
        say(format!("{name} stopped"));
    }

    fn forget(&self, name: &str) {
        let _ = std::fs::remove_file(self.pid_file(name));
        let _ = std::fs::remove_file(self.child_pid_file(name));
    }

    /// Every process a pid file of the instance names, whatever its layout says.
    /// Whether any process with a pid file is alive.
    pub fn any_running(&self) -> bool {
        self.recorded().iter().any(|name| self.running(name))
    }

    pub fn recorded(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.state) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                Some(name.strip_suffix(".pid")?.to_owned())
            })
            .collect();
        names.sort();
        names
    }

    /// A machine crash: the process, everything it started and its supervisor are killed at
    /// once, without a chance to clean up; it stays down until started again. The process goes
    /// first: killed before its supervisor, it gets no parent-death SIGTERM (a clean stop's first
    /// steps), and the supervisor, killed a moment later, restarts nothing.
    pub fn kill_with_supervisor(&self, name: &str) -> anyhow::Result<()> {
        let Some(pid) = self.pid(name).filter(|pid| alive(*pid)) else {
            bail!("'{name}' is not running");
        };
        if let Some(child) = self.child_pid(name) {
            signal_group(child, libc::SIGKILL);
        }
        signal_group(pid, libc::SIGKILL);
        self.forget(name);
        say(format!("{name} killed"));
        Ok(())
    }

    /// A process crash: the process and everything it started are killed at once; its
    /// supervisor starts it again.
    pub fn crash(&self, name: &str) -> anyhow::Result<()> {
        let child = self
            .child_pid(name)
            .filter(|_| self.running(name))
            .with_context(|| format!("'{name}' is not running under a supervisor"))?;
        signal_group(child, libc::SIGKILL);
        say(format!(
            "{name} (pid {child}) killed; its supervisor starts it again"
        ));
        Ok(())
    }
}
