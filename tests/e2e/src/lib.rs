//! Helpers for the end-to-end tests: a client for a running orders lattice.
//!
//! The lattice is started by `make test` (`orders-ops test`), which passes its addresses in
//! `ORDERS_BASE_URL` and `ORDERS_NATS_URL`, and the admin's NATS credentials in
//! `ORDERS_NATS_CREDS`. Nothing here fakes any part of it.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{json, Value};

pub mod load;

pub use orders_lattice_test::lattice_test;

/// How long an asynchronous effect (a payment, a notification) may take before a test gives up.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub struct Lattice {
    pub base_url: String,
    /// Paths served somewhere else than `base_url`, by path (`make bench`'s native build serves
    /// each service on its own port); empty for the lattice, whose HTTP server routes them all.
    routes: Vec<(String, String)>,
    pub nats_url: String,
    /// The creds file the tests speak to NATS with (the lattice's admin identity).
    pub nats_creds: String,
    /// The test lattice's admin token (`make test` reads it from the instance's secrets).
    pub admin_token: String,
    http: reqwest::Client,
    /// Each user's API key, as `POST /CreateUser` (or a rotation) answered it.
    keys: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// An HTTP answer: status, headers and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn error_code(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }
}

impl Lattice {
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the end-to-end tests through `make test`, which starts a lattice")
            })
        };
        Self {
            base_url: var("ORDERS_BASE_URL"),
            routes: Vec::new(),
            nats_url: var("ORDERS_NATS_URL"),
            nats_creds: var("ORDERS_NATS_CREDS"),
            admin_token: var("ORDERS_ADMIN_TOKEN"),
            http: http_client(Duration::from_secs(30)),
            keys: Default::default(),
        }
    }

    /// This client with each path of `routes` (path, base URL) sent to its own base URL.
    pub fn with_routes(self, routes: Vec<(String, String)>) -> Self {
        Self { routes, ..self }
    }

    /// Where a request for `path_and_query` goes.
    pub fn url(&self, path_and_query: &str) -> String {
        let path = path_and_query.split('?').next().unwrap_or_default();
        let base = self
            .routes
            .iter()
            .find(|(routed, _)| routed == path)
            .map_or(self.base_url.as_str(), |(_, base)| base.as_str());
        format!("{base}{path_and_query}")
    }

    /// A NATS connection as the lattice's admin identity.
    pub async fn nats(&self) -> async_nats::Client {
        self.nats_as(&self.nats_creds, None).await
    }

    /// A NATS connection with the credentials in `creds_file`, whose requests wait
    /// `request_timeout` for an answer (async-nats's default when `None`).
    pub async fn nats_as(
        &self,
        creds_file: &str,
        request_timeout: Option<Duration>,
    ) -> async_nats::Client {
        let mut options = async_nats::ConnectOptions::with_credentials_file(creds_file)
            .await
            .unwrap_or_else(|e| panic!("cannot read the creds file {creds_file}: {e}"));
        if request_timeout.is_some() {
            options = options.request_timeout(request_timeout);
        }
        options
            .connect(orders_wire::broker::servers(&self.nats_url))
            .await
            .unwrap_or_else(|e| panic!("the test lattice's NATS refused {creds_file}: {e}"))
    }

    /// Sends a request, with `Authorization: Bearer <token>` when a token is given.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        token: Option<&str>,
        body: Option<reqwest::Body>,
    ) -> Answer {
        let mut request = self.http.request(method, self.url(path_and_query));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        answer(request.send().await.expect("the HTTP server answers")).await
    }

    /// A POST without credentials.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Answer {
        self.send(reqwest::Method::POST, path, None, Some(body.into()))
            .await
    }

    /// A JSON POST without credentials.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.post_raw(path, body.to_string()).await
    }

    /// A POST with `user`'s API key.
    pub async fn post_raw_as(
        &self,
        user: &str,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let key = self.key(user);
        self.send(reqwest::Method::POST, path, Some(&key), Some(body.into()))
            .await
    }

    /// A JSON POST with `user`'s API key.
    pub async fn post_as(&self, user: &str, path: &str, body: Value) -> Answer {
        self.post_raw_as(user, path, body.to_string()).await
    }

    /// A GET without credentials.
    pub async fn get(&self, path_and_query: &str) -> Answer {
        self.send(reqwest::Method::GET, path_and_query, None, None)
            .await
    }

    /// A GET with `user`'s API key.
    pub async fn get_as(&self, user: &str, path_and_query: &str) -> Answer {
        let key = self.key(user);
        self.send(reqwest::Method::GET, path_and_query, Some(&key), None)
            .await
    }

    /// A GET with the admin token.
    pub async fn get_as_admin(&self, path_and_query: &str) -> Answer {
        self.send(
            reqwest::Method::GET,
            path_and_query,
            Some(&self.admin_token),
            None,
        )
        .await
    }

    pub async fn request(&self, method: reqwest::Method, path: &str) -> Answer {
        self.send(method, path, None, None).await
    }

    /// `user`'s current API key (created or rotated through this client).
    pub fn key(&self, user: &str) -> String {
        self.keys
            .lock()
            .unwrap()
            .get(user)
            .unwrap_or_else(|| panic!("no API key for `{user}`: create the user first"))
            .clone()
    }

    /// Remembers `key` as `user`'s current one (from a CreateUser or RotateKey answer).
    pub fn remember_key(&self, user: &str, key: &str) {
        self.keys
            .lock()
            .unwrap()
            .insert(user.to_string(), key.to_string());
    }

    /// Creates a user with a name no other test uses, funded with `balance`.
    pub async fn new_user(&self, prefix: &str, balance: i64) -> String {
        let user = unique(prefix);
        self.create_user(&user, balance).await;
        user
    }

    /// Creates `user` (remembering its key) and deposits `balance` (nothing when 0).
    pub async fn create_user(&self, user: &str, balance: i64) {
        let created = self.post("/CreateUser", json!({ "user": user })).await;
        assert_eq!(created.status, 201, "{created:?}");
        let key = created.body["api_key"].as_str().expect("an API key");
        self.remember_key(user, key);
        if balance > 0 {
            let deposited = self.deposit(user, balance).await;
            assert_eq!(deposited.status, 200, "{deposited:?}");
        }
    }

    /// `POST /DepositCash` of `sum` with the user's key.
    pub async fn deposit(&self, user: &str, sum: i64) -> Answer {
        self.post_as(user, "/DepositCash", json!({ "user": user, "sum": sum }))
            .await
    }

    pub async fn order(&self, user: &str, sum: i64) -> String {
        let placed = self
            .post_as(user, "/Order", json!({ "user": user, "sum": sum }))
            .await;
        assert_eq!(placed.status, 202, "{placed:?}");
        let id = placed.body["order_id"]
            .as_str()
            .expect("an order id")
            .to_string();
        assert_eq!(
            placed.headers.get("location").map(|l| l.to_str().unwrap()),
            Some(format!("/OrderStatus?order_id={id}").as_str()),
            "an accepted order says where its outcome will be"
        );
        id
    }

    pub async fn balance(&self, user: &str) -> u64 {
        let answer = self
            .get_as(user, &format!("/Balance?user={}", encode(user)))
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.body["balance"].as_u64().expect("a balance")
    }

    /// `user`'s notifications, every page, asked with the user's key, or with the admin token
    /// for a user this client has no key for (one that exists only in orders published on the
    /// broker).
    pub async fn notifications(&self, user: &str) -> Vec<Value> {
        let token = self.key_or_admin_token(user);
        self.every_page(&format!("/List?user={}&limit=1000", encode(user)), &token)
            .await
    }

    /// Every item of `path` (a `/List` or `/Statement` query; `items`: the field holding a
    /// page's), following `next_after` from page to page, checking each page with `check`.
    pub async fn every_page_checked(
        &self,
        path: &str,
        items: &str,
        token: &str,
        mut check: impl FnMut(&Value),
    ) -> Vec<Value> {
        let mut all = Vec::new();
        let mut next_page = path.to_string();
        loop {
            let answer = self
                .send(reqwest::Method::GET, &next_page, Some(token), None)
                .await;
            assert_eq!(answer.status, 200, "{answer:?}");
            check(&answer.body);
            all.extend(
                answer.body[items]
                    .as_array()
                    .expect("a list")
                    .iter()
                    .cloned(),
            );
            match answer.body["next_after"].as_u64() {
                Some(after) => next_page = format!("{path}&after={after}"),
                None => return all,
            }
        }
    }

    /// Every notification of `path` (a `/List` query), following `next_after` from page to page.
    pub async fn every_page(&self, path: &str, token: &str) -> Vec<Value> {
        self.every_page_checked(path, "notifications", token, |_| {})
            .await
    }

    /// `user`'s key, or the admin token for a user this client has no key for.
    fn key_or_admin_token(&self, user: &str) -> String {
        let key = self.keys.lock().unwrap().get(user).cloned();
        key.unwrap_or_else(|| self.admin_token.clone())
    }

    /// `POST /Refund` of `user`'s order `id` with the user's key: `sum` (absent: all that is
    /// left), under `idempotency_key` when given.
    pub async fn refund(
        &self,
        user: &str,
        id: &str,
        sum: Option<i64>,
        idempotency_key: Option<&str>,
    ) -> Answer {
        let request = self.refund_request(&self.http, user, id, sum, idempotency_key);
        answer(request.send().await.expect("the HTTP server answers")).await
    }

    /// [`Self::refund`]'s request, sent by `client`.
    pub fn refund_request(
        &self,
        client: &reqwest::Client,
        user: &str,
        id: &str,
        sum: Option<i64>,
        idempotency_key: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut body = serde_json::json!({ "order_id": id });
        if let Some(sum) = sum {
            body["sum"] = sum.into();
        }
        let mut request = client
            .post(self.url("/Refund"))
            .bearer_auth(self.key(user))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        request
    }

    /// Where order `id` stands, asked with `user`'s key (the admin token for a user this client has
    /// no key for).
    pub async fn order_status(&self, user: &str, id: &str) -> Answer {
        let token = self.key_or_admin_token(user);
        let path = format!("/OrderStatus?order_id={}", encode(id));
        self.send(reqwest::Method::GET, &path, Some(&token), None)
            .await
    }

    /// Polls `/OrderStatus` until order `id` is settled (`paid` or `refused`, or refunded since),
    /// then returns the answer; on the way it may be pending, and nothing else: an order is known
    /// from the moment it was accepted (stored in its stream).
    pub async fn await_settled(&self, user: &str, id: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let answer = self.order_status(user, id).await;
            match (answer.status, answer.body["state"].as_str()) {
                (200, Some("paid" | "refused" | "partially_refunded" | "refunded")) => {
                    return answer.body
                }
                (200, Some("pending")) => {}
                _ => panic!("order {id}: {answer:?}"),
            }
            assert!(
                Instant::now() < deadline,
                "order {id} not settled after {PATIENCE:?}: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Places `count` orders of `sum`, each settled before the next is placed: their ids, oldest
    /// first.
    pub async fn settled_orders(&self, user: &str, count: usize, sum: i64) -> Vec<String> {
        let mut ids = Vec::new();
        for _ in 0..count {
            let id = self.order(user, sum).await;
            self.await_settled(user, &id).await;
            ids.push(id);
        }
        ids
    }

    /// Polls `/List?user=` until `count` notifications are there (never fewer, and never more
    /// appear while waiting a moment longer), then returns them.
    pub async fn await_notifications(&self, user: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let listed = self.notifications(user).await;
            assert!(
                listed.len() <= count,
                "more notifications than orders: {listed:#?}"
            );
            if listed.len() == count {
                return listed;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} notifications after {PATIENCE:?}",
                listed.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A subscription to `subject` that the server has registered: what is published after this
/// returns reaches it.
pub async fn subscribed(
    nats: &async_nats::Client,
    subject: impl async_nats::subject::ToSubject,
) -> async_nats::Subscriber {
    let subscription = nats.subscribe(subject).await.expect("subscribe");
    nats.flush().await.expect("flush");
    subscription
}

/// The next message on `subscription` that decodes as `M` and satisfies `wanted`.
pub async fn next_matching<M: prost::Message + Default>(
    subscription: &mut async_nats::Subscriber,
    wanted: impl Fn(&M) -> bool,
) -> M {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let message = subscription
                .next()
                .await
                .expect("the subscription stays open");
            if let Ok(decoded) = M::decode(message.payload.as_ref()) {
                if wanted(&decoded) {
                    return decoded;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no matching message within {PATIENCE:?}"))
}

/// Publishes `order` on its subject (`orders.placed.<partition>.<order id>`) straight into
/// JetStream, as a NATS client with access to the broker could, bypassing order's HTTP API.
pub async fn publish_order(lattice: &Lattice, order: &orders_wire::proto::OrderPlaced) {
    use prost::Message as _;
    let js = async_nats::jetstream::new(lattice.nats().await);
    let id = orders_domain::OrderId::parse(&order.order_id).expect("a valid order id");
    js.publish(
        orders_wire::subjects::order_placed(&order.user, &id),
        order.encode_to_vec().into(),
    )
    .await
    .expect("JetStream takes the message")
    .await
    .expect("JetStream stores the message");
}

/// The SHA-256 of an API key, as an order carries it on the broker (`OrderPlaced.key_sha256`).
pub fn key_sha256(key: &str) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(key.as_bytes()).to_vec()
}

/// A response read whole: status, headers, and the body as JSON (`Null` when it is not JSON).
pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{:x}-{n}", nanos % (1 << 48))
}

/// Runs `orders-admin` (`ORDERS_ADMIN_TOOL`, which `make test` sets) with `args` against the test
/// lattice (`ORDERS_NATS_URL`, `ORDERS_NATS_CREDS`) and returns what it printed, one JSON value a
/// line.
pub async fn orders_admin(args: &[&str]) -> Vec<Value> {
    let output = orders_admin_command(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("orders-admin: {e}"));
    assert!(
        output.status.success(),
        "orders-admin {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// `orders-admin audit` on the test lattice finds nothing wrong within [`PATIENCE`] (a debit's
/// notification may still be on its way; a balance that differs from its ledger never mends).
/// Returns its summary.
pub async fn the_books_add_up() -> Value {
    let wait = PATIENCE.as_secs().to_string();
    let printed = orders_admin(&["audit", "--wait", &wait]).await;
    let summary = printed.last().expect("a summary")["audited"].clone();
    println!("audit: {summary}");
    summary
}

/// `orders-admin` (`ORDERS_ADMIN_TOOL`) with `args`, to run or spawn.
pub fn orders_admin_command(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(
        std::env::var("ORDERS_ADMIN_TOOL").expect("ORDERS_ADMIN_TOOL"),
    );
    command.args(args);
    command
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The checkout under test. Read when the test runs, not compiled in: the compiled tests are
/// shared by every checkout that uses the same target directory (`cargo test` sets the variable).
pub fn checkout() -> std::path::PathBuf {
    let tests = std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
    std::path::Path::new(&tests).join("../..")
}

/// Runs `orders-ops lattice` with `args` (what `make run`, `make down` and `make backup` run, and
/// the fault tests call) and returns whether it succeeded, with what it printed. `make test` names
/// the tool in `ORDERS_OPS_TOOL`.
pub fn lattice_ops(args: &[&str]) -> (bool, String) {
    let ops = std::env::var("ORDERS_OPS_TOOL").expect("ORDERS_OPS_TOOL names orders-ops");
    let output = std::process::Command::new(ops)
        .arg("lattice")
        .args(args)
        .current_dir(checkout())
        .output()
        .expect("orders-ops runs");
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), printed)
}

/// The pid of `process` of `instance` as its supervisor last started it (orders-ops keeps it in
/// `.state/<instance>/<process>.child-pid`).
pub fn supervised_pid(instance: &str, process: &str) -> u32 {
    let file = checkout().join(format!(".state/{instance}/{process}.child-pid"));
    let pid = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    pid.trim().parse().unwrap()
}

/// The processes whose parent is `pid` (from /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let parent_of = |stat: &str| -> Option<u32> {
        // `pid (command) state ppid ...`: the command may hold spaces, so read after its `)`.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .is_ok_and(|stat| parent_of(&stat) == Some(pid))
        })
        .collect()
}

/// Backs up the stopped `instance` (orders-ops, as `make backup` does), wipes it, restores
/// it and starts it again: a user's account, notifications and API key are as before, and an order
/// placed afterwards is charged once. A running lattice is refused a backup. `instance` is left
/// running.
pub async fn backed_up_wiped_and_restored_keeps_everything(lattice: &Lattice, instance: &str) {
    let user = lattice.new_user("Restored", 100).await;
    let order_id = lattice.order(&user, 30).await;
    assert_eq!(
        lattice.await_settled(&user, &order_id).await["state"],
        json!("paid")
    );
    // This user's entries only: the other tests' orders may still be settling around this one.
    let exported = |bucket: &'static str| {
        let (user, order_id) = (user.clone(), order_id.clone());
        async move {
            let entries = orders_admin(&["kv", "export", bucket]).await;
            let own = |e: &&Value| {
                let key = e["key"].as_str().unwrap();
                key.contains(&user) || key.contains(&order_id)
            };
            entries.iter().filter(own).cloned().collect::<Vec<Value>>()
        }
    };
    let accounts = exported("billing").await;
    let notifications = exported("notify").await;
    assert!(!accounts.is_empty() && !notifications.is_empty());
    let archive = std::env::temp_dir().join(format!("{}.tar.gz", unique("orders-backup")));

    let (succeeded, printed) = on_instance(instance, "backup", Some(&archive));
    assert!(
        !succeeded && printed.contains("stop it first"),
        "a running lattice is not backed up: {printed}"
    );
    assert!(!archive.exists());

    must(instance, "down", None);
    must(instance, "backup", Some(&archive));
    must(instance, "clean", None);
    must(instance, "restore", Some(&archive));
    must(instance, "up", None);

    assert_eq!(exported("billing").await, accounts);
    assert_eq!(exported("notify").await, notifications);
    assert_eq!(
        lattice.balance(&user).await,
        70,
        "the user's own key still works"
    );
    assert_eq!(
        lattice.await_settled(&user, &order_id).await["state"],
        json!("paid")
    );
    let after = lattice.order(&user, 20).await;
    assert_eq!(
        lattice.await_settled(&user, &after).await["state"],
        json!("paid")
    );
    assert_eq!(
        lattice.balance(&user).await,
        50,
        "an order after the restore is charged once"
    );
    std::fs::remove_file(&archive).unwrap();
    println!("backup and restore ({instance}): a stopped lattice backed up, wiped and restored; balances, notifications and API keys as before");
}

/// `orders-ops lattice <action> <instance> [archive]`, which must succeed.
fn must(instance: &str, action: &str, archive: Option<&std::path::Path>) {
    let (succeeded, printed) = on_instance(instance, action, archive);
    assert!(
        succeeded,
        "orders-ops lattice {action} {instance} failed:\n{printed}"
    );
}

fn on_instance(instance: &str, action: &str, archive: Option<&std::path::Path>) -> (bool, String) {
    let archive = archive.map(|a| a.to_str().unwrap());
    lattice_ops(&[[action, instance].as_slice(), archive.as_slice()].concat())
}

/// How long our HTTP server keeps an idle keep-alive connection open (its `header_timeout_ms`,
/// 5 s by default: a connection waiting for its next request is waiting for headers).
const SERVER_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP client that gives up on a request after `timeout` and never sends one on a connection
/// the server is about to close: it lets idle connections go 1 s before the server does (a
/// request written just as the server closes the connection would be reset, answer unknown).
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_idle_timeout(SERVER_IDLE_TIMEOUT - Duration::from_secs(1))
        .build()
        .expect("an HTTP client")
}

/// The traits (links, scalers) of the manifest's part `name`.
pub fn traits_of<'m>(
    manifest: &'m mut serde_yaml::Value,
    name: &str,
) -> &'m mut Vec<serde_yaml::Value> {
    manifest["spec"]["components"]
        .as_sequence_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no `{name}` in the manifest"))["traits"]
        .as_sequence_mut()
        .expect("a list of traits")
}

/// How long `wash` waits for the host to answer a link change: the host makes one change at a
/// time, and the end-to-end tests load it meanwhile (wash's own default is 2 s).
const LINK_CHANGE_TIMEOUT_MS: &str = "15000";

/// Redeploys the application with parts scaled down, the way an operator (or an outage) would stop
/// them, through wadm with the real `wash`. Needs `ORDERS_WASH`, `ORDERS_CTL_PORT` and
/// `ORDERS_MANIFEST` (the deployed manifest), which `make test` sets.
pub struct Operator {
    wash: String,
    ctl_port: String,
    manifest: serde_yaml::Value,
    /// The lattice instance (`orders-ops lattice`), named by the directory of its manifest.
    pub instance: String,
}

impl Operator {
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .unwrap_or_else(|_| panic!("{name} is not set: run through `make test`"))
        };
        let path = std::path::PathBuf::from(var("ORDERS_MANIFEST"));
        let manifest = std::fs::read_to_string(&path).expect("the deployed manifest");
        let instance = path.parent().and_then(|dir| dir.file_name());
        Self {
            wash: var("ORDERS_WASH"),
            ctl_port: var("ORDERS_CTL_PORT"),
            manifest: serde_yaml::from_str(&manifest).unwrap(),
            instance: instance.unwrap().to_string_lossy().into_owned(),
        }
    }

    fn original_version(&self) -> String {
        self.manifest["metadata"]["annotations"]["version"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn wash(&self, args: &[&str]) -> String {
        self.wash_with(
            args,
            ["--ctl-host", "127.0.0.1", "--ctl-port", &self.ctl_port],
        )
        .await
    }

    /// Runs `wash` with `args` and then `connection`, the options that say how it reaches the
    /// lattice.
    async fn wash_with(&self, args: &[&str], connection: [&str; 4]) -> String {
        let output = tokio::process::Command::new(&self.wash)
            .args(args)
            .args(connection)
            .output()
            .await
            .expect("wash runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "wash {args:?} failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        text
    }

    /// `wash call <component> <function>`: invokes a component's export over the lattice, as a
    /// person does ad hoc (wRPC over NATS, on the data plane); answers what wash printed.
    pub async fn call(&self, component: &str, function: &str) -> String {
        self.wash_with(
            &["call", component, function],
            ["--rpc-host", "127.0.0.1", "--rpc-port", &self.ctl_port],
        )
        .await
    }

    /// Deploys a version of the application in which each named part runs `instances` copies
    /// (0 stops it), and waits until wadm reports it deployed.
    pub async fn deploy_scaled(&self, version: &str, parts: &[(&str, u64)]) {
        self.deploy_edited(version, |manifest| {
            for (name, instances) in parts {
                let scaler = traits_of(manifest, name)
                    .iter_mut()
                    .find(|t| t["type"].as_str() == Some("spreadscaler"))
                    .expect("a spreadscaler");
                scaler["properties"]["instances"] = (*instances).into();
            }
        })
        .await;
    }

    /// Deploys a version of the application as `edit` changes it (the manifest as a YAML tree),
    /// and waits until wadm reports it deployed.
    pub async fn deploy_edited(&self, version: &str, edit: impl FnOnce(&mut serde_yaml::Value)) {
        let mut manifest = self.manifest.clone();
        manifest["metadata"]["annotations"]["version"] = version.into();
        edit(&mut manifest);
        let path =
            std::env::temp_dir().join(format!("orders-{version}-{}.yaml", std::process::id()));
        std::fs::write(&path, serde_yaml::to_string(&manifest).unwrap()).unwrap();
        self.wash(&["app", "deploy", path.to_str().unwrap()]).await;
        self.await_deployed(version).await;
    }

    /// Deploys the manifest `make test` deployed, and waits until it is deployed again and every
    /// link is served: wadm reports a version deployed once its parts are started, while a
    /// provider started again may still be connecting (its callers get 503 until then).
    pub async fn restore(&self) {
        let version = self.original_version();
        self.wash(&["app", "deploy", "orders", &version]).await;
        self.await_deployed(&version).await;
        let instance = self.instance.clone();
        let (served, printed) =
            tokio::task::spawn_blocking(move || lattice_ops(&["ready", &instance]))
                .await
                .unwrap();
        assert!(served, "after the redeploy: {printed}");
    }

    /// Stops the provider `id` on the lattice's first host through the control interface, as
    /// `wash stop provider`: for a capability the host serves in its process, what a provider
    /// process's crash is (wadm starts it again).
    pub async fn stop_provider(&self, id: &str) {
        let hosts: serde_json::Value =
            serde_json::from_str(&self.wash(&["get", "hosts", "-o", "json"]).await).unwrap();
        let host = hosts["hosts"][0]["id"]
            .as_str()
            .expect("a host")
            .to_string();
        self.wash(&["stop", "provider", id, "--host-id", &host])
            .await;
    }

    /// Puts a link from `source` to `target` for `namespace:package/interface`, as `wash link put`.
    pub async fn put_link(
        &self,
        source: &str,
        target: &str,
        package: (&str, &str),
        interface: &str,
    ) {
        let (namespace, package) = package;
        self.wash(&[
            "link",
            "put",
            source,
            target,
            namespace,
            package,
            "--interface",
            interface,
            "--timeout-ms",
            LINK_CHANGE_TIMEOUT_MS,
        ])
        .await;
    }

    /// Deletes `source`'s link for `namespace:package`, as `wash link del`.
    pub async fn delete_link(&self, source: &str, package: (&str, &str)) {
        let (namespace, package) = package;
        self.wash(&[
            "link",
            "del",
            source,
            namespace,
            package,
            "--timeout-ms",
            LINK_CHANGE_TIMEOUT_MS,
        ])
        .await;
    }

    /// The links the lattice holds from `source`, as `wash get links` lists them.
    pub async fn links_of(&self, source: &str) -> Vec<Value> {
        let listed: Value =
            serde_json::from_str(&self.wash(&["get", "links", "-o", "json"]).await).unwrap();
        let links = listed["links"].as_array().cloned().unwrap_or_default();
        links
            .into_iter()
            .filter(|link| link["source_id"] == source)
            .collect()
    }

    async fn await_deployed(&self, version: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status: Value =
                serde_json::from_str(&self.wash(&["app", "status", "orders", "-o", "json"]).await)
                    .unwrap();
            let listed: Value =
                serde_json::from_str(&self.wash(&["app", "list", "-o", "json"]).await).unwrap();
            let deployed_version = listed["applications"]
                .as_array()
                .and_then(|apps| apps.iter().find(|a| a["name"] == "orders"))
                .map(|app| {
                    app["deployed_version"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                });
            if status["status"]["status"]["type"] == "deployed"
                && deployed_version.as_deref() == Some(version)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "version {version} not deployed after 120 s: {status}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The test lattice's trace receiver and metrics endpoint, orders-telemetry
/// (`ORDERS_TELEMETRY_URL`, which `make test` sets).
pub struct Telemetry {
    pub url: String,
}

impl Telemetry {
    pub fn from_env() -> Self {
        Self {
            url: std::env::var("ORDERS_TELEMETRY_URL")
                .expect("ORDERS_TELEMETRY_URL is not set: run through `make test`"),
        }
    }

    /// The Prometheus metrics, as a scraper reads them.
    pub async fn scrape(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The traces that mention `order_id`, once `complete` accepts them. Each process (the host,
    /// each provider) exports its spans in batches every few seconds, so a trace fills up over
    /// time; gives up after `PATIENCE`, saying it waited for `what`.
    pub async fn await_traces(
        &self,
        order_id: &str,
        what: &str,
        complete: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let traces: Vec<Value> =
                reqwest::get(format!("{}/traces?order_id={}", self.url, encode(order_id)))
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
            if complete(&traces) {
                return traces;
            }
            assert!(
                Instant::now() < deadline,
                "no trace of order {order_id} {what} within {PATIENCE:?}: {:#}",
                Value::from(traces)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The spans of a trace as orders-telemetry serves it.
pub fn spans(trace: &Value) -> impl Iterator<Item = &Value> {
    trace["spans"].as_array().into_iter().flatten()
}

/// The trace (of those served for an order id) that its `POST /Order` request started.
pub fn placing_trace(traces: &[Value]) -> Option<&Value> {
    traces
        .iter()
        .find(|t| spans(t).any(|s| s["name"] == "POST /Order"))
}
