//! A throwaway RabbitMQ node for tests that need the real broker: its own node name, ports,
//! data, logs, config, plugins file and Erlang cookie, all in a temporary directory, on
//! loopback only, with the management plugin enabled. The system broker
//! (`rabbit@localhost` on 5672) is never touched. Dropping the guard stops the node (also
//! when the test panics) and removes the directory.
//!
//! It needs RabbitMQ installed (`apt-get install -y --no-install-recommends rabbitmq-server`;
//! `.ci/run` does it) and fails the test, with what to run, when it is missing or the node
//! does not start: nothing is skipped.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the node may take to answer `GET /api/overview` (seen here: about 6 s).
pub const START_WITHIN: Duration = Duration::from_secs(90);
/// How long `rabbitmqctl stop` and the node's exit may take (seen here: about 5 s).
const STOP_WITHIN: Duration = Duration::from_secs(30);

const INSTALL_HINT: &str = "install RabbitMQ with `apt-get update && apt-get install -y \
     --no-install-recommends rabbitmq-server` (.ci/run does it), or point RABBITMQ_SBIN at \
     the directory holding the real rabbitmq-server script";

/// A running throwaway node. `guest`/`guest` may log in from loopback.
#[derive(Debug)]
pub struct Rabbit {
    /// `autoscaler-test-<pid>@localhost`.
    pub node: String,
    pub amqp_port: u16,
    pub management_port: u16,
    dist_port: u16,
    sbin: PathBuf,
    /// The node's server process (the `rabbitmq-server` script, which runs the VM).
    server: Option<Child>,
    dir: tempfile::TempDir,
}

impl Rabbit {
    /// Starts the node and waits (at most [`START_WITHIN`]) until its management API
    /// answers `GET /api/overview` for `guest`; panics with the reason and what to run when
    /// it cannot.
    pub fn start() -> Self {
        let sbin = sbin();
        let dir = tempfile::Builder::new()
            .prefix("autoscaler-rabbit-")
            .tempdir()
            .expect("a temporary directory for the test node");
        let [amqp_port, management_port, dist_port] = free_ports();
        let node = format!("autoscaler-test-{}@localhost", std::process::id());
        let mut rabbit = Self {
            node,
            amqp_port,
            management_port,
            dist_port,
            sbin,
            server: None,
            dir,
        };
        rabbit.write_files();
        let enable = rabbit.run(
            "rabbitmq-plugins",
            &["--offline", "enable", "rabbitmq_management"],
        );
        if !enable.status.success() {
            panic!(
                "`rabbitmq-plugins --offline enable rabbitmq_management` failed ({}): {}\n{}",
                enable.status,
                text(&enable),
                INSTALL_HINT
            );
        }
        let out = std::fs::File::create(rabbit.path("server.out")).unwrap();
        let server = rabbit
            .command("rabbitmq-server")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run rabbitmq-server: {e}; {INSTALL_HINT}"));
        rabbit.server = Some(server);
        rabbit.wait_until_up();
        rabbit
    }

    /// `http://127.0.0.1:{management port}/api`.
    pub fn management_api(&self) -> String {
        format!("http://127.0.0.1:{}/api", self.management_port)
    }

    /// `rabbitmqctl -n {node} args…`; panics when it fails. The panic shows only the
    /// subcommand (`args[0]`), never the other arguments (they may hold a password).
    pub fn ctl(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.node.as_str()];
        all.extend_from_slice(args);
        let output = self.run("rabbitmqctl", &all);
        assert!(
            output.status.success(),
            "rabbitmqctl {} failed ({}): {}",
            args.first().unwrap_or(&""),
            output.status,
            text(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The config, env and cookie files, so nothing of /etc/rabbitmq or of the system
    /// node's home applies.
    fn write_files(&self) {
        let config = format!(
            "listeners.tcp.default = 127.0.0.1:{}\n\
             management.tcp.ip = 127.0.0.1\n\
             management.tcp.port = {}\n",
            self.amqp_port, self.management_port
        );
        std::fs::write(self.path("rabbitmq.conf"), config).unwrap();
        // Stands in for /etc/rabbitmq/rabbitmq-env.conf (which names the system node).
        std::fs::write(self.path("rabbitmq-env.conf"), "").unwrap();
        std::fs::create_dir(self.path("conf.d")).unwrap();
        let home = self.path("home");
        std::fs::create_dir(&home).unwrap();
        let cookie = home.join(".erlang.cookie");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::fs::write(
            &cookie,
            format!("AUTOSCALERTEST{}X{nanos}", std::process::id()),
        )
        .unwrap();
        std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400)).unwrap();
    }

    /// A RabbitMQ script with this node's environment. The scripts are run directly (not
    /// Debian's /usr/sbin wrappers, which switch to the `rabbitmq` user and its cookie).
    fn command(&self, tool: &str) -> Command {
        let dir = self.dir.path();
        let mut command = Command::new(self.sbin.join(tool));
        command
            .current_dir(dir)
            .env("HOME", dir.join("home"))
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_CONFIG_FILES", dir.join("conf.d"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("node.pid"))
            // epmd (started by the node if none runs) and the distribution on loopback.
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            );
        command
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        self.command(tool)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}; {INSTALL_HINT}"))
    }

    fn wait_until_up(&mut self) {
        let overview = format!("http://127.0.0.1:{}/api/overview", self.management_port);
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if let Some(status) = self.server.as_mut().and_then(|s| s.try_wait().unwrap()) {
                self.server = None;
                panic!(
                    "the test RabbitMQ node {} exited ({status}) before its management API \
                     answered (its output and log end below); if RabbitMQ is missing or \
                     broken, {INSTALL_HINT}\n{}",
                    self.node,
                    self.diagnostics()
                );
            }
            if http_status(self.management_port, "/api/overview", "guest:guest") == Some(200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the test RabbitMQ node {} did not answer GET {overview} within {START_WITHIN:?}\n{}",
                self.node,
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The ends of the server's output and of the node's log.
    fn diagnostics(&self) -> String {
        let mut text = String::new();
        let log = self.path("log").join(format!("{}.log", self.node));
        for file in [self.path("server.out"), log] {
            let content = std::fs::read_to_string(&file).unwrap_or_default();
            let lines: Vec<&str> = content.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            let _ = writeln!(text, "--- {} (end)\n{tail}", file.display());
        }
        text
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        // Gracefully, by the CLI; then by signals to the processes this test started.
        let stop = self
            .command("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut stop) = stop
            && wait_for(&mut stop, STOP_WITHIN).is_none()
        {
            let _ = stop.kill();
            let _ = stop.wait();
        }
        if wait_for(&mut server, STOP_WITHIN).is_some() {
            return;
        }
        let vm = std::fs::read_to_string(self.path("node.pid")).unwrap_or_default();
        let vm = vm.trim();
        // The script forwards TERM to the VM, which then shuts down.
        signal("TERM", &server.id().to_string());
        if wait_for(&mut server, STOP_WITHIN).is_none() {
            if !vm.is_empty() {
                signal("KILL", vm);
            }
            let _ = server.kill();
            let _ = server.wait();
        }
        eprintln!(
            "the test RabbitMQ node {} had to be stopped by signals",
            self.node
        );
    }
}

/// The directory of the real RabbitMQ scripts: `$RABBITMQ_SBIN`, Debian's
/// /usr/lib/rabbitmq/bin, or that of a `rabbitmq-server` on PATH.
fn sbin() -> PathBuf {
    if let Some(dir) = std::env::var_os("RABBITMQ_SBIN") {
        return PathBuf::from(dir);
    }
    let debian = Path::new("/usr/lib/rabbitmq/bin");
    if debian.join("rabbitmq-server").exists() {
        return debian.to_owned();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .find(|dir| dir.join("rabbitmq-server").exists())
        .unwrap_or_else(|| {
            panic!("RabbitMQ is not installed (no rabbitmq-server found): {INSTALL_HINT}")
        })
}

/// Three loopback ports free a moment ago (held together, so distinct).
fn free_ports() -> [u16; 3] {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    [ports[0], ports[1], ports[2]]
}

/// The status of a plain HTTP/1.0 GET on loopback with Basic `user_password`, or `None`
/// when nothing answers yet.
fn http_status(port: u16, path: &str, user_password: &str) -> Option<u16> {
    use base64::Engine as _;
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let token = base64::engine::general_purpose::STANDARD.encode(user_password);
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic {token}\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn wait_for(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => return None,
        }
    }
}

fn signal(name: &str, pid: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), pid])
        .stderr(Stdio::null())
        .status();
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
